#include "relay/delivery/delivery_policy.h"

#include "absl/strings/ascii.h"
#include "relay/delivery/dsn.h"

namespace relay::delivery {
namespace {

// `text` with every occurrence of `what` (ASCII case ignored) replaced by `with`.
std::string ReplaceIgnoringCase(std::string_view text, std::string_view what,
                                std::string_view with) {
  if (what.empty()) return std::string(text);
  std::string lower_text = absl::AsciiStrToLower(absl::string_view(text.data(), text.size()));
  std::string lower_what = absl::AsciiStrToLower(absl::string_view(what.data(), what.size()));
  std::string out;
  size_t from = 0;
  for (size_t at = lower_text.find(lower_what); at != std::string::npos;
       at = lower_text.find(lower_what, from)) {
    out.append(text.substr(from, at - from)).append(with);
    from = at + what.size();
  }
  return out.append(text.substr(from));
}

}  // namespace

DeliveryPolicy::DeliveryPolicy(std::shared_ptr<const ShapingRules> shaping, RetryPolicy retry,
                               std::shared_ptr<const feedback::BounceClassifier> bounces,
                               uint32_t shard_count, std::string hostname, uint64_t random_seed)
    : shaping_(std::move(shaping)),
      retry_(std::move(retry)),
      bounces_(std::move(bounces)),
      shard_count_(shard_count == 0 ? 1 : shard_count),
      hostname_(std::move(hostname)),
      random_(random_seed) {}

feedback::BounceCategory DeliveryPolicy::Classify(const RecipientOutcome& outcome) const {
  if (outcome.category.has_value()) return *outcome.category;
  if (bounces_ == nullptr) return feedback::BounceCategory::kOther;
  return bounces_->Classify({outcome.code, outcome.enhanced, outcome.text});
}

ShapingRule DeliveryPolicy::LimitsFor(std::string_view domain,
                                      const std::vector<dns::MxHost>& hosts) const {
  std::vector<std::string> names;
  names.reserve(hosts.size());
  for (const dns::MxHost& h : hosts) names.push_back(h.name);
  return SplitAcrossShards(shaping_->Resolve(domain, names), shard_count_);
}

int64_t DeliveryPolicy::NextAttemptUnixMs(uint32_t attempts, int64_t created_unix_ms,
                                          int64_t now_unix_ms) {
  RetryDecision d = NextRetry(retry_, attempts, created_unix_ms, now_unix_ms, [this] {
    return std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  });
  return d.give_up ? -1 : d.next_attempt_ms;
}

int64_t DeliveryPolicy::SuspendMsForReply(const ShapingRule& rule,
                                          const RecipientOutcome& outcome) const {
  const ReplyRule* r = rule.MatchReply(outcome.code, outcome.enhanced, outcome.text);
  if (r == nullptr || r->action != ReplyAction::kSuspend) return 0;
  return static_cast<int64_t>(r->suspend_s) * 1000;
}

const ReplyRule* DeliveryPolicy::BackoffForReply(const ShapingRule& rule,
                                                 const RecipientOutcome& outcome) const {
  const ReplyRule* r = rule.MatchReply(outcome.code, outcome.enhanced, outcome.text);
  return r != nullptr && r->action == ReplyAction::kBackoff ? r : nullptr;
}

bool DeliveryPolicy::BounceForReply(const ShapingRule& rule,
                                    const RecipientOutcome& outcome) const {
  const ReplyRule* r = rule.MatchReply(outcome.code, outcome.enhanced, outcome.text);
  return r != nullptr && r->action == ReplyAction::kBounce;
}

absl::StatusOr<std::string> DeliveryPolicy::BuildDsn(
    DsnKind kind, const DsnSubject& subject, int64_t now_unix_ms,
    const std::vector<FailedRecipient>& failed) const {
  const int64_t arrival_unix_ms = subject.arrival_unix_ms;
  DsnRequest request;
  request.kind = kind;
  // RFC 3463: a failure's status is of class 5, a delay's of class 4; a local reason without a
  // code is x.0.0.
  const char status_class = kind == DsnKind::kDelay ? '4' : kind == DsnKind::kRelayed ? '2' : '5';
  request.reporting_mta = hostname_;
  request.envelope_sender = std::string(subject.sender);
  request.queue_id = std::string(subject.queue_id);
  request.tenant = std::string(subject.tenant);
  request.campaign = std::string(subject.campaign);
  request.arrival_unix_s = arrival_unix_ms / 1000;
  request.now_unix_s = now_unix_ms / 1000;
  request.original_message = subject.headers;
  request.return_full = subject.return_full;
  request.envelope_id = std::string(subject.envid);
  for (const FailedRecipient& f : failed) {
    DsnRecipient r;
    // A forwarded recipient is the alias owner's private address. From the sender's side the
    // alias is the recipient (RFC 5321 §3.9.1): the DSN names it, leaves out the target's MX
    // host, and puts it in place of the target wherever the remote's reply names the target.
    const bool forwarded = !f.original.empty();
    auto hide = [&](const std::string& text) {
      return forwarded ? ReplaceIgnoringCase(text, f.address, f.original) : text;
    };
    r.final_recipient = forwarded ? f.original : f.address;
    r.original_recipient = f.orcpt;
    r.status = !f.outcome.enhanced.empty() && f.outcome.enhanced[0] == status_class
                   ? f.outcome.enhanced
                   : std::string(1, status_class) + ".0.0";
    r.remote_mta = forwarded ? "" : f.remote_mta;
    r.reply_code = f.outcome.code;
    r.reply_enhanced = f.outcome.enhanced;
    r.reply_text = hide(f.outcome.text);
    if (f.outcome.code == 0) r.explanation = hide(f.outcome.text);
    r.category = std::string(feedback::CategoryName(f.category));
    r.last_attempt_unix_s = (f.attempt_unix_ms > 0 ? f.attempt_unix_ms : now_unix_ms) / 1000;
    if (kind == DsnKind::kDelay) {
      r.will_retry_until_unix_s = arrival_unix_ms / 1000 + retry_.message_age_s_max;
    }
    request.recipients.push_back(std::move(r));
  }
  absl::StatusOr<Dsn> dsn = delivery::BuildDsn(request);
  if (!dsn.ok()) return dsn.status();
  return std::move(dsn->data);
}

}  // namespace relay::delivery
