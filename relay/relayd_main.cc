// relayd: the relay daemon.
//
//   relayd --config DIR/relayd.toml          run
//   relayd --init DIR [--domain D] [--hostname H] [--port-submission N] [--port-submissions N]
//                [--no-dkim]
//                                            write a working default configuration into DIR
//                                            (relay/server/init_config.h): a first user whose
//                                            password is printed once, and DKIM keys (RSA-2048 and
//                                            Ed25519; none with --no-dkim) whose TXT records are
//                                            printed to publish; then exit
//   relayd --help                            this usage, on stdout
//
// Signals: SIGHUP reloads the certificate, the users file and port 25's aliases and SRS secrets
// (existing connections are kept);
// SIGTERM and SIGINT stop accepting, let sessions finish within shutdown.grace_ms, flush the
// queue and exit 0.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <openssl/rand.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dkim/key.h"
#include "relay/base/clock.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/shaping.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/metrics/http_server.h"
#include "relay/metrics/relay_metrics.h"
#include "relay/server/auth_service.h"
#include "relay/server/config.h"
#include "relay/server/control.h"
#include "relay/server/init_config.h"
#include "relay/server/shard.h"
#include "relay/server/signing_pool.h"
#include "relay/receive/aliases.h"
#include "relay/receive/receive_state.h"
#include "relay/receive/recipient_policy.h"
#include "relay/receive/srs.h"
#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"

namespace relay {
namespace {

struct Flags {
  std::string config;
  std::string init_dir;
  std::string domain = "example.com";
  std::string hostname = "localhost";
  uint16_t port_submission = 2587;
  uint16_t port_submissions = 2465;
  bool dkim = true;  // --init makes DKIM keys
  bool help = false;
};

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: relayd --config FILE\n"
               "       relayd --init DIR [--domain D] [--hostname H] [--port-submission N]"
               " [--port-submissions N]\n"
               "                         [--no-dkim]\n"
               "       relayd --help\n"
               "\n"
               "--init writes a new configuration into DIR (refused when DIR/relayd.toml exists):\n"
               "a first user app@D whose password is printed once, a self-signed certificate and\n"
               "DKIM keys for D (RSA-2048 and Ed25519; none with --no-dkim) whose DNS records are\n"
               "printed. Defaults: --domain example.com --hostname localhost, submission on\n"
               "127.0.0.1:2587 (STARTTLS) and 127.0.0.1:2465 (implicit TLS).\n");
}

// False on a wrong argument (the usage goes to stderr, exit 2); --help stops parsing.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    auto port = [&](uint16_t* out) {
      std::string v;
      uint32_t n = 0;
      if (!value(&v) || !absl::SimpleAtoi(v, &n) || n == 0 || n > 65535) return false;
      *out = static_cast<uint16_t>(n);
      return true;
    };
    bool ok = true;
    if (arg == "--help" || arg == "-h") {
      flags->help = true;
      return true;
    } else if (arg == "--config") {
      ok = value(&flags->config);
    } else if (arg == "--init") {
      ok = value(&flags->init_dir);
    } else if (arg == "--domain") {
      ok = value(&flags->domain);
    } else if (arg == "--hostname") {
      ok = value(&flags->hostname);
    } else if (arg == "--port-submission") {
      ok = port(&flags->port_submission);
    } else if (arg == "--port-submissions") {
      ok = port(&flags->port_submissions);
    } else if (arg == "--no-dkim") {
      flags->dkim = false;
    } else {
      std::fprintf(stderr, "relayd: unknown argument %s\n", arg.c_str());
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "relayd: %s needs a valid value\n", arg.c_str());
      return false;
    }
  }
  return !flags->config.empty() || !flags->init_dir.empty();
}

// Writes a new configuration directory for a newcomer: the same one as `relayctl init`, on
// loopback ports, with a first user and, unless --no-dkim, keys that sign the first message.
int Init(const Flags& flags) {
  server::InitOptions options;
  options.domain = flags.domain;
  options.hostname = flags.hostname;
  options.submission_listen = {absl::StrCat("127.0.0.1:", flags.port_submission)};
  options.submissions_listen = {absl::StrCat("127.0.0.1:", flags.port_submissions)};
  options.first_user = absl::StrCat("app@", flags.domain);
  if (!flags.dkim) options.dkim_algorithms.clear();
  absl::StatusOr<server::InitResult> init = server::InitDirectory(flags.init_dir, options);
  if (!init.ok()) {
    std::fprintf(stderr, "relayd: %s\n", std::string(init.status().message()).c_str());
    return 1;
  }
  std::printf(
      "Wrote %s\n"
      "First user: %s (may send as any address @%s)\n"
      "Password:   %s\n"
      "This password is shown only once; change it with `relayctl user-add` after "
      "`relayctl user-del`.\n",
      init->config_path.c_str(), options.first_user.c_str(), flags.domain.c_str(),
      init->password.c_str());
  if (init->keys.empty()) {
    std::printf("No DKIM key (--no-dkim): mail leaves unsigned until relayd.toml names one.\n");
    return 0;
  }
  std::printf(
      "DKIM: every message from @%s is signed with each key in %s/keys.\n"
      "Publish these TXT records in the DNS of %s so that receivers can verify the signatures\n"
      "(`relayctl dns-records --config %s` prints them with the MX, SPF and DMARC records):\n",
      flags.domain.c_str(), flags.init_dir.c_str(), flags.domain.c_str(),
      init->config_path.c_str());
  for (const server::InitKey& key : init->keys) {
    // Zone-file syntax; a TXT string holds at most 255 bytes (RFC 1035 §3.3.14).
    std::vector<std::string> strings;
    for (const std::string& part : dkim::SplitTxtStrings(key.record)) {
      strings.push_back(absl::StrCat("\"", part, "\""));
    }
    std::printf("%s. IN TXT %s\n", key.owner.c_str(), absl::StrJoin(strings, " ").c_str());
  }
  return 0;
}

absl::Status EnsureCertificate(const server::Config& config) {
  if (config.tls_cert_path.empty()) return absl::OkStatus();
  if (std::filesystem::exists(config.tls_cert_path) &&
      std::filesystem::exists(config.tls_key_path)) {
    return absl::OkStatus();
  }
  std::error_code ec;
  std::filesystem::create_directories(
      std::filesystem::path(config.tls_cert_path).parent_path(), ec);
  std::filesystem::create_directories(std::filesystem::path(config.tls_key_path).parent_path(),
                                      ec);
  RETURN_IF_ERROR(
      tls::GenerateSelfSignedCertificate(config.hostname, config.tls_cert_path,
                                         config.tls_key_path));
  LogWarning() << "no certificate found: generated a SELF-SIGNED certificate for "
               << config.hostname << " in " << config.tls_cert_path
               << "; clients will not trust it. Install a real certificate there and send SIGHUP.";
  return absl::OkStatus();
}

// Each connection is a descriptor: make room for connections_max of them and the spool's files.
void RaiseFileLimit(uint64_t connections_max) {
  // Listeners, spool segments, the log, c-ares and TLS files: a thousand is ample.
  rlim_t needed = static_cast<rlim_t>(connections_max) + 1024;
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur >= needed) return;
  struct rlimit wanted = limit;
  wanted.rlim_cur = needed;
  if (wanted.rlim_max < needed) wanted.rlim_max = needed;  // root may raise the hard limit
  if (setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
    wanted.rlim_cur = limit.rlim_max;
    wanted.rlim_max = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &wanted);
    LogWarning() << "open files limited to " << limit.rlim_max << ", below limits.connections_max ("
                 << connections_max << ") + spool files: raise LimitNOFILE";
  }
}

// The SRS secrets: one per line, the first signs (relay/receive/srs.h). A missing file is created
// with a random secret, as a missing certificate is: forwarding must work on a first start.
absl::StatusOr<std::vector<std::string>> LoadSrsSecrets(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    uint8_t bytes[24];
    RAND_bytes(bytes, sizeof(bytes));
    std::string secret;
    for (uint8_t b : bytes) absl::StrAppend(&secret, absl::Hex(b, absl::kZeroPad2));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": cannot create the SRS secret file: ", std::strerror(errno),
                       " (relayctl init and relayd --init make it; or write one random line of",
                       " 32 or more characters into it, readable by relayd)"));
    }
    std::string line = secret + "\n";
    bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!written) return absl::FailedPreconditionError(absl::StrCat(path, ": write failed"));
    LogWarning() << "no SRS secret found: generated one in " << path;
  }
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(path, ": cannot read"));
  std::vector<std::string> secrets;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line.front() != '#') secrets.push_back(line);
  }
  if (secrets.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": no SRS secret in the file"));
  }
  return secrets;
}

std::string ReadConfigText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Port 25's aliases and SRS, read at start and on SIGHUP. Any error names the file and line.
absl::StatusOr<std::shared_ptr<const receive::ReceiveState>> LoadReceiveState(
    const server::Config& config) {
  const server::ReceiveSettings& r = config.receive;
  receive::AliasesOptions options;
  options.depth_max = r.alias_depth_max;
  options.suffix_separators = r.suffix_separators;
  options.targets_max = r.alias_targets_max;
  ASSIGN_OR_RETURN(receive::Aliases aliases, receive::Aliases::Load(r.aliases_files, options));
  ASSIGN_OR_RETURN(std::vector<std::string> secrets, LoadSrsSecrets(r.srs_secret_path));
  receive::SrsConfig srs_config;
  srs_config.domain = r.srs_domain;
  srs_config.secrets = std::move(secrets);
  srs_config.max_age_days = static_cast<int>(r.srs_max_age_days);
  ASSIGN_OR_RETURN(std::unique_ptr<receive::Srs> srs, receive::Srs::Create(srs_config));
  auto state = std::make_shared<receive::ReceiveState>();
  if (r.arc) {
    // Each local domain seals with its first [[dkim.key]] (RFC 8617 §4.1.2: the same key
    // material as DKIM); a domain without one forwards without an ARC set.
    for (const std::string& domain : r.domains) {
      for (const server::DkimKeyConfig& k : config.dkim_keys) {
        if (!absl::EqualsIgnoreCase(k.domain, domain)) continue;
        dkim::ArcSealerConfig sealer_config;
        sealer_config.domain = domain;
        sealer_config.selector = k.selector;
        sealer_config.key_path = k.key_path;
        ASSIGN_OR_RETURN(std::unique_ptr<dkim::ArcSealer> sealer,
                         dkim::ArcSealer::Create(sealer_config));
        state->sealers.emplace(domain, std::move(sealer));
        break;
      }
      if (!state->sealers.contains(domain)) {
        LogWarning() << "receive: no [[dkim.key]] for " << domain
                     << ": mail forwarded for it carries no ARC set";
      }
    }
  }
  state->policy = std::make_shared<const receive::RecipientPolicy>(
      std::make_shared<const receive::Aliases>(std::move(aliases)),
      std::shared_ptr<const receive::Srs>(std::move(srs)));
  return std::shared_ptr<const receive::ReceiveState>(std::move(state));
}

dkim::SignerConfig DkimConfig(const server::Config& config) {
  dkim::SignerConfig c;
  for (const server::DkimKeyConfig& k : config.dkim_keys) {
    dkim::SigningKeyConfig key;
    key.domain = k.domain;
    key.selector = k.selector;
    key.key_path = k.key_path;
    c.keys.push_back(std::move(key));
  }
  return c;
}

// The build's version for relay_build_info.
#ifndef RELAY_VERSION
#define RELAY_VERSION "dev"
#endif

// Label values for the metrics: every shaping rule's name and every egress source's name.
std::unique_ptr<metrics::RelayMetrics> BuildMetrics(const server::Config& config, int shards) {
  metrics::RelayMetricsOptions options;
  options.shards = shards;
  options.version = RELAY_VERSION;
  options.start_time_unix_s = RealClock::Get()->WallSeconds();
  options.spool_directory = config.spool_dir;
  if (config.shaping != nullptr) {
    options.sites.push_back(config.shaping->default_rule().name);
    for (const delivery::ShapingRuleSpec& spec : config.shaping->specs()) {
      options.sites.push_back(spec.name);
    }
  }
  auto pool = delivery::EgressPool::Create(config.delivery.sources, config.delivery.strategy,
                                           config.hostname);
  if (pool.ok()) {
    for (size_t i = 0; i < pool->size(); ++i) options.sources.push_back(pool->source(i).name);
  }
  return std::make_unique<metrics::RelayMetrics>(options);
}

// Why the relay is not healthy ("" when it is): the first shard with a problem.
std::string HealthProblem(const std::vector<server::Shard*>& shards) {
  int64_t now_ms = RealClock::Get()->MonotonicMillis();
  for (const server::Shard* s : shards) {
    std::string problem = s->HealthProblem(now_ms);
    if (!problem.empty()) return problem;
  }
  return "";
}

int Run(const Flags& flags) {
  // Signals are read from a signalfd by the main thread only. They are blocked before any thread
  // exists (auth workers, shards), since every thread inherits the mask: a thread that did not
  // block SIGTERM would take it and die by the default action.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The text the running configuration came from: SIGHUP compares the file with it.
  const std::string config_text = ReadConfigText(flags.config);
  absl::StatusOr<server::Config> loaded = server::LoadConfig(flags.config);
  if (!loaded.ok()) {
    LogError() << loaded.status().message();
    return 2;
  }
  server::Config config = std::move(*loaded);
  RaiseFileLimit(config.smtp.connections_max);
  absl::Status probe = io::Reactor::ProbeKernel();
  if (!probe.ok()) {
    LogError() << probe.message();
    return 2;
  }
  if (absl::Status s = EnsureCertificate(config); !s.ok()) {
    LogError() << "certificate: " << s.message();
    return 2;
  }
  std::unique_ptr<tls::ServerTlsContextHolder> tls;
  if (!config.tls_cert_path.empty()) {
    auto holder = tls::ServerTlsContextHolder::Create(config.tls_cert_path, config.tls_key_path);
    if (!holder.ok()) {
      LogError() << "TLS: " << holder.status().message();
      return 2;
    }
    tls = std::move(*holder);
  }
  auto auth = server::AuthService::Create(config);
  if (!auth.ok()) {
    LogError() << auth.status().message();
    return 2;
  }
  dkim::SignerConfig dkim_config = DkimConfig(config);
  if (!dkim_config.keys.empty()) {
    // Checked once here so that a bad key stops the start with one clear message.
    auto signer = dkim::Signer::Create(dkim_config);
    if (!signer.ok()) {
      LogError() << "DKIM: " << signer.status().message();
      return 2;
    }
  } else {
    LogWarning() << "no DKIM keys configured: mail leaves unsigned";
  }
  // Declared before the shards, so destroyed after them: a shard frees a connection only once its
  // signature (or port 25's checks and seal) is back, so no job is queued when the pool goes.
  // Port 25 uses it even without keys: a stranger's message can take long to check (issue 13).
  std::unique_ptr<server::SigningPool> signing_pool;
  if (!dkim_config.keys.empty() || config.receive.enabled()) {
    auto pool = server::SigningPool::Create(config.dkim_signing_threads);
    if (!pool.ok()) {
      LogError() << "DKIM: " << pool.status().message();
      return 2;
    }
    signing_pool = std::move(*pool);
    LogInfo() << "DKIM signing and port-25 checks on " << signing_pool->thread_count()
              << " threads";
  }


  std::unique_ptr<receive::ReceiveStateHolder> receive_state;
  if (config.receive.enabled()) {
    auto state = LoadReceiveState(config);
    if (!state.ok()) {
      LogError() << "receive: " << state.status().message();
      return 2;
    }
    receive_state = std::make_unique<receive::ReceiveStateHolder>(std::move(*state));
  }

  int shard_count = config.shards > 0 ? static_cast<int>(config.shards)
                                      : static_cast<int>(std::thread::hardware_concurrency());
  if (shard_count < 1) shard_count = 1;
  std::unique_ptr<metrics::RelayMetrics> relay_metrics = BuildMetrics(config, shard_count);
  // Shard 0 binds first; when a listener asks for port 0 the others reuse the port it got.
  server::Config later = config;
  server::SharedState shared;
  shared.config = &config;
  shared.tls = tls.get();
  shared.authenticator = auth->get();
  shared.dkim = dkim_config.keys.empty() ? nullptr : &dkim_config;
  shared.metrics = relay_metrics.get();
  shared.signing_pool = signing_pool.get();
  shared.receive = receive_state.get();
  server::SharedState shared_later = shared;
  shared_later.config = &later;
  std::vector<std::unique_ptr<server::Shard>> shards;
  for (int i = 0; i < shard_count; ++i) {
    shards.push_back(std::make_unique<server::Shard>(i, shard_count, i == 0 ? shared : shared_later));
    absl::Status s = shards.back()->Start();
    if (!s.ok()) {
      LogError() << "shard " << i << ": " << s.message();
      for (auto& shard : shards) shard->RequestStop();
      shards.clear();
      return 2;
    }
    if (i == 0) {
      auto fix = [](std::vector<std::string>& addrs, const std::vector<uint16_t>& ports) {
        for (size_t j = 0; j < addrs.size() && j < ports.size(); ++j) {
          auto a = io::SocketAddress::Parse(addrs[j]);
          if (a.ok()) {
            a->set_port(ports[j]);
            addrs[j] = a->ToString();
          }
        }
      };
      fix(later.submission_listen, shards[0]->submission_ports());
      fix(later.submissions_listen, shards[0]->submissions_ports());
      fix(later.receive.listen, shards[0]->receive_ports());
    }
  }
  // "<kind> on <addr>, <addr>" for each kind that listens (tools/testing/relayd_process.py
  // reads the ports from it); a kind without addresses is left out.
  std::vector<std::string> ready = {absl::StrCat(shard_count, " shards")};
  for (const auto& [kind, addrs] : {std::pair{"submission (STARTTLS)", &later.submission_listen},
                                    std::pair{"submissions (TLS)", &later.submissions_listen},
                                    std::pair{"port 25 (receive)", &later.receive.listen}}) {
    if (!addrs->empty()) ready.push_back(absl::StrCat(kind, " on ", absl::StrJoin(*addrs, ", ")));
  }
  ready.push_back(absl::StrCat("spool ", config.spool_dir));
  LogInfo() << "relayd ready: " << absl::StrJoin(ready, "; ");

  std::vector<server::Shard*> shard_list;
  for (auto& shard : shards) shard_list.push_back(shard.get());
  server::MainThreadRequests main_thread;
  auto control = server::ControlSocket::Start(config.control_socket_path, shard_list, &main_thread);
  if (!control.ok()) {
    LogWarning() << control.status().message() << "; relayctl queue retry/bounce/delete will not "
                 << "reach this relay";
  }
  std::unique_ptr<metrics::HttpServer> metrics_server;
  if (!config.metrics.listen.empty()) {
    metrics::HttpHandlers handlers;
    handlers.metrics = [m = relay_metrics.get()] { return m->Render(); };
    handlers.health = [&shard_list] { return HealthProblem(shard_list); };
    auto started = metrics::HttpServer::Start(config.metrics.listen, std::move(handlers));
    if (started.ok()) {
      metrics_server = std::move(*started);
      LogInfo() << "metrics on http://" << config.metrics.listen << "/metrics (port "
                << metrics_server->port() << "), health at /healthz";
    } else {
      // Mail matters more than its metrics: the relay runs on without the endpoint.
      LogError() << "metrics endpoint " << config.metrics.listen << ": "
                 << started.status().message() << "; running without it";
    }
  }
  // SIGHUP and `relayctl reload`: the certificate, the users and the aliases are read again and
  // the delivery logs reopened; relayd.toml itself is read only at start. The answer says what
  // happened to each, and starts with "error" when one of them failed.
  auto reload = [&]() -> std::string {
    std::vector<std::string> done;
    bool failed = false;
    auto report = [&](absl::string_view what, const absl::Status& status) {
      if (status.ok()) {
        done.push_back(absl::StrCat(what, " reloaded"));
      } else {
        failed = true;
        done.push_back(absl::StrCat(what, ": ", status.message(), " (the previous one stays)"));
      }
    };
    if (tls != nullptr) report("certificate", tls->Reload());
    report("users", (*auth)->Reload());
    if (receive_state != nullptr) {
      // A broken aliases file keeps the previous set: mail keeps flowing while it is fixed.
      auto state = LoadReceiveState(config);
      if (state.ok()) receive_state->Set(std::move(*state));
      report("aliases", state.status());
    }
    for (auto& shard : shards) shard->RequestLogReopen();
    done.push_back("delivery logs reopened");
    // Say what an edit of relayd.toml changed that this did not apply, rather than let the
    // operator believe it took effect.
    absl::StatusOr<std::vector<std::string>> changed =
        server::ChangedSettings(config_text, ReadConfigText(flags.config));
    if (!changed.ok()) {
      failed = true;
      done.push_back(absl::StrCat(flags.config, ": ", changed.status().message(),
                                  "; the running configuration stays"));
    } else if (!changed->empty()) {
      done.push_back(absl::StrCat(flags.config, " changed (", absl::StrJoin(*changed, ", "),
                                  "): not applied; these take effect at the next restart"));
    }
    return absl::StrCat(failed ? "error: " : "ok: ", absl::StrJoin(done, "; "));
  };
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  for (;;) {
    // The main thread waits for a signal, a reload asked through the control socket, or the
    // certificate check interval.
    uint32_t check_ms = config.tls_reload_check_ms > 0 ? config.tls_reload_check_ms : 60000;
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {main_thread.fd(), POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(check_ms));
    int sig = -1;
    const bool reload_asked = ready > 0 && (fds[1].revents & POLLIN);
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
        sig = static_cast<int>(info.ssi_signo);
      }
    }
    if (sig == SIGTERM || sig == SIGINT) {
      LogInfo() << "signal " << strsignal(sig) << ": draining (grace " << config.shutdown_grace_ms
                << " ms)";
      break;
    }
    if (sig == SIGHUP) LogInfo() << "SIGHUP: " << reload();
    if (reload_asked) {
      std::string summary = reload();
      LogInfo() << "relayctl reload: " << summary;
      main_thread.Answer(summary);
    }
    if (ready == 0 && tls != nullptr && config.tls_reload_check_ms > 0) {
      bool reloaded = false;
      (void)tls->ReloadIfChanged(&reloaded);
      if (reloaded) LogInfo() << "certificate file changed: reloaded";
    }
  }
  ::close(signal_fd);
  main_thread.Close("error: relayd is stopping");
  control = absl::UnavailableError("stopped");  // its thread ends before the shards it asks
  for (auto& shard : shards) shard->RequestStop();
  for (auto& shard : shards) shard->Join();
  // Scrapes go on during the drain (the last counts are visible); /healthz says 503 once a
  // shard has stopped. The endpoint's handlers use the shards: it stops before they go.
  if (metrics_server != nullptr) metrics_server->Stop();
  uint64_t accepted = 0;
  for (auto& shard : shards) accepted += shard->counters().messages_accepted.load();
  shards.clear();
  LogInfo() << "relayd stopped cleanly; " << accepted << " messages accepted in this run";
  return 0;
}

}  // namespace
}  // namespace relay

int main(int argc, char** argv) {
  relay::Flags flags;
  if (!relay::ParseFlags(argc, argv, &flags)) {
    relay::Usage(stderr);
    return 2;
  }
  if (flags.help) {
    relay::Usage(stdout);
    return 0;
  }
  if (!flags.init_dir.empty()) return relay::Init(flags);
  return relay::Run(flags);
}
