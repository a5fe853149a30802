#include "relay/server/server_policies.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "relay/base/check.h"
#include "relay/base/log.h"

namespace relay::server {

bool SubmissionPolicy::MaySendAs(std::string_view user, std::string_view address) {
  return authenticator_->MaySendAs(user, address);
}

smtp::RcptDecision SubmissionPolicy::CheckRecipient(std::string_view) {
  // An authenticated user may send anywhere (the session requires AUTH before MAIL).
  return smtp::RcptDecision::kAccept;
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
