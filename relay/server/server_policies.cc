#include "relay/server/server_policies.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "relay/base/check.h"
#include "relay/base/log.h"

namespace relay::server {

bool SubmissionPolicy::MaySendAs(std::string_view user, std::string_view address) {
  user_.assign(user);
  return authenticator_->MaySendAs(user, address);
}

void SubmissionPolicy::OnMailFrom(std::string_view address) {
  const size_t at = address.rfind('@');
  sending_domain_.clear();
  suppressed_.clear();
  if (at != std::string_view::npos) {
    for (char c : address.substr(at + 1)) {
      sending_domain_.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    }
  }
  held_tenants_ = tenants_ != nullptr ? *tenants_ : nullptr;
  named_tenant_ = held_tenants_ != nullptr ? held_tenants_->Find(user_, sending_domain_) : nullptr;
  tenant_ = named_tenant_ != nullptr ? named_tenant_->name : sending_domain_;
}

absl::StatusOr<std::optional<feedback::SuppressionEntry>> SubmissionPolicy::FindEntry(
    std::string_view address) const {
  absl::StatusOr<std::optional<feedback::SuppressionEntry>> found =
      suppression_->Find(tenant_, address);
  if (!found.ok() || found->has_value() || tenant_ == sending_domain_ || sending_domain_.empty()) {
    return found;
  }
  // A named tenant's mail also honours its sending domain's list: returned reports and
  // unsubscribe links name the sending domain, and entries made before the tenant was named stay.
  return suppression_->Find(sending_domain_, address);
}

smtp::RcptDecision SubmissionPolicy::CheckRecipient(std::string_view address) {
  // An authenticated user may send anywhere (the session requires AUTH before MAIL), except to
  // the addresses its tenant must not mail again.
  if (suppression_ == nullptr || tenant_.empty()) return smtp::RcptDecision::kAccept;
  absl::StatusOr<std::optional<feedback::SuppressionEntry>> found = FindEntry(address);
  if (!found.ok()) {
    // Unknown is not "not suppressed": the client tries again later.
    LogWarning() << "suppression lookup for <" << address << ">: " << found.status().message();
    return smtp::RcptDecision::kTemporaryFailure;
  }
  if (!found->has_value()) return smtp::RcptDecision::kAccept;
  if (accept_suppressed_) {
    suppressed_.push_back(std::move(**found));
    suppressed_.back().address = std::string(address);  // as the client wrote it
    return smtp::RcptDecision::kAccept;
  }
  refusal_ = SuppressedText(**found);
  return smtp::RcptDecision::kSuppressed;
}

std::string SuppressedText(const feedback::SuppressionEntry& entry) {
  std::string what;
  switch (entry.reason) {
    case feedback::SuppressionReason::kBounce:
      what = absl::StrCat(entry.category.empty() ? "hard" : entry.category, " bounce");
      break;
    case feedback::SuppressionReason::kComplaint:
      what = "complaint";
      break;
    case feedback::SuppressionReason::kUnsubscribe:
      what = "unsubscribe";
      break;
    case feedback::SuppressionReason::kManual:
      what = "added by the operator";
      break;
  }
  const absl::Time t = absl::FromUnixMillis(entry.time_unix_ms);
  std::string text =
      absl::StrCat(entry.address, " is on the suppression list of ", entry.tenant, ": ", what,
                   " on ", absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()));
  if (!entry.queue_id.empty()) absl::StrAppend(&text, " (message ", entry.queue_id, ")");
  for (char& c : text) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return text.substr(0, 400);
}

ReceivePolicy::ReceivePolicy(Authenticator* authenticator,
                             const receive::ReceiveStateHolder* state, std::string peer_ip,
                             Hooks hooks, const Clock* clock)
    : authenticator_(authenticator),
      holder_(state),
      peer_ip_(std::move(peer_ip)),
      hooks_(std::move(hooks)),
      clock_(clock) {}

bool ReceivePolicy::MaySendAs(std::string_view user, std::string_view address) {
  return authenticator_->MaySendAs(user, address);
}

void ReceivePolicy::OnMailFrom(std::string_view address) {
  state_ = holder_->Get();
  routes_.clear();
  if (hooks_.on_mail_from) hooks_.on_mail_from(address);
}

smtp::RcptDecision ReceivePolicy::CheckRecipient(std::string_view address) {
  if (state_ == nullptr) state_ = holder_->Get();
  const bool authenticated = hooks_.authenticated && hooks_.authenticated();
  receive::RecipientRoute route = state_->policy->Route(
      address, authenticated, static_cast<int64_t>(clock_->WallSeconds()));
  if (route.decision != smtp::RcptDecision::kAccept) {
    LogInfo() << "port 25: refused RCPT <" << address << "> from " << peer_ip_ << ": "
              << route.why;
    return route.decision;
  }
  // A report to a bounce domain is read, not forwarded: it goes in a transaction without
  // recipients that are forwarded, so that each kind gets its own answer to DATA.
  const bool feedback = route.kind == receive::RecipientKind::kFeedback;
  for (const auto& [rcpt, taken] : routes_) {
    if ((taken.kind == receive::RecipientKind::kFeedback) != feedback) {
      return smtp::RcptDecision::kSeparately;
    }
    break;  // all taken so far are of one kind
  }
  routes_.insert_or_assign(std::string(address), std::move(route));
  return smtp::RcptDecision::kAccept;
}

const receive::RecipientRoute* ReceivePolicy::RouteOf(std::string_view rcpt) const {
  auto it = routes_.find(absl::string_view(rcpt.data(), rcpt.size()));
  return it == routes_.end() ? nullptr : &it->second;
}

ForwardPlan ReceivePolicy::Plan(const std::vector<std::string>& recipients) const {
  ForwardPlan plan;
  absl::flat_hash_set<std::string_view> seen;  // views into routes_, kept for the transaction
  for (const std::string& rcpt : recipients) {
    const receive::RecipientRoute* route = RouteOf(rcpt);
    EXPECT_OR_COUNT(route != nullptr);  // the session passes only accepted recipients
    if (route == nullptr) continue;
    if (route->kind == receive::RecipientKind::kFeedback) {
      plan.feedback.push_back(rcpt);
      continue;
    }
    plan.forwarding = plan.forwarding || route->kind != receive::RecipientKind::kRelay;
    if (plan.local_domain.empty() && route->kind == receive::RecipientKind::kAlias) {
      plan.local_domain = route->domain;
    }
    for (const std::string& t : route->targets) {
      if (!seen.insert(t).second) continue;
      plan.targets.push_back(t);
      plan.originals.push_back(route->kind == receive::RecipientKind::kAlias ? rcpt : "");
    }
  }
  return plan;
}

}  // namespace relay::server
