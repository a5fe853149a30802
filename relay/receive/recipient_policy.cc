#include "relay/receive/recipient_policy.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace relay::receive {

RecipientRoute RecipientPolicy::Route(std::string_view address, bool authenticated,
                                      int64_t now_s) const {
  RecipientRoute route;
  std::string_view local, domain;
  if (!SplitAddress(address, &local, &domain)) {
    route.decision = smtp::RcptDecision::kUnknownUser;
    route.why = "no domain";
    return route;
  }
  if (verp_ != nullptr && verp_->ForBounceDomain(domain) != nullptr) {
    if (verp_->IsFeedbackAddress(local) || verp_->Parse(local, domain).has_value() ||
        (unsubscribe_ != nullptr && unsubscribe_->ParseMailto(address).has_value())) {
      route.decision = smtp::RcptDecision::kAccept;
      route.kind = RecipientKind::kFeedback;
      route.domain = absl::AsciiStrToLower(absl::string_view(domain.data(), domain.size()));
      return route;
    }
    route.decision = smtp::RcptDecision::kUnknownUser;
    route.why = "not a return path of this bounce domain";
    return route;
  }
  if (srs_ != nullptr && Srs::IsSrs(local) &&
      absl::EqualsIgnoreCase(absl::string_view(domain.data(), domain.size()), srs_->domain())) {
    absl::StatusOr<std::string> original = srs_->Reverse(address, now_s);
    if (original.ok()) {
      route.decision = smtp::RcptDecision::kAccept;
      route.kind = RecipientKind::kSrsReturn;
      route.targets.push_back(std::move(*original));
      return route;
    }
    if (original.status().code() != absl::StatusCode::kNotFound) {
      route.decision = smtp::RcptDecision::kUnknownUser;
      route.why = std::string(original.status().message());
      return route;
    }
    // Not SRS after all: an ordinary local address.
  }
  Expansion expansion = aliases_->Expand(address);
  switch (expansion.status) {
    case ExpandStatus::kExpanded:
      route.decision = smtp::RcptDecision::kAccept;
      route.kind = RecipientKind::kAlias;
      route.targets = std::move(expansion.targets);
      route.domain = std::string(domain);
      absl::AsciiStrToLower(&route.domain);
      return route;
    case ExpandStatus::kUnknownUser:
      route.decision = smtp::RcptDecision::kUnknownUser;
      route.why = "no alias and no catch-all";
      return route;
    case ExpandStatus::kNotLocal:
      break;
  }
  if (authenticated) {
    route.decision = smtp::RcptDecision::kAccept;
    route.kind = RecipientKind::kRelay;
    route.targets.emplace_back(address);
    return route;
  }
  route.decision = smtp::RcptDecision::kRelayDenied;
  route.why = "not a local domain and not authenticated";
  return route;
}

}  // namespace relay::receive
