#include "relay/server/config/delivery_sections.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "relay/base/check.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

constexpr char kShippedShaping[] =
#include "relay/server/config/shipped_shaping.inc"
    ;

absl::Status ReadNames(const Section& s, std::string_view key, std::vector<std::string>* out) {
  std::vector<std::string> names;
  RETURN_IF_ERROR(s.StringList(key, &names));
  for (size_t i = 0; i < names.size(); ++i) {
    std::string n = delivery::NormalizeHostName(names[i]);
    if (n.empty() || n.find_first_of(" \t@,") != std::string::npos) {
      return s.ItemError(key, i, "must be a host or domain name");
    }
    out->push_back(std::move(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<delivery::ReplyRule> ParseReplyRule(const Section& r) {
  RETURN_IF_ERROR(
      r.Known({"contains", "regex", "suspend_s", "bounce", "backoff_s", "backoff_rate"}));
  if (r.Has("contains") == r.Has("regex")) {
    return r.TableError("a reply rule needs exactly one of contains = \"...\" or regex = \"...\"");
  }
  if (int{r.Has("suspend_s")} + int{r.Has("bounce")} + int{r.Has("backoff_s")} != 1) {
    return r.TableError(
        "a reply rule needs exactly one of suspend_s = N, backoff_s = N or bounce = true");
  }
  if (r.Has("backoff_rate") && !r.Has("backoff_s")) {
    return r.Error("backoff_rate", "goes with backoff_s = N");
  }
  const std::string_view pattern_key = r.Has("contains") ? "contains" : "regex";
  std::string pattern;
  RETURN_IF_ERROR(r.NonEmptyString(pattern_key, &pattern));
  uint32_t seconds = 0;
  RETURN_IF_ERROR(r.Int("suspend_s", &seconds, 1, 7 * 24 * 3600));
  RETURN_IF_ERROR(r.Int("backoff_s", &seconds, 1, 7 * 24 * 3600));
  double backoff_rate = 0.5;
  RETURN_IF_ERROR(r.Fraction("backoff_rate", &backoff_rate, 0.01, 1));
  if (r.Has("bounce")) {
    bool bounce = false;
    RETURN_IF_ERROR(r.Bool("bounce", &bounce));
    if (!bounce) return r.Error("bounce", "must be true (or leave it out)");
  }
  const delivery::ReplyAction action = r.Has("bounce")      ? delivery::ReplyAction::kBounce
                                       : r.Has("backoff_s") ? delivery::ReplyAction::kBackoff
                                                            : delivery::ReplyAction::kSuspend;
  absl::StatusOr<delivery::ReplyRule> rule =
      delivery::ReplyRule::Make(pattern, pattern_key == "regex", action, seconds, backoff_rate);
  if (!rule.ok()) return r.Error(pattern_key, std::string(rule.status().message()));
  return rule;
}

// `names`: the rules that exist (shipped or earlier entries); `seen`: the names of this file's
// earlier entries. Sets, so that a file of many entries is read in linear time.
absl::Status ParseShapingEntry(const Section& t, delivery::ShapingRules& rules,
                               absl::flat_hash_set<std::string>& names,
                               absl::flat_hash_set<std::string>& seen) {
  RETURN_IF_ERROR(t.Known({"name", "domains", "mx_suffixes", "connections_max",
                           "messages_per_connection_max", "messages_per_second", "messages_burst",
                           "connections_per_minute", "tls", "pipeline_transactions",
                           "connect_timeout_ms", "greeting_timeout_ms", "command_timeout_ms",
                           "data_init_timeout_ms", "data_block_timeout_ms",
                           "data_done_timeout_ms", "tls_handshake_timeout_ms",
                           "replace_reply_rules", "reply"}));
  delivery::ShapingRuleSpec spec;
  if (!t.Has("name")) return t.TableError("name is required");
  RETURN_IF_ERROR(t.NonEmptyString("name", &spec.name));
  if (!seen.insert(spec.name).second) {
    return t.Error("name", absl::StrCat("\"", spec.name, "\" is used by an earlier entry"));
  }
  RETURN_IF_ERROR(ReadNames(t, "domains", &spec.domains));
  RETURN_IF_ERROR(ReadNames(t, "mx_suffixes", &spec.mx_suffixes));
  const bool is_default = spec.name == "default";
  if (is_default && (!spec.domains.empty() || !spec.mx_suffixes.empty())) {
    return t.TableError("the default rule matches everything: no domains or mx_suffixes");
  }
  const bool exists = is_default || names.contains(spec.name);
  if (!exists && spec.domains.empty() && spec.mx_suffixes.empty()) {
    return t.TableError(absl::StrCat("a new rule (\"", spec.name,
                                     "\") needs domains or mx_suffixes (it would match nothing)"));
  }
  RETURN_IF_ERROR(t.Int("connections_max", &spec.connections_max, 1, 10000));
  RETURN_IF_ERROR(
      t.Int("messages_per_connection_max", &spec.messages_per_connection_max, 1, 1000000));
  RETURN_IF_ERROR(t.Int("messages_per_second", &spec.messages_per_second, 0, 1000000));
  RETURN_IF_ERROR(t.Int("messages_burst", &spec.messages_burst, 0, 1000000));
  RETURN_IF_ERROR(t.Int("connections_per_minute", &spec.connections_per_minute, 0, 1000000));
  constexpr int64_t kTimeoutMaxMs = 3600000;
  RETURN_IF_ERROR(t.Int("connect_timeout_ms", &spec.connect_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(t.Int("greeting_timeout_ms", &spec.greeting_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(t.Int("command_timeout_ms", &spec.command_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(t.Int("data_init_timeout_ms", &spec.data_init_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(t.Int("data_block_timeout_ms", &spec.data_block_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(t.Int("data_done_timeout_ms", &spec.data_done_timeout_ms, 1, kTimeoutMaxMs));
  RETURN_IF_ERROR(
      t.Int("tls_handshake_timeout_ms", &spec.tls_handshake_timeout_ms, 1, kTimeoutMaxMs));
  if (t.Has("tls")) {
    delivery::TlsPolicy tls = delivery::TlsPolicy::kOpportunistic;
    RETURN_IF_ERROR(t.Enum("tls", &tls,
                           {{"required", delivery::TlsPolicy::kRequired},
                            {"opportunistic", delivery::TlsPolicy::kOpportunistic},
                            {"disabled", delivery::TlsPolicy::kDisabled}}));
    spec.tls = tls;
  }
  RETURN_IF_ERROR(t.Bool("pipeline_transactions", &spec.pipeline_transactions));
  bool replace_reply_rules = false;
  RETURN_IF_ERROR(t.Bool("replace_reply_rules", &replace_reply_rules));
  ASSIGN_OR_RETURN(std::vector<Section> replies, t.Tables("reply"));
  for (const Section& r : replies) {
    ASSIGN_OR_RETURN(delivery::ReplyRule rule, ParseReplyRule(r));
    spec.reply_rules.push_back(std::move(rule));
  }
  names.insert(spec.name);
  rules.Merge(spec, replace_reply_rules);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<delivery::RetryPolicy> ParseRetry(const Section& t) {
  for (std::string_view moved : {"max_age_s", "message_age_s_max"}) {
    // The queue's limit: read from queue.message_age_s_max, never from here.
    if (t.Has(moved)) return t.Error(moved, "is not read here; set queue.message_age_s_max");
  }
  RETURN_IF_ERROR(t.Known({"intervals_s", "jitter_fraction", "delay_warning_s"}));
  delivery::RetryPolicy p;
  RETURN_IF_ERROR(t.IntList("intervals_s", &p.intervals_s, 1, 7 * 24 * 3600,
                            /*non_decreasing=*/true));
  RETURN_IF_ERROR(t.Fraction("jitter_fraction", &p.jitter_fraction, 0.0, 1.0));
  RETURN_IF_ERROR(t.Int("delay_warning_s", &p.delay_warning_s, 0, 365 * 24 * 3600));
  return p;
}

absl::StatusOr<delivery::ShapingRules> ParseShaping(const Section& root,
                                                    delivery::ShapingRules base) {
  ASSIGN_OR_RETURN(std::vector<Section> entries, root.Tables("shaping"));
  absl::flat_hash_set<std::string> names, seen;
  for (const delivery::ShapingRuleSpec& spec : base.specs()) names.insert(spec.name);
  for (const Section& entry : entries) {
    RETURN_IF_ERROR(ParseShapingEntry(entry, base, names, seen));
  }
  return base;
}

std::string_view ShippedShapingText() { return kShippedShaping; }

const delivery::ShapingRules& ShippedShapingRules() {
  static const delivery::ShapingRules* const rules = [] {
    // A broken shipped file is a build error; the config tests parse it.
    absl::StatusOr<delivery::ShapingRules> parsed = [&]() -> absl::StatusOr<delivery::ShapingRules> {
      ASSIGN_OR_RETURN(toml::table doc, ParseDocument(kShippedShaping, "shipped_shaping.toml"));
      return ParseShaping(Section("shipped_shaping.toml", "", doc), delivery::ShapingRules());
    }();
    if (!parsed.ok()) std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
    CHECK(parsed.ok());
    return new delivery::ShapingRules(std::move(*parsed));
  }();
  return *rules;
}

}  // namespace relay::server::config
