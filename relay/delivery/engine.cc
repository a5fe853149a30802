#include "relay/delivery/engine.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/base/sv.h"
#include "relay/base/url.h"
#include "relay/delivery/delivery_policy.h"
#include "relay/delivery/dsn.h"
#include "relay/delivery/outbound_connection.h"

namespace relay::delivery {

using Category = feedback::BounceCategory;
namespace {

// A job the operator's suspension of its domain, tenant or campaign holds back: deferred, and
// counted as the relay's own policy, not the receiver's.
RecipientOutcome HeldOutcome(const Suspension& hold) {
  return RecipientOutcome::Transient(absl::StrCat("delivery held: ", hold.reason), 0, "4.3.2")
      .Categorized(feedback::BounceCategory::kPolicy);
}

constexpr size_t kDispatchBatchMax = 256;  // messages dispatched per timer turn
// An attempt number past every retry schedule: its interval is the schedule's last (longest).
constexpr uint32_t kLongestInterval = 1u << 20;

std::string DomainOf(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return "";
  return absl::AsciiStrToLower(std::string(address.substr(at + 1)));
}

}  // namespace

DeliveryEngine::DeliveryEngine(io::Reactor* reactor, io::BufferRing* buffers, queue::Spool* spool,
                               DeliveryOptions options, DeliveryPolicy* policy)
    : reactor_(reactor),
      buffers_(buffers),
      spool_(spool),
      options_(std::move(options)),
      policy_(policy) {
  schedule_timer_.set_callback([this] { OnScheduleTimer(); });
  record_timer_.set_callback([this] { OnRecordTimer(); });
  tls_report_timer_.set_callback([this] { SendDueTlsReports(); });
}

DeliveryEngine::~DeliveryEngine() {
  *alive_ = false;
  reactor_->timers().Cancel(&schedule_timer_);
  reactor_->timers().Cancel(&record_timer_);
  reactor_->timers().Cancel(&tls_report_timer_);
  for (auto& post : report_posts_) {
    post->Cancel();
    reactor_->RetireWhenIdle(std::move(post));
  }
  if (!unrecorded_.empty()) {
    LogError() << unrecorded_.size()
               << " delivery outcomes could not be recorded in the spool; their recipients will "
                  "be attempted again after the restart";
  }
  for (auto& [key, queue] : queues_) reactor_->timers().Cancel(queue->pump_timer());
  lookups_.clear();
  // Connections must have been stopped (Stop) before; whatever remains is detached.
  connections_.clear();
}

absl::Status DeliveryEngine::Start() {
  auto egress =
      Egress::Create(options_.sources, options_.pools, options_.strategy, options_.hostname);
  if (!egress.ok()) return egress.status();
  egress_ = std::move(*egress);
  ASSIGN_OR_RETURN(pool_by_, IndexPoolRoutes(options_.pool_routes, egress_));
  if (options_.warmup == nullptr) own_warmup_ = std::make_unique<WarmupLedger>();
  warmup_ = options_.warmup != nullptr ? options_.warmup : own_warmup_.get();
  dns::ResolverOptions ropts;
  ropts.servers = options_.dns_servers;
  ropts.family = options_.family;
  ropts.trust_ad = options_.trust_ad;
  auto resolver = dns::Resolver::Create(reactor_, ropts);
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(*resolver);
  tls::ClientTlsContext::Options topts;
  // Never aborts a handshake: tls_verify is judged per job (OutboundConnection::RefusedForTls),
  // after DANE has had its say.
  topts.verify_required = false;
  topts.ca_file = options_.tls_ca_file;
  auto tls = tls::ClientTlsContext::Create(topts);
  if (!tls.ok()) return tls.status();
  client_tls_ = std::move(*tls);
  if (options_.sts_cache != nullptr) {
    tls::ClientTlsContext::Options sopts;
    sopts.verify_required = true;  // RFC 8461 §3.3: a policy only from a verified server
    if (!options_.sts_ca_file.empty()) sopts.ca_file = options_.sts_ca_file;
    ASSIGN_OR_RETURN(sts_tls_, tls::ClientTlsContext::Create(sopts));
    tlspolicy::StsResolverOptions sts = options_.sts;
    sts.reports = options_.tls_reports;
    sts_ = std::make_unique<tlspolicy::StsResolver>(reactor_, resolver_.get(), options_.sts_cache,
                                                    sts_tls_.get(), sts);
  }
  if (options_.tls_reports != nullptr && options_.send_tls_reports) {
    tls::ClientTlsContext::Options ropts;
    ropts.verify_required = true;  // RFC 8460 §5.4: the report server's certificate is checked
    if (!options_.tls_report_ca_file.empty()) ropts.ca_file = options_.tls_report_ca_file;
    ASSIGN_OR_RETURN(report_tls_, tls::ClientTlsContext::Create(ropts));
    reactor_->timers().ScheduleAfter(&tls_report_timer_, kTlsReportCheckMs);
  }
  // Recovery: every live message with a pending recipient is scheduled at its due time.
  spool_->ForEachMessage([this](const queue::MessageInfo& info) {
    int64_t due = info.NextDueUnixMs();
    if (due >= 0) Schedule(info.id, due);
  });
  return absl::OkStatus();
}

int64_t DeliveryEngine::MonotonicOf(int64_t unix_ms) const {
  return reactor_->NowMs() + (unix_ms - NowUnixMs());
}

int64_t DeliveryEngine::NowUnixMs() const {
  return static_cast<int64_t>(reactor_->clock()->WallSeconds() * 1000);
}

void DeliveryEngine::OnAccepted(queue::MessageId id) {
  if (stopping_) return;
  Schedule(id, 0);
}

absl::StatusOr<std::string> DeliveryEngine::RetryNow(queue::MessageId id) {
  const queue::MessageInfo* info = spool_->Find(id);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("no live message ", id.ToString()));
  if (jobs_out_.contains(id)) return absl::StrCat(id.ToString(), " is being delivered now");
  if (NextDueUnixMs(*info) < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        id.ToString(), info->NextDueUnixMs() < 0
                           ? " has no pending recipient"
                           : " has outcomes waiting to be recorded (the spool refused them)"));
  }
  scheduled_.Remove(id);
  Dispatch(id, /*force=*/true);
  return absl::StrCat(id.ToString(), " is being retried");
}

absl::StatusOr<std::string> DeliveryEngine::RetryAll() {
  std::vector<queue::MessageId> ids;
  spool_->ForEachMessage([&](const queue::MessageInfo& info) {
    if (NextDueUnixMs(info) >= 0 && !jobs_out_.contains(info.id)) ids.push_back(info.id);
  });
  for (queue::MessageId id : ids) {
    scheduled_.Remove(id);
    Dispatch(id, /*force=*/true);
  }
  return absl::StrCat(ids.size(), " messages are being retried");
}

void DeliveryEngine::RememberSite(const std::string& domain, const std::string& site,
                                  const std::string& rule) {
  if (site.size() > kSiteBytesMax) return;  // a hostile MX set is not worth the memory
  auto it = domain_sites_.find(domain);
  if (it != domain_sites_.end() && it->second.first == site && it->second.second == rule) return;
  if (it == domain_sites_.end() && domain_sites_.size() >= kDomainSitesMax) {
    domain_sites_.clear();  // a bounded memory: the domains in use come back with their mail
  }
  domain_sites_[domain] = {site, rule};
}

absl::StatusOr<std::string> DeliveryEngine::ActOnSelected(QueueAction action,
                                                          const QueueSelector& given) {
  QueueSelector selector = given;
  if (!selector.site.empty()) {
    selector.at_site = [this](std::string_view domain, std::string_view site) {
      auto it = domain_sites_.find(absl::string_view(domain.data(), domain.size()));
      return it != domain_sites_.end() && (it->second.first == site || it->second.second == site);
    };
  }
  std::vector<queue::MessageId> ids;
  size_t kept = 0;  // delete: pending recipients elsewhere
  bool more = false;
  spool_->ForEachMessage([&](const queue::MessageInfo& info) {
    if (more || !selector.MatchesMessage(info)) return;
    bool selected = false, elsewhere = false;
    for (uint32_t i = 0; i < info.recipients.size(); ++i) {
      if (info.recipients[i].status != queue::RecipientStatus::kPending) continue;
      (selector.MatchesRecipient(info, i) ? selected : elsewhere) = true;
    }
    if (!selected) return;
    if (action == QueueAction::kDelete && elsewhere) {
      ++kept;
      return;
    }
    if (ids.size() >= kSelectedMessagesMax) {
      more = true;
      return;
    }
    ids.push_back(info.id);
  });
  size_t done = 0, busy = 0, refused = 0;
  for (queue::MessageId id : ids) {
    if (jobs_out_.contains(id)) {
      ++busy;
      continue;
    }
    absl::StatusOr<std::string> r = action == QueueAction::kRetry    ? RetryNow(id)
                                    : action == QueueAction::kBounce ? BounceNow(id, &selector)
                                                                     : DeleteNow(id);
    ++(r.ok() ? done : refused);
  }
  const char* what = action == QueueAction::kRetry    ? "retried"
                     : action == QueueAction::kBounce ? "bounced"
                                                      : "deleted";
  std::string answer = absl::StrCat(done, " messages ", what, " (", selector.Describe(), ")");
  if (busy > 0) absl::StrAppend(&answer, "; ", busy, " being delivered now: ask again");
  if (refused > 0) absl::StrAppend(&answer, "; ", refused, " refused (see the log)");
  if (kept > 0) absl::StrAppend(&answer, "; ", kept, " kept: recipients at other domains");
  if (more) absl::StrAppend(&answer, "; more remain: ask again");
  if (!selector.site.empty()) {
    absl::StrAppend(&answer, "; a site takes in the domains looked up since the start");
  }
  return answer;
}

absl::StatusOr<std::string> DeliveryEngine::BounceNow(queue::MessageId id,
                                                      const QueueSelector* only) {
  const queue::MessageInfo* info = spool_->Find(id);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("no live message ", id.ToString()));
  if (jobs_out_.contains(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat(id.ToString(), " is being delivered now; try again shortly"));
  }
  Job job;
  job.id = id;
  for (uint32_t i = 0; i < info->recipients.size(); ++i) {
    if (info->recipients[i].status == queue::RecipientStatus::kPending && !OutcomeWaiting(id, i) &&
        (only == nullptr || only->MatchesRecipient(*info, i))) {
      job.recipients.push_back(i);
    }
  }
  if (job.recipients.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(id.ToString(), " has no pending recipient"));
  }
  size_t count = job.recipients.size();
  jobs_out_[id] = 1;
  scheduled_.Remove(id);
  FailJob(job, RecipientOutcome::Permanent("bounced by the operator", 550, "5.0.0"));
  return absl::StrCat(id.ToString(), ": ", count, " recipient(s) bounced");
}

absl::StatusOr<std::string> DeliveryEngine::DeleteNow(queue::MessageId id) {
  const queue::MessageInfo* info = spool_->Find(id);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("no live message ", id.ToString()));
  if (jobs_out_.contains(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat(id.ToString(), " is being delivered now; try again shortly"));
  }
  queue::StateRecord state;
  state.type = queue::RecordType::kDeleted;
  state.id = id;
  state.recipient = queue::kAllRecipients;
  state.time_unix_ms = NowUnixMs();
  state.reply = "deleted by the operator";
  // Copied before the append, which drops the message from the index (it became final).
  std::vector<std::string> pending;
  for (const queue::RecipientState& r : info->recipients) {
    if (r.status == queue::RecipientStatus::kPending) pending.push_back(r.address);
  }
  const std::string sender(info->sender);
  const std::string tenant = queue::TenantOf(info->attributes, info->sender);
  const std::string campaign = info->attributes.campaign;
  const int64_t created_unix_ms = info->created_unix_ms;
  std::string message_id_storage;
  const std::string message_id(
      journal_ != nullptr ? events::FindMessageId(spool_->MessageBytes(id), &message_id_storage)
                          : "");
  auto appended = spool_->AppendState(state, nullptr);
  if (!appended.ok()) return appended.status();
  scheduled_.Remove(id);
  // One line per recipient that will now never be delivered: the log says what became of every
  // recipient it said was received.
  if (Recording()) {
    std::string id_text = id.ToString();
    for (const std::string& address : pending) {
      DeliveryRecord line;
      line.event = DeliveryEvent::kDeleted;
      line.time_unix_ms = state.time_unix_ms;
      line.queue_id = id_text;
      line.sender = sender;
      line.tenant = tenant;
      line.campaign = campaign;
      line.recipient = address;
      line.reply_text = state.reply;
      line.queued_ms = state.time_unix_ms - created_unix_ms;
      line.message_id = message_id;
      Record(line);
    }
  }
  return absl::StrCat(id.ToString(), " deleted");
}

void DeliveryEngine::Schedule(queue::MessageId id, int64_t due_unix_ms) {
  scheduled_.Schedule(id, due_unix_ms);
  ArmScheduleTimer();
}

void DeliveryEngine::ArmScheduleTimer() {
  if (scheduled_.empty() || stopping_) return;
  int64_t delay = std::max<int64_t>(0, scheduled_.NextDueUnixMs() - NowUnixMs());
  int64_t deadline = reactor_->NowMs() + delay;
  if (!schedule_timer_.scheduled() || schedule_timer_.deadline_ms() > deadline) {
    reactor_->timers().Schedule(&schedule_timer_, deadline);
  }
}

void DeliveryEngine::OnScheduleTimer() {
  if (unrecorded_.size() >= options_.unrecorded_outcomes_max) {
    // The spool refuses outcomes: more deliveries would only add outcomes it cannot record.
    // OnRecordTimer arms this timer again once enough of them are recorded.
    return;
  }
  int64_t now = NowUnixMs();
  size_t dispatched = 0;
  while (dispatched < kDispatchBatchMax && !stopping_) {
    std::optional<queue::MessageId> id = scheduled_.TakeDue(now);
    if (!id) break;
    Dispatch(*id);
    ++dispatched;
  }
  if (!scheduled_.empty()) {
    // More due now: continue next turn without starving I/O; otherwise wait for the next due.
    if (scheduled_.NextDueUnixMs() <= now) {
      reactor_->timers().ScheduleAfter(&schedule_timer_, 0);
    } else {
      ArmScheduleTimer();
    }
  }
}

void DeliveryEngine::Dispatch(queue::MessageId id, bool force) {
  if (jobs_out_.contains(id)) return;  // in progress: rescheduled when its jobs finish
  SyncSuspensions();                   // the holds and rebinds in force now
  const queue::MessageInfo* info = spool_->Find(id);
  if (info == nullptr) return;  // deleted or final
  int64_t now = NowUnixMs();
  bool expired = info->created_unix_ms + options_.message_age_ms_max <= now;
  // Group the due pending recipients by domain (RFC 5321 §5.1: one MX lookup per domain).
  absl::flat_hash_map<std::string, Job> by_domain;
  const std::string tenant = queue::TenantOf(info->attributes, info->sender);
  const auto weight_it = options_.tenant_weights.find(info->attributes.tenant);
  const uint32_t weight = weight_it == options_.tenant_weights.end() ? 1 : weight_it->second;
  std::vector<std::string> order;
  for (uint32_t i = 0; i < info->recipients.size(); ++i) {
    const queue::RecipientState& r = info->recipients[i];
    if (r.status != queue::RecipientStatus::kPending) continue;
    // Its outcome is known but not yet recorded: attempting it again would repeat a delivery.
    if (OutcomeWaiting(id, i)) continue;
    if (!expired && !force && r.next_attempt_unix_ms > now && !Released(id, i)) continue;
    std::string domain = DomainOf(r.address);
    auto [it, inserted] = by_domain.try_emplace(domain);
    if (inserted) {
      it->second.id = id;
      it->second.domain = domain;
      it->second.tenant = tenant;
      it->second.priority = info->attributes.priority;
      it->second.weight = weight;
      it->second.campaign = info->attributes.campaign;
      it->second.require_tls = info->attributes.require_tls;
      it->second.tls_optional = info->attributes.tls_optional && !info->attributes.require_tls;
      it->second.message_bytes = info->message.size();
      it->second.created_unix_ms = info->created_unix_ms;
      order.push_back(domain);
    }
    it->second.recipients.push_back(i);
  }
  released_.erase(id);  // its released recipients are in these jobs (or no longer pending)
  if (order.empty()) {
    int64_t next = NextDueUnixMs(*info);
    if (next >= 0) Schedule(id, next);
    return;
  }
  jobs_out_[id] = static_cast<int>(order.size());
  for (const std::string& domain : order) {
    Job job = std::move(by_domain[domain]);
    if (expired) {
      std::string last = info->recipients[job.recipients[0]].last_reply;
      FailJob(job,
              RecipientOutcome::Permanent(
                  absl::StrCat("message expired after ", options_.message_age_ms_max / 3600000,
                               " hours in the queue", last.empty() ? "" : "; last reply: ", last),
                  0, "5.4.7")
                  .Categorized(Category::kMessageExpired));
      continue;
    }
    if (domain.empty()) {
      FailJob(job, RecipientOutcome::Permanent("recipient address has no domain", 553, "5.1.3")
                       .Categorized(Category::kBadMailbox));
      continue;
    }
    if (sts_ != nullptr && !job.tls_optional && !sts_->Known(domain, &job.sts)) {
      // The domain's MTA-STS policy first (known to this shard, mostly), then its MX.
      sts_->Policy(domain, [this, job = std::move(job)](tlspolicy::StsEntryPtr policy) mutable {
        job.sts = std::move(policy);
        ResolveMxFor(std::move(job));
      });
      continue;
    }
    ResolveMxFor(std::move(job));
  }
}

void DeliveryEngine::ReportDaneFailure(const Job& job, const std::string& host,
                                       tlspolicy::TlsFailure failure, std::string why) {
  if (options_.tls_reports == nullptr) return;
  tlspolicy::TlsSession s;
  s.policy_domain = job.domain;
  s.policy_type = tlspolicy::ReportPolicyType::kTlsa;
  s.success = false;
  s.failure = failure;
  s.receiving_mx = host;
  s.additional = std::move(why);
  options_.tls_reports->Record(s, NowUnixMs() / 1000);
}

void DeliveryEngine::SendDueTlsReports() {
  if (stopping_) return;
  reactor_->timers().ScheduleAfter(&tls_report_timer_, kTlsReportCheckMs);
  for (tlspolicy::DomainReport& report : options_.tls_reports->TakeDue(NowUnixMs() / 1000)) {
    if (reports_due_.size() >= kTlsReportsDueMax) {
      // Windows shorter than the time their reports take to go out: the oldest wait, the rest
      // are dropped rather than kept without bound.
      ++reports_dropped_;
      continue;
    }
    reports_due_.push_back(std::move(report));
  }
  if (reports_dropped_ > 0 && reports_due_.empty()) {
    LogWarning() << reports_dropped_ << " TLS reports dropped: more were due than "
                 << kTlsReportsDueMax << " at once";
    reports_dropped_ = 0;
  }
  // A window's end may bring thousands of domains: a few each tick, so that the shard's own MX
  // lookups do not queue behind them.
  for (size_t n = 0; n < kTlsReportsPerTick && !reports_due_.empty(); ++n) {
    tlspolicy::DomainReport report = std::move(reports_due_.front());
    reports_due_.pop_front();
    // Where the domain wants its report (RFC 8460 §3): _smtp._tls.<domain> TXT.
    const std::string name = absl::StrCat("_smtp._tls.", report.policy_domain);
    dns::QueryHandle* raw = TrackLookup();
    *raw = resolver_->LookupTxt(name, [this, raw, name,
                                       report = std::move(report)](dns::TxtResult txt) mutable {
      ForgetLookup(raw);
      if (!txt.status.ok()) {
        // No record (the common case) is no news; a failed lookup is.
        if (txt.status.transient()) {
          LogInfo() << "TLS report for " << report.policy_domain << " not sent: " << name << ": "
                    << txt.status.ToString();
        }
        return;
      }
      for (const dns::TxtRecord& record : txt.records) {
        absl::StatusOr<tlspolicy::TlsRptRecord> rpt = tlspolicy::ParseTlsRptRecord(record.joined);
        if (rpt.ok()) {
          SendTlsReport(std::move(report), rpt->rua);
          return;
        }
      }
      LogInfo() << "TLS report for " << report.policy_domain << " not sent: " << name
                << " has no TLSRPTv1 record with a usable rua";
    });
  }
}

void DeliveryEngine::SendTlsReport(tlspolicy::DomainReport report,
                                   const std::vector<std::string>& rua) {
  const std::string& hostname = options_.hostname;
  const std::string report_id =
      absl::StrCat(report.window_start_unix_s, ".", report.policy_domain, "@", hostname);
  const std::string json = tlspolicy::BuildReportJson(
      {report},
      options_.tls_report_organization.empty() ? hostname : options_.tls_report_organization,
      options_.tls_report_contact.empty() ? absl::StrCat("postmaster@", hostname)
                                          : options_.tls_report_contact,
      report_id);
  const std::string gzipped = tlspolicy::Gzip(json);
  for (const std::string& uri : rua) {
    if (absl::StartsWithIgnoreCase(uri, "https:")) {
      PostTlsReport(uri, report.policy_domain, gzipped);
      continue;
    }
    // mailto:address[?query] (RFC 6068); the relay's own queue takes it like any message, but
    // only a plain address: the record is anyone's text.
    std::optional<std::string> address = tlspolicy::MailtoAddress(uri);
    if (!address.has_value()) {
      LogInfo() << "TLS report for " << report.policy_domain << ": rua " << absl::CHexEscape(uri)
                << " is not a usable mailto address";
      continue;
    }
    const std::string to = *std::move(address);
    const std::string from = options_.tls_report_from.empty()
                                 ? absl::StrCat("tls-reports@", hostname)
                                 : options_.tls_report_from;
    // RFC 8460 §3: a report goes out even when TLS to the reporting domain fails (its policy is
    // likely what failed): TLS-Required: No (RFC 8689 §5), for this relay and the next hop.
    std::string message = absl::StrCat(
        "TLS-Required: No\r\n",
        tlspolicy::BuildReportMessage(from, to, report.policy_domain, hostname, report_id,
                                      report.window_start_unix_s, report.window_end_unix_s,
                                      NowUnixMs() / 1000, gzipped));
    const std::string what = absl::StrCat("TLS report ", report_id, " (", report.successes,
                                          " successful, ", report.failures, " failed sessions)");
    if (!options_.sign_report) {
      QueueTlsReport(to, what, std::move(message));
      continue;
    }
    // RFC 8460 §5.3: the report is DKIM-signed, by the key of its From domain.
    options_.sign_report(std::move(message), [this, alive = alive_, to, what](std::string done) {
      if (*alive) QueueTlsReport(to, what, std::move(done));
    });
  }
}

void DeliveryEngine::QueueTlsReport(const std::string& to, const std::string& what,
                                    std::string message) {
  if (stopping_) return;  // signed after the stop began: the spool may be closing
  queue::Envelope envelope;
  envelope.sender = "";  // nothing comes back to a report: no loops
  envelope.recipients.push_back(to);
  envelope.attributes.tls_optional = true;
  auto appended = spool_->AppendMessage(envelope, "", message, nullptr);
  if (!appended.ok()) {
    LogError() << "queueing the " << what << " to " << to << ": " << appended.status();
    return;
  }
  LogInfo() << what << " queued to " << to << " as " << appended->id.ToString();
  Schedule(appended->id, 0);
}

void DeliveryEngine::PostTlsReport(const std::string& url, const std::string& domain,
                                   std::string gzipped) {
  if (report_posts_.size() >= kTlsReportPostsMax) {
    LogWarning() << "TLS report for " << domain << " to " << url
                 << " not sent: " << kTlsReportPostsMax << " reports are being posted";
    return;
  }
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok() || !parsed->tls) {
    LogInfo() << "TLS report for " << domain << " not posted: " << absl::CHexEscape(url) << ": "
              << (parsed.ok() ? std::string("not https") : std::string(parsed.status().message()));
    return;
  }
  const std::string host = parsed->host, path = parsed->path;
  const uint16_t port = parsed->port;
  dns::QueryHandle* raw = TrackLookup();
  *raw = resolver_->ResolveAddresses(
      host, options_.family,
      [this, raw, host, port, path, url, domain,
       gzipped = std::move(gzipped)](dns::AddressResult a) mutable {
        ForgetLookup(raw);
        if (a.addresses.empty() || stopping_) {
          LogInfo() << "TLS report for " << domain << " not posted: " << url << ": "
                    << a.status.ToString();
          return;
        }
        io::SocketAddress address = a.addresses.front();
        address.set_port(port);
        auto self = std::make_shared<tlspolicy::HttpsGet*>(nullptr);
        auto done = [this, url, domain, self](tlspolicy::HttpsGetResult result) {
          if (result.status.ok()) {
            LogInfo() << "TLS report for " << domain << " posted to " << url << " (HTTP "
                      << result.code << ")";
          } else {
            LogInfo() << "TLS report for " << domain << " not posted: " << result.status;
          }
          // Retired after this turn: `done` runs inside the post.
          reactor_->Post([this, alive = alive_, self] {
            if (!*alive) return;
            auto it = std::find_if(report_posts_.begin(), report_posts_.end(),
                                   [&](const auto& p) { return p.get() == *self; });
            if (it == report_posts_.end()) return;
            reactor_->RetireWhenIdle(std::move(*it));
            report_posts_.erase(it);
          });
        };
        report_posts_.push_back(tlspolicy::HttpsGet::StartPost(
            reactor_, report_tls_.get(), host, address, path, "application/tlsrpt+gzip",
            std::move(gzipped), tlspolicy::HttpsGetLimits(), std::move(done)));
        *self = report_posts_.back().get();
      });
}

dns::QueryHandle* DeliveryEngine::TrackLookup() {
  lookups_.push_back(std::make_unique<dns::QueryHandle>());
  return lookups_.back().get();
}

void DeliveryEngine::ForgetLookup(dns::QueryHandle* raw) {
  // The handle is done; drop it after this turn (unless the engine is gone by then).
  reactor_->Post([this, alive = alive_, raw] {
    if (!*alive) return;
    auto it = std::find_if(lookups_.begin(), lookups_.end(),
                           [raw](const auto& h) { return h.get() == raw; });
    if (it != lookups_.end()) {
      (*it)->Detach();
      lookups_.erase(it);
    }
  });
}

void DeliveryEngine::ResolveMxFor(Job job) {
  const std::string domain = job.domain;
  dns::QueryHandle* raw = TrackLookup();
  *raw = resolver_->ResolveMx(domain, options_.family,
                              [this, job = std::move(job), raw](dns::MxResult result) mutable {
                                OnMx(std::move(job), result);
                                ForgetLookup(raw);
                              });
}

void DeliveryEngine::OnMx(Job job, const dns::MxResult& result) {
  if (result.status.permanent()) {
    // RFC 7505 null MX, NXDOMAIN, no address at all: the domain does not take mail.
    int code = result.status.reason == dns::Reason::kNullMx ? 556 : 550;
    std::string enhanced = result.status.reason == dns::Reason::kNullMx ? "5.1.10" : "5.1.2";
    FailJob(job, RecipientOutcome::Permanent(result.status.ToString(), code, enhanced)
                     .Categorized(Category::kBadDomain));
    return;
  }
  if (!result.status.ok() || result.candidates.empty()) {
    FailJob(job,
            RecipientOutcome::Transient(
                result.status.ok() ? "no usable MX address" : result.status.ToString(), 0, "4.4.3")
                .Categorized(Category::kRouting));
    return;
  }
  if (options_.dane && !job.tls_optional && result.dnssec &&
      std::any_of(result.hosts.begin(), result.hosts.end(),
                  [](const dns::MxHost& h) { return h.dnssec; })) {
    LookupDane(std::move(job), result);
    return;
  }
  Route(std::move(job), result, {});
}

// One TLSA lookup per MX host whose addresses were validated too (RFC 7672 §2.2.1, §2.2.2: an
// insecure host gets no DANE), all at once; Route when the last one is in.
void DeliveryEngine::LookupDane(Job job, const dns::MxResult& result) {
  struct Join {
    Job job;
    dns::MxResult mx;
    size_t outstanding = 0;
    std::shared_ptr<tlspolicy::DanePolicy> policy = std::make_shared<tlspolicy::DanePolicy>();
    std::vector<std::pair<std::string, std::string>> refused;
  };
  auto join = std::make_shared<Join>();
  join->job = std::move(job);
  join->mx = result;
  for (const dns::MxHost& h : result.hosts) join->outstanding += h.dnssec ? 1 : 0;
  for (const dns::MxHost& h : result.hosts) {
    if (!h.dnssec) continue;
    dns::QueryHandle* raw = TrackLookup();
    *raw =
        resolver_->LookupTlsa(h.name, 25, [this, join, host = h.name, raw](dns::TlsaResult tlsa) {
          ForgetLookup(raw);
          if (!tlsa.status.ok()) {
            // A failed lookup of a signed name may be an attacker's doing: no delivery to the
            // host until it answers (RFC 7672 §2.2).
            join->refused.emplace_back(
                host, absl::StrCat("its TLSA lookup failed (", tlsa.status.ToString(), ")"));
            ReportDaneFailure(join->job, host, tlspolicy::TlsFailure::kDnssecInvalid,
                              join->refused.back().second);
          } else if (tlsa.dnssec && !tlsa.rdatas.empty()) {
            std::vector<tlspolicy::TlsaRecord> usable;
            for (const std::string& rdata : tlsa.rdatas) {
              if (usable.size() >= tlspolicy::kTlsaRecordsPerHostMax) break;
              absl::StatusOr<tlspolicy::TlsaRecord> r = tlspolicy::ParseTlsaRdata(rdata);
              if (r.ok() && tlspolicy::TlsaUsableForSmtp(*r)) usable.push_back(*std::move(r));
            }
            if (usable.empty()) {
              // RFC 7672 §2.2: TLS is still mandatory, without authentication (an empty set).
              ReportDaneFailure(join->job, host, tlspolicy::TlsFailure::kTlsaInvalid,
                                absl::StrCat("none of its ", tlsa.rdatas.size(),
                                             " TLSA records is usable for SMTP"));
            }
            join->policy->hosts.emplace(host, std::move(usable));
          }  // records that are not validated count as none (RFC 7672 §2.2)
          if (--join->outstanding > 0) return;
          // For the hosts it names, DANE decides their TLS; MTA-STS still decides the rest and
          // which hosts may be used at all (an MX answer validated by a resolver the relay
          // trusts is still only as good as that trust).
          if (!join->policy->hosts.empty()) join->job.dane = std::move(join->policy);
          Route(std::move(join->job), join->mx, join->refused);
        });
  }
}

void DeliveryEngine::Route(Job job, const dns::MxResult& result,
                           const std::vector<std::pair<std::string, std::string>>& refused) {
  job.mx_dnssec = result.dnssec;
  std::vector<dns::MxHost> hosts = result.hosts;
  std::vector<dns::Candidate> candidates = result.candidates;
  std::string site = result.site;
  if (!refused.empty()) {
    auto is_refused = [&](std::string_view host) {
      return std::any_of(refused.begin(), refused.end(),
                         [&](const auto& r) { return r.first == host; });
    };
    std::erase_if(hosts, [&](const dns::MxHost& h) { return is_refused(h.name); });
    std::erase_if(candidates, [&](const dns::Candidate& c) { return is_refused(c.host); });
    if (hosts.empty()) {
      std::vector<std::string> whys;
      for (const auto& [host, why] : refused) whys.push_back(absl::StrCat(host, ": ", why));
      FailJob(job, RecipientOutcome::Transient(
                       absl::StrCat("DANE: no MX host of ", job.domain,
                                    " may be used now: ", absl::StrJoin(whys, "; ")),
                       0, "4.7.5")
                       .Categorized(Category::kBadConnection));
      return;
    }
    site = dns::SiteKey(hosts);
  }
  if (job.sts != nullptr && job.sts->policy.mode == tlspolicy::StsMode::kEnforce) {
    // Only the MX hosts the policy names are tried (RFC 8461 §4.1: the others are as good as
    // unreachable): a site of its own, so that its connections never go to the rest.
    const tlspolicy::StsPolicy& policy = job.sts->policy;
    std::erase_if(hosts,
                  [&](const dns::MxHost& h) { return !tlspolicy::StsMxAllowed(policy, h.name); });
    if (hosts.empty()) {
      // None of them: no delivery (an attacker may have changed the MX).
      FailJob(job, RecipientOutcome::Transient(
                       absl::StrCat("no MX host of ", job.domain, " (", result.site,
                                    ") matches its MTA-STS policy (mx: ",
                                    absl::StrJoin(policy.mx, ", "), ")"),
                       0, "4.7.5")
                       .Categorized(Category::kBadConnection));
      return;
    }
    std::erase_if(candidates, [&](const dns::Candidate& c) {
      return !tlspolicy::StsMxAllowed(policy, c.host);
    });
    if (hosts.size() != result.hosts.size()) site = dns::SiteKey(hosts);
  }
  ShapingRule limits = policy_->LimitsFor(job.domain, hosts);
  RememberSite(job.domain, site, limits.name);
  for (dns::Candidate& c : candidates) c.address.set_port(options_.mx_port);
  Enqueue(std::move(job), site, limits, candidates);
}

void DeliveryEngine::Enqueue(Job job, const std::string& site, const ShapingRule& limits,
                             const std::vector<dns::Candidate>& candidates) {
  SyncSuspensions();
  // A hold that came while the domain was resolved.
  if (const Suspension* hold = job_holds_ ? HoldFor(job) : nullptr; hold != nullptr) {
    HoldJob(job, *hold, HeldOutcome(*hold));
    return;
  }
  if (job.mail_from.empty() && options_.verp != nullptr) {
    // Each VERP part is a message of its own at the site: its own source and warm-up count.
    std::vector<Job> parts = SplitForVerp(std::move(job));
    for (Job& part : parts) EnqueueOne(std::move(part), site, limits, candidates);
    return;
  }
  EnqueueOne(std::move(job), site, limits, candidates);
}

void DeliveryEngine::EnqueueOne(Job job, const std::string& site, const ShapingRule& limits,
                                const std::vector<dns::Candidate>& candidates) {
  const int pool = PoolFor(job, site, limits.name);
  const int family = candidates.front().address.family();
  const int64_t now_unix = NowUnixMs();
  const Suspension* held = nullptr;
  bool warmed_up = false;  // some source had no warm-up allowance left
  bool counted = false;    // the chosen source's allowance counts this job
  const int source = egress_.Pick(pool, site, family, reactor_->NowMs(), [&](int i) {
    if (source_holds_) {
      if (const Suspension* h = SourceHold(i); h != nullptr) {
        held = h;
        return false;
      }
    }
    const EgressSource& s = egress_.source(i);
    if (s.warmup.empty()) return true;
    const int64_t allowance = WarmupAllowance(s.warmup, s.warmup_start_day, now_unix / kDayMs);
    if (warmup_->Take(s.name, site, allowance, now_unix)) {
      SharedLimits* fleet = options_.shared_limits;
      if (fleet != nullptr &&
          !fleet->TakeWarmup(SharedLimitKey(s.name, site), allowance, now_unix / kDayMs)) {
        warmup_->GiveBack(s.name, site, now_unix);  // the fleet has sent today's allowance
        warmed_up = true;
        return false;
      }
      counted = allowance >= 0;
      return true;
    }
    warmed_up = true;
    return false;
  });
  if (source < 0) {
    const std::string& name = egress_.pool_name(pool);
    RecipientOutcome outcome =
        RecipientOutcome::Transient(
            warmed_up ? absl::StrCat("the sources of pool ", name,
                                     " have sent their warm-up allowance to ", site, " for today")
            : held != nullptr
                ? absl::StrCat("no egress source of pool ", name, " may send: ", held->reason)
                : absl::StrCat("no usable egress source address in pool ", name),
            0, "4.4.0")
            .Categorized(Category::kRouting);
    if (held != nullptr && !warmed_up) {
      HoldJob(job, *held, std::move(outcome));
    } else {
      FailJob(job, outcome);
    }
    return;
  }
  std::string key = absl::StrCat(source, "|", site);
  auto& slot = queues_[key];
  if (slot == nullptr) {
    slot = std::make_unique<ReadyQueue>(site, source, reactor_->NowMs());
    ReadyQueue* q = slot.get();
    q->set_shared_key(SharedLimitKey(egress_.source(source).name, site));
    q->pump_timer()->set_callback([this, q] { Pump(q); });
  }
  ReadyQueue* queue = slot.get();
  job.site = site;
  job.source = source;
  job.warmup_counted = counted;
  if (options_.metrics != nullptr) job.metrics_site = options_.metrics->SiteIndex(limits.name);
  queue->Update(limits, candidates, job.metrics_site, reactor_->NowMs());
  if (const Suspension* shared = SharedSuspensionFor(*queue); shared != nullptr) {
    ApplySharedSuspension(queue, *shared);
  }
  if (auto it = shared_suspensions_.find(BackoffKey(source, site));
      it != shared_suspensions_.end()) {
    ApplySharedBackoff(queue, it->second);
  }
  if (queue->suspended(reactor_->NowMs())) {
    RecipientOutcome outcome = RecipientOutcome::Transient(
        absl::StrCat("delivery to ", site, " suspended: ", queue->suspended_reason()));
    if (const Suspension* s = SharedSuspensionFor(*queue); s != nullptr) {
      HoldJob(job, *s, std::move(outcome));
    } else {
      FailJob(job, outcome);
    }
    return;
  }
  job.queued_ms = reactor_->NowMs();
  queue->Push(std::move(job));
  Pump(queue);
}

absl::StatusOr<DeliveryEngine::PoolIndexes> DeliveryEngine::IndexPoolRoutes(
    const PoolRoutes& routes, const Egress& egress) {
  PoolIndexes indexes;
  for (auto [named, by_index] : {std::pair{&routes.campaigns, &indexes.campaigns},
                                 std::pair{&routes.domains, &indexes.domains},
                                 std::pair{&routes.tenants, &indexes.tenants}}) {
    for (const auto& [name, pool] : *named) {
      const int index = egress.PoolIndex(pool);
      if (index < 0) return absl::InvalidArgumentError(absl::StrCat("no egress pool ", pool));
      (*by_index)[name] = index;
    }
  }
  return indexes;
}

absl::Status DeliveryEngine::Reconfigure(const std::vector<EgressSourceConfig>& sources,
                                         const std::vector<EgressPoolConfig>& pools,
                                         const PoolRoutes& routes, EgressStrategy strategy) {
  absl::StatusOr<Egress> next = Egress::Create(sources, pools, strategy, options_.hostname);
  if (!next.ok()) return next.status();
  if (!next->SameSourcesAs(egress_)) {
    return absl::FailedPreconditionError(
        "the egress sources changed (names, addresses or EHLO names): they take effect at the "
        "next restart");
  }
  // Everything that can fail, before anything changes.
  absl::StatusOr<PoolIndexes> indexes = IndexPoolRoutes(routes, *next);
  if (!indexes.ok()) return indexes.status();
  next->CarryStateFrom(egress_);
  egress_ = std::move(*next);
  pool_by_ = std::move(*indexes);
  options_.sources = sources;
  options_.pools = pools;
  options_.pool_routes = routes;
  options_.strategy = strategy;
  SortWaitingJobs();
  return absl::OkStatus();
}

int DeliveryEngine::ConfiguredPool(const Job& job) const {
  if (options_.pool_routes.empty()) return Egress::kDefaultPool;
  const queue::MessageInfo* found = spool_->Find(job.id);
  if (found == nullptr) return Egress::kDefaultPool;
  const queue::MessageInfo& info = *found;
  if (!info.attributes.campaign.empty()) {
    if (auto it = pool_by_.campaigns.find(info.attributes.campaign);
        it != pool_by_.campaigns.end()) {
      return it->second;
    }
  }
  if (auto it = pool_by_.domains.find(DomainOf(info.sender)); it != pool_by_.domains.end()) {
    return it->second;
  }
  if (auto it = pool_by_.tenants.find(job.tenant); it != pool_by_.tenants.end()) {
    return it->second;
  }
  return Egress::kDefaultPool;
}

int DeliveryEngine::PoolFor(const Job& job, std::string_view site, std::string_view rule) const {
  if (!rebinds_) return ConfiguredPool(job);
  // The most particular rebind wins: campaign, tenant, recipient domain, site.
  std::pair<const char*, std::string_view> named[] = {{"campaign", job.campaign},
                                                      {"tenant", job.tenant},
                                                      {"domain", job.domain},
                                                      {"site", site},
                                                      {"site", rule}};
  for (const auto& [kind, value] : named) {
    if (value.empty()) continue;
    auto it = shared_suspensions_.find(RebindKey(kind, value));
    if (it == shared_suspensions_.end()) continue;
    const int pool = egress_.PoolIndex(it->second.pool);
    if (pool >= 0) return pool;
  }
  return ConfiguredPool(job);
}

const Suspension* DeliveryEngine::HoldFor(const Job& job) const {
  std::pair<const char*, std::string_view> named[] = {
      {"domain", job.domain}, {"tenant", job.tenant}, {"campaign", job.campaign}};
  for (const auto& [kind, value] : named) {
    if (value.empty()) continue;
    auto it = shared_suspensions_.find(SelectorKey(kind, value));
    if (it != shared_suspensions_.end()) return &it->second;
  }
  return nullptr;
}

const Suspension* DeliveryEngine::SourceHold(int source) const {
  const EgressSource& s = egress_.source(source);
  for (const std::string& name : {s.name, s.group}) {
    auto it = shared_suspensions_.find(SelectorKey("source", name));
    if (it != shared_suspensions_.end()) return &it->second;
  }
  return nullptr;
}

void DeliveryEngine::SortWaitingJobs() {
  // Queues are never removed; Enqueue may add some, which the copy leaves out (they hold only
  // jobs placed by this very pass).
  std::vector<ReadyQueue*> queues;
  queues.reserve(queues_.size());
  for (const auto& [key, queue] : queues_) {
    if (!queue->empty()) queues.push_back(queue.get());
  }
  for (ReadyQueue* queue : queues) {
    const bool source_held = source_holds_ && SourceHold(queue->source()) != nullptr;
    std::vector<Job> jobs = queue->TakeAll();
    const ShapingRule rule = queue->limits();
    const std::vector<dns::Candidate> candidates = queue->candidates();
    bool kept = false;
    for (Job& job : jobs) {
      if (const Suspension* hold = job_holds_ ? HoldFor(job) : nullptr; hold != nullptr) {
        HoldJob(job, *hold, HeldOutcome(*hold));
      } else if (source_held ||
                 !egress_.InPool(PoolFor(job, queue->site(), rule.name), queue->source())) {
        GiveBackWarmup(job);  // counted again against the source it moves to
        job.warmup_counted = false;
        Enqueue(std::move(job), queue->site(), rule, candidates);
      } else {
        queue->Push(std::move(job));
        kept = true;
      }
    }
    if (kept) Pump(queue);
  }
}

std::vector<Job> DeliveryEngine::SplitForVerp(Job job) {
  std::vector<Job> jobs;
  const queue::MessageInfo* info = spool_->Find(job.id);
  if (options_.verp == nullptr || info == nullptr || job.recipients.empty() ||
      options_.verp->ForSender(info->sender) == nullptr) {
    jobs.push_back(std::move(job));
    return jobs;
  }
  // Each recipient in a transaction of its own, with its own return path. Not forwarded mail
  // (an alias's target, `original` set): its bounces belong to the SRS sender's owner.
  const std::string id_text = job.id.ToString();
  // Copies start from a job without recipients: copying the whole list for each recipient
  // would make a message of many recipients cost their square.
  std::vector<uint32_t> recipients = std::move(job.recipients);
  job.recipients.clear();
  Job shared = job;
  jobs.reserve(recipients.size());
  for (uint32_t r : recipients) {
    const queue::RecipientState& rcpt = info->recipients[r];
    std::optional<std::string> path =
        rcpt.original.empty() ? options_.verp->ReturnPath(info->sender, id_text, r, rcpt.address)
                              : std::nullopt;
    if (!path) {
      shared.recipients.push_back(r);
      continue;
    }
    Job own = job;
    own.recipients = {r};
    own.mail_from = std::move(*path);
    jobs.push_back(std::move(own));
  }
  if (!shared.recipients.empty()) jobs.push_back(std::move(shared));
  jobs_out_[job.id] += static_cast<int>(jobs.size()) - 1;  // one job became these
  return jobs;
}

void DeliveryEngine::PumpLater(ReadyQueue* queue, int64_t wait_ms) {
  if (wait_ms != TokenBucket::kNeverMs && !queue->pump_timer()->scheduled()) {
    reactor_->timers().ScheduleAfter(queue->pump_timer(), std::max<int64_t>(1, wait_ms));
  }
}

void DeliveryEngine::Pump(ReadyQueue* queue) {
  if (stopping_) return;
  SyncSuspensions();
  // Idle connections of this queue take work first (connection reuse).
  for (OutboundConnection* c : queue->connections()) {
    if (queue->empty()) return;
    if (c->WaitingForWork()) c->Kick();
  }
  for (;;) {
    size_t idle = 0;
    for (OutboundConnection* c : queue->connections()) idle += c->WaitingForWork() ? 1 : 0;
    int64_t wait_ms = 0;
    if (!queue->MayOpenConnection(idle, reactor_->NowMs(), &wait_ms)) {
      if (wait_ms > 0) PumpLater(queue, wait_ms);
      return;
    }
    // The fleet's connections to the pair, after this shard's share said yes (OnConnectionClosed
    // gives the lease back).
    if (options_.shared_limits != nullptr &&
        !options_.shared_limits->TryLease(queue->shared_key(), FleetConnectionsMax(*queue))) {
      PumpLater(queue, options_.shared_limits->retry_ms());
      return;
    }
    auto connection = std::make_unique<OutboundConnection>(this, queue);
    OutboundConnection* raw = connection.get();
    queue->AddConnection(raw);
    connections_[raw] = std::move(connection);
    stats_.connections_opened++;
    if (options_.metrics != nullptr) {
      options_.metrics->outbound_connections_open.Add(options_.metrics_shard, 1);
    }
    raw->Start();
  }
}

uint32_t DeliveryEngine::FleetConnectionsMax(const ReadyQueue& queue) const {
  const uint32_t whole = queue.limits().whole_connections_max;
  if (queue.backoff() >= 1) return whole;
  return std::max<uint32_t>(1, static_cast<uint32_t>(whole * queue.backoff()));
}

std::unique_ptr<Job> DeliveryEngine::TakeJob(ReadyQueue* queue) {
  if (stopping_) return nullptr;
  int64_t wait_ms = 0;
  // The fleet's message rate for the pair, after this shard's: a token taken for a job that the
  // shard's own bucket then holds back goes back.
  SharedLimits* fleet = options_.shared_limits;
  const ShapingRule& rule = queue->limits();
  bool fleet_token = false;
  if (fleet != nullptr && rule.whole_messages_per_second > 0 && !queue->empty()) {
    const double scale = std::min(queue->backoff(), 1.0);
    const uint32_t rate =
        std::max<uint32_t>(1, static_cast<uint32_t>(rule.whole_messages_per_second * scale));
    const uint32_t burst = std::max<uint32_t>(
        1, static_cast<uint32_t>(
               (rule.whole_messages_burst > 0 ? rule.whole_messages_burst : rate) * scale));
    if (!fleet->TryToken(queue->shared_key(), rate, burst)) {
      PumpLater(queue, fleet->retry_ms());
      return nullptr;
    }
    fleet_token = true;
  }
  std::unique_ptr<Job> job = queue->TakeJob(reactor_->NowMs(), &wait_ms);
  if (job == nullptr && fleet_token) fleet->ReturnToken(queue->shared_key());
  // Rate-limited: come back when the next token is there.
  if (job == nullptr && wait_ms > 0) PumpLater(queue, wait_ms);
  return job;
}

void DeliveryEngine::RecordAttemptStart(Job& job, std::string_view mx_host) {
  const queue::MessageInfo* info = spool_->Find(job.id);
  if (info == nullptr || job.body_sent) return;
  job.body_sent = true;
  job.unknown_before.clear();
  for (uint32_t r : job.recipients) {
    if (r >= info->recipients.size()) continue;
    const queue::RecipientState& state = info->recipients[r];
    if (state.status != queue::RecipientStatus::kPending) continue;
    if (state.attempt_open) job.unknown_before.push_back(r);
    queue::StateRecord marker;
    marker.type = queue::RecordType::kAttempt;
    marker.id = job.id;
    marker.recipient = r;
    marker.time_unix_ms = NowUnixMs();
    marker.reply = std::string(mx_host);
    // No callback: the marker is in the page cache before the body leaves, which a crash of the
    // process cannot undo; a crash of the machine can lose it only within outcome_sync_ms.
    absl::StatusOr<queue::Position> appended = spool_->AppendState(marker, nullptr);
    if (!appended.ok()) {
      // Delivery goes on: a crash before the outcome would then deliver again without saying so.
      LogError() << "recording the attempt of " << job.id.ToString() << " to " << state.address
                 << ": " << appended.status();
    }
  }
}

DispositionFacts DeliveryEngine::FactsOf(const Job& job, uint32_t recipient,
                                         const queue::MessageInfo& info,
                                         const RecipientOutcome& outcome,
                                         const AttemptInfo& attempt) const {
  const queue::RecipientState& rcpt = info.recipients[recipient];
  DispositionFacts facts;
  facts.attempts_before = rcpt.attempts;
  facts.created_unix_ms = info.created_unix_ms;
  facts.now_unix_ms = NowUnixMs();
  if (outcome.kind == OutcomeKind::kTransient && outcome.held) {
    // Due when the hold ends (never past the message's age limit, where Dispatch gives up), or,
    // for a hold until resumed, after the schedule's longest interval: a resume sends it at once
    // (ReleaseLiftedHolds), so this only bounds the wait after a restart, without waking a large
    // held backlog every few minutes.
    facts.not_an_attempt = true;
    const int64_t expiry = facts.created_unix_ms + options_.message_age_ms_max;
    facts.retry_at_unix_ms =
        outcome.held_until_unix_ms <= 0
            ? policy_->NextAttemptUnixMs(kLongestInterval, facts.created_unix_ms, facts.now_unix_ms)
        : facts.now_unix_ms >= expiry ? -1
                                      : std::min(outcome.held_until_unix_ms, expiry);
  } else if (outcome.kind == OutcomeKind::kTransient) {
    facts.retry_at_unix_ms = policy_->NextAttemptUnixMs(facts.attempts_before + 1,
                                                        facts.created_unix_ms, facts.now_unix_ms);
  }
  facts.null_sender = info.sender.empty();
  facts.notify = rcpt.notify;
  facts.notify_passed_on = attempt.remote_dsn && rcpt.notify != 0;
  facts.delay_notified = info.delay_notified;
  // Without a body in this attempt the recipient's marker, if open, is an earlier attempt's.
  facts.earlier_unknown = job.body_sent
                              ? std::find(job.unknown_before.begin(), job.unknown_before.end(),
                                          recipient) != job.unknown_before.end()
                              : rcpt.attempt_open;
  facts.this_unknown = job.body_sent && !attempt.reply_received;
  if (outcome.kind != OutcomeKind::kDelivered) facts.category = policy_->Classify(outcome);
  return facts;
}

void DeliveryEngine::MaybeSuppress(const queue::MessageInfo& info,
                                   const queue::RecipientState& rcpt, const Disposition& d,
                                   int64_t now) {
  if (options_.suppression == nullptr || d.record != queue::RecordType::kBounced) return;
  // Forwarded mail (port 25) is not a tenant's: its sender is an SRS address of ours.
  if (!rcpt.original.empty()) return;
  const std::vector<Category>& categories = options_.suppress_categories;
  if (std::find(categories.begin(), categories.end(), d.category) == categories.end()) return;
  const size_t at = info.sender.rfind('@');
  if (at == std::string_view::npos) return;  // the null sender: a DSN
  feedback::SuppressionEntry entry;
  entry.tenant = queue::TenantOf(info.attributes, info.sender);
  entry.address = rcpt.address;
  entry.reason = feedback::SuppressionReason::kBounce;
  entry.category = std::string(feedback::CategoryName(d.category));
  entry.time_unix_ms = now;
  entry.queue_id = info.id.ToString();
  entry.detail = d.effective.ToString().substr(0, feedback::kDetailBytesMax);
  if (!options_.suppression->AddLater(std::move(entry))) {
    LogWarning() << "suppression list writer is behind: <" << rcpt.address << "> not added for "
                 << queue::TenantOf(info.attributes, info.sender);
  }
}

void DeliveryEngine::CollectDsn(DsnIntent intent, const queue::MessageInfo& info,
                                const FailedRecipient& failed) {
  switch (intent) {
    case DsnIntent::kFailure:
      AddToDsn(&bounced_, info, failed);
      break;
    case DsnIntent::kDelayWarning:
      AddToDsn(&delayed_, info, failed);
      break;
    case DsnIntent::kRelayed:
      AddToDsn(&relayed_, info, failed);
      break;
    case DsnIntent::kDropped:
      LogWarning() << "message " << info.id.ToString() << " from the null sender (a DSN) to "
                   << failed.address
                   << " failed for good; dropped without a DSN: " << failed.outcome.ToString();
      break;
    case DsnIntent::kNone:
      break;
  }
}

void DeliveryEngine::RecordOutcome(const Job& job, uint32_t recipient,
                                   const RecipientOutcome& reported, const AttemptInfo& attempt) {
  const queue::MessageInfo* info = spool_->Find(job.id);
  if (info == nullptr || recipient >= info->recipients.size()) return;
  if (!EXPECT_OR_COUNT(!OutcomeWaiting(job.id, recipient))) return;  // it is in no job
  const queue::RecipientState& rcpt = info->recipients[recipient];
  // The record holds kReplyBytesMax of reply: a longer one would be refused, and the recipient
  // attempted again at once (a delivery or a DSN per attempt). Code and enhanced code are kept.
  const RecipientOutcome outcome = reported.FittedTo(queue::kReplyBytesMax);
  const DispositionFacts facts = FactsOf(job, recipient, *info, outcome, attempt);
  const int64_t now = facts.now_unix_ms;
  const Disposition d = Dispose(outcome, facts, policy_->retry(), queue::kReplyBytesMax);

  queue::StateRecord state;
  state.type = d.record;
  state.id = job.id;
  state.recipient = recipient;
  state.time_unix_ms = now;
  state.reply = d.effective.ToString();
  if (d.record == queue::RecordType::kDeferred) {
    state.attempts = d.attempt;
    state.next_attempt_unix_ms = d.next_attempt_unix_ms;
  }
  CountOutcome(job, *info, d, attempt);
  FailedRecipient failed{rcpt.address,  d.effective, attempt.mx_host, now,
                         rcpt.original, d.category,  rcpt.orcpt};
  CollectDsn(d.dsn, *info, failed);
  // Logged first, while `info` is certainly valid: appending the state may drop the message from
  // the index (it became final). The log is not the durable truth, the state record is.
  if (Recording()) LogOutcome(job, *info, rcpt, d, attempt, now);
  // Whether or not the record is appended at once: the receiver's verdict stands either way.
  MaybeSuppress(*info, rcpt, d, now);
  if (d.possible_duplicate) ++stats_.possible_duplicates;
  absl::StatusOr<queue::Position> appended = spool_->AppendState(state, nullptr);
  if (!appended.ok()) {
    // Not recorded: nothing that depends on it may happen yet. The DSN waits for the record, the
    // delay warning comes with a later deferral, and the recipient waits in unrecorded_ instead
    // of being attempted again when the job ends (a refused append leaves the index as it was).
    if (d.dsn == DsnIntent::kFailure) DropFromDsn(&bounced_, job.id);
    if (d.dsn == DsnIntent::kDelayWarning) DropFromDsn(&delayed_, job.id);
    if (d.dsn == DsnIntent::kRelayed) DropFromDsn(&relayed_, job.id);
    UnrecordedOutcome entry;
    entry.state = std::move(state);
    entry.bounce = d.dsn == DsnIntent::kFailure;
    entry.failed = std::move(failed);
    KeepUnrecorded(std::move(entry), appended.status());
    return;
  }
  // The deferral closed the recipient's marker, but a copy may still be out there: open one
  // again, so that the next attempt, after a restart too, says so.
  if (d.reopen_marker != nullptr) ReopenAttemptMarker(job.id, recipient, now, d.reopen_marker);
}

void DeliveryEngine::CountOutcome(const Job& job, const queue::MessageInfo& info,
                                  const Disposition& d, const AttemptInfo& attempt) {
  if (options_.metrics != nullptr && d.record != queue::RecordType::kDelivered) {
    options_.metrics->Failure(options_.metrics_shard,
                              d.record == queue::RecordType::kDeferred
                                  ? metrics::RecipientResult::kDeferred
                                  : metrics::RecipientResult::kBounced,
                              job.metrics_site, d.category);
  }
  switch (d.record) {
    case queue::RecordType::kDelivered:
      stats_.delivered++;
      CountRecipient(job, info, metrics::RecipientResult::kDelivered);
      if (options_.metrics != nullptr) {
        if (!attempt.tls_version.empty()) {
          options_.metrics->site(job.metrics_site).delivered_tls.Add(options_.metrics_shard);
        }
        options_.metrics->delivered_by_tls(static_cast<int>(attempt.tls_mode))
            .Add(options_.metrics_shard);
      }
      break;
    case queue::RecordType::kDeferred:
      stats_.deferred++;
      CountRecipient(job, info, metrics::RecipientResult::kDeferred);
      break;
    default:
      stats_.bounced++;
      CountRecipient(job, info, metrics::RecipientResult::kBounced);
      break;
  }
}

void DeliveryEngine::ReopenAttemptMarker(queue::MessageId id, uint32_t recipient, int64_t now,
                                         const char* why) {
  queue::StateRecord marker;
  marker.type = queue::RecordType::kAttempt;
  marker.id = id;
  marker.recipient = recipient;
  marker.time_unix_ms = now;
  marker.reply = why;
  absl::StatusOr<queue::Position> kept = spool_->AppendState(marker, nullptr);
  if (!kept.ok()) {
    LogError() << "recording the unknown outcome of " << id.ToString() << ": " << kept.status();
  }
}

void DeliveryEngine::LogOutcome(const Job& job, const queue::MessageInfo& info,
                                const queue::RecipientState& rcpt, const Disposition& d,
                                const AttemptInfo& attempt, int64_t now) {
  DeliveryRecord line;
  line.event = d.record == queue::RecordType::kDelivered                 ? DeliveryEvent::kDelivered
               : d.record == queue::RecordType::kDeferred                ? DeliveryEvent::kDeferred
               : d.category == feedback::BounceCategory::kMessageExpired ? DeliveryEvent::kExpired
                                                                         : DeliveryEvent::kBounced;
  std::string id_text = job.id.ToString();
  line.time_unix_ms = now;
  line.queue_id = id_text;
  line.sender = info.sender;
  const std::string tenant = queue::TenantOf(info.attributes, info.sender);
  line.tenant = tenant;
  line.campaign = info.attributes.campaign;
  line.recipient = rcpt.address;
  line.site = job.site;
  line.mx_host = attempt.mx_host;
  line.source_address = attempt.source_ip;
  line.tls_version = attempt.tls_version;
  line.tls_cipher = attempt.tls_cipher;
  // How TLS was used: for every delivery ("none" in plain text) and every encrypted attempt.
  if (d.record == queue::RecordType::kDelivered || !attempt.tls_version.empty()) {
    line.tls_mode = TlsModeName(attempt.tls_mode);
  }
  line.reply_code = d.effective.code;
  line.reply_enhanced = d.effective.enhanced;
  line.reply_text = d.effective.text;
  if (d.record != queue::RecordType::kDelivered) line.category = feedback::CategoryName(d.category);
  line.attempt = d.attempt;
  line.possible_duplicate = d.possible_duplicate;
  line.queued_ms = now - info.created_unix_ms;
  line.attempt_ms = attempt.duration_ms > 0 ? attempt.duration_ms : -1;
  line.next_attempt_unix_ms = d.record == queue::RecordType::kDeferred ? d.next_attempt_unix_ms : 0;
  std::string message_id_storage;
  if (journal_ != nullptr) {
    line.message_id = events::FindMessageId(spool_->MessageBytes(job.id), &message_id_storage);
  }
  Record(line);
}

void DeliveryEngine::Record(const DeliveryRecord& line) {
  events::RecordEvent(log_, journal_, line);
}

bool DeliveryEngine::OutcomeWaiting(queue::MessageId id, uint32_t recipient) const {
  return !waiting_.empty() && waiting_.contains(std::make_pair(id, recipient));
}

bool DeliveryEngine::Released(queue::MessageId id, uint32_t recipient) const {
  if (released_.empty()) return false;
  auto it = released_.find(id);
  return it != released_.end() &&
         std::find(it->second.begin(), it->second.end(), recipient) != it->second.end();
}

int64_t DeliveryEngine::NextDueUnixMs(const queue::MessageInfo& info) const {
  // Recipients of a lifted hold are due now (a message whose jobs were out when it was lifted).
  if (!released_.empty() && released_.contains(info.id) && info.NextDueUnixMs() >= 0) return 0;
  if (waiting_.empty()) return info.NextDueUnixMs();
  int64_t due = -1;
  for (uint32_t i = 0; i < info.recipients.size(); ++i) {
    const queue::RecipientState& r = info.recipients[i];
    if (r.status != queue::RecipientStatus::kPending || OutcomeWaiting(info.id, i)) continue;
    if (due < 0 || r.next_attempt_unix_ms < due) due = r.next_attempt_unix_ms;
  }
  return due;
}

void DeliveryEngine::AddToDsn(absl::flat_hash_map<queue::MessageId, PendingDsn>* dsns,
                              const queue::MessageInfo& info, FailedRecipient failed) {
  auto [it, first] = dsns->try_emplace(info.id);
  if (first) {
    it->second.sender = std::string(info.sender);
    it->second.arrival_unix_ms = info.created_unix_ms;
    it->second.tenant = queue::TenantOf(info.attributes, info.sender);
    it->second.campaign = info.attributes.campaign;
    it->second.envid = info.attributes.envid;
    it->second.require_tls = info.attributes.require_tls;
    // RET=FULL (RFC 3461 §4.3): a failure DSN returns the whole message, up to a bound; any
    // other DSN, or a larger message, its header section.
    it->second.return_full =
        dsns == &bounced_ && !info.attributes.require_tls &&
        info.attributes.dsn_ret == static_cast<uint8_t>(smtp::DsnReturn::kFull) &&
        info.message.size() <= options_.dsn_return_bytes_max;
    it->second.headers =
        std::string(it->second.return_full ? info.message : HeaderSection(info.message));
  }
  it->second.failed.push_back(std::move(failed));
}

void DeliveryEngine::DropFromDsn(absl::flat_hash_map<queue::MessageId, PendingDsn>* dsns,
                                 queue::MessageId id) {
  auto it = dsns->find(id);
  if (it == dsns->end()) return;
  it->second.failed.pop_back();
  if (it->second.failed.empty()) dsns->erase(it);
}

void DeliveryEngine::KeepUnrecorded(UnrecordedOutcome entry, const absl::Status& why) {
  const int64_t delay_ms =
      std::min(options_.outcome_retry_ms_max,
               options_.outcome_retry_ms << std::min<uint32_t>(entry.tries - 1, 20));
  entry.next_try_ms = reactor_->NowMs() + delay_ms;
  if (entry.tries == 1) {
    LogError() << "recording the outcome of " << entry.state.id.ToString() << " for recipient "
               << entry.state.recipient << " (" << entry.state.reply.substr(0, 200) << "): " << why
               << "; trying again in " << delay_ms << " ms, and the recipient waits until then";
  }
  waiting_.insert(std::make_pair(entry.state.id, entry.state.recipient));
  unrecorded_.push_back(std::move(entry));
  ArmRecordTimer();
}

void DeliveryEngine::ArmRecordTimer() {
  if (unrecorded_.empty()) return;
  int64_t due = unrecorded_.front().next_try_ms;
  for (const UnrecordedOutcome& e : unrecorded_) due = std::min(due, e.next_try_ms);
  if (!record_timer_.scheduled() || record_timer_.deadline_ms() > due) {
    reactor_->timers().Schedule(&record_timer_, due);
  }
}

void DeliveryEngine::OnRecordTimer() {
  const int64_t now = reactor_->NowMs();
  const bool was_paused = unrecorded_.size() >= options_.unrecorded_outcomes_max;
  std::vector<UnrecordedOutcome> entries;
  entries.swap(unrecorded_);
  std::vector<queue::MessageId> recorded;
  for (UnrecordedOutcome& entry : entries) {
    if (entry.next_try_ms > now) {
      unrecorded_.push_back(std::move(entry));
      continue;
    }
    const queue::StateRecord& state = entry.state;
    const auto key = std::make_pair(state.id, state.recipient);
    const queue::MessageInfo* info = spool_->Find(state.id);
    if (info == nullptr || state.recipient >= info->recipients.size() ||
        info->recipients[state.recipient].status != queue::RecipientStatus::kPending) {
      // Deleted by the operator meanwhile: nothing left to record.
      waiting_.erase(key);
      continue;
    }
    if (entry.bounce) AddToDsn(&bounced_, *info, entry.failed);
    absl::StatusOr<queue::Position> appended = spool_->AppendState(state, nullptr);
    if (appended.ok()) {
      waiting_.erase(key);
      recorded.push_back(state.id);
      LogInfo() << "recorded the outcome of " << state.id.ToString() << " for recipient "
                << state.recipient << " after " << entry.tries << " refused appends";
      continue;
    }
    if (entry.bounce) DropFromDsn(&bounced_, state.id);
    ++entry.tries;
    KeepUnrecorded(std::move(entry), appended.status());
  }
  for (queue::MessageId id : recorded) {
    // A message whose jobs are out is handled by JobDone when they end.
    if (jobs_out_.contains(id)) continue;
    MaybeSendDsn(id);
    const queue::MessageInfo* info = spool_->Find(id);
    if (info == nullptr) continue;
    int64_t next = NextDueUnixMs(*info);
    if (next >= 0) Schedule(id, next);
  }
  ArmRecordTimer();
  if (was_paused && unrecorded_.size() < options_.unrecorded_outcomes_max) ArmScheduleTimer();
}

void DeliveryEngine::FailJob(const Job& job, const RecipientOutcome& outcome) {
  GiveBackWarmup(job);
  for (uint32_t r : job.recipients) RecordOutcome(job, r, outcome, AttemptInfo{});
  JobDone(job);
}

void DeliveryEngine::GiveBackWarmup(const Job& job) {
  if (!job.warmup_counted || job.body_sent || job.source < 0) return;
  const int64_t now_unix = NowUnixMs();
  warmup_->GiveBack(egress_.source(job.source).name, job.site, now_unix);
  if (options_.shared_limits != nullptr) {
    options_.shared_limits->GiveBackWarmup(
        SharedLimitKey(egress_.source(job.source).name, job.site), now_unix / kDayMs);
  }
}

void DeliveryEngine::JobDone(const Job& job) {
  auto it = jobs_out_.find(job.id);
  if (it == jobs_out_.end()) return;
  if (--it->second > 0) return;
  jobs_out_.erase(it);
  MaybeSendDsn(job.id);
  const queue::MessageInfo* info = spool_->Find(job.id);
  if (info == nullptr) return;  // final: every recipient delivered or bounced
  // Recipients whose outcome waits to be recorded are left out: they are not due again, whatever
  // the spool still says (OnRecordTimer schedules the message once they are recorded).
  int64_t next = NextDueUnixMs(*info);
  if (next >= 0) Schedule(job.id, next);
}

void DeliveryEngine::MaybeSendDsn(queue::MessageId id) {
  if (auto it = bounced_.find(id); it != bounced_.end()) {
    PendingDsn pending = std::move(it->second);
    bounced_.erase(it);
    SendDsn(id, DsnKind::kFailure, std::move(pending));
  }
  if (auto it = relayed_.find(id); it != relayed_.end()) {
    PendingDsn pending = std::move(it->second);
    relayed_.erase(it);
    SendDsn(id, DsnKind::kRelayed, std::move(pending));
  }
  if (auto it = delayed_.find(id); it != delayed_.end()) {
    PendingDsn pending = std::move(it->second);
    delayed_.erase(it);
    // Recorded before the DSN is queued: a crash in between loses a warning, never repeats one.
    const queue::MessageInfo* info = spool_->Find(id);
    if (info == nullptr || info->delay_notified) return;
    queue::StateRecord notice;
    notice.type = queue::RecordType::kDelayNotified;
    notice.id = id;
    notice.time_unix_ms = NowUnixMs();
    absl::StatusOr<queue::Position> noted = spool_->AppendState(notice, nullptr);
    if (!noted.ok()) {
      LogError() << "recording the delay notice of " << id.ToString() << ": " << noted.status();
      return;
    }
    SendDsn(id, DsnKind::kDelay, std::move(pending));
  }
}

void DeliveryEngine::SendDsn(queue::MessageId id, DsnKind kind, PendingDsn pending) {
  const std::string id_text = id.ToString();
  DeliveryPolicy::DsnSubject subject;
  subject.queue_id = id_text;
  subject.sender = pending.sender;
  subject.headers = pending.headers;
  subject.arrival_unix_ms = pending.arrival_unix_ms;
  subject.tenant = pending.tenant;
  subject.campaign = pending.campaign;
  subject.envid = pending.envid;
  subject.return_full = pending.return_full;
  absl::StatusOr<std::string> dsn = policy_->BuildDsn(kind, subject, NowUnixMs(), pending.failed);
  if (!dsn.ok()) {
    LogError() << "building the DSN for " << id.ToString() << ": " << dsn.status();
    return;
  }
  queue::Envelope envelope;
  envelope.sender = "";
  envelope.recipients.push_back(pending.sender);
  envelope.attributes.require_tls = pending.require_tls;
  auto appended = spool_->AppendMessage(envelope, "", *dsn, nullptr);
  if (!appended.ok()) {
    LogError() << "queueing the DSN for " << id.ToString() << " to " << pending.sender << ": "
               << appended.status();
    return;
  }
  stats_.dsn_queued++;
  if (Recording()) {
    DeliveryRecord line;
    line.event = DeliveryEvent::kDsnSent;
    line.time_unix_ms = NowUnixMs();
    line.queue_id = id_text;
    line.sender = "";
    line.recipient = pending.sender;
    line.tenant = pending.tenant;
    line.campaign = pending.campaign;
    std::string dsn_id = appended->id.ToString();
    line.dsn_queue_id = dsn_id;
    line.dsn_action = DsnActionName(kind);
    std::string message_id_storage;
    line.message_id = events::FindMessageId(pending.headers, &message_id_storage);
    Record(line);
  }
  LogInfo() << (kind == DsnKind::kDelay ? "delay DSN " : "DSN ") << appended->id.ToString()
            << " queued to " << pending.sender << " for " << pending.failed.size()
            << (kind == DsnKind::kDelay ? " delayed" : " failed") << " recipient(s) of "
            << id.ToString();
  Schedule(appended->id, 0);
}

void DeliveryEngine::OnSiteUnreachable(ReadyQueue* queue, const RecipientOutcome& outcome) {
  // Every candidate failed: the jobs waiting for this site wait for their next attempt instead.
  for (const Job& job : queue->TakeAll()) FailJob(job, outcome);
}

void DeliveryEngine::HoldJob(const Job& job, const Suspension& hold, RecipientOutcome outcome) {
  outcome.held = true;
  outcome.held_until_unix_ms =
      IsUntilResumed(hold.until_unix_ms - NowUnixMs()) ? 0 : hold.until_unix_ms;
  // Only holds on the board are lifted by a look at it (without one, the hold's end is the
  // recipients' next attempt).
  if (options_.suspensions != nullptr) {
    std::vector<uint32_t>& held = held_[hold.key][job.id];
    held.insert(held.end(), job.recipients.begin(), job.recipients.end());
  }
  FailJob(job, outcome);
}

void DeliveryEngine::ReleaseLiftedHolds() {
  for (auto it = held_.begin(); it != held_.end();) {
    if (shared_suspensions_.contains(it->first)) {
      ++it;
      continue;
    }
    // The held recipients are due now: through the schedule, which dispatches in batches (a
    // large backlog must not stall the shard), and only they (the message's other recipients
    // keep their own times). A message with jobs out is scheduled again when they finish.
    for (auto& [id, recipients] : it->second) {
      if (spool_->Find(id) == nullptr) continue;
      std::vector<uint32_t>& due = released_[id];
      due.insert(due.end(), recipients.begin(), recipients.end());
      Schedule(id, 0);
    }
    held_.erase(it++);
  }
}

void DeliveryEngine::SuspendQueue(ReadyQueue* queue, int64_t until_ms, std::string reason) {
  LogWarning() << "suspending delivery to " << queue->site() << " from "
               << egress_.source(queue->source()).name << " for "
               << (until_ms - reactor_->NowMs()) / 1000 << " s: " << reason;
  queue->Suspend(until_ms, reason);
  if (options_.metrics != nullptr) {
    options_.metrics->site(queue->metrics_site()).suspensions.Add(options_.metrics_shard);
  }
  Suspension s;
  s.key = absl::StrCat(queue->source(), "|", queue->site());
  s.until_unix_ms = NowUnixMs() + (until_ms - reactor_->NowMs());
  s.reason = reason;
  s.shard = options_.shard;
  // The receiver judges the source address, whichever shard sends: every shard stops.
  if (options_.suspensions != nullptr) options_.suspensions->Suspend(s);
  HoldWaitingJobs(queue, s, absl::StrCat("delivery suspended after: ", reason));
}

void DeliveryEngine::HoldWaitingJobs(ReadyQueue* queue, const Suspension& hold,
                                     const std::string& why) {
  for (const Job& job : queue->TakeAll()) HoldJob(job, hold, RecipientOutcome::Transient(why));
}

void DeliveryEngine::BackoffQueue(ReadyQueue* queue, int64_t until_ms, double factor,
                                  std::string reason) {
  const int64_t now = reactor_->NowMs();
  // Every reply that matches the rule asks again: one that would move the end by less than a
  // tenth of the backoff changes nothing, and the board (a file write, every shard's look) is
  // left alone.
  if (queue->backoff() == factor && queue->backoff_until_ms() >= until_ms - (until_ms - now) / 10) {
    return;
  }
  Suspension s;
  s.key = BackoffKey(queue->source(), queue->site());
  s.until_unix_ms = NowUnixMs() + (until_ms - now);
  s.backoff = factor;
  s.reason = std::move(reason);
  s.shard = options_.shard;
  ApplySharedBackoff(queue, s);  // this shard at once
  if (options_.suspensions == nullptr) return;
  // The receiver judges the source address, whichever shard sends: every shard slows down.
  if (!options_.suspensions->Suspend(std::move(s))) {
    LogWarning() << "the suspensions board is full: the backoff of " << queue->site()
                 << " holds in shard " << options_.shard << " only";
  }
}

void DeliveryEngine::SyncSuspensions() {
  if (options_.suspensions == nullptr) return;
  const uint64_t generation = options_.suspensions->generation();
  // Unchanged, and no entry has ended since the last look (an ended hold or rebind must let go):
  // an atomic load and a monotonic clock read, on every dispatch.
  if (generation == suspensions_seen_ && reactor_->NowMs() < board_next_end_ms_) return;
  const int64_t now_unix = NowUnixMs();
  suspensions_seen_ = generation;
  board_next_end_ms_ = std::numeric_limits<int64_t>::max();
  shared_suspensions_.clear();
  const bool sorted_before = job_holds_ || source_holds_ || rebinds_;
  job_holds_ = source_holds_ = rebinds_ = false;
  for (Suspension& s : options_.suspensions->InForce(now_unix)) {
    board_next_end_ms_ = std::min(board_next_end_ms_, MonotonicOf(s.until_unix_ms));
    const std::string& key = s.key;
    job_holds_ = job_holds_ || absl::StartsWith(key, "domain:") ||
                 absl::StartsWith(key, "tenant:") || absl::StartsWith(key, "campaign:");
    source_holds_ = source_holds_ || absl::StartsWith(key, "source:");
    rebinds_ = rebinds_ || absl::StartsWith(key, Sv(kRebindPrefix));
    std::string k = s.key;
    shared_suspensions_[k] = std::move(s);
  }
  // Queues are never removed, and nothing below adds one: the pointers stay valid.
  std::vector<ReadyQueue*> queues;
  queues.reserve(queues_.size());
  for (const auto& [key, queue] : queues_) queues.push_back(queue.get());
  const int64_t now = reactor_->NowMs();
  for (ReadyQueue* queue : queues) {
    const Suspension* s = SharedSuspensionFor(*queue);
    if (s != nullptr) {
      ApplySharedSuspension(queue, *s);
    } else if (queue->suspended(now)) {
      // Every suspension is on the board while it lasts: one that is gone was resumed.
      LogInfo() << "delivery to " << queue->site() << " from "
                << egress_.source(queue->source()).name << " resumed";
      queue->Suspend(0, "");
    }
    auto backoff = shared_suspensions_.find(BackoffKey(queue->source(), queue->site()));
    if (backoff != shared_suspensions_.end()) {
      ApplySharedBackoff(queue, backoff->second);
    } else if (queue->backoff() < 1) {
      LogInfo() << "delivery to " << queue->site() << " from "
                << egress_.source(queue->source()).name << " back to its full rate";
      queue->Backoff(1, 0, now);
    }
  }
  // A hold or rebind that came or went moves the jobs it names (a lifted rebind sends them back
  // to their own pool).
  if (job_holds_ || source_holds_ || rebinds_ || sorted_before) SortWaitingJobs();
  // The messages of holds that are gone go now, not when their deferral said.
  ReleaseLiftedHolds();
}

void DeliveryEngine::ApplySharedBackoff(ReadyQueue* queue, const Suspension& s) {
  const int64_t now = reactor_->NowMs();
  const int64_t until_ms = MonotonicOf(s.until_unix_ms);
  if (until_ms <= now) return;
  if (queue->backoff() == s.backoff && std::abs(queue->backoff_until_ms() - until_ms) < 1000) {
    return;  // already so (the shard that posted it, or an earlier look)
  }
  LogWarning() << "slowing delivery to " << queue->site() << " from "
               << egress_.source(queue->source()).name << " to " << s.backoff * 100
               << "% of its limits for " << (until_ms - now) / 1000 << " s"
               << (s.shard >= 0 && s.shard != options_.shard
                       ? absl::StrCat(", as shard ", s.shard, " did")
                       : "")
               << ": " << s.reason;
  queue->Backoff(s.backoff, until_ms, now);
}

const Suspension* DeliveryEngine::SharedSuspensionFor(const ReadyQueue& queue) const {
  // The pair's own entry (a reply rule's), or the operator's for its site, named by the MX set
  // or by the shaping rule it falls under ("google").
  const Suspension* best = nullptr;
  for (const std::string& k :
       {absl::StrCat(queue.source(), "|", queue.site()), AnySourceKey(queue.site()),
        AnySourceKey(queue.limits().name)}) {
    auto it = shared_suspensions_.find(k);
    if (it != shared_suspensions_.end() &&
        (best == nullptr || it->second.until_unix_ms > best->until_unix_ms)) {
      best = &it->second;
    }
  }
  return best;
}

void DeliveryEngine::ApplySharedSuspension(ReadyQueue* queue, const Suspension& s) {
  const int64_t now = reactor_->NowMs();
  const int64_t left_ms = s.until_unix_ms - NowUnixMs();
  // "Until resumed" is far in the future: kept as such, not added to the monotonic clock.
  const int64_t until_ms = left_ms > kSuspensionForeverMs ? kSuspensionForeverMs : now + left_ms;
  const int64_t held_ms = queue->suspended_until_ms();
  // Already so (the shard that posted it, or an earlier look); the operator may shorten it.
  if (until_ms <= now ||
      (held_ms >= until_ms - 1000 && (s.shard >= 0 || held_ms <= until_ms + 1000))) {
    return;
  }
  LogWarning() << "suspending delivery to " << queue->site() << " from "
               << egress_.source(queue->source()).name << " for " << (until_ms - now) / 1000
               << " s, "
               << (s.shard >= 0 ? absl::StrCat("as shard ", s.shard, " did") : "by the operator")
               << ": " << s.reason;
  queue->Suspend(until_ms, s.reason);
  HoldWaitingJobs(queue, s, absl::StrCat("delivery suspended after: ", s.reason));
}

void DeliveryEngine::CountRecipient(const Job& job, const queue::MessageInfo& info,
                                    metrics::RecipientResult result) const {
  const metrics::RelayMetrics* m = options_.metrics;
  if (m == nullptr) return;
  m->Recipient(options_.metrics_shard, result, job.metrics_site, job.source);
  m->TenantRecipient(options_.metrics_shard, result, m->TenantIndex(info.attributes.tenant),
                     m->CampaignIndex(info.attributes.campaign));
}

std::vector<DeliveryEngine::ReadyQueueView> DeliveryEngine::ReadyQueues(size_t max) {
  SyncSuspensions();
  std::vector<ReadyQueueView> out;
  const int64_t now = reactor_->NowMs();
  for (const auto& [key, queue] : queues_) {
    const bool suspended = queue->suspended(now);
    const bool slowed = queue->backoff() < 1 && queue->backoff_until_ms() > now;
    if (queue->empty() && queue->connections().empty() && !suspended && !slowed) continue;
    ReadyQueueView v;
    v.site = queue->site();
    v.rule = queue->limits().name;
    v.source = egress_.source(queue->source()).name;
    v.waiting = queue->waiting();
    v.connections = queue->connections().size();
    v.connections_max = queue->connections_max();
    v.messages_per_second = queue->messages_per_second();
    if (suspended) {
      const int64_t left_ms = queue->suspended_until_ms() - now;
      v.state =
          absl::StrCat("suspended ",
                       IsUntilResumed(left_ms) ? std::string("until resumed")
                                               : absl::StrCat("for ", (left_ms + 999) / 1000, " s"),
                       ": ", queue->suspended_reason());
    } else if (slowed) {
      v.state = absl::StrCat("slowed to ", static_cast<int>(queue->backoff() * 100 + 0.5), "% for ",
                             (queue->backoff_until_ms() - now + 999) / 1000, " s");
    }
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(), [](const ReadyQueueView& a, const ReadyQueueView& b) {
    return a.waiting != b.waiting ? a.waiting > b.waiting : a.site < b.site;
  });
  if (out.size() > max) out.resize(max);
  return out;
}

void DeliveryEngine::DeliveredOverTls(const Job& job) {
  if (options_.tls_memory != nullptr) options_.tls_memory->Remember(job.domain, NowUnixMs());
}

std::string DeliveryEngine::TlsRequirement(const Job& job) const {
  if (options_.tls_memory == nullptr || job.tls_optional ||
      !options_.tls_memory->Requires(job.domain, NowUnixMs())) {
    return "";
  }
  return absl::StrCat("TLS is required for ", job.domain,
                      ", which took mail over TLS before (relayctl tls forget ", job.domain,
                      " allows plain text again)");
}

const std::vector<tlspolicy::TlsaRecord>* DeliveryEngine::DaneRecords(const Job& job,
                                                                      std::string_view mx_host) {
  if (job.dane == nullptr) return nullptr;
  auto it = job.dane->hosts.find(Sv(mx_host));
  return it == job.dane->hosts.end() ? nullptr : &it->second;
}

std::string DeliveryEngine::StsRequirement(const Job& job, std::string_view mx_host, bool encrypted,
                                           bool verified, std::string_view verify_error) const {
  if (job.sts == nullptr) return "";
  const tlspolicy::StsPolicy& policy = job.sts->policy;
  std::string failure;
  if (!tlspolicy::StsMxAllowed(policy, mx_host)) {
    failure =
        absl::StrCat(Sv(mx_host), " is not one of its mx (", absl::StrJoin(policy.mx, ", "), ")");
  } else if (!encrypted) {
    failure = absl::StrCat(Sv(mx_host), " gave no TLS");
  } else if (!verified) {
    failure = absl::StrCat("the certificate of ", Sv(mx_host), " is not valid for it (",
                           verify_error.empty() ? "not verified" : Sv(verify_error), ")");
  }
  if (failure.empty()) return "";
  const std::string why =
      absl::StrCat("the MTA-STS policy of ", job.domain, " (id ", job.sts->id, ", ",
                   Sv(tlspolicy::StsModeName(policy.mode)),
                   ") requires a verified TLS connection to a listed MX: ", failure);
  if (policy.mode != tlspolicy::StsMode::kEnforce) {
    // At most one line per domain every kStsTestingLogMs: a busy domain is not a log flood.
    const int64_t now = reactor_->NowMs();
    if (sts_testing_logged_.size() >= kStsTestingLogDomainsMax) sts_testing_logged_.clear();
    int64_t& last = sts_testing_logged_[job.domain];
    if (last == 0 || now - last >= kStsTestingLogMs) {
      last = now;
      LogInfo() << "MTA-STS testing: " << why << " (delivered anyway)";
    }
    return "";
  }
  return why;
}

QueueShape DeliveryEngine::Shape(ShapeBy by) {
  QueueShape shape;
  const int64_t now = NowUnixMs();
  for (const auto& [key, queue] : queues_) {
    const std::string& name =
        by == ShapeBy::kSite ? queue->site() : egress_.source(queue->source()).name;
    auto add = [&](const Job& job) {
      shape.Add(name, job.recipients.size(), job.message_bytes, now - job.created_unix_ms);
    };
    queue->ForEachJob(add);
    for (const OutboundConnection* c : queue->connections()) c->ForEachJob(add);
  }
  return shape;
}

void DeliveryEngine::CountTlsHandshake(bool ok) const {
  if (options_.metrics == nullptr) return;
  const metrics::Counter& c = ok ? options_.metrics->tls_handshakes(metrics::Direction::kOutbound)
                                 : options_.metrics->tls_failures(metrics::Direction::kOutbound);
  c.Add(options_.metrics_shard);
}

bool DeliveryEngine::QuitForFleet(OutboundConnection* connection) {
  if (options_.shared_limits == nullptr || connection->lease_returned()) return false;
  const ReadyQueue& queue = *connection->queue();
  if (!options_.shared_limits->ReleaseOverShare(queue.shared_key(), FleetConnectionsMax(queue))) {
    return false;
  }
  connection->set_lease_returned();
  return true;
}

void DeliveryEngine::QuitFleetSurplus() {
  if (options_.shared_limits == nullptr) return;
  for (const auto& [key, queue] : queues_) {
    if (queue->connections().empty()) continue;
    // Kick: an idle connection asks QuitForFleet before taking work; each that quits lowers the
    // count the next one is judged by (a copy: a quitting connection may leave the list).
    const std::vector<OutboundConnection*> open = queue->connections();
    for (OutboundConnection* c : open) {
      if (c->WaitingForWork()) c->Kick();
    }
  }
}

void DeliveryEngine::PublishSiteMetrics() {
  const metrics::RelayMetrics* m = options_.metrics;
  if (m == nullptr) return;
  const size_t sites = static_cast<size_t>(m->site_count());
  site_ready_.assign(sites, 0);
  site_suspended_.assign(sites, 0);
  const int64_t now = reactor_->NowMs();
  for (const auto& [key, queue] : queues_) {
    size_t label = static_cast<size_t>(queue->metrics_site() + 1);
    if (label >= sites) label = 0;
    site_ready_[label] += static_cast<int64_t>(queue->waiting());
    if (queue->suspended(now)) ++site_suspended_[label];
  }
  for (size_t i = 0; i < sites; ++i) {
    const metrics::RelayMetrics::Site& site = m->site(static_cast<int>(i) - 1);
    site.ready_messages.Set(options_.metrics_shard, site_ready_[i]);
    site.suspended_queues.Set(options_.metrics_shard, site_suspended_[i]);
  }
}

void DeliveryEngine::OnConnectionClosed(OutboundConnection* connection) {
  ReadyQueue* queue = connection->queue();
  queue->RemoveConnection(connection);
  if (options_.shared_limits != nullptr && !connection->lease_returned()) {
    options_.shared_limits->ReturnLease(queue->shared_key());
    connection->set_lease_returned();  // once, however often the close is reported
  }
  auto it = connections_.find(connection);
  if (it != connections_.end()) {
    reactor_->RetireWhenIdle(std::move(it->second));
    connections_.erase(it);
    if (options_.metrics != nullptr) {
      options_.metrics->outbound_connections_open.Add(options_.metrics_shard, -1);
    }
  }
  if (stopping_) {
    if (connections_.empty() && stopped_) {
      auto done = std::move(stopped_);
      stopped_ = nullptr;
      done();
    }
    return;
  }
  if (!queue->empty()) Pump(queue);
}

void DeliveryEngine::Abort() {
  std::vector<OutboundConnection*> open;
  for (auto& [raw, owned] : connections_) open.push_back(raw);
  // Close() takes each one out of connections_: iterate over the copy.
  for (OutboundConnection* c : open) c->Abort();
}

void DeliveryEngine::Stop(std::function<void()> done) {
  stopping_ = true;
  reactor_->timers().Cancel(&schedule_timer_);
  reactor_->timers().Cancel(&tls_report_timer_);
  lookups_.clear();
  if (sts_ != nullptr) sts_->Stop();
  if (connections_.empty()) {
    done();
    return;
  }
  stopped_ = std::move(done);
  std::vector<OutboundConnection*> open;
  for (auto& [raw, owned] : connections_) open.push_back(raw);
  for (OutboundConnection* c : open) c->StopAfterCurrent();
}

}  // namespace relay::delivery
