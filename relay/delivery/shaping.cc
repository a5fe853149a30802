#include "relay/delivery/shaping.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"

namespace relay::delivery {
namespace {

std::string Normalize(std::string_view name) {
  std::string s(name);
  while (!s.empty() && s.back() == '.') s.pop_back();
  absl::AsciiStrToLower(&s);
  return s;
}

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

ReplyRule Suspend(std::string pattern, uint32_t seconds, bool is_regex = false) {
  ReplyRule r;
  r.is_regex = is_regex;
  r.pattern = std::move(pattern);
  if (is_regex) {
    r.regex = std::make_shared<const std::regex>(
        r.pattern, std::regex::ECMAScript | std::regex::icase | std::regex::optimize);
  } else {
    absl::AsciiStrToLower(&r.pattern);
  }
  r.action = ReplyAction::kSuspend;
  r.suspend_s = seconds;
  return r;
}

ReplyRule Bounce(std::string pattern, bool is_regex = false) {
  ReplyRule r = Suspend(std::move(pattern), 0, is_regex);
  r.action = ReplyAction::kBounce;
  return r;
}

uint32_t SplitUp(uint32_t value, uint32_t shards) {
  if (value == 0) return 0;
  return std::max<uint32_t>(1, (value + shards - 1) / shards);
}

}  // namespace

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

ShapingRules ShapingRules::Shipped() {
  ShapingRules rules;

  // Default: any receiver we know nothing about. Ten connections per source is Postfix's
  // practice (initial concurrency 5, growing to 20 per destination over all sources), split
  // here per source address; 100 messages per connection amortises the TLS handshake without
  // holding a connection for long. No rate limit: small receivers push back with 421 and the
  // retry schedule handles that. TLS whenever offered (RFC 7435).
  ShapingRule& d = rules.default_;
  d.name = "default";
  d.connections_max = 10;
  d.messages_per_connection_max = 100;
  d.messages_per_second = 0;
  d.messages_burst = 0;
  d.connections_per_minute = 0;
  d.tls = TlsPolicy::kOpportunistic;
  // "421 Too many concurrent SMTP connections from this IP" (Exim, Postfix's smtpd_client_*
  // limits and many appliances): back off this source briefly instead of reconnecting at once.
  d.reply_rules.push_back(Suspend("too many (concurrent )?(smtp )?connections", 60, true));

  // Google (Gmail and Google Workspace; MX hosts under google.com / googlemail.com).
  // The sender guidelines (2024) require TLS for bulk senders, so TLS is required: a plaintext
  // delivery would be marked and may be rejected. Gmail throttles per source IP by reputation
  // and answers "421 4.7.28 ... unusual rate of unsolicited mail" when a source sends too fast;
  // retrying sooner only extends the block, so the pair rests for an hour. A modest per-IP rate
  // (10/s, bursts of 20) with 10 connections keeps a new IP's volume ramp gradual.
  ShapingRuleSpec google;
  google.name = "google";
  google.mx_suffixes = {".google.com", ".googlemail.com"};
  google.connections_max = 10;
  google.messages_per_connection_max = 100;
  google.messages_per_second = 10;
  google.messages_burst = 20;
  google.connections_per_minute = 60;
  google.tls = TlsPolicy::kRequired;
  google.reply_rules = {
      Suspend("4.7.28", 3600),
      Suspend(R"(4\.7\.0 .*unusual rate)", 1800, true),
  };
  rules.specs_.push_back(std::move(google));

  // Yahoo and AOL (MX hosts under yahoodns.net). Yahoo's postmaster pages ask senders to keep
  // connection counts and messages per connection low and to slow down on TSxx deferrals:
  // "421 4.7.0 [TSS04] Messages from ... temporarily deferred due to unexpected volume or user
  // complaints" suspends the pair for 30 minutes; "[TSS09] All messages from ... will be
  // permanently deferred; Retrying will NOT succeed" is permanent despite its 421.
  ShapingRuleSpec yahoo;
  yahoo.name = "yahoo";
  yahoo.mx_suffixes = {".yahoodns.net"};
  yahoo.connections_max = 5;
  yahoo.messages_per_connection_max = 20;
  yahoo.messages_per_second = 5;
  yahoo.messages_burst = 10;
  yahoo.connections_per_minute = 30;
  yahoo.tls = TlsPolicy::kOpportunistic;
  yahoo.reply_rules = {
      Bounce("TSS09"),
      Bounce("retrying will not succeed"),
      Suspend(R"(\[TS(S)?0[1-4]\])", 1800, true),
  };
  rules.specs_.push_back(std::move(yahoo));

  // Microsoft (Exchange Online: *.mail.protection.outlook.com; Outlook.com/Hotmail consumer
  // mail: *.olc.protection.outlook.com). "4.7.650 ... temporarily rate limited due to IP
  // reputation", "4.7.500 Server busy" and the block-list reply "550 5.7.1 ... (S3150)" are all
  // about the source address, not the recipient: suspend the pair and defer (an S3150 lasts
  // until delisting, hence the longest rest).
  ShapingRuleSpec microsoft;
  microsoft.name = "microsoft";
  microsoft.mx_suffixes = {".protection.outlook.com", ".olc.protection.outlook.com"};
  microsoft.connections_max = 10;
  microsoft.messages_per_connection_max = 100;
  microsoft.messages_per_second = 10;
  microsoft.messages_burst = 20;
  microsoft.connections_per_minute = 60;
  microsoft.tls = TlsPolicy::kOpportunistic;
  microsoft.reply_rules = {
      Suspend("S3150", 3600),
      Suspend("4.7.650", 1800),
      Suspend("4.7.500", 300),
  };
  rules.specs_.push_back(std::move(microsoft));

  // Apple (iCloud Mail; MX hosts under icloud.com / mail.me.com). Apple publishes few numbers
  // and is known to defer aggressively: few connections, a low rate, short connections.
  ShapingRuleSpec apple;
  apple.name = "apple";
  apple.mx_suffixes = {".icloud.com", ".mail.me.com"};
  apple.connections_max = 5;
  apple.messages_per_connection_max = 20;
  apple.messages_per_second = 5;
  apple.messages_burst = 10;
  apple.connections_per_minute = 30;
  apple.tls = TlsPolicy::kOpportunistic;
  rules.specs_.push_back(std::move(apple));

  return rules;
}

void ShapingRules::Merge(const ShapingRuleSpec& spec, bool replace_reply_rules) {
  if (spec.name == "default") {
    if (replace_reply_rules) default_.reply_rules.clear();
    spec.ApplyTo(default_);
    return;
  }
  for (ShapingRuleSpec& old : specs_) {
    if (old.name != spec.name) continue;
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
  specs_.push_back(spec);
}

ShapingRule ShapingRules::Resolve(std::string_view domain,
                                  const std::vector<std::string>& mx_hosts) const {
  const std::string d = Normalize(domain);
  const ShapingRuleSpec* provider = nullptr;
  for (const std::string& raw_host : mx_hosts) {
    const std::string host = Normalize(raw_host);
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
  if (shards <= 1) return r;
  r.connections_max = SplitUp(rule.connections_max, shards);
  r.messages_per_second = SplitUp(rule.messages_per_second, shards);
  r.messages_burst = SplitUp(rule.messages_burst, shards);
  r.connections_per_minute = SplitUp(rule.connections_per_minute, shards);
  return r;
}

// ---- Config parsing ----

namespace {

struct ParseContext {
  size_t index = 0;
  std::string name;
};

std::string Where(const toml::node& node) {
  const toml::source_region& src = node.source();
  return absl::StrCat(src.path ? *src.path : std::string("<config>"), ":", src.begin.line, ":",
                      src.begin.column);
}

absl::Status Error(const ParseContext& ctx, const toml::node& node, const std::string& what) {
  std::string entry = absl::StrCat("shaping[", ctx.index, "]");
  if (!ctx.name.empty()) absl::StrAppend(&entry, " (", ctx.name, ")");
  return absl::InvalidArgumentError(absl::StrCat(Where(node), ": ", entry, ": ", what));
}

absl::Status ReadU32(const ParseContext& ctx, const toml::table& t, const char* key, uint32_t min,
                     uint32_t max, std::optional<uint32_t>* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<int64_t> v = node->value_exact<int64_t>();
  if (!v || *v < min || *v > max) {
    return Error(ctx, *node, absl::StrCat(key, " must be an integer between ", min, " and ", max));
  }
  *out = static_cast<uint32_t>(*v);
  return absl::OkStatus();
}

absl::Status ReadNames(const ParseContext& ctx, const toml::table& t, const char* key,
                       std::vector<std::string>* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  const toml::array* arr = node->as_array();
  if (arr == nullptr) return Error(ctx, *node, absl::StrCat(key, " must be a list of strings"));
  for (const toml::node& item : *arr) {
    std::optional<std::string> s = item.value_exact<std::string>();
    if (!s || s->empty() || s->find_first_of(" \t@,") != std::string::npos) {
      return Error(ctx, item, absl::StrCat(key, " entries must be host or domain names"));
    }
    std::string n = Normalize(*s);
    if (n.empty()) return Error(ctx, item, absl::StrCat(key, " entries must not be empty"));
    out->push_back(std::move(n));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplyRule> ParseReplyRule(const ParseContext& ctx, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) return Error(ctx, node, "reply entries must be tables ([[shaping.reply]])");
  for (const auto& [k, v] : *t) {
    std::string_view key = k.str();
    if (key != "contains" && key != "regex" && key != "suspend_s" && key != "bounce") {
      return Error(ctx, v, absl::StrCat("unknown key reply.", std::string(key)));
    }
  }
  const toml::node* contains = t->get("contains");
  const toml::node* regex = t->get("regex");
  if ((contains == nullptr) == (regex == nullptr)) {
    return Error(ctx, node,
                 "a reply rule needs exactly one of contains = \"...\" or regex = \"...\"");
  }
  const toml::node* pattern_node = contains != nullptr ? contains : regex;
  std::optional<std::string> pattern = pattern_node->value_exact<std::string>();
  if (!pattern || pattern->empty()) {
    return Error(ctx, *pattern_node, "reply pattern must be a non-empty string");
  }
  const toml::node* suspend = t->get("suspend_s");
  const toml::node* bounce = t->get("bounce");
  if ((suspend == nullptr) == (bounce == nullptr)) {
    return Error(ctx, node, "a reply rule needs exactly one of suspend_s = N or bounce = true");
  }
  uint32_t suspend_s = 0;
  if (suspend != nullptr) {
    std::optional<int64_t> s = suspend->value_exact<int64_t>();
    if (!s || *s < 1 || *s > 7 * 24 * 3600) {
      return Error(ctx, *suspend, "reply.suspend_s must be an integer between 1 and 604800");
    }
    suspend_s = static_cast<uint32_t>(*s);
  } else {
    std::optional<bool> b = bounce->value_exact<bool>();
    if (!b || !*b) return Error(ctx, *bounce, "reply.bounce must be true");
  }
  if (regex != nullptr) {
    // std::regex reports a bad pattern only by throwing; this is the one place it can, at load.
    try {
      ReplyRule r =
          suspend != nullptr ? Suspend(*pattern, suspend_s, true) : Bounce(*pattern, true);
      return r;
    } catch (const std::regex_error& e) {
      return Error(ctx, *regex, absl::StrCat("reply.regex does not compile: ", e.what()));
    }
  }
  return suspend != nullptr ? Suspend(*pattern, suspend_s) : Bounce(*pattern);
}

}  // namespace

absl::StatusOr<ShapingRules> ParseShapingRules(const toml::node& shaping_array) {
  ShapingRules rules = ShapingRules::Shipped();
  const toml::array* arr = shaping_array.as_array();
  if (arr == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(shaping_array), ": shaping must be an array of tables ([[shaping]])"));
  }
  static constexpr const char* kKnown[] = {"name",
                                           "domains",
                                           "mx_suffixes",
                                           "connections_max",
                                           "messages_per_connection_max",
                                           "messages_per_second",
                                           "messages_burst",
                                           "connections_per_minute",
                                           "tls",
                                           "pipeline_transactions",
                                           "connect_timeout_ms",
                                           "greeting_timeout_ms",
                                           "command_timeout_ms",
                                           "data_init_timeout_ms",
                                           "data_block_timeout_ms",
                                           "data_done_timeout_ms",
                                           "tls_handshake_timeout_ms",
                                           "replace_reply_rules",
                                           "reply"};
  std::vector<std::string> seen_names;
  for (size_t i = 0; i < arr->size(); ++i) {
    ParseContext ctx;
    ctx.index = i;
    const toml::node& node = *arr->get(i);
    const toml::table* t = node.as_table();
    if (t == nullptr) return Error(ctx, node, "must be a table ([[shaping]])");
    const toml::node* name_node = t->get("name");
    if (name_node == nullptr) return Error(ctx, node, "name is required");
    std::optional<std::string> name = name_node->value_exact<std::string>();
    if (!name || name->empty()) return Error(ctx, *name_node, "name must be a non-empty string");
    ctx.name = *name;
    if (std::find(seen_names.begin(), seen_names.end(), *name) != seen_names.end()) {
      return Error(ctx, *name_node, "name is used by an earlier [[shaping]] entry");
    }
    seen_names.push_back(*name);
    for (const auto& [k, v] : *t) {
      bool known = false;
      for (const char* key : kKnown) known = known || k.str() == key;
      if (!known) return Error(ctx, v, absl::StrCat("unknown key ", std::string(k.str())));
    }

    ShapingRuleSpec spec;
    spec.name = *name;
    RETURN_IF_ERROR(ReadNames(ctx, *t, "domains", &spec.domains));
    RETURN_IF_ERROR(ReadNames(ctx, *t, "mx_suffixes", &spec.mx_suffixes));
    const bool is_default = *name == "default";
    if (is_default && (!spec.domains.empty() || !spec.mx_suffixes.empty())) {
      return Error(ctx, node, "the default rule matches everything: no domains or mx_suffixes");
    }
    bool exists = is_default;
    for (const ShapingRuleSpec& s : rules.specs()) exists = exists || s.name == *name;
    if (!exists && spec.domains.empty() && spec.mx_suffixes.empty()) {
      return Error(ctx, node, "a new rule needs domains or mx_suffixes (it would match nothing)");
    }
    RETURN_IF_ERROR(ReadU32(ctx, *t, "connections_max", 1, 10000, &spec.connections_max));
    RETURN_IF_ERROR(ReadU32(ctx, *t, "messages_per_connection_max", 1, 1000000,
                            &spec.messages_per_connection_max));
    RETURN_IF_ERROR(ReadU32(ctx, *t, "messages_per_second", 0, 1000000, &spec.messages_per_second));
    RETURN_IF_ERROR(ReadU32(ctx, *t, "messages_burst", 0, 1000000, &spec.messages_burst));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "connections_per_minute", 0, 1000000, &spec.connections_per_minute));
    constexpr uint32_t kTimeoutMaxMs = 3600000;
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "connect_timeout_ms", 1, kTimeoutMaxMs, &spec.connect_timeout_ms));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "greeting_timeout_ms", 1, kTimeoutMaxMs, &spec.greeting_timeout_ms));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "command_timeout_ms", 1, kTimeoutMaxMs, &spec.command_timeout_ms));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "data_init_timeout_ms", 1, kTimeoutMaxMs, &spec.data_init_timeout_ms));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "data_block_timeout_ms", 1, kTimeoutMaxMs, &spec.data_block_timeout_ms));
    RETURN_IF_ERROR(
        ReadU32(ctx, *t, "data_done_timeout_ms", 1, kTimeoutMaxMs, &spec.data_done_timeout_ms));
    RETURN_IF_ERROR(ReadU32(ctx, *t, "tls_handshake_timeout_ms", 1, kTimeoutMaxMs,
                            &spec.tls_handshake_timeout_ms));
    if (const toml::node* tls = t->get("tls")) {
      std::optional<std::string> s = tls->value_exact<std::string>();
      if (s && *s == "required") {
        spec.tls = TlsPolicy::kRequired;
      } else if (s && *s == "opportunistic") {
        spec.tls = TlsPolicy::kOpportunistic;
      } else if (s && *s == "disabled") {
        spec.tls = TlsPolicy::kDisabled;
      } else {
        return Error(ctx, *tls, "tls must be \"required\", \"opportunistic\" or \"disabled\"");
      }
    }
    if (const toml::node* p = t->get("pipeline_transactions")) {
      std::optional<bool> b = p->value_exact<bool>();
      if (!b) return Error(ctx, *p, "pipeline_transactions must be true or false");
      spec.pipeline_transactions = *b;
    }
    bool replace_reply_rules = false;
    if (const toml::node* r = t->get("replace_reply_rules")) {
      std::optional<bool> b = r->value_exact<bool>();
      if (!b) return Error(ctx, *r, "replace_reply_rules must be true or false");
      replace_reply_rules = *b;
    }
    if (const toml::node* reply = t->get("reply")) {
      const toml::array* replies = reply->as_array();
      if (replies == nullptr) {
        return Error(ctx, *reply, "reply must be an array of tables ([[shaping.reply]])");
      }
      for (const toml::node& item : *replies) {
        ASSIGN_OR_RETURN(ReplyRule rule, ParseReplyRule(ctx, item));
        spec.reply_rules.push_back(std::move(rule));
      }
    }
    rules.Merge(spec, replace_reply_rules);
  }
  return rules;
}

}  // namespace relay::delivery
