#include "relay/server/shard.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/events/event_sinks.h"
#include "relay/io/socket.h"
#include "relay/server/client_key.h"
#include "relay/server/smtp_connection.h"

namespace relay::server {
namespace {

// Receive buffers: 1024 buffers of 16 KiB per shard hold 16 MiB of in-flight input in total;
// idle connections hold none (DESIGN.md).
constexpr uint16_t kBufferGroup = 1;
constexpr uint32_t kReceiveBuffers = 1024;
constexpr uint32_t kReceiveBufferBytes = 16 * 1024;

// Which listener a connection came in on, as the metrics label it.
metrics::ListenerKind MetricsListenerKind(bool implicit_tls, bool receive) {
  if (receive) return metrics::ListenerKind::kReceive;
  return implicit_tls ? metrics::ListenerKind::kSubmissions : metrics::ListenerKind::kSubmission;
}

constexpr int64_t kMaintenanceIntervalMs = 1000;

uint32_t SplitLimit(uint32_t limit, int shards) {
  return std::max<uint32_t>(1, (limit + shards - 1) / shards);
}

// The "ready" answer (Shard::kReadyQueuesMax).
std::string FormatReadyQueues(const std::vector<delivery::DeliveryEngine::ReadyQueueView>& queues) {
  std::vector<std::string> entries;
  entries.reserve(queues.size());
  for (const delivery::DeliveryEngine::ReadyQueueView& q : queues) {
    std::string state = q.state;
    for (char& c : state) {
      if (c == '\t' || c == '|' || c == '\r' || c == '\n') c = ' ';
    }
    entries.push_back(absl::StrCat(q.site, "\t", q.rule, "\t", q.source, "\t", q.waiting, "\t",
                                   q.connections, "\t", q.connections_max, "\t",
                                   q.messages_per_second, "\t", state));
  }
  return absl::StrJoin(entries, "|");
}

// "default" and every named pool of `config`.
std::vector<std::string> PoolNames(const Config& config) {
  std::vector<std::string> names = {"default"};
  for (const delivery::EgressPoolConfig& p : config.delivery.pools) {
    if (p.name != "default") names.push_back(p.name);
  }
  return names;
}

}  // namespace

Shard::Shard(int index, int shard_count, const SharedState& shared)
    : index_(index),
      shard_count_(shard_count),
      shared_(shared),
      connections_max_(SplitLimit(shared.config->smtp.connections_max, shard_count)),
      connections_per_ip_max_(SplitLimit(shared.config->smtp.connections_per_ip_max, shard_count)),
      pool_names_(PoolNames(*shared.config)) {}

Shard::~Shard() { Join(); }

std::vector<std::string> Shard::pool_names() const {
  std::lock_guard<std::mutex> lock(pool_names_mu_);
  return pool_names_;
}

absl::Status Shard::Start() {
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  thread_ = std::thread([this, &started] { ThreadMain(&started); });
  absl::Status status = result.get();
  if (!status.ok()) Join();
  return status;
}

void Shard::Join() {
  if (thread_.joinable()) thread_.join();
}

void Shard::RequestStop() {
  if (reactor_ == nullptr) return;
  reactor_->RunInLoop([this] { BeginStop(); });
}

void Shard::RequestSuspensionSync() {
  if (reactor_ == nullptr) return;
  reactor_->RunInLoop([this] {
    if (delivery_ != nullptr) delivery_->SyncSuspensions();
  });
}

void Shard::RequestLogReopen() {
  if (log_ != nullptr) log_->RequestReopen();  // an atomic flag, acted on at the next Flush
}

absl::Status Shard::Reconfigure(LiveSettings live) {
  if (reactor_ == nullptr) return absl::FailedPreconditionError("shard not running");
  auto done = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> taken = done->get_future();
  reactor_->RunInLoop([this, live = std::move(live), done] {
    const Config& next = *live.config;
    // The one step that can fail goes first: when it does, the shard keeps all it had.
    if (live.egress && delivery_ != nullptr) {
      absl::Status engine =
          delivery_->Reconfigure(next.delivery.sources, next.delivery.pools,
                                 next.delivery.pool_routes, next.delivery.strategy);
      if (!engine.ok()) {
        done->set_value(engine);
        return;
      }
    }
    if (delivery_ != nullptr) {
      absl::flat_hash_map<std::string, uint32_t> weights;
      for (const config::Tenant& t : next.tenants.tenants()) weights[t.name] = t.weight;
      delivery_->SetTenantWeights(std::move(weights));
    }
    if (preparer_ != nullptr) preparer_->SetSigner(live.signer);
    if (policy_ != nullptr && next.shaping != nullptr) policy_->SetShaping(next.shaping);
    // Connections take the tenants at their next MAIL FROM, the limits when they open.
    tenants_ = std::shared_ptr<const config::TenantSettings>(live.config, &next.tenants);
    connection_context_.live_config = live.config;
    connections_max_ = SplitLimit(next.smtp.connections_max, shard_count_);
    connections_per_ip_max_ = SplitLimit(next.smtp.connections_per_ip_max, shard_count_);
    {
      std::lock_guard<std::mutex> lock(pool_names_mu_);
      pool_names_ = PoolNames(next);
    }
    done->set_value(absl::OkStatus());
  });
  if (taken.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return absl::DeadlineExceededError(
        absl::StrCat("shard ", index_, " did not take the new settings within 10 s"));
  }
  return taken.get();
}

std::string Shard::Control(const std::string& verb, const std::string& id_text) {
  if (reactor_ == nullptr) return "error: shard not running";
  auto done = std::make_shared<std::promise<std::string>>();
  std::future<std::string> answer = done->get_future();
  reactor_->RunInLoop([this, verb, id_text, done] {
    if (delivery_ == nullptr) {
      done->set_value("error: delivery is disabled in the configuration");
      return;
    }
    // The control protocol's line: "ok: what was done" or "error: why not".
    auto line = [](const absl::StatusOr<std::string>& answer) {
      return answer.ok() ? absl::StrCat("ok: ", *answer)
                         : absl::StrCat("error: ", answer.status().message());
    };
    if (verb == "retry-all") {
      done->set_value(line(delivery_->RetryAll()));
      return;
    }
    if (verb == "shape-site" || verb == "shape-source") {
      const auto by = verb == "shape-site" ? delivery::DeliveryEngine::ShapeBy::kSite
                                           : delivery::DeliveryEngine::ShapeBy::kSource;
      done->set_value(absl::StrCat("ok: ", delivery_->Shape(by).Encode(kReadyQueuesMax)));
      return;
    }
    if (verb == "sync") {
      delivery_->SyncSuspensions();
      done->set_value("ok: board taken");
      return;
    }
    if (verb == "ready") {
      done->set_value(
          absl::StrCat("ok: ", FormatReadyQueues(delivery_->ReadyQueues(kReadyQueuesMax))));
      return;
    }
    if (absl::EndsWith(verb, "-selected")) {
      done->set_value(line(ActOnSelected(verb.substr(0, verb.size() - 9), id_text)));
      return;
    }
    absl::StatusOr<queue::MessageId> id = queue::MessageId::Parse(id_text);
    if (!id.ok()) {
      done->set_value(absl::StrCat("error: not a queue id: ", id_text));
    } else if (verb == "retry") {
      done->set_value(line(delivery_->RetryNow(*id)));
    } else if (verb == "bounce") {
      done->set_value(line(delivery_->BounceNow(*id)));
    } else if (verb == "delete") {
      done->set_value(line(delivery_->DeleteNow(*id)));
    } else {
      done->set_value(absl::StrCat("error: unknown request ", verb));
    }
  });
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    return "error: the shard did not answer within 10 s";
  }
  return answer.get();
}

absl::StatusOr<std::string> Shard::ActOnSelected(const std::string& verb,
                                                 const std::string& selector_text) {
  absl::StatusOr<delivery::QueueSelector> selector =
      delivery::ParseQueueSelector(absl::StrSplit(selector_text, ' ', absl::SkipEmpty()));
  if (!selector.ok()) return selector.status();
  const delivery::QueueAction action = verb == "retry"    ? delivery::QueueAction::kRetry
                                       : verb == "bounce" ? delivery::QueueAction::kBounce
                                                          : delivery::QueueAction::kDelete;
  return delivery_->ActOnSelected(action, *selector);
}

void Shard::RequestTlsReloadCheck() {
  // Connections fetch the holder's current context when they start TLS; nothing per shard.
}

absl::Status Shard::Setup() {
  const Config& config = *shared_.config;
  ASSIGN_OR_RETURN(reactor_, io::Reactor::Create({}));
  ASSIGN_OR_RETURN(buffers_, io::BufferRing::Create(reactor_.get(), kBufferGroup,
                                                    kReceiveBuffers, kReceiveBufferBytes));
  RETURN_IF_ERROR(OpenSpool());
  std::shared_ptr<const dkim::Signer> signer;
  if (shared_.dkim != nullptr) {
    ASSIGN_OR_RETURN(signer, dkim::Signer::Create(*shared_.dkim));
  }
  preparer_ = std::make_unique<MessagePreparer>(std::move(signer), shared_.signing_pool,
                                                reactor_.get(), config.hostname);
  RETURN_IF_ERROR(StartDelivery());
  RETURN_IF_ERROR(StartReceiveChecks());
  RETURN_IF_ERROR(OpenListeners());
  ArmTimers();
  ConnectionContext& cc = connection_context_;
  cc.shared = &shared_;
  cc.reactor = reactor_.get();
  cc.buffers = buffers_.get();
  cc.spool = spool_.get();
  cc.preparer = preparer_.get();
  cc.shard_index = index_;
  cc.counters = &counters_;
  cc.host = this;
  cc.spf = spf_.get();
  cc.dkim_checker = dkim_checker_.get();
  cc.dmarc_checker = dmarc_checker_.get();
  // The config's own tenants, not owned: shared_.config outlives the shard.
  tenants_ =
      std::shared_ptr<const config::TenantSettings>(std::shared_ptr<const void>(), &config.tenants);
  cc.tenants = &tenants_;
  cc.live_config = std::shared_ptr<const Config>(std::shared_ptr<const void>(), &config);
  return absl::OkStatus();
}

absl::Status Shard::OpenSpool() {
  const Config& config = *shared_.config;
  queue::SpoolOptions spool_options;
  spool_options.directory = absl::StrCat(config.spool_dir, "/shard-", index_);
  spool_options.shard = static_cast<uint32_t>(index_);
  spool_options.segment_bytes = config.queue.segment_bytes;
  spool_options.reserve_segments = config.queue.reserve_segments;
  if (config.queue.spool_bytes_max > 0) {
    spool_options.spool_bytes_max = config.queue.spool_bytes_max / shard_count_;
  }
  spool_options.fsync = config.queue.fsync;
  spool_options.syncs_in_flight_max = config.queue.syncs_in_flight_max;
  spool_options.outcome_sync_ms = config.queue.outcome_sync_ms;
  spool_options.clock = reactor_->clock();  // OutcomeSyncDueMs is a deadline on our timers
  spool_options.message_age_ms_max = static_cast<int64_t>(config.queue.message_age_s_max) * 1000;
  std::error_code ec;
  std::filesystem::create_directories(spool_options.directory, ec);
  spool_directory_ = spool_options.directory;
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create spool directory ", spool_options.directory, ": ",
                     ec.message()));
  }
  queue::RecoveryReport report;
  ASSIGN_OR_RETURN(spool_, queue::Spool::Open(spool_options, &report));
  syncer_ = std::make_unique<SpoolSyncer>(reactor_.get(), spool_.get(),
                                          [this](const SyncReport& r) { OnSynced(r); });
  if (shared_.metrics != nullptr) {
    shared_.metrics->queue_capacity_bytes.Set(index_,
                                              static_cast<int64_t>(spool_->MessageBytesMax()));
  }
  segment_creator_ = std::make_unique<queue::SegmentCreator>(absl::StrCat("segments", index_));
  if (report.live_messages > 0 || !report.corruptions.empty()) {
    LogInfo() << "spool " << spool_options.directory << ": recovered " << report.live_messages
              << " live messages from " << report.records << " records in " << report.segments
              << " segments" << (report.corruptions.empty() ? "" : ", with corruption (see above)");
  }
  return absl::OkStatus();
}

namespace {

// The event journal, made durable with the spool's batches.
class JournalSync : public SyncCompanion {
 public:
  explicit JournalSync(events::EventJournal* journal) : journal_(journal) {}
  bool HasUnsynced() const override { return journal_->HasUnsynced(); }
  uint64_t BeginSync(std::vector<int>* fds) override { return journal_->BeginSync(fds); }
  void EndSync(uint64_t token, int result) override { journal_->EndSync(token, result); }

 private:
  events::EventJournal* const journal_;
};

}  // namespace

absl::Status Shard::OpenJournal() {
  if (shared_.events == nullptr) return absl::OkStatus();
  const events::EventSinksOptions& o = shared_.events->options();
  events::JournalOptions options;
  options.dir = o.dir;
  options.shard = static_cast<uint32_t>(index_);
  options.file_bytes_max = o.file_bytes_max;
  ASSIGN_OR_RETURN(journal_, events::EventJournal::Open(
                                 options, shared_.events->head(static_cast<uint32_t>(index_))));
  journal_sync_ = std::make_unique<JournalSync>(journal_.get());
  syncer_->set_companion(journal_sync_.get(), o.sync_interval_ms);
  return absl::OkStatus();
}

// The delivery log, the event journal and, unless [delivery] enabled = false, the engine with the
// queued messages.
absl::Status Shard::StartDelivery() {
  const Config& config = *shared_.config;
  RETURN_IF_ERROR(OpenJournal());
  std::error_code ec;
  if (!config.log.dir.empty()) {
    std::filesystem::create_directories(config.log.dir, ec);
    delivery::DeliveryLogOptions log_options;
    log_options.path = delivery::DeliveryLogPath(config.log.dir, static_cast<uint32_t>(index_));
    log_options.rotate_bytes = config.log.rotate_bytes;
    log_options.rotate_keep = config.log.rotate_keep;
    ASSIGN_OR_RETURN(log_, delivery::DeliveryLog::Open(log_options));
  }
  if (config.delivery.enabled) {
    policy_ = std::make_unique<delivery::DeliveryPolicy>(
        config.shaping, config.retry, config.bounces, static_cast<uint32_t>(shard_count_),
        config.hostname, static_cast<uint64_t>(reactor_->clock()->MonotonicNanos()) + index_);
    delivery::DeliveryOptions options;
    options.hostname = config.hostname;
    options.dns_servers = config.delivery.dns_servers;
    options.family = config.delivery.family;
    options.mx_port = config.delivery.mx_port;
    options.idle_connection_ms = config.delivery.idle_connection_ms;
    options.message_age_ms_max = static_cast<int64_t>(config.queue.message_age_s_max) * 1000;
    options.source_suspend_ms = config.delivery.source_suspend_ms;
    options.tls_verify = config.delivery.tls_verify;
    options.tls_ca_file = config.delivery.tls_ca_file;
    options.sources = config.delivery.sources;
    options.pools = config.delivery.pools;
    options.pool_routes = config.delivery.pool_routes;
    options.warmup = shared_.warmup;
    options.tls_memory = shared_.tls_memory;
    options.sts_cache = shared_.sts_cache;
    options.sts_ca_file = config.tls_policy.mta_sts_ca_file;
    options.sts.https_port = static_cast<uint16_t>(config.tls_policy.mta_sts_port);
    options.sts.recheck_ms = int64_t{config.tls_policy.mta_sts_recheck_s} * 1000;
    options.sts.limits.timeout_ms = config.tls_policy.mta_sts_fetch_timeout_ms;
    options.sts.family = options.family;
    options.sts.discoveries_max = config.tls_policy.mta_sts_lookups_max;
    options.dane = config.tls_policy.dane;
    options.tls_reports = shared_.tls_reports;
    options.send_tls_reports = index_ == 0;  // one shard sends what all of them counted
    options.tls_report_organization = config.tls_policy.report_organization;
    options.tls_report_contact = config.tls_policy.report_contact;
    options.tls_report_from = config.tls_policy.report_from;
    options.tls_report_ca_file = config.tls_policy.report_ca_file;
    options.sign_report = [this](std::string message, std::function<void(std::string)> done) {
      auto kept = std::make_shared<std::string>(std::move(message));
      preparer_->Prepare(*kept, "", spool_->NextMessageId().ToString(), absl::Now(), "",
                         [kept, done = std::move(done)](absl::StatusOr<PreparedMessage> prepared) {
                           if (!prepared.ok()) {
                             LogWarning()
                                 << "TLS report not signed: " << prepared.status().message();
                             done(std::move(*kept));
                             return;
                           }
                           done(absl::StrCat(prepared->signatures, prepared->missing, *kept));
                         });
    };
    switch (config.tls_policy.dnssec_trust_ad) {
      case TlsPolicySettings::TrustAd::kYes:
        options.trust_ad = true;
        break;
      case TlsPolicySettings::TrustAd::kNo:
        options.trust_ad = false;
        break;
      case TlsPolicySettings::TrustAd::kAuto:
        options.trust_ad = dns::AdTrustedByDefault(config.delivery.dns_servers);
        break;
    }
    options.strategy = config.delivery.strategy;
    options.reply_limits = config.delivery.reply_limits;
    options.outcome_retry_ms = config.delivery.outcome_retry_ms;
    options.outcome_retry_ms_max = config.delivery.outcome_retry_ms_max;
    options.unrecorded_outcomes_max = config.delivery.unrecorded_outcomes_max;
    options.dsn_return_bytes_max = config.delivery.dsn_return_bytes_max;
    options.suppression = shared_.suppression;
    options.suppress_categories = config.suppression.bounce_categories;
    for (const config::Tenant& t : config.tenants.tenants()) {
      options.tenant_weights[t.name] = t.weight;
    }
    options.verp = shared_.verp;
    options.suspensions = shared_.suspensions;
    options.shared_limits = shared_.shared_limits;
    options.shard = index_;
    options.metrics = shared_.metrics;
    options.metrics_shard = index_;
    delivery_ = std::make_unique<delivery::DeliveryEngine>(reactor_.get(), buffers_.get(),
                                                           spool_.get(), options, policy_.get());
    delivery_->set_log(log_.get());
    delivery_->set_journal(journal_.get());
    RETURN_IF_ERROR(delivery_->Start());
    delivery_stopped_ = false;
    if (delivery_->scheduled() > 0) {
      LogInfo() << "delivery: " << delivery_->scheduled() << " queued messages scheduled";
    }
  }

  return absl::OkStatus();
}

// Port 25's checks, on a resolver channel of their own (the delivery engine's is private to it).
absl::Status Shard::StartReceiveChecks() {
  const Config& config = *shared_.config;
  const ReceiveSettings& receive = config.receive;
  if (receive.enabled() && (receive.spf || receive.dkim || receive.arc)) {
    dns::ResolverOptions ropts;
    ropts.servers = config.delivery.dns_servers;
    ASSIGN_OR_RETURN(receive_resolver_, dns::Resolver::Create(reactor_.get(), ropts));
    if (receive.spf) {
      spf_ = std::make_unique<dns::SpfEvaluator>(reactor_.get(), receive_resolver_.get());
    }
    if (receive.dkim || receive.arc) {
      receive::DkimCheckOptions options;
      options.check_arc = receive.arc;
      dkim_checker_ = std::make_unique<receive::DkimChecker>(reactor_.get(),
                                                             receive_resolver_.get(), options);
    }
    // DMARC is evaluated from the SPF and DKIM results: without both it would fail good mail.
    if (receive.dmarc && receive.spf && receive.dkim) {
      dmarc_checker_ = std::make_unique<receive::DmarcChecker>(receive_resolver_.get());
    }
  }

  return absl::OkStatus();
}

// Every listener of the config, bound with SO_REUSEPORT, its accept armed.
absl::Status Shard::OpenListeners() {
  const Config& config = *shared_.config;
  auto listen = [&](const std::string& address_text, bool implicit_tls,
                    std::vector<uint16_t>* ports, bool receive = false) -> absl::Status {
    ASSIGN_OR_RETURN(io::SocketAddress address, io::SocketAddress::Parse(address_text));
    // Every shard binds the same address with SO_REUSEPORT. With port 0 (tests), shard 0 picks
    // the port and the others have been given it by then (shards start one after another).
    ASSIGN_OR_RETURN(int fd, io::Listen(address));
    ASSIGN_OR_RETURN(io::SocketAddress bound, io::LocalAddress(fd));
    ports->push_back(bound.port());
    Listener l;
    l.fd = fd;
    l.implicit_tls = implicit_tls;
    l.receive = receive;
    l.accept = std::make_unique<io::Completion>();
    listeners_.push_back(std::move(l));
    return absl::OkStatus();
  };
  for (const std::string& a : config.submission_listen) {
    RETURN_IF_ERROR(listen(a, false, &submission_ports_));
  }
  for (const std::string& a : config.submissions_listen) {
    RETURN_IF_ERROR(listen(a, true, &submissions_ports_));
  }
  if (shared_.receive != nullptr) {
    for (const std::string& a : config.receive.listen) {
      RETURN_IF_ERROR(listen(a, false, &receive_ports_, /*receive=*/true));
    }
  }
  for (Listener& l : listeners_) {
    Listener* lp = &l;
    l.accept->set_handler([this, lp](int result, uint32_t flags) {
      OnAccept(lp, result);
      if (!(flags & IORING_CQE_F_MORE)) {
        if (!stopping_) {
          ArmAccept(lp);
        } else {
          FinishStopIfDone();
        }
      }
    });
    ArmAccept(lp);
  }
  return absl::OkStatus();
}

void Shard::ArmTimers() {
  reactor_->AddTurnEndHook([this] { TurnEnd(); });
  maintenance_timer_.set_callback([this] {
    // Retries a failed reserve creation (TurnEnd asks too; this covers an idle shard).
    RequestReserveSegments();
    auto moved = spool_->MaintainSpace();
    if (!moved.ok()) LogWarning() << "spool compaction: " << moved.status();
    if (delivery_ != nullptr) {
      delivery_->PublishSiteMetrics();
      delivery_->QuitFleetSurplus();
    }
    if (!stopping_) reactor_->timers().ScheduleAfter(&maintenance_timer_, kMaintenanceIntervalMs);
  });
  reactor_->timers().ScheduleAfter(&maintenance_timer_, kMaintenanceIntervalMs);
  stop_timer_.set_callback([this] {
    // ForceClose removes the connection from connections_: iterate over a copy.
    std::vector<SmtpConnection*> open(connections_.begin(), connections_.end());
    for (SmtpConnection* c : open) c->ForceClose("Server shutting down");
    // Outbound sessions to slow receivers end too: the grace bounds the whole drain.
    if (delivery_ != nullptr) delivery_->Abort();
  });
}

bool Shard::UnderStress() const {
  return uint64_t{connections_.size()} * 100 >=
         uint64_t{connections_max_} * connection_context_.config().smtp.stress_connections_percent;
}

void Shard::OnMessageAppending(const queue::Envelope& envelope, const std::string& id_text,
                               uint64_t size_bytes, std::string_view headers,
                               std::string_view message) {
  if (journal_ == nullptr) return;
  delivery::DeliveryRecord line;
  line.event = delivery::DeliveryEvent::kReceived;
  line.time_unix_ms = static_cast<int64_t>(reactor_->clock()->WallSeconds() * 1000);
  line.queue_id = id_text;
  line.sender = envelope.sender;
  const std::string tenant = queue::TenantOf(envelope.attributes, envelope.sender);
  line.tenant = tenant;
  line.campaign = envelope.attributes.campaign;
  line.size_bytes = size_bytes;
  std::string message_id_storage;
  line.message_id = events::FindMessageId(message, &message_id_storage);
  if (line.message_id.empty())
    line.message_id = events::FindMessageId(headers, &message_id_storage);
  for (const std::string& recipient : envelope.recipients) {
    line.recipient = recipient;
    journal_->Append(line);
  }
  journal_->Write();
}

void Shard::OnMessageQueued(queue::MessageId id, const std::string& id_text, uint64_t size_bytes) {
  if (const metrics::RelayMetrics* m = shared_.metrics) {
    m->messages_received.Add(index_);
    m->message_bytes_received.Add(index_, size_bytes);
  }
  // The delivery log's lines once the message is durable (its journal lines went before it).
  if (log_ != nullptr) {
    if (const queue::MessageInfo* info = spool_->Find(id)) {
      delivery::DeliveryRecord line;
      line.event = delivery::DeliveryEvent::kReceived;
      line.time_unix_ms = info->created_unix_ms;
      line.queue_id = id_text;
      line.sender = info->sender;
      const std::string tenant = queue::TenantOf(info->attributes, info->sender);
      line.tenant = tenant;
      line.campaign = info->attributes.campaign;
      line.size_bytes = size_bytes;
      for (const queue::RecipientState& r : info->recipients) {
        line.recipient = r.address;
        log_->Append(line);
      }
    }
  }
  if (delivery_ != nullptr) delivery_->OnAccepted(id);
}

void Shard::OnRecipientsSuppressed(const std::string& id_text, std::string_view sender,
                                   const std::vector<feedback::SuppressionEntry>& entries) {
  if (const metrics::RelayMetrics* m = shared_.metrics) {
    m->recipients_suppressed.Add(index_, entries.size());
  }
  if (log_ == nullptr && journal_ == nullptr) return;
  const int64_t now = static_cast<int64_t>(reactor_->clock()->WallSeconds() * 1000);
  for (const feedback::SuppressionEntry& e : entries) {
    delivery::DeliveryRecord line;
    line.event = delivery::DeliveryEvent::kSuppressed;
    line.time_unix_ms = now;
    line.queue_id = id_text;
    line.sender = sender;
    line.tenant = e.tenant;
    line.recipient = e.address;
    const std::string reason = SuppressedText(e);
    line.reply_text = reason;
    line.category = e.category;
    Record(line);
  }
}

void Shard::OnReturnedMail(const feedback::ReturnedMail& mail, std::string_view peer_ip) {
  using metrics::FeedbackResult;
  const metrics::RelayMetrics* m = shared_.metrics;
  if (mail.items.empty()) {
    LogInfo() << "port 25: dropped a message from " << peer_ip << " to a bounce domain ("
              << feedback::ReportKindName(mail.kind) << "): " << mail.why;
    if (m != nullptr) {
      const bool report = mail.kind != feedback::ReportKind::kAutoReply &&
                          mail.kind != feedback::ReportKind::kUnknown;
      m->feedback(report                                          ? FeedbackResult::kUnmatched
                  : mail.kind == feedback::ReportKind::kAutoReply ? FeedbackResult::kAutoReply
                                                                  : FeedbackResult::kNotReport)
          .Add(index_);
    }
    return;
  }
  const int64_t now = static_cast<int64_t>(reactor_->clock()->WallSeconds() * 1000);
  for (const feedback::ReturnedItem& item : mail.items) {
    if (m != nullptr) {
      m->feedback(item.unsubscribe ? FeedbackResult::kUnsubscribe
                  : item.complaint ? FeedbackResult::kComplaint
                                   : FeedbackResult::kBounce)
          .Add(index_);
    }
    const std::string_view what = item.unsubscribe ? std::string_view("unsubscribed")
                                  : item.complaint ? std::string_view(item.feedback_type)
                                                   : feedback::CategoryName(item.category);
    LogInfo() << "port 25: " << item.report << " from " << peer_ip << " about "
              << (item.queue_id.empty() ? "-" : item.queue_id) << " to <" << item.recipient
              << ">: " << what;
    delivery::DeliveryRecord line;
    line.event = item.unsubscribe ? delivery::DeliveryEvent::kUnsubscribed
                 : item.complaint ? delivery::DeliveryEvent::kComplained
                                  : delivery::DeliveryEvent::kBounced;
    line.time_unix_ms = now;
    line.queue_id = item.queue_id;
    line.recipient = item.recipient;
    line.tenant = item.tenant;
    line.message_id = item.message_id;
    line.mx_host = item.remote_mta;
    line.reply_code = item.code;
    line.reply_enhanced = item.enhanced;
    line.reply_text = item.text;
    if (!item.complaint && !item.unsubscribe) line.category = feedback::CategoryName(item.category);
    line.feedback = item.report;
    line.feedback_type = item.feedback_type;
    Record(line);
  }
}

void Shard::RecordUnsubscribed(std::string tenant, std::string address, std::string via) {
  if (reactor_ == nullptr) return;
  reactor_->RunInLoop(
      [this, tenant = std::move(tenant), address = std::move(address), via = std::move(via)] {
        delivery::DeliveryRecord line;
        line.event = delivery::DeliveryEvent::kUnsubscribed;
        line.time_unix_ms = static_cast<int64_t>(reactor_->clock()->WallSeconds() * 1000);
        line.recipient = address;
        line.tenant = tenant;
        line.feedback = via;
        Record(line);
      });
}

void Shard::Record(const delivery::DeliveryRecord& line) {
  events::RecordEvent(log_.get(), journal_.get(), line);
}

void Shard::ThreadMain(std::promise<absl::Status>* started) {
  SetThreadLogTag(absl::StrCat("shard", index_));
  absl::Status status = Setup();
  if (status.ok()) {
    counters_.heartbeat_ms.store(reactor_->NowMs(), std::memory_order_relaxed);
    counters_.running.store(true, std::memory_order_relaxed);
  }
  started->set_value(status);
  if (status.ok()) {
    while (!reactor_->stopping()) reactor_->RunOnce();
  }
  counters_.running.store(false, std::memory_order_relaxed);
  // Everything is torn down on this thread: the ring accepts submissions only from the thread
  // that created it (IORING_SETUP_SINGLE_ISSUER).
  if (reactor_ != nullptr) {
    reactor_->timers().Cancel(&maintenance_timer_);
    reactor_->timers().Cancel(&stop_timer_);
  }
  // Waits for a creation in progress (one at most) and drops the queued ones; a result it posts
  // to the reactor finds spool_ gone and is dropped, its file recovered at the next start.
  segment_creator_.reset();
  for (Listener& l : listeners_) ::close(l.fd);
  listeners_.clear();
  syncer_.reset();
  journal_sync_.reset();
  journal_.reset();  // writes and syncs what it holds
  delivery_.reset();
  policy_.reset();
  spf_.reset();
  dkim_checker_.reset();
  dmarc_checker_.reset();
  receive_resolver_.reset();
  if (log_ != nullptr) (void)log_->Flush();
  log_.reset();
  preparer_.reset();
  spool_.reset();
  buffers_.reset();
  reactor_.reset();
}

void Shard::ArmAccept(Listener* listener) {
  reactor_->Accept(listener->fd, listener->accept.get(), /*multishot=*/true);
}

void Shard::OnAccept(Listener* listener, int result) {
  if (result < 0) {
    if (result != -ECANCELED) LogWarning() << "accept: " << std::strerror(-result);
    // The stop waits for the listeners' accepts to end: this may have been the last thing left
    // (with thousands of sessions closing at once, the cancellation can complete last).
    if (stopping_) FinishStopIfDone();
    return;
  }
  int fd = result;
  auto peer = io::PeerAddress(fd);
  std::string ip = peer.ok() ? peer->IpString() : "unknown";
  // Per client, as the AUTH throttle counts: an IPv6 peer's whole /64 shares the limit.
  std::string client = peer.ok() ? ClientKey(peer->get()) : "";
  uint32_t& per_ip = connections_per_ip_[client];
  const char* refusal = nullptr;
  if (stopping_) {
    refusal = "421 4.3.2 Server shutting down\r\n";
  } else if (connections_.size() >= connections_max_) {
    refusal = "421 4.7.0 Too many connections, try again later\r\n";
  } else if (per_ip >= connections_per_ip_max_) {
    refusal = "421 4.7.0 Too many connections from your address, try again later\r\n";
  } else if (shared_.authenticator->IsBlocked(ip)) {
    refusal = "421 4.7.0 Too many failed authentications from your address, try later\r\n";
  }
  const metrics::RelayMetrics::Listener* counted =
      shared_.metrics == nullptr
          ? nullptr
          : &shared_.metrics->listener(MetricsListenerKind(listener->implicit_tls,
                                                           listener->receive));
  if (refusal != nullptr) {
    counters_.connections_refused++;
    if (counted != nullptr) counted->connections_refused.Add(index_);
    if (per_ip == 0) connections_per_ip_.erase(client);
    // One small non-blocking write on a fresh socket; implicit-TLS clients cannot read it, which
    // is what every MTA does on 465 too.
    if (!listener->implicit_tls) {
      ssize_t n = ::send(fd, refusal, std::strlen(refusal), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)n;
    }
    ::close(fd);
    return;
  }
  ++per_ip;
  counters_.connections_accepted++;
  if (counted != nullptr) {
    counted->connections_accepted.Add(index_);
    counted->connections_open.Add(index_, 1);
  }
  // Replies are written whole (one write per batch of pipelined replies): no Nagle delay.
  int nodelay = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay));
  auto* connection = new SmtpConnection(connection_context_, fd, ip, std::move(client),
                                        listener->implicit_tls, listener->receive);
  connections_.insert(connection);
  connection->Start();
}

void Shard::OnConnectionClosed(SmtpConnection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  connections_.erase(it);
  if (shared_.metrics != nullptr) {
    shared_.metrics
        ->listener(MetricsListenerKind(connection->implicit_tls(), connection->receive()))
        .connections_open.Add(index_, -1);
  }
  auto ip = connections_per_ip_.find(connection->client_key());
  if (ip != connections_per_ip_.end() && --ip->second == 0) connections_per_ip_.erase(ip);
  reactor_->RetireWhenIdle(std::unique_ptr<io::IoObject>(connection));
  if (stopping_) FinishStopIfDone();
}

// Group commit: every record appended during this turn shares one fdatasync, submitted here on
// the ring; the durable callbacks (and so the 250 replies) run when all of its fsyncs completed.
void Shard::TurnEnd() {
  counters_.heartbeat_ms.store(reactor_->NowMs(), std::memory_order_relaxed);
  PublishMetrics();
  // Once stopping, every turn re-checks whether the shard may stop: the last condition to clear
  // may have been one whose completion does not call FinishStopIfDone itself.
  if (stopping_ && !drain_posted_) FinishStopIfDone();
  if (log_ != nullptr) {
    absl::Status s = log_->Flush();  // whole lines, one write(2) when anything is buffered
    if (!s.ok()) LogWarning() << "delivery log: " << s;
  }
  // A reserve segment taken by this turn's appends is replaced off this thread (at once when
  // the reserve is low).
  if (!stopping_) RequestReserveSegments();
  // Outcomes alone wait up to [queue] outcome_sync_ms for a batch; a stop waits for nothing.
  syncer_->TurnEnd(/*prompt=*/stopping_);
}

void Shard::OnSynced(const SyncReport& report) {
  counters_.syncs++;
  counters_.sync_errno.store(-report.result, std::memory_order_relaxed);
  if (const metrics::RelayMetrics* m = shared_.metrics) {
    m->fsync_us.Observe(index_,
                        static_cast<uint64_t>(std::max<int64_t>(0, report.elapsed_ns)) / 1000);
    m->fsync_batch_records.Observe(index_, report.records);
    if (report.result < 0) m->fsync_errors.Add(index_);
  }
  if (stopping_) FinishStopIfDone();
}

void Shard::RequestReserveSegments() {
  while (std::optional<queue::SegmentRequest> request = spool_->TakeReserveRequest()) {
    io::Reactor* reactor = reactor_.get();
    segment_creator_->Create(
        std::move(*request),
        [this, reactor](queue::SegmentRequest request, queue::CreatedSegment created) {
          // On the creator's thread. The reactor outlives the creator (ThreadMain); RunInLoop
          // takes a copyable task, hence the shared_ptr.
          auto result = std::make_shared<std::pair<queue::SegmentRequest, queue::CreatedSegment>>(
              std::move(request), std::move(created));
          reactor->RunInLoop([this, result] {
            if (spool_ == nullptr) return;  // the shard is being torn down
            spool_->AddReserve(result->first, std::move(result->second));
          });
        });
  }
}

// Totals kept by the modules themselves, copied into this shard's cells: a few relaxed stores per
// loop turn, so a scrape is never more than one turn behind and the modules know nothing of
// metrics.
void Shard::PublishMetrics() {
  const metrics::RelayMetrics* m = shared_.metrics;
  if (m == nullptr) return;
  m->loop_turns(index_).Add(index_);
  m->SetOldestMessage(index_, spool_->OldestMessageCreatedUnixMs());
  queue::SpoolStats spool = spool_->stats();
  m->queue_messages.Set(index_, static_cast<int64_t>(spool.live_messages));
  m->queue_bytes.Set(index_,
                     static_cast<int64_t>(spool.active_segments * spool_->options().segment_bytes));
  m->queue_reserve_segments.Set(index_, static_cast<int64_t>(spool.reserve_segments));
  m->queue_segments_created_on_append_path.Set(index_, spool.segments_created_on_hot_path);
  m->queue_segment_creation_failures.Set(index_, spool.reserve_creation_failures);
  if (delivery_ != nullptr) {
    const delivery::DeliveryEngine::Stats& stats = delivery_->stats();
    m->outbound_connections_opened.Set(index_, stats.connections_opened);
    m->dsn_queued.Set(index_, stats.dsn_queued);
    m->possible_duplicates.Set(index_, stats.possible_duplicates);
    if (const dns::Resolver* resolver = delivery_->resolver()) {
      m->dns_queries.Set(index_, resolver->queries_sent());
      m->dns_cache_hits.Set(index_, resolver->cache_hits());
      m->dns_failures.Set(index_, resolver->failures());
    }
  }
}

std::string Shard::HealthProblem(int64_t now_ms) const {
  if (!counters_.running.load(std::memory_order_relaxed)) {
    return absl::StrCat("shard ", index_, " is not running");
  }
  int64_t idle_ms = now_ms - counters_.heartbeat_ms.load(std::memory_order_relaxed);
  if (idle_ms > kStallMs) {
    return absl::StrCat("shard ", index_, " has not completed a loop turn for ", idle_ms, " ms");
  }
  if (int err = counters_.sync_errno.load(std::memory_order_relaxed); err != 0) {
    return absl::StrCat("shard ", index_,
                        ": the last queue fdatasync failed: ", std::strerror(err));
  }
  // The spool accepts new segment files (compaction and rotation create them).
  if (::access(spool_directory_.c_str(), W_OK) != 0) {
    return absl::StrCat("shard ", index_, ": spool directory ", spool_directory_,
                        " is not writable: ", std::strerror(errno));
  }
  return "";
}

void Shard::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  for (Listener& l : listeners_) reactor_->Cancel(l.accept.get());
  std::vector<SmtpConnection*> open(connections_.begin(), connections_.end());
  for (SmtpConnection* c : open) c->StopGracefully();
  reactor_->timers().Cancel(&maintenance_timer_);
  reactor_->timers().ScheduleAfter(&stop_timer_, shared_.config->shutdown_grace_ms);
  if (delivery_ != nullptr) {
    // Outbound connections finish the message they are sending, then quit.
    delivery_->Stop([this] {
      delivery_stopped_ = true;
      FinishStopIfDone();
    });
  }
  FinishStopIfDone();
}

void Shard::FinishStopIfDone() {
  if (!connections_.empty() || !delivery_stopped_ ||
      (syncer_ != nullptr && syncer_->in_flight() > 0) || spool_->HasUnsyncedRecords()) {
    return;
  }
  for (Listener& l : listeners_) {
    if (l.accept->in_flight()) return;
  }
  if (drain_posted_) return;
  drain_posted_ = true;
  reactor_->timers().Cancel(&stop_timer_);
  // Connections still retiring complete within a few turns; the loop ends once they are freed.
  reactor_->Post([this] { DrainAndStop(); });
}

void Shard::DrainAndStop() {
  if (reactor_->retiring() > 0 || (syncer_ != nullptr && syncer_->in_flight() > 0)) {
    reactor_->Post([this] { DrainAndStop(); });
    return;
  }
  reactor_->Stop();
}

}  // namespace relay::server
