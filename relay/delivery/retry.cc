#include "relay/delivery/retry.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"

namespace relay::delivery {
namespace {

std::string Where(const toml::node& node) {
  const toml::source_region& src = node.source();
  return absl::StrCat(src.path ? *src.path : std::string("<config>"), ":", src.begin.line);
}

absl::Status Error(const toml::node& node, const char* key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(node), ": retry.", key, " ", what));
}

absl::Status ReadSeconds(const toml::table& t, const char* key, int64_t min, int64_t* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<int64_t> v = node->value_exact<int64_t>();
  if (!v) return Error(*node, key, "must be an integer number of seconds");
  if (*v < min || *v > 365ll * 24 * 3600) {
    return Error(*node, key, absl::StrCat("must be between ", min, " and 31536000 (got ", *v, ")"));
  }
  *out = *v;
  return absl::OkStatus();
}

}  // namespace

int64_t BaseIntervalSeconds(const RetryPolicy& policy, uint32_t attempts) {
  if (policy.intervals_s.empty()) return 3600;
  size_t i = attempts == 0 ? 0 : attempts - 1;
  return policy.intervals_s[std::min(i, policy.intervals_s.size() - 1)];
}

RetryDecision NextRetry(const RetryPolicy& policy, uint32_t attempts, int64_t received_ms,
                        int64_t now_ms, const RandomSource& random) {
  RetryDecision d;
  const int64_t expiry_ms = received_ms + policy.max_age_s * 1000;
  if (now_ms >= expiry_ms) {
    d.give_up = true;
    return d;
  }
  double u = random ? random() : 0.5;
  u = std::clamp(u, 0.0, 1.0);
  const double factor = 1.0 + policy.jitter_fraction * (2.0 * u - 1.0);
  int64_t wait_ms =
      static_cast<int64_t>(std::llround(BaseIntervalSeconds(policy, attempts) * 1000.0 * factor));
  wait_ms = std::max<int64_t>(wait_ms, 1000);  // never a hot retry loop
  d.next_attempt_ms = std::min(now_ms + wait_ms, expiry_ms);
  return d;
}

bool DelayWarningDue(const RetryPolicy& policy, int64_t received_ms, int64_t now_ms) {
  return policy.delay_warning_s > 0 && now_ms - received_ms >= policy.delay_warning_s * 1000 &&
         policy.delay_warning_s < policy.max_age_s;
}

absl::StatusOr<RetryPolicy> ParseRetryPolicy(const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(Where(node), ": [retry] must be a table"));
  }
  RetryPolicy p;
  for (const auto& [k, v] : *t) {
    std::string_view key = k.str();
    if (key != "intervals_s" && key != "jitter_fraction" && key != "max_age_s" &&
        key != "delay_warning_s") {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(v), ": unknown key retry.", std::string(key)));
    }
  }
  if (const toml::node* n = t->get("intervals_s")) {
    const toml::array* arr = n->as_array();
    if (arr == nullptr || arr->empty()) {
      return Error(*n, "intervals_s", "must be a non-empty list of seconds");
    }
    p.intervals_s.clear();
    for (const toml::node& item : *arr) {
      std::optional<int64_t> s = item.value_exact<int64_t>();
      if (!s || *s <= 0 || *s > 7ll * 24 * 3600) {
        return Error(item, "intervals_s", "entries must be integers between 1 and 604800");
      }
      if (!p.intervals_s.empty() && *s < p.intervals_s.back()) {
        return Error(item, "intervals_s", "must not decrease (backoff grows)");
      }
      p.intervals_s.push_back(*s);
    }
  }
  if (const toml::node* n = t->get("jitter_fraction")) {
    std::optional<double> f = n->value<double>();  // an integer 0 is accepted too
    if (!f || !(*f >= 0.0 && *f < 1.0)) return Error(*n, "jitter_fraction", "must be in [0, 1)");
    p.jitter_fraction = *f;
  }
  RETURN_IF_ERROR(ReadSeconds(*t, "max_age_s", 60, &p.max_age_s));
  RETURN_IF_ERROR(ReadSeconds(*t, "delay_warning_s", 0, &p.delay_warning_s));
  return p;
}

}  // namespace relay::delivery
