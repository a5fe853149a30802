// Port 25 in the SMTP connection driver: recipients routed by relay/receive/recipient_policy.h,
// SPF started at MAIL FROM, and at the end of DATA the message is refused when DMARC or SPF say
// so (relay/receive/dmarc.h: a forwarder that accepted it would only bounce it later, to a
// sender who may be forged), else stamped (Received, Authentication-Results), sealed with an ARC
// set (RFC 8617) in the local domain's name, its envelope sender rewritten with SRS, and queued
// once for every expanded target, with the durable 250 as for submission (smtp_connection.cc).
// Received mail is not DKIM-signed: ARC is how a forwarder vouches for what it saw.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dmarc.h"
#include "relay/server/shard.h"
#include "relay/server/smtp_connection.h"
#include "relay/smtp/received.h"

namespace relay::server {

void SmtpConnection::OnMailFrom(std::string_view address) {
  if (!receive_) return;
  receive_state_ = shard_->shared().receive->Get();
  routes_.clear();
  checks_->StartSpf(peer_ip_, address, session_.ehlo_name(), shard_->config().hostname);
}

smtp::RcptDecision SmtpConnection::ReceiveCheckRecipient(std::string_view address) {
  if (receive_state_ == nullptr) receive_state_ = shard_->shared().receive->Get();
  receive::RecipientRoute route = receive_state_->policy->Route(
      address, session_.authenticated(), absl::ToUnixSeconds(absl::Now()));
  if (route.decision != smtp::RcptDecision::kAccept) {
    LogInfo() << "port 25: refused RCPT <" << address << "> from " << peer_ip_ << ": "
              << route.why;
    return route.decision;
  }
  routes_.insert_or_assign(std::string(address), std::move(route));
  return smtp::RcptDecision::kAccept;
}

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
  queue::Spool* spool = shard_->spool();
  const smtp::Envelope& env = session_.envelope();
  const Config& config = shard_->config();
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
  cleaned_message_ = receive::WithoutOwnAuthResults(session_.message(), config.hostname);
  if (cleaned_message_) {
    LogInfo() << "port 25: removed Authentication-Results claiming " << config.hostname
              << " from a message from " << peer_ip_;
  }
  std::string_view message = QueuedMessage();
  absl::Time now = absl::Now();
  const int64_t now_s = absl::ToUnixSeconds(now);

  // Every target once, in the order the recipients came, with the address the sender used for it
  // when it is an alias's target: that one is private, and a DSN names the sender's instead.
  std::vector<std::string> targets;
  std::vector<std::string> originals;
  bool forwarding = false;
  std::string local_domain;  // whose key seals: the first local domain addressed
  for (const std::string& rcpt : env.recipients) {
    auto it = routes_.find(rcpt);
    EXPECT_OR_COUNT(it != routes_.end());
    if (it == routes_.end()) continue;
    const receive::RecipientRoute& route = it->second;
    forwarding = forwarding || route.kind != receive::RecipientKind::kRelay;
    if (local_domain.empty() && route.kind == receive::RecipientKind::kAlias) {
      local_domain = route.domain;
    }
    for (const std::string& t : route.targets) {
      if (std::find(targets.begin(), targets.end(), t) != targets.end()) continue;
      targets.push_back(t);
      originals.push_back(route.kind == receive::RecipientKind::kAlias ? rcpt : "");
    }
  }
  if (targets.empty()) {
    ApplyResult(session_.OnMessageRefused(smtp::kLocalError));
    return;
  }
  // Forwarded mail leaves with an envelope sender in our SRS domain, so that SPF passes at the
  // final receiver and its bounces come back to us to be reversed (RFC 7208 §1.1.3 on
  // forwarding). A null sender stays null (RFC 5321 §4.5.5).
  std::string sender = env.mail_from;
  const receive::Srs* srs = receive_state_ != nullptr ? receive_state_->policy->srs() : nullptr;
  if (forwarding && srs != nullptr && !sender.empty()) {
    absl::StatusOr<std::string> rewritten = srs->Forward(sender, now_s);
    if (!rewritten.ok()) {
      LogInfo() << "port 25: refused message from " << peer_ip_ << ": SRS: "
                << rewritten.status().message();
      ApplyResult(session_.OnMessageRefused(
          smtp::Reply{550, "5.1.7", "Sender address cannot be forwarded"}));
      return;
    }
    sender = std::move(*rewritten);
  }

  queue::MessageId id = spool->NextMessageId();
  std::string id_text = id.ToString();
  smtp::ReceivedInfo info = TraceInfo(id_text, now);
  // RFC 8601 §5: the Authentication-Results goes above the trace field of this hop.
  receive::AuthResults ar = receive::ToAuthResults(results, config.hostname, config.receive.arc);
  added_headers_ = receive::BuildAuthResultsHeader(ar);
  added_headers_ += smtp::BuildReceivedHeader(info);
  if (decision.action == receive::InboundAction::kQuarantineHeader) {
    added_headers_ += receive::kQuarantineField;
  }
  // RFC 8617 §5.1: the new ARC set covers the message as it leaves, this hop's fields included,
  // and goes on top.
  if (local_domain.empty() && srs != nullptr && forwarding) local_domain = srs->domain();
  if (config.receive.arc && forwarding && receive_state_ != nullptr) {
    auto sealer = receive_state_->sealers.find(local_domain);
    if (sealer != receive_state_->sealers.end()) {
      std::string outgoing;
      outgoing.reserve(added_headers_.size() + message.size());
      outgoing.append(added_headers_).append(message);
      absl::StatusOr<std::string> set = sealer->second->Seal(
          outgoing, receive::AuthResultsPayload(ar), results.dkim.arc, now_s);
      if (set.ok()) {
        added_headers_ = absl::StrCat(*set, added_headers_);
      } else {
        // Forwarded all the same: ARC helps the final receiver, its absence is not an error.
        LogInfo() << "port 25: " << id_text << ": no ARC set: " << set.status().message();
      }
    }
  }
  if (results.spf_checked) {
    LogInfo() << "port 25: " << id_text << " from " << peer_ip_ << " <" << env.mail_from
              << ">: spf=" << dns::SpfResultName(results.spf.result)
              << (results.spf.problem.empty() ? "" : " (") << results.spf.problem
              << (results.spf.problem.empty() ? "" : ")");
  }
  if (results.dmarc_checked) {
    LogInfo() << "port 25: " << id_text
              << ": dmarc=" << receive::DmarcVerdictName(results.dmarc.result)
              << " header.from=" << results.dmarc.from_domain
              << (results.dmarc.problem.empty() ? "" : " (") << results.dmarc.problem
              << (results.dmarc.problem.empty() ? "" : ")")
              << (decision.action == receive::InboundAction::kQuarantineHeader
                      ? ", quarantined: " + decision.why
                      : "");
  }

  queue::Envelope qenv;
  qenv.sender = sender;
  qenv.recipients = targets;
  qenv.original_recipients = originals;
  AppendToSpool(qenv, id, std::move(id_text));
}

}  // namespace relay::server
