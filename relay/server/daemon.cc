#include "relay/server/daemon.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dkim/arc.h"
#include "dkim/signer.h"
#include "relay/base/clock.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/status_macros.h"
#include "relay/base/sv.h"
#include "relay/cluster/fleet.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/shaping.h"
#include "relay/events/event_sinks.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/metrics/http_server.h"
#include "relay/metrics/relay_metrics.h"
#include "relay/receive/aliases.h"
#include "relay/receive/receive_state.h"
#include "relay/receive/recipient_policy.h"
#include "relay/receive/srs.h"
#include "relay/server/auth_service.h"
#include "relay/server/control.h"
#include "relay/server/shard.h"
#include "relay/server/signing_pool.h"
#include "relay/server/unsubscribe_endpoint.h"
#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"

namespace relay::server {
namespace {

absl::Status EnsureCertificate(const Config& config) {
  if (config.tls_cert_path.empty()) return absl::OkStatus();
  if (std::filesystem::exists(config.tls_cert_path) &&
      std::filesystem::exists(config.tls_key_path)) {
    return absl::OkStatus();
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(config.tls_cert_path).parent_path(),
                                      ec);
  std::filesystem::create_directories(std::filesystem::path(config.tls_key_path).parent_path(), ec);
  RETURN_IF_ERROR(tls::GenerateSelfSignedCertificate(config.hostname, config.tls_cert_path,
                                                     config.tls_key_path));
  LogWarning() << "no certificate found: generated a SELF-SIGNED certificate for "
               << config.hostname << " in " << config.tls_cert_path
               << "; clients will not trust it. Install a real certificate there and send SIGHUP.";
  return absl::OkStatus();
}

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

// HMAC secrets, SRS's (relay/receive/srs.h) or VERP's (relay/feedback/verp.h): one per line, the
// first signs. A missing file is created with a random secret, as a missing certificate is:
// forwarding and return paths must work on a first start.
absl::StatusOr<std::vector<std::string>> LoadSecrets(const std::string& path,
                                                     absl::string_view what) {
  if (!std::filesystem::exists(path)) {
    uint8_t bytes[24];
    RAND_bytes(bytes, sizeof(bytes));
    std::string secret;
    for (uint8_t b : bytes) absl::StrAppend(&secret, absl::Hex(b, absl::kZeroPad2));
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": cannot create the ", what, " secret file: ", std::strerror(errno),
                       " (relayctl init and relayd --init make it; or write one random line of",
                       " 32 or more characters into it, readable by relayd)"));
    }
    std::string line = secret + "\n";
    bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!written) return absl::FailedPreconditionError(absl::StrCat(path, ": write failed"));
    LogWarning() << "no " << what << " secret found: generated one in " << path;
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
    return absl::FailedPreconditionError(absl::StrCat(path, ": no ", what, " secret in the file"));
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
    const Config& config, std::shared_ptr<const feedback::Verp> verp,
    std::shared_ptr<const feedback::Unsubscribe> unsubscribe) {
  const ReceiveSettings& r = config.receive;
  receive::AliasesOptions options;
  options.depth_max = r.alias_depth_max;
  options.suffix_separators = r.suffix_separators;
  options.targets_max = r.alias_targets_max;
  ASSIGN_OR_RETURN(receive::Aliases aliases, receive::Aliases::Load(r.aliases_files, options));
  ASSIGN_OR_RETURN(std::vector<std::string> secrets, LoadSecrets(r.srs_secret_path, "SRS"));
  receive::SrsConfig srs_config;
  srs_config.domain = r.srs_domain;
  srs_config.secrets = std::move(secrets);
  srs_config.age_days_max = static_cast<int>(r.srs_age_days_max);
  ASSIGN_OR_RETURN(std::unique_ptr<receive::Srs> srs, receive::Srs::Create(srs_config));
  auto state = std::make_shared<receive::ReceiveState>();
  if (r.arc) {
    // Each local domain seals with its first [[dkim.key]] (RFC 8617 §4.1.2: the same key
    // material as DKIM); a domain without one forwards without an ARC set.
    for (const std::string& domain : r.domains) {
      for (const DkimKeyConfig& k : config.dkim_keys) {
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
      std::shared_ptr<const receive::Srs>(std::move(srs)), std::move(verp), std::move(unsubscribe));
  return std::shared_ptr<const receive::ReceiveState>(std::move(state));
}

dkim::SignerConfig DkimConfig(const Config& config) {
  dkim::SignerConfig c;
  for (const DkimKeyConfig& k : config.dkim_keys) {
    dkim::SigningKeyConfig key;
    key.domain = k.domain;
    key.selector = k.selector;
    key.key_path = k.key_path;
    c.keys.push_back(std::move(key));
  }
  return c;
}

// Label values for the metrics: every shaping rule's name and every egress source's name.
// The event sinks' series: per sink, what it sent, failed and has yet to send.
void AddEventSeries(const events::EventSinks* sinks, metrics::Registry* r) {
  using metrics::MetricType;
  r->AddCallback("relay_events_dropped_total", MetricType::kCounter,
                 {.help = "Events removed from the journal unsent to keep it within "
                          "[events] journal_bytes_max."},
                 {}, [sinks] { return static_cast<double>(sinks->events_dropped()); });
  r->AddCallback("relay_events_journal_dropped_total", MetricType::kCounter,
                 {.help = "Events the journal could not keep: held back past its memory bound "
                          "while the disk refused writes, or too long."},
                 {}, [sinks] { return static_cast<double>(sinks->journal_lines_dropped()); });
  r->AddCallback("relay_events_journal_write_errors_total", MetricType::kCounter,
                 {.help = "Failed writes, syncs and file rotations of the event journal."}, {},
                 [sinks] { return static_cast<double>(sinks->journal_write_errors()); });
  for (const auto& sink : sinks->sinks()) {
    const events::SinkStats* st = &sink->stats();
    const auto* amqp = dynamic_cast<const events::AmqpSink*>(sink.get());
    // Series per kind, the sink's name the label: relay_webhook_*{webhook="app"} (as they were
    // before AMQP sinks came) and relay_amqp_*{amqp="bus"}.
    const std::string kind = amqp != nullptr ? "amqp" : "webhook";
    const std::string prefix = absl::StrCat("relay_", kind, "_");
    const std::string far = amqp != nullptr ? "the AMQP broker" : "a webhook endpoint";
    const metrics::Labels labels = {{kind, sink->sink_options().name}};
    r->AddCallback(prefix + "events_sent_total", MetricType::kCounter,
                   {.help = amqp != nullptr ? "Events the broker acknowledged (publisher confirms)."
                                            : "Events a webhook endpoint acknowledged (2xx)."},
                   labels, [st] { return static_cast<double>(st->events_sent.load()); });
    r->AddCallback(prefix + "batches_sent_total", MetricType::kCounter,
                   {.help = absl::StrCat("Batches ", far, " acknowledged.")}, labels,
                   [st] { return static_cast<double>(st->batches_sent.load()); });
    r->AddCallback(
        prefix + "failures_total", MetricType::kCounter,
        {.help = amqp != nullptr
                     ? "Batches the broker did not acknowledge (refused, connection lost or "
                       "refused, timeout): each is retried."
                     : "Posts to a webhook endpoint that failed (no 2xx): each is retried."},
        labels, [st] { return static_cast<double>(st->failures.load()); });
    r->AddCallback(
        prefix + "pending_events", MetricType::kGauge,
        {.help = absl::StrCat("Journal events ", amqp != nullptr ? "an AMQP sink" : "a webhook",
                              " has not passed yet (sent, or not for it).")},
        labels,
        [st] { return static_cast<double>(std::max<int64_t>(0, st->backlog_events.load())); });
    r->AddCallback(prefix + "oldest_pending_age_seconds", MetricType::kGauge,
                   {.help = absl::StrCat("Age of the oldest event waiting for ",
                                         amqp != nullptr ? "the broker" : "a webhook",
                                         "'s acknowledgement (0 when none waits).")},
                   labels, [st] {
                     const int64_t t = st->oldest_pending_unix_ms.load();
                     return t == 0 ? 0.0
                                   : std::max(0.0, RealClock::Get()->WallSeconds() - t / 1000.0);
                   });
    if (amqp == nullptr) continue;
    const events::AmqpStats* as = &amqp->amqp_stats();
    r->AddCallback("relay_amqp_unroutable_events_total", MetricType::kCounter,
                   {.help = "Events the broker acknowledged but routed to no queue (basic.return): "
                            "taken, not retried; bind a queue to the exchange for them."},
                   labels, [as] { return static_cast<double>(as->unroutable_events.load()); });
    r->AddCallback("relay_amqp_connections_total", MetricType::kCounter,
                   {.help = "Connections an AMQP sink opened to its broker (one, unless the "
                            "broker went away or a batch failed)."},
                   labels, [as] { return static_cast<double>(as->connections.load()); });
  }
}

// The fleet's series ([cluster]): whether Redis answers, and what the agent asked of it.
void AddFleetSeries(const cluster::Fleet* fleet, metrics::Registry* r) {
  using metrics::MetricType;
  const cluster::FleetStats* s = &fleet->stats();
  r->AddCallback("relay_cluster_shared", MetricType::kGauge,
                 {.help = "1 while Redis answers and limits are the fleet's; 0 while this node "
                          "keeps to its share of each limit."},
                 {}, [s] { return s->shared.load() ? 1.0 : 0.0; });
  auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>* v) {
    r->AddCallback(name, MetricType::kCounter, {.help = help}, {},
                   [v] { return static_cast<double>(v->load(std::memory_order_relaxed)); });
  };
  counter("relay_cluster_redis_round_trips_total",
          "Pipelined round trips to Redis (one per agent round).", &s->round_trips);
  counter("relay_cluster_redis_commands_total", "Commands sent to Redis.", &s->commands);
  counter("relay_cluster_limit_commands_total",
          "Lease, rate token and warm-up requests among them (batched: far fewer than messages).",
          &s->limit_commands);
  counter("relay_cluster_redis_failures_total",
          "Rounds Redis did not answer (each starts the fallback to this node's share).",
          &s->redis_failures);
  counter("relay_cluster_leases_granted_total", "Connection leases Redis granted this node.",
          &s->leases_granted);
  counter("relay_cluster_tokens_granted_total", "Rate tokens Redis granted this node.",
          &s->tokens_granted);
  counter("relay_cluster_changes_sent_total",
          "Changes of suspensions, suppressions, the TLS memory and MTA-STS policies this node "
          "sent to the fleet.",
          &s->changes_sent);
  counter("relay_cluster_changes_applied_total",
          "Changes of other nodes applied here (the same kinds).", &s->changes_applied);
  counter("relay_cluster_changes_dropped_total",
          "Changes not sent: more than [cluster] pending_changes_max waited for Redis.",
          &s->changes_dropped);
}

std::unique_ptr<metrics::RelayMetrics> BuildMetrics(const Config& config, int shards,
                                                    const std::string& version,
                                                    const events::EventSinks* sinks,
                                                    const cluster::Fleet* fleet) {
  metrics::RelayMetricsOptions options;
  options.add_series = [sinks, fleet](metrics::Registry* r) {
    if (sinks != nullptr) AddEventSeries(sinks, r);
    if (fleet != nullptr) AddFleetSeries(fleet, r);
  };
  options.shards = shards;
  options.version = version;
  options.start_time_unix_s = RealClock::Get()->WallSeconds();
  options.spool_directory = config.spool_dir;
  if (config.shaping != nullptr) {
    options.sites.push_back(config.shaping->default_rule().name);
    for (const delivery::ShapingRuleSpec& spec : config.shaping->specs()) {
      options.sites.push_back(spec.name);
    }
  }
  for (const config::Tenant& t : config.tenants.tenants()) options.tenants.push_back(t.name);
  auto egress = delivery::Egress::Create(config.delivery.sources, config.delivery.pools,
                                         config.delivery.strategy, config.hostname);
  if (egress.ok()) {
    for (size_t i = 0; i < egress->size(); ++i) options.sources.push_back(egress->source(i).name);
  }
  return std::make_unique<metrics::RelayMetrics>(options);
}

// Why the relay is not healthy ("" when it is): the first shard with a problem.
std::string HealthProblem(const std::vector<Shard*>& shards) {
  int64_t now_ms = RealClock::Get()->MonotonicMillis();
  for (const Shard* s : shards) {
    std::string problem = s->HealthProblem(now_ms);
    if (!problem.empty()) return problem;
  }
  return "";
}

}  // namespace

// Everything a running relay owns. Members are destroyed in reverse order: the shards before the
// signing pool (a shard frees a connection only once its signature, or port 25's checks and
// seal, is back), the endpoints before the shards they ask.
class DaemonParts {
 public:
  Config config;  // as loaded
  Config later;   // with the ports shard 0 got for port 0
  DaemonOptions options;
  std::unique_ptr<tls::ServerTlsContextHolder> tls;
  std::unique_ptr<AuthService> auth;
  dkim::SignerConfig dkim_config;
  std::unique_ptr<SigningPool> signing_pool;
  std::unique_ptr<receive::ReceiveStateHolder> receive_state;
  std::shared_ptr<const feedback::Verp> verp;  // [feedback]; null without VERP domains
  std::shared_ptr<const feedback::Unsubscribe> unsubscribe;  // [unsubscribe]; null when off
  delivery::Suspensions suspensions;                         // one board for every shard's engine
  delivery::WarmupLedger warmup;                             // likewise, for sources in warm-up
  std::unique_ptr<tlspolicy::TlsMemory> tls_memory;          // [tls_policy] downgrade_memory
  std::unique_ptr<tlspolicy::StsCache> sts_cache;            // [tls_policy] mta_sts
  std::unique_ptr<tlspolicy::TlsReportLedger> tls_reports;   // [tls_policy] reports
  std::string tls_reports_path;
  int64_t tls_reports_flushed_ms = 0;
  // The one-click endpoints ([unsubscribe] listen); their handlers use the shards and the
  // suppression list, so they stop before either goes.
  std::vector<std::unique_ptr<metrics::HttpServer>> unsubscribe_servers;
  std::unique_ptr<metrics::RelayMetrics> relay_metrics;
  std::unique_ptr<feedback::SuppressionList> suppression;  // outlives the shards that use it
  std::unique_ptr<events::EventSinks> event_sinks;         // likewise
  // [cluster]: the fleet's agent, hooked to the board and the list above, used by the shards
  // below (so it goes after them and before those).
  std::unique_ptr<cluster::Fleet> fleet;
  std::mutex fleet_pokes_mu;
  bool fleet_pokes_shards = false;  // guarded by fleet_pokes_mu: the shards may be asked to sync
  SharedState shared;
  SharedState shared_later;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<Shard*> shard_list;
  MainThreadRequests main_thread;
  std::unique_ptr<ControlSocket> control;
  std::unique_ptr<metrics::HttpServer> metrics_server;
  bool stopped = false;

  absl::Status StartFleet();
  absl::Status StartShards();
  void StartEndpoints();
  absl::Status StartUnsubscribe();
  // [feedback] and [unsubscribe]: the VERP codec and the unsubscribe links, with their secret.
  absl::Status LoadFeedback();
};

absl::Status DaemonParts::StartFleet() {
  if (!config.cluster.enabled) return absl::OkStatus();
  cluster::FleetOptions o = config.cluster.fleet;
  // Reply rules' suspensions name sources by index here and by name in Redis.
  absl::StatusOr<delivery::Egress> egress =
      delivery::Egress::Create(config.delivery.sources, config.delivery.pools,
                               config.delivery.strategy, config.hostname);
  if (!egress.ok()) return egress.status();
  for (size_t i = 0; i < egress->size(); ++i) {
    o.source_names.push_back(egress->source(static_cast<int>(i)).name);
  }
  o.cursor_path = config.spool_dir + "/cluster-stream";
  o.board_changed = [this] {
    // Not once the shards are stopping (Daemon::Stop clears the flag under the lock first).
    std::lock_guard<std::mutex> lock(fleet_pokes_mu);
    if (!fleet_pokes_shards) return;
    for (Shard* s : shard_list) s->RequestSuspensionSync();
  };
  // The load other nodes and the operator see (relayctl cluster status): read from the metrics'
  // cells, which any thread may read.
  o.status = [this] {
    // The shards and the metrics are there once fleet_pokes_shards is set (under the lock).
    size_t shards = 0;
    const metrics::RelayMetrics* m = nullptr;
    {
      std::lock_guard<std::mutex> lock(fleet_pokes_mu);
      if (fleet_pokes_shards) {
        shards = shard_list.size();
        m = relay_metrics.get();
      }
    }
    if (m == nullptr) return absl::StrCat("\"shards\":", shards);
    return absl::StrCat("\"shards\":", shards,
                        ",\"queued_messages\":", m->queue_messages.Total(),
                        ",\"outbound_connections\":", m->outbound_connections_open.Total());
  };
  ASSIGN_OR_RETURN(fleet, cluster::Fleet::Create(std::move(o), {.board = &suspensions,
                                                                .suppression = suppression.get(),
                                                                .tls_memory = tls_memory.get(),
                                                                .sts_cache = sts_cache.get()}));
  fleet->Start();
  LogInfo() << "cluster: node " << fleet->options().node << " of " << fleet->options().fleet_size
            << ", state in Redis " << config.cluster.fleet.redis.address.host << ":"
            << config.cluster.fleet.redis.address.port << " under \""
            << fleet->options().key_prefix << "\"";
  return absl::OkStatus();
}

absl::Status DaemonParts::StartShards() {
  int shard_count = config.shards > 0 ? static_cast<int>(config.shards)
                                      : static_cast<int>(std::thread::hardware_concurrency());
  if (shard_count < 1) shard_count = 1;
  if (config.events.enabled()) {
    events::EventSinksOptions o;
    o.dir = config.events.dir;
    o.shards = static_cast<uint32_t>(shard_count);
    o.file_bytes_max = config.events.file_bytes_max;
    o.journal_bytes_max = config.events.journal_bytes_max;
    o.sync_interval_ms = config.events.sync_interval_ms;
    o.webhooks = config.events.webhooks;
    o.amqp = config.events.amqp;
    ASSIGN_OR_RETURN(event_sinks, events::EventSinks::Create(std::move(o)));
  }
  relay_metrics =
      BuildMetrics(config, shard_count, options.version, event_sinks.get(), fleet.get());
  // Shard 0 binds first; when a listener asks for port 0 the others reuse the port it got.
  later = config;
  shared.config = &config;
  shared.tls = tls.get();
  shared.authenticator = auth.get();
  shared.dkim = dkim_config.keys.empty() ? nullptr : &dkim_config;
  shared.metrics = relay_metrics.get();
  shared.signing_pool = signing_pool.get();
  shared.receive = receive_state.get();
  shared.suppression = suppression.get();
  shared.verp = verp.get();
  shared.unsubscribe = unsubscribe.get();
  shared.suspensions = &suspensions;
  shared.warmup = &warmup;
  shared.shared_limits = fleet.get();
  shared.tls_memory = tls_memory.get();
  shared.sts_cache = sts_cache.get();
  shared.tls_reports = tls_reports.get();
  shared.events = event_sinks.get();
  shared_later = shared;
  shared_later.config = &later;
  for (int i = 0; i < shard_count; ++i) {
    shards.push_back(std::make_unique<Shard>(i, shard_count, i == 0 ? shared : shared_later));
    absl::Status s = shards.back()->Start();
    if (!s.ok()) {
      for (auto& shard : shards) shard->RequestStop();
      shards.clear();
      return absl::Status(s.code(), absl::StrCat("shard ", i, ": ", s.message()));
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
  {
    std::lock_guard<std::mutex> lock(fleet_pokes_mu);
    for (auto& shard : shards) shard_list.push_back(shard.get());
    fleet_pokes_shards = true;
  }
  if (event_sinks != nullptr) {
    event_sinks->Start();
    LogInfo() << "events journal " << config.events.dir << ": " << config.events.webhooks.size()
              << " webhook(s), " << config.events.amqp.size() << " AMQP sink(s)";
  }
  return absl::OkStatus();
}

absl::Status DaemonParts::LoadFeedback() {
  if (!config.feedback.enabled() && !config.unsubscribe.enabled()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> secrets,
                   LoadSecrets(config.feedback.secret_path, "feedback"));
  if (config.feedback.enabled()) {
    feedback::VerpOptions o;
    o.secrets = secrets;
    o.local_part = config.feedback.local_part;
    o.domains = config.feedback.verp;
    auto made = feedback::Verp::Make(std::move(o));
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          absl::StrCat("feedback: ", made.status().message()));
    }
    verp = std::move(*made);
    for (const feedback::VerpDomain& d : config.feedback.verp) {
      LogInfo() << "mail from " << d.domain << " leaves with VERP return paths at "
                << d.bounce_domain;
    }
  }
  if (config.unsubscribe.enabled()) {
    feedback::UnsubscribeOptions o;
    o.secrets = std::move(secrets);
    o.base_url = config.unsubscribe.url;
    ASSIGN_OR_RETURN(unsubscribe, feedback::Unsubscribe::Make(std::move(o), verp));
  }
  return absl::OkStatus();
}

absl::Status DaemonParts::StartUnsubscribe() {
  if (unsubscribe == nullptr) return absl::OkStatus();
  UnsubscribeEndpoint endpoint;
  endpoint.links = unsubscribe.get();
  endpoint.suppression = suppression.get();
  endpoint.unsubscribed = [this](const feedback::Unsubscription& who) {
    // The event goes to a shard's journal; any shard will do, the same one for an address.
    const size_t shard = std::hash<std::string>()(who.address) % shard_list.size();
    shard_list[shard]->RecordUnsubscribed(who.tenant, who.address, "one-click");
  };
  for (size_t i = 0; i < config.unsubscribe.listen.size(); ++i) {
    const std::string& listen = config.unsubscribe.listen[i];
    metrics::HttpHandlers handlers;
    handlers.request = [endpoint](const metrics::HttpRequest& request) {
      return ServeUnsubscribe(request, endpoint, absl::ToUnixMillis(absl::Now()));
    };
    // HTTPS with the relay's certificate; plain HTTP only on loopback (config.cc), for a proxy.
    auto started =
        metrics::HttpServer::Start(listen, std::move(handlers), tls.get(), "unsubscribe");
    if (!started.ok()) {
      return absl::Status(started.status().code(), absl::StrCat("unsubscribe.listen ", listen, ": ",
                                                                started.status().message()));
    }
    absl::StatusOr<io::SocketAddress> bound = io::SocketAddress::Parse(listen);
    if (bound.ok()) {
      bound->set_port((*started)->port());
      later.unsubscribe.listen[i] = bound->ToString();
    }
    LogInfo() << "one-click unsubscribe on " << (tls != nullptr ? "https://" : "http://")
              << later.unsubscribe.listen[i] << " for links " << config.unsubscribe.url << "/u/...";
    unsubscribe_servers.push_back(std::move(*started));
  }
  return absl::OkStatus();
}

void DaemonParts::StartEndpoints() {
  ControlSocket::ClusterStatus cluster_status;
  if (fleet != nullptr) {
    cluster_status = [f = fleet.get()] {
      absl::StatusOr<std::string> s = f->Status();
      return s.ok() ? *s : absl::StrCat("error: ", s.status().message());
    };
  }
  auto started_control = ControlSocket::Start(config.control_socket_path, shard_list, &main_thread,
                                              &suspensions, tls_memory.get(), cluster_status);
  if (started_control.ok()) {
    control = std::move(*started_control);
  } else {
    LogWarning() << started_control.status().message()
                 << "; relayctl queue retry/bounce/delete will not reach this relay";
  }
  if (config.metrics.listen.empty()) return;
  metrics::HttpHandlers handlers;
  handlers.metrics = [m = relay_metrics.get()] { return m->Render(); };
  handlers.health = [this] { return HealthProblem(shard_list); };
  auto started = metrics::HttpServer::Start(config.metrics.listen, std::move(handlers));
  if (started.ok()) {
    metrics_server = std::move(*started);
    LogInfo() << "metrics on http://" << config.metrics.listen << "/metrics (port "
              << metrics_server->port() << "), health at /healthz";
  } else {
    // Mail matters more than its metrics: the relay runs on without the endpoint.
    LogError() << "metrics endpoint " << config.metrics.listen << ": " << started.status().message()
               << "; running without it";
  }
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(Config config, DaemonOptions options) {
  auto parts = std::make_unique<DaemonParts>();
  parts->config = std::move(config);
  parts->options = std::move(options);
  DaemonParts& p = *parts;
  for (const std::string& notice : p.config.notices) LogWarning() << notice;
  RaiseFileLimit(p.config.smtp.connections_max);
  RETURN_IF_ERROR(io::Reactor::ProbeKernel());
  if (absl::Status s = EnsureCertificate(p.config); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("certificate: ", s.message()));
  }
  if (!p.config.tls_cert_path.empty()) {
    auto holder =
        tls::ServerTlsContextHolder::Create(p.config.tls_cert_path, p.config.tls_key_path);
    if (!holder.ok()) {
      return absl::Status(holder.status().code(), absl::StrCat("TLS: ", holder.status().message()));
    }
    p.tls = std::move(*holder);
  }
  ASSIGN_OR_RETURN(p.auth, AuthService::Create(p.config));
  p.dkim_config = DkimConfig(p.config);
  if (!p.dkim_config.keys.empty()) {
    // Checked once here so that a bad key stops the start with one clear message.
    auto signer = dkim::Signer::Create(p.dkim_config);
    if (!signer.ok()) {
      return absl::Status(signer.status().code(),
                          absl::StrCat("DKIM: ", signer.status().message()));
    }
  } else {
    LogWarning() << "no DKIM keys configured: mail leaves unsigned";
  }
  // Port 25 uses the pool even without keys: a stranger's message can take long to check.
  if (!p.dkim_config.keys.empty() || p.config.receive.enabled()) {
    auto pool = SigningPool::Create(p.config.dkim_signing_threads);
    if (!pool.ok()) {
      return absl::Status(pool.status().code(), absl::StrCat("DKIM: ", pool.status().message()));
    }
    p.signing_pool = std::move(*pool);
    LogInfo() << "DKIM signing and port-25 checks on " << p.signing_pool->thread_count()
              << " threads";
  }
  RETURN_IF_ERROR(p.LoadFeedback());
  {
    // The suspensions in force when the relay stopped hold again (relayctl queue suspend).
    const std::string path = p.config.spool_dir + "/suspensions";
    absl::Status loaded = p.suspensions.Load(path, absl::ToUnixMillis(absl::Now()));
    if (!loaded.ok()) LogWarning() << "suspensions: " << loaded.message();
    p.suspensions.SetFile(path);
    // Today's warm-up counts: a restart hands no source a fresh allowance.
    const std::string warmup_path = p.config.spool_dir + "/warmup";
    loaded = p.warmup.Load(warmup_path, absl::ToUnixMillis(absl::Now()));
    if (!loaded.ok()) LogWarning() << "warm-up: " << loaded.message();
    p.warmup.SetFile(warmup_path);
    // The domains that took mail over TLS: no plain text for them after a restart either.
    if (p.config.tls_policy.downgrade_memory) {
      const TlsPolicySettings& t = p.config.tls_policy;
      p.tls_memory = std::make_unique<tlspolicy::TlsMemory>(tlspolicy::TlsMemory::Options{
          .enabled = true, .days = t.memory_days, .domains_max = t.memory_domains_max});
      const std::string memory_path = p.config.spool_dir + "/tls-memory";
      loaded = p.tls_memory->Load(memory_path, absl::ToUnixMillis(absl::Now()));
      if (!loaded.ok()) LogWarning() << "TLS downgrade memory: " << loaded.message();
      p.tls_memory->SetFile(memory_path);
    }
    // The MTA-STS policies seen before: an attacker who blocks the fetch after a restart does
    // not remove them.
    if (p.config.tls_policy.mta_sts) {
      p.sts_cache = std::make_unique<tlspolicy::StsCache>(p.config.tls_policy.mta_sts_policies_max);
      const std::string sts_path = p.config.spool_dir + "/mta-sts";
      loaded = p.sts_cache->Load(sts_path, absl::ToUnixSeconds(absl::Now()));
      if (!loaded.ok()) LogWarning() << "MTA-STS cache: " << loaded.message();
      p.sts_cache->SetFile(sts_path);
    }
    // The sessions counted so far in this report window: a restart does not lose them.
    if (p.config.tls_policy.reports) {
      const TlsPolicySettings& t = p.config.tls_policy;
      p.tls_reports = std::make_unique<tlspolicy::TlsReportLedger>(
          tlspolicy::TlsReportLimits{.domains_max = t.report_domains_max}, t.report_interval_s);
      p.tls_reports_path = p.config.spool_dir + "/tls-reports";
      absl::StatusOr<std::string> text = ReadStateFile(p.tls_reports_path);
      loaded = text.ok() ? p.tls_reports->Load(*text) : text.status();
      if (!loaded.ok()) LogWarning() << "TLS report counts: " << loaded.message();
    }
  }
  if (p.config.receive.enabled()) {
    auto state = LoadReceiveState(p.config, p.verp, p.unsubscribe);
    if (!state.ok()) {
      return absl::Status(state.status().code(),
                          absl::StrCat("receive: ", state.status().message()));
    }
    p.receive_state = std::make_unique<receive::ReceiveStateHolder>(std::move(*state));
  }
  if (p.config.suppression.enabled) {
    std::error_code ec;
    std::filesystem::create_directories(
        std::filesystem::path(p.config.suppression.path).parent_path(), ec);
    feedback::SuppressionListOptions o;
    o.path = p.config.suppression.path;
    o.map_bytes_max = p.config.suppression.map_bytes_max;
    auto list = feedback::SuppressionList::Open(o);
    if (!list.ok()) return list.status();
    p.suppression = std::move(*list);
    LogInfo() << "suppression list " << o.path << ": " << p.suppression->Count().value_or(0)
              << " entries";
  }
  RETURN_IF_ERROR(p.StartFleet());
  RETURN_IF_ERROR(p.StartShards());
  RETURN_IF_ERROR(p.StartUnsubscribe());
  p.StartEndpoints();
  return std::unique_ptr<Daemon>(new Daemon(std::move(parts)));
}

Daemon::Daemon(std::unique_ptr<DaemonParts> parts) : parts_(std::move(parts)) {}

Daemon::~Daemon() {
  if (!parts_->stopped) Stop();
}

const Config& Daemon::config() const { return parts_->later; }

std::vector<Shard*> Daemon::shards() const { return parts_->shard_list; }

std::string Daemon::ReadyLine() const {
  const Config& c = parts_->later;
  // "<kind> on <addr>, <addr>" for each kind that listens; a kind without addresses is left out.
  std::vector<std::string> ready = {absl::StrCat(parts_->shards.size(), " shards")};
  for (const auto& [kind, addrs] : {std::pair{"submission (STARTTLS)", &c.submission_listen},
                                    std::pair{"submissions (TLS)", &c.submissions_listen},
                                    std::pair{"port 25 (receive)", &c.receive.listen},
                                    std::pair{"unsubscribe", &c.unsubscribe.listen}}) {
    if (!addrs->empty()) ready.push_back(absl::StrCat(kind, " on ", absl::StrJoin(*addrs, ", ")));
  }
  ready.push_back(absl::StrCat("spool ", c.spool_dir));
  return absl::StrJoin(ready, "; ");
}

ReloadResult Daemon::Reload() {
  DaemonParts& p = *parts_;
  std::vector<std::string> done;
  ReloadResult result;
  auto report = [&](absl::string_view what, const absl::Status& status) {
    if (status.ok()) {
      done.push_back(absl::StrCat(what, " reloaded"));
    } else {
      result.ok = false;
      done.push_back(absl::StrCat(what, ": ", status.message(), " (the previous one stays)"));
    }
  };
  // relayd.toml again, whole: a file with an error changes nothing of it, and is named.
  std::shared_ptr<const Config> next;
  absl::StatusOr<std::vector<std::string>> changed = std::vector<std::string>();
  if (!p.options.config_path.empty()) {
    const std::string text = ReadConfigText(p.options.config_path);
    absl::StatusOr<Config> loaded = LoadConfig(p.options.config_path);
    changed = loaded.ok() ? ChangedSettings(p.options.config_text, text) : loaded.status();
    if (changed.ok()) next = std::make_shared<const Config>(std::move(*loaded));
  }
  if (p.tls != nullptr) report("certificate", p.tls->Reload());
  report("users", p.auth->Reload());
  if (p.receive_state != nullptr) {
    // Aliases, local domains, SRS secrets and ARC keys, from the file read again when it loads
    // and still receives. A broken aliases file keeps the previous set: mail keeps flowing.
    const Config& receive = next != nullptr && next->receive.enabled() ? *next : p.config;
    auto state = LoadReceiveState(receive, p.verp, p.unsubscribe);
    if (state.ok()) p.receive_state->Set(std::move(*state));
    report("aliases", state.status());
  }
  for (auto& shard : p.shards) shard->RequestLogReopen();
  done.push_back("delivery logs reopened");
  if (!changed.ok()) {
    result.ok = false;
    done.push_back(absl::StrCat(changed.status().message(), "; the running configuration stays"));
  } else if (next != nullptr) {
    // DKIM keys (their files read again too: a key replaced under the same selector), shaping
    // rules, tenants and, while the sources stay the same, the egress pools take effect now;
    // every other setting an edit changed is named, for the next restart.
    bool egress = false;
    const absl::Status applied = ApplyLive(next, &egress);
    report(egress ? "DKIM keys, shaping rules, tenants and egress pools"
                  : "DKIM keys, shaping rules and tenants",
           applied);
    std::vector<std::string> later;
    for (const std::string& key : *changed) {
      bool live = false;
      for (std::string_view prefix : {"dkim", "shaping", "tenants", "campaigns", "limits",
                                      "receive.domains", "receive.aliases"}) {
        live = live || absl::StartsWith(key, Sv(prefix));
      }
      for (std::string_view prefix : {"delivery.source", "delivery.pool", "delivery.strategy"}) {
        live = live || (egress && absl::StartsWith(key, Sv(prefix)));
      }
      if (!live || !applied.ok()) later.push_back(key);
    }
    if (!later.empty()) {
      done.push_back(absl::StrCat(p.options.config_path, " changed (", absl::StrJoin(later, ", "),
                                  "): not applied; these take effect at the next restart"));
    }
  }
  result.summary = absl::StrCat(result.ok ? "ok: " : "error: ", absl::StrJoin(done, "; "));
  return result;
}

absl::Status Daemon::ApplyLive(std::shared_ptr<const Config> next, bool* egress) {
  DaemonParts& p = *parts_;
  const dkim::SignerConfig keys = DkimConfig(*next);
  // Every key is checked before any shard gets one: a bad key file changes nothing.
  std::vector<std::shared_ptr<const dkim::Signer>> signers;
  for (size_t i = 0; i < p.shards.size() && !keys.keys.empty(); ++i) {
    absl::StatusOr<std::unique_ptr<dkim::Signer>> signer = dkim::Signer::Create(keys);
    if (!signer.ok()) return signer.status();
    signers.push_back(std::move(*signer));
  }
  // The pools change with the sources they are made of kept: ready queues are keyed by source.
  absl::StatusOr<delivery::Egress> running =
      delivery::Egress::Create(p.config.delivery.sources, p.config.delivery.pools,
                               p.config.delivery.strategy, p.config.hostname);
  absl::StatusOr<delivery::Egress> wanted = delivery::Egress::Create(
      next->delivery.sources, next->delivery.pools, next->delivery.strategy, next->hostname);
  *egress = running.ok() && wanted.ok() && wanted->SameSourcesAs(*running) &&
            next->hostname == p.config.hostname;
  // The running configuration with the sections a reload applies taken from the file; every
  // other setting stays as the relay started, whatever the file says (Reload names it).
  auto effective = std::make_shared<Config>(p.later);
  effective->dkim_keys = next->dkim_keys;
  effective->shaping = next->shaping;
  effective->tenants = next->tenants;
  effective->smtp = next->smtp;
  effective->receive.domains = next->receive.domains;
  effective->receive.aliases_files = next->receive.aliases_files;
  if (*egress) {
    effective->delivery.sources = next->delivery.sources;
    effective->delivery.pools = next->delivery.pools;
    effective->delivery.pool_routes = next->delivery.pool_routes;
    effective->delivery.strategy = next->delivery.strategy;
  }
  // Every shard is asked, whatever another answered: one that does not take the settings (it
  // did not answer in time) is named, the others run with them.
  std::vector<std::string> failed;
  for (size_t i = 0; i < p.shards.size(); ++i) {
    Shard::LiveSettings live;
    live.signer = signers.empty() ? nullptr : signers[i];
    live.config = effective;
    live.egress = *egress;
    absl::Status taken = p.shards[i]->Reconfigure(std::move(live));
    if (!taken.ok()) failed.push_back(absl::StrCat("shard ", i, ": ", taken.message()));
  }
  if (!failed.empty()) return absl::UnavailableError(absl::StrJoin(failed, "; "));
  std::vector<std::string> selectors;
  for (const DkimKeyConfig& k : next->dkim_keys) {
    selectors.push_back(absl::StrCat(k.selector, "._domainkey.", k.domain));
  }
  LogInfo() << "reload: signing with "
            << (selectors.empty() ? "no DKIM key" : absl::StrJoin(selectors, ", ")) << "; "
            << (next->shaping != nullptr ? next->shaping->specs().size() : 0) << " shaping rules, "
            << next->tenants.tenants().size() << " tenants"
            << (*egress ? absl::StrCat(", ", next->delivery.pools.size(), " egress pools")
                        : std::string(", egress unchanged (its sources changed: restart)"));
  return absl::OkStatus();
}

void Daemon::Housekeeping() {
  const absl::Time now = absl::Now();
  if (parts_->tls_memory != nullptr) {
    parts_->tls_memory->Prune(absl::ToUnixMillis(now));
    parts_->tls_memory->Flush();
  }
  if (parts_->sts_cache != nullptr) {
    parts_->sts_cache->Prune(absl::ToUnixSeconds(now));
    parts_->sts_cache->Flush();
  }
  // The report counts change with every session: written once a minute (and at the stop).
  if (parts_->tls_reports != nullptr &&
      absl::ToUnixMillis(now) - parts_->tls_reports_flushed_ms >= kTlsReportsFlushMs) {
    FlushTlsReports();
  }
}

void Daemon::FlushTlsReports() {
  DaemonParts& p = *parts_;
  p.tls_reports_flushed_ms = absl::ToUnixMillis(absl::Now());
  absl::Status written = ReplaceFile(p.tls_reports_path, p.tls_reports->Format(), 0600,
                                     /*durable=*/false);
  if (!written.ok()) LogWarning() << "TLS report counts: " << written.message();
}

void Daemon::CheckCertificate() {
  if (parts_->tls == nullptr) return;
  bool reloaded = false;
  (void)parts_->tls->ReloadIfChanged(&reloaded);
  if (reloaded) LogInfo() << "certificate file changed: reloaded";
}

int Daemon::control_request_fd() const { return parts_->main_thread.fd(); }

void Daemon::AnswerControlRequest() {
  std::string summary = Reload().summary;
  LogInfo() << "relayctl reload: " << summary;
  parts_->main_thread.Answer(summary);
}

uint64_t Daemon::Stop() {
  DaemonParts& p = *parts_;
  if (p.stopped) return 0;
  p.stopped = true;
  p.main_thread.Close("error: relayd is stopping");
  p.control.reset();  // its thread ends before the shards it asks
  for (auto& server : p.unsubscribe_servers) server->Stop();  // likewise
  {
    std::lock_guard<std::mutex> lock(p.fleet_pokes_mu);
    p.fleet_pokes_shards = false;
  }
  for (auto& shard : p.shards) shard->RequestStop();
  for (auto& shard : p.shards) shard->Join();
  // The fleet has this node's leases back at once, and the changes it queued: the suppressions
  // the shards' last bounces made are committed (and queued for it) first.
  if (p.suppression != nullptr) p.suppression->Flush();
  if (p.fleet != nullptr) p.fleet->Stop();
  p.warmup.Flush();  // the last seconds' counts
  if (p.tls_memory != nullptr) p.tls_memory->Flush();
  if (p.sts_cache != nullptr) p.sts_cache->Flush();
  if (p.tls_reports != nullptr) FlushTlsReports();
  // After the shards: their last events are in the journal, for the next start to send.
  if (p.event_sinks != nullptr) p.event_sinks->Stop();
  // Scrapes go on during the drain (the last counts are visible); /healthz says 503 once a
  // shard has stopped. The endpoint's handlers use the shards: it stops before they go.
  if (p.metrics_server != nullptr) p.metrics_server->Stop();
  uint64_t accepted = 0;
  for (auto& shard : p.shards) accepted += shard->counters().messages_accepted.load();
  p.shard_list.clear();
  p.shards.clear();
  return accepted;
}

}  // namespace relay::server
