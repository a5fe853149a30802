#include "relay/feedback/bounce_category.h"

namespace relay::feedback {
namespace {

constexpr std::string_view kNames[kBounceCategoryCount] = {
    "bad-mailbox", "inactive-mailbox", "bad-domain",   "quota",         "no-answer-from-host",
    "bad-connection", "routing",       "protocol",     "policy",        "spam-block",
    "spam-content",   "virus",         "auth-failure", "rate-limited",  "too-large",
    "invalid-sender", "message-expired", "other",
};

}  // namespace

std::string_view CategoryName(BounceCategory category) {
  const int i = static_cast<int>(category);
  return i >= 0 && i < kBounceCategoryCount ? kNames[i] : "other";
}

std::optional<BounceCategory> CategoryNamed(std::string_view name) {
  for (int i = 0; i < kBounceCategoryCount; ++i) {
    if (kNames[i] == name) return static_cast<BounceCategory>(i);
  }
  return std::nullopt;
}

}  // namespace relay::feedback
