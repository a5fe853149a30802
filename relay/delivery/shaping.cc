#include "relay/delivery/shaping.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"

namespace relay::delivery {
namespace {

bool HostHasSuffix(const std::string& host, const std::string& suffix) {
  if (suffix.empty()) return false;
  if (suffix.front() == '.') {
    // ".google.com" matches "x.google.com" and "google.com" itself.
    if (host.compare(0, std::string::npos, suffix, 1) == 0) return true;
    return host.size() > suffix.size() &&
           host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  // "google.com" matches "google.com" and "x.google.com", not "notgoogle.com".
  return host == suffix ||
         (host.size() > suffix.size() && host[host.size() - suffix.size() - 1] == '.' &&
          host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0);
}

uint32_t SplitUp(uint32_t value, uint32_t shards) {
  if (value == 0) return 0;
  return std::max<uint32_t>(1, (value + shards - 1) / shards);
}

}  // namespace

std::string NormalizeHostName(std::string_view name) {
  std::string s(name);
  while (!s.empty() && s.back() == '.') s.pop_back();
  absl::AsciiStrToLower(&s);
  return s;
}

absl::StatusOr<ReplyRule> ReplyRule::Make(std::string pattern, bool is_regex, ReplyAction action,
                                          uint32_t seconds, double backoff_rate) {
  ReplyRule r;
  r.is_regex = is_regex;
  r.pattern = std::move(pattern);
  r.action = action;
  r.suspend_s = action == ReplyAction::kSuspend ? seconds : 0;
  r.backoff_s = action == ReplyAction::kBackoff ? seconds : 0;
  r.backoff_rate = action == ReplyAction::kBackoff ? backoff_rate : 0;
  if (!is_regex) {
    absl::AsciiStrToLower(&r.pattern);
    return r;
  }
  // std::regex reports a bad pattern only by throwing; this is the one place it can, at load.
  try {
    r.regex = std::make_shared<const std::regex>(
        r.pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("does not compile: ", e.what()));
  }
  return r;
}

std::string_view TlsPolicyName(TlsPolicy policy) {
  switch (policy) {
    case TlsPolicy::kDisabled:
      return "disabled";
    case TlsPolicy::kOpportunistic:
      return "opportunistic";
    case TlsPolicy::kRequired:
      return "required";
  }
  return "?";
}

bool ReplyRule::Matches(int code, std::string_view enhanced, std::string_view text) const {
  std::string line = std::to_string(code);
  line += ' ';
  if (!enhanced.empty()) {
    line.append(enhanced);
    line += ' ';
  }
  line.append(text);
  if (is_regex) {
    if (!regex) return false;
    // Reply lines are bounded (512 bytes a line, RFC 5321 §4.5.3.1.5), but a pathological pattern
    // could still exhaust the matcher; the library reports that by throwing, and a reply rule
    // that cannot decide does not match.
    try {
      return std::regex_search(line, *regex);
    } catch (const std::regex_error&) {
      return false;
    }
  }
  absl::AsciiStrToLower(&line);
  return line.find(pattern) != std::string::npos;
}

const ReplyRule* ShapingRule::MatchReply(int code, std::string_view enhanced,
                                         std::string_view text) const {
  for (const ReplyRule& r : reply_rules) {
    if (r.Matches(code, enhanced, text)) return &r;
  }
  return nullptr;
}

void ShapingRuleSpec::ApplyTo(ShapingRule& rule) const {
  if (connections_max) rule.connections_max = *connections_max;
  if (messages_per_connection_max) rule.messages_per_connection_max = *messages_per_connection_max;
  if (messages_per_second) rule.messages_per_second = *messages_per_second;
  if (messages_burst) rule.messages_burst = *messages_burst;
  if (connections_per_minute) rule.connections_per_minute = *connections_per_minute;
  if (tls) rule.tls = *tls;
  if (pipeline_transactions) rule.pipeline_transactions = *pipeline_transactions;
  if (connect_timeout_ms) rule.timeouts.connect_ms = *connect_timeout_ms;
  if (greeting_timeout_ms) rule.timeouts.greeting_ms = *greeting_timeout_ms;
  if (command_timeout_ms) rule.timeouts.command_ms = *command_timeout_ms;
  if (data_init_timeout_ms) rule.timeouts.data_init_ms = *data_init_timeout_ms;
  if (data_block_timeout_ms) rule.timeouts.data_block_ms = *data_block_timeout_ms;
  if (data_done_timeout_ms) rule.timeouts.data_done_ms = *data_done_timeout_ms;
  if (tls_handshake_timeout_ms) rule.timeouts.tls_handshake_ms = *tls_handshake_timeout_ms;
  rule.reply_rules.insert(rule.reply_rules.begin(), reply_rules.begin(), reply_rules.end());
}

void ShapingRules::Merge(const ShapingRuleSpec& spec, bool replace_reply_rules) {
  if (spec.name == "default") {
    if (replace_reply_rules) default_.reply_rules.clear();
    spec.ApplyTo(default_);
    return;
  }
  auto found = index_.find(spec.name);
  if (found != index_.end()) {
    ShapingRuleSpec& old = specs_[found->second];
    std::vector<ReplyRule> kept = replace_reply_rules ? std::vector<ReplyRule>{} : old.reply_rules;
    ShapingRuleSpec merged = old;
#define RELAY_MERGE_FIELD_(f) \
  if (spec.f) merged.f = spec.f
    RELAY_MERGE_FIELD_(connections_max);
    RELAY_MERGE_FIELD_(messages_per_connection_max);
    RELAY_MERGE_FIELD_(messages_per_second);
    RELAY_MERGE_FIELD_(messages_burst);
    RELAY_MERGE_FIELD_(connections_per_minute);
    RELAY_MERGE_FIELD_(tls);
    RELAY_MERGE_FIELD_(pipeline_transactions);
    RELAY_MERGE_FIELD_(connect_timeout_ms);
    RELAY_MERGE_FIELD_(greeting_timeout_ms);
    RELAY_MERGE_FIELD_(command_timeout_ms);
    RELAY_MERGE_FIELD_(data_init_timeout_ms);
    RELAY_MERGE_FIELD_(data_block_timeout_ms);
    RELAY_MERGE_FIELD_(data_done_timeout_ms);
    RELAY_MERGE_FIELD_(tls_handshake_timeout_ms);
#undef RELAY_MERGE_FIELD_
    // Each list is replaced only when the spec gives it.
    if (!spec.domains.empty()) merged.domains = spec.domains;
    if (!spec.mx_suffixes.empty()) merged.mx_suffixes = spec.mx_suffixes;
    merged.reply_rules = spec.reply_rules;
    merged.reply_rules.insert(merged.reply_rules.end(), kept.begin(), kept.end());
    old = std::move(merged);
    return;
  }
  index_.emplace(spec.name, specs_.size());
  specs_.push_back(spec);
}

ShapingRule ShapingRules::Resolve(std::string_view domain,
                                  const std::vector<std::string>& mx_hosts) const {
  const std::string d = NormalizeHostName(domain);
  const ShapingRuleSpec* provider = nullptr;
  for (const std::string& raw_host : mx_hosts) {
    const std::string host = NormalizeHostName(raw_host);
    for (const ShapingRuleSpec& spec : specs_) {
      for (const std::string& suffix : spec.mx_suffixes) {
        if (HostHasSuffix(host, suffix)) {
          provider = &spec;
          break;
        }
      }
      if (provider != nullptr) break;
    }
    if (provider != nullptr) break;
  }
  const ShapingRuleSpec* by_domain = nullptr;
  for (const ShapingRuleSpec& spec : specs_) {
    if (std::find(spec.domains.begin(), spec.domains.end(), d) != spec.domains.end()) {
      by_domain = &spec;
      break;
    }
  }
  ShapingRule rule = default_;
  std::string name;
  if (provider != nullptr) {
    provider->ApplyTo(rule);
    name = provider->name;
  }
  if (by_domain != nullptr && by_domain != provider) {
    by_domain->ApplyTo(rule);
    name = name.empty() ? by_domain->name : absl::StrCat(by_domain->name, "+", name);
  }
  rule.name = name.empty() ? default_.name : name;
  return rule;
}

ShapingRule SplitAcrossShards(const ShapingRule& rule, uint32_t shards) {
  ShapingRule r = rule;
  r.whole_connections_max = rule.connections_max;
  r.whole_messages_per_second = rule.messages_per_second;
  r.whole_messages_burst = rule.messages_burst;
  if (shards <= 1) return r;
  r.connections_max = SplitUp(rule.connections_max, shards);
  r.messages_per_second = SplitUp(rule.messages_per_second, shards);
  r.messages_burst = SplitUp(rule.messages_burst, shards);
  r.connections_per_minute = SplitUp(rule.connections_per_minute, shards);
  return r;
}

}  // namespace relay::delivery
