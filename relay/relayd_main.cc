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
// Signals: SIGHUP reloads the certificate, the users file, port 25's aliases and SRS secrets, and
// relayd.toml's DKIM keys, shaping rules, tenants, limits and egress pools, naming what else
// changed (existing connections are kept);
// SIGTERM and SIGINT stop accepting, let sessions finish within shutdown.grace_ms, flush the
// queue and exit 0.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dkim/key.h"
#include "relay/base/log.h"
#include "relay/server/config.h"
#include "relay/server/daemon.h"
#include "relay/server/init_config.h"

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

std::string ReadConfigText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
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

  server::DaemonOptions options;
  options.config_path = flags.config;
  options.config_text = ReadConfigText(flags.config);  // SIGHUP compares the file with it
#ifdef RELAY_VERSION
  options.version = RELAY_VERSION;
#endif
  absl::StatusOr<server::Config> config = server::LoadConfig(flags.config);
  if (!config.ok()) {
    LogError() << config.status().message();
    return 2;
  }
  absl::StatusOr<std::unique_ptr<server::Daemon>> daemon =
      server::Daemon::Start(std::move(*config), std::move(options));
  if (!daemon.ok()) {
    LogError() << daemon.status().message();
    return 2;
  }
  server::Daemon& relay = **daemon;
  LogInfo() << "relayd ready: " << relay.ReadyLine();
  const uint32_t tls_check_ms = relay.config().tls_reload_check_ms;
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  auto now_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
  };
  int64_t next_tls_check_ms = now_ms() + tls_check_ms;
  int64_t next_housekeeping_ms = now_ms() + server::Daemon::kHousekeepingMs;
  for (;;) {
    // The main thread waits for a signal, a reload asked through the control socket, or its
    // housekeeping interval (and the certificate check's, when that is due).
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {relay.control_request_fd(), POLLIN, 0}};
    int ready =
        poll(fds, 2,
             static_cast<int>(tls_check_ms > 0
                                  ? std::min<int64_t>(tls_check_ms, server::Daemon::kHousekeepingMs)
                                  : server::Daemon::kHousekeepingMs));
    int sig = -1;
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
        sig = static_cast<int>(info.ssi_signo);
      }
    }
    if (sig == SIGTERM || sig == SIGINT) {
      LogInfo() << "signal " << strsignal(sig) << ": draining (grace "
                << relay.config().shutdown_grace_ms << " ms)";
      break;
    }
    if (sig == SIGHUP) LogInfo() << "SIGHUP: " << relay.Reload().summary;
    if (ready > 0 && (fds[1].revents & POLLIN)) relay.AnswerControlRequest();
    if (now_ms() >= next_housekeeping_ms) {
      relay.Housekeeping();
      next_housekeeping_ms = now_ms() + server::Daemon::kHousekeepingMs;
    }
    if (tls_check_ms > 0 && now_ms() >= next_tls_check_ms) {
      relay.CheckCertificate();
      next_tls_check_ms = now_ms() + tls_check_ms;
    }
  }
  ::close(signal_fd);
  const uint64_t accepted = relay.Stop();
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
