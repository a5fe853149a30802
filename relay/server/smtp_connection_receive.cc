// Port 25 in the SMTP connection driver: recipients routed by relay/receive/recipient_policy.h,
// SPF started at MAIL FROM, and at the end of DATA the message is refused when DMARC or SPF say
// so (relay/receive/dmarc.h: a forwarder that accepted it would only bounce it later, to a
// sender who may be forged), else stamped (Received, Authentication-Results), sealed with an ARC
// set (RFC 8617) in the local domain's name, its envelope sender rewritten with SRS, and queued
// once for every expanded target, with the durable 250 as for submission (smtp_connection.cc).
// Received mail is not DKIM-signed: ARC is how a forwarder vouches for what it saw. The DKIM/ARC
// verification and the ARC seal run on the SigningPool's workers, at most [receive]
// checks_queued_max of them waiting (else 451 4.3.2), from one parse of the message, which also
// gives DMARC its From domain and the removal of forged Authentication-Results its fields.
#include <algorithm>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dkim/message.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dmarc.h"
#include "relay/server/smtp_connection.h"
#include "relay/smtp/received.h"

namespace relay::server {
namespace {

// RFC 3463 4.3.2: the system is not accepting messages now; the client tries again later.
constexpr smtp::Reply kChecksBusy{451, "4.3.2", "Too busy to check messages now, try again later"};

}  // namespace

void SmtpConnection::ReceiveMessage() {
  checks_pending_ = true;
  checks_->Finish(session_.message(), absl::ToUnixSeconds(absl::Now()),
                  [this](receive::InboundResults results) {
                    checks_pending_ = false;
                    if (closed_) return;
                    QueueReceived(results);
                    RearmTimer();
                  });
}

void SmtpConnection::QueueReceived(const receive::InboundResults& results) {
  if (results.dkim.overloaded) {
    RefuseReceivedBusy();
    return;
  }
  const smtp::Envelope& env = session_.envelope();
  const Config& config = ctx_.config();
  const ForwardPlan plan = receive_policy_->Plan(env.recipients);
  if (!plan.feedback.empty()) {
    // A bounce or a complaint about our own mail: its VERP token, not DMARC, says whether to
    // believe it (a bounce's From is the remote's MAILER-DAEMON).
    ReadReturnedMail(plan.feedback);
    return;
  }
  // Our own authenticated users are not judged by the From domain's policy.
  receive::InboundDecision decision;
  if (!session_.authenticated()) {
    decision = receive::DecideInbound(
        results.dmarc_ids, results.dmarc_checked ? &results.dmarc : nullptr, config.receive.policy);
  }
  if (decision.action == receive::InboundAction::kRefuse) {
    LogInfo() << "port 25: refused message from " << peer_ip_ << " <" << env.mail_from
              << ">: " << decision.why;
    ApplyResult(session_.OnMessageRefused(smtp::Reply{550, "5.7.1", decision.reply_text}));
    return;
  }
  RemoveOwnAuthResults(results);
  const absl::Time now = absl::Now();
  if (plan.targets.empty()) {
    ApplyResult(session_.OnMessageRefused(smtp::kLocalError));
    return;
  }
  // Forwarded mail leaves with an envelope sender in our SRS domain, so that SPF passes at the
  // final receiver and its bounces come back to us to be reversed (RFC 7208 §1.1.3 on
  // forwarding). A null sender stays null (RFC 5321 §4.5.5).
  const receive::ReceiveState* state = receive_policy_->state();
  const receive::Srs* srs = state != nullptr ? state->policy->srs() : nullptr;
  queue::Envelope qenv;
  qenv.sender = env.mail_from;
  if (plan.forwarding && srs != nullptr && !qenv.sender.empty()) {
    absl::StatusOr<std::string> rewritten = srs->Forward(qenv.sender, absl::ToUnixSeconds(now));
    if (!rewritten.ok()) {
      LogInfo() << "port 25: refused message from " << peer_ip_
                << ": SRS: " << rewritten.status().message();
      ApplyResult(session_.OnMessageRefused(
          smtp::Reply{550, "5.1.7", "Sender address cannot be forwarded"}));
      return;
    }
    qenv.sender = std::move(*rewritten);
  }
  qenv.recipients = plan.targets;
  qenv.original_recipients = plan.originals;
  CarryDsnParameters(env, /*received=*/true, &qenv);
  // RFC 8601 §5: the Authentication-Results goes above the trace field of this hop.
  const receive::AuthResults ar =
      receive::ToAuthResults(results, config.hostname, config.receive.arc);
  ReceivedStamp stamp = Stamp(results, decision, ar, now);
  // RFC 8617 §5.1: the new ARC set covers the message as it leaves, this hop's fields included,
  // and goes on top; in the name of the first local domain addressed (or the SRS domain).
  std::string sealing_domain = plan.local_domain;
  if (sealing_domain.empty() && srs != nullptr) sealing_domain = srs->domain();
  std::shared_ptr<const dkim::ArcSealer> sealer;
  if (config.receive.arc && plan.forwarding && state != nullptr) {
    auto it = state->sealers.find(sealing_domain);
    if (it != state->sealers.end()) sealer = it->second;
  }
  if (sealer == nullptr) {
    AppendReceived(qenv, std::move(stamp));
    return;
  }
  SealThenAppend(results, ar, std::move(sealer), std::move(qenv), std::move(stamp));
}

void SmtpConnection::RemoveOwnAuthResults(const receive::InboundResults& results) {
  const std::string& hostname = ctx_.config().hostname;
  // From the fields the checks parsed (on a worker) when they ran: they parsed the message
  // whatever became of its keys; no field to look at when its header does not parse.
  const dkim::ParsedMessage* parsed = results.message.get();
  if (parsed != nullptr) {
    cleaned_message_ =
        receive::WithoutOwnAuthResults(session_.message(), parsed->fields(), hostname);
  } else if (!results.dkim_checked) {
    cleaned_message_ = receive::WithoutOwnAuthResults(session_.message(), hostname);
  } else {
    cleaned_message_.reset();
  }
  if (cleaned_message_) {
    LogInfo() << "port 25: removed Authentication-Results claiming " << hostname
              << " from a message from " << peer_ip_;
  }
}

SmtpConnection::ReceivedStamp SmtpConnection::Stamp(const receive::InboundResults& results,
                                                    const receive::InboundDecision& decision,
                                                    const receive::AuthResults& ar,
                                                    absl::Time now) const {
  const std::string& mail_from = session_.envelope().mail_from;
  ReceivedStamp stamp;
  stamp.now = now;
  stamp.above = receive::BuildAuthResultsHeader(ar);
  const bool quarantined = decision.action == receive::InboundAction::kQuarantineHeader;
  if (quarantined) stamp.below = std::string(receive::kQuarantineField);
  if (results.spf_checked) {
    const std::string& problem = results.spf.problem;
    stamp.log.push_back(absl::StrCat(
        " from ", peer_ip_, " <", mail_from, ">: spf=", dns::SpfResultName(results.spf.result),
        problem.empty() ? "" : " (", problem, problem.empty() ? "" : ")"));
  }
  if (results.dmarc_checked) {
    const std::string& problem = results.dmarc.problem;
    stamp.log.push_back(absl::StrCat(
        ": dmarc=", receive::DmarcVerdictName(results.dmarc.result),
        " header.from=", results.dmarc.from_domain, problem.empty() ? "" : " (", problem,
        problem.empty() ? "" : ")", quarantined ? ", quarantined: " + decision.why : ""));
  }
  return stamp;
}

void SmtpConnection::SealThenAppend(const receive::InboundResults& results,
                                    const receive::AuthResults& ar,
                                    std::shared_ptr<const dkim::ArcSealer> sealer,
                                    queue::Envelope qenv, ReceivedStamp stamp) {
  // Sealed on the worker threads when there are some (issue 13: the seal hashes the whole
  // message). The message as parsed by the checks is reused, their body hashes with it, less the
  // forged Authentication-Results removed above: what is sealed is what is queued. The Received
  // field is added at append time with the queue id the append gets (appends follow the order
  // seals come back); the ARC-Message-Signature signs neither it, nor Authentication-Results, nor
  // the quarantine mark (dkim::DefaultArcSignedHeaders), so what is sealed is the same.
  struct Seal {
    std::shared_ptr<const dkim::ParsedMessage> parsed;  // null: parse `message` on the worker
    bool cleaned = false;  // `parsed` still has the fields claiming `hostname` that `message` lost
    std::string hostname;
    std::string_view message;
    std::string fields;  // this hop's, above the message
    std::string payload;
    dkim::ArcValidation chain;
    absl::StatusOr<std::string> set;
  };
  auto seal = std::make_shared<Seal>();
  seal->parsed = results.message;
  seal->cleaned = cleaned_message_.has_value();
  seal->hostname = ctx_.config().hostname;
  seal->message = QueuedMessage();
  seal->fields = absl::StrCat(stamp.above, stamp.below);
  seal->payload = receive::AuthResultsPayload(ar);
  seal->chain = results.dkim.arc;
  const int64_t now_s = absl::ToUnixSeconds(stamp.now);
  auto work = [seal, sealer, now_s] {
    const dkim::ParsedMessage* received = seal->parsed.get();
    absl::StatusOr<dkim::ParsedMessage> parsed_here;
    if (received == nullptr) {
      // The checks were off.
      parsed_here = dkim::ParsedMessage::Parse(seal->message);
      if (!parsed_here.ok()) {
        seal->set = parsed_here.status();
        return;
      }
      received = &*parsed_here;
    } else if (seal->cleaned) {
      parsed_here = dkim::ParsedMessage::WithoutFields(*received, [&](const dkim::HeaderField& f) {
        return receive::ClaimsAuthservId(f, seal->hostname);
      });
      received = &*parsed_here;
    }
    absl::StatusOr<dkim::ParsedMessage> outgoing =
        dkim::ParsedMessage::WithFields(seal->fields, *received);
    if (!outgoing.ok()) {
      seal->set = outgoing.status();
      return;
    }
    seal->set = sealer->Seal(*outgoing, seal->payload, seal->chain, now_s);
  };
  auto done = [this, seal, qenv = std::move(qenv), stamp = std::move(stamp)]() mutable {
    seal_pending_ = false;
    if (closed_) return;  // the client left: it got no 250, nothing is queued
    if (seal->set.ok()) {
      stamp.above = absl::StrCat(*seal->set, stamp.above);
    } else {
      // Forwarded all the same: ARC helps the final receiver, its absence is not an error.
      stamp.log.push_back(absl::StrCat(": no ARC set: ", seal->set.status().message()));
    }
    AppendReceived(qenv, std::move(stamp));
    RearmTimer();
  };
  SigningPool* pool = ctx_.shared->signing_pool;
  if (pool == nullptr) {
    work();
    seal_pending_ = true;
    done();
    return;
  }
  if (!pool->TryRun(std::move(work), reactor_, std::move(done),
                    ctx_.config().receive.checks_queued_max)) {
    RefuseReceivedBusy();
    return;
  }
  seal_pending_ = true;
}

void SmtpConnection::AppendReceived(const queue::Envelope& qenv, ReceivedStamp stamp) {
  queue::MessageId id = ctx_.spool->NextMessageId();
  std::string id_text = id.ToString();
  for (const std::string& line : stamp.log) LogInfo() << "port 25: " << id_text << line;
  added_headers_ = std::move(stamp.above);
  added_headers_ += smtp::BuildReceivedHeader(TraceInfo(id_text, stamp.now));
  added_headers_ += stamp.below;
  AppendToSpool(qenv, id, std::move(id_text));
}

namespace {

// A message to a bounce domain, read on a worker.
struct ReturnedReport {
  std::shared_ptr<const receive::ReceiveState> state;  // keeps its Verp and Unsubscribe alive
  std::shared_ptr<const feedback::BounceClassifier> classifier;
  std::string_view message;  // the connection's; it stays while report_pending_
  std::string sender;
  std::vector<std::string> to;
  feedback::ReturnedMail mail;
  absl::Status suppressed;
};

// The worker's part: reads the report, and commits the suppressions it gives (durable before
// the 250). An address already on the list is not written again: a report sent over and over
// costs a lookup each time, not a commit.
void ReadAndSuppress(ReturnedReport& report, feedback::SuppressionList* list,
                     const std::vector<feedback::BounceCategory>& categories, bool complaints) {
  const receive::RecipientPolicy& policy = *report.state->policy;
  report.mail = feedback::ReadReturnedMail(*policy.verp(), *report.classifier, policy.unsubscribe(),
                                           report.message, report.sender, report.to);
  if (list == nullptr) return;
  std::vector<feedback::SuppressionEntry> entries = feedback::SuppressionsFor(
      report.mail, categories, complaints, absl::ToUnixMillis(absl::Now()));
  std::erase_if(entries, [list](const feedback::SuppressionEntry& e) {
    absl::StatusOr<std::optional<feedback::SuppressionEntry>> found =
        list->Find(e.tenant, e.address);
    return found.ok() && found->has_value();
  });
  if (!entries.empty()) report.suppressed = list->AddMany(entries);
}

}  // namespace

void SmtpConnection::ReadReturnedMail(std::vector<std::string> to) {
  std::shared_ptr<const receive::ReceiveState> state = receive_policy_->state_shared();
  if (state == nullptr || state->policy->verp() == nullptr) {
    // A reload took the bounce domain away since RCPT.
    ApplyResult(session_.OnMessageRefused(smtp::kLocalError));
    return;
  }
  const Config& config = ctx_.config();
  auto report = std::make_shared<ReturnedReport>();
  report->state = std::move(state);
  report->classifier = config.bounces;
  report->message = session_.message();
  report->sender = session_.envelope().mail_from;
  report->to = std::move(to);
  auto work = [report, list = ctx_.shared->suppression,
               categories = config.suppression.bounce_categories,
               complaints = config.feedback.suppress_complaints] {
    ReadAndSuppress(*report, list, categories, complaints);
  };
  auto done = [this, report] {
    report_pending_ = false;
    if (!report->suppressed.ok()) {
      LogWarning() << "port 25: a report from " << peer_ip_
                   << " could not be recorded: " << report->suppressed;
      // An entry that cannot be keyed (an address too long) never will be: taken all the same.
      // Anything else (the disk) is worth the reporter's retry.
      if (report->suppressed.code() != absl::StatusCode::kInvalidArgument) {
        if (!closed_) ApplyResult(session_.OnMessageRefused(smtp::kLocalError));
        return;
      }
    }
    // Recorded whether or not the client stayed: the suppressions are committed.
    ctx_.host->OnReturnedMail(report->mail, peer_ip_);
    if (closed_) return;
    ApplyResult(session_.OnMessageTakenUnqueued(report->mail.items.empty()
                                                    ? "Ok: not a report about our mail, dropped"
                                                    : "Ok: report taken"));
    RearmTimer();
  };
  SigningPool* pool = ctx_.shared->signing_pool;
  report_pending_ = true;
  if (pool == nullptr) {
    work();
    done();
    return;
  }
  if (!pool->TryRun(std::move(work), reactor_, std::move(done), config.receive.checks_queued_max)) {
    report_pending_ = false;
    RefuseReceivedBusy();
  }
}

void SmtpConnection::RefuseReceivedBusy() {
  ctx_.counters->messages_refused++;
  if (const metrics::RelayMetrics* m = ctx_.metrics()) {
    m->transactions_refused.Add(ctx_.shard_index);
  }
  LogInfo() << "port 25: refused a message from " << peer_ip_
            << " for now: too many checks waiting for a worker ([receive] checks_queued_max "
            << ctx_.config().receive.checks_queued_max << ")";
  ApplyResult(session_.OnMessageRefused(kChecksBusy));
}

}  // namespace relay::server
