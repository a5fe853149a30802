// Shaping rules: how fast, how wide and how securely the relay may deliver to one receiving site
// from one egress source. Receivers count per source address (Gmail, Yahoo and Microsoft all rate
// limit per IP), so every limit here applies to one (egress source, site) pair.
//
// A rule matches a recipient domain exactly ("example.com") or a suffix of an MX host name (a
// provider: ".google.com" matches "aspmx.l.google.com"). Resolution of (recipient domain, MX
// hosts) layers rules over the default: default <- the first provider rule matched by an MX host
// (hosts in preference order) <- the rule that names the domain. A rule sets only the fields it
// names; the others come from the layer below. Reply rules are checked most specific first.
//
// Contract: ShapingRules is built once at config load (regexes are compiled there, never on the
// delivery path), then immutable and shared read-only by all shards. Resolve() allocates (it
// copies the effective rule) and is meant for the creation of a ready queue, not per message.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace relay::delivery {

// STARTTLS policy towards a site (RFC 3207; "opportunistic" is RFC 7435's opportunistic security).
enum class TlsPolicy {
  kDisabled,       // never STARTTLS (for receivers whose TLS is known broken)
  kOpportunistic,  // STARTTLS when offered; plaintext when not offered or when it fails
  kRequired,       // no STARTTLS or a failed handshake is a transient failure, never plaintext
};
std::string_view TlsPolicyName(TlsPolicy policy);

// Client timeouts, RFC 5321 §4.5.3.2 minimums by default.
struct DeliveryTimeouts {
  uint32_t connect_ms = 60000;
  uint32_t greeting_ms = 300000;    // §4.5.3.2.1: 5 minutes
  uint32_t command_ms = 300000;     // EHLO, MAIL (§4.5.3.2.2), RCPT (§4.5.3.2.3): 5 minutes
  uint32_t data_init_ms = 120000;   // §4.5.3.2.4: 2 minutes for the 354
  uint32_t data_block_ms = 180000;  // §4.5.3.2.5: 3 minutes per block sent
  uint32_t data_done_ms = 600000;   // §4.5.3.2.6: 10 minutes for the reply to "."
  uint32_t tls_handshake_ms = 60000;
};

enum class ReplyAction {
  kSuspend,  // suspend the (source, site) pair for suspend_s and defer its messages (transient,
             // even when the reply was 5xx: it is about the source, not the recipient)
  kBounce,   // the text is known to be permanent even when the code is 4xx: bounce now
  kBackoff,  // slow the (source, site) pair down for backoff_s: its rate and connections scaled
             // by backoff_rate (PowerMTA's backoff mode); the reply itself counts as it is
};

struct ReplyRule {
  std::string pattern;                      // as written in the config
  bool is_regex = false;                    // else a substring
  std::shared_ptr<const std::regex> regex;  // compiled once at load, when is_regex
  ReplyAction action = ReplyAction::kSuspend;
  uint32_t suspend_s = 0;   // kSuspend
  uint32_t backoff_s = 0;   // kBackoff
  double backoff_rate = 0;  // kBackoff: 0 < rate < 1

  // A rule for `pattern` (a substring, or an ECMAScript regex when `is_regex`), compiled here;
  // a regex that does not compile is an error naming the problem. `seconds`: the suspension's or
  // the backoff's.
  static absl::StatusOr<ReplyRule> Make(std::string pattern, bool is_regex, ReplyAction action,
                                        uint32_t seconds, double backoff_rate = 0);

  // Matching is case-insensitive, against the reply as one line: "421 4.7.28 text" (the text of
  // a multi-line reply joined with spaces by the caller).
  bool Matches(int code, std::string_view enhanced, std::string_view text) const;
};

// The effective limits for one (egress source, site) pair.
struct ShapingRule {
  std::string name;                            // "default", "google", "example.com+google", ...
  uint32_t connections_max = 10;               // open connections at once
  uint32_t messages_per_connection_max = 100;  // then QUIT and reconnect
  uint32_t messages_per_second = 0;            // token bucket rate; 0: no rate limit
  uint32_t messages_burst = 0;                 // bucket size; 0: same as messages_per_second
  uint32_t connections_per_minute = 0;         // new connections; 0: no limit
  // The rule's own connections_max, messages_per_second and messages_burst before
  // SplitAcrossShards took a shard's share: what a fleet shares (relay/delivery/shared_limits.h).
  uint32_t whole_connections_max = 10;
  uint32_t whole_messages_per_second = 0;
  uint32_t whole_messages_burst = 0;
  TlsPolicy tls = TlsPolicy::kOpportunistic;
  // With PIPELINING, send the next message's MAIL/RCPT/DATA right after a body's "." instead of
  // after its final reply (RFC 2920 §3.1); false for a server that mishandles that.
  bool pipeline_transactions = true;
  DeliveryTimeouts timeouts;
  std::vector<ReplyRule> reply_rules;  // first match wins

  // The first reply rule that matches, or nullptr.
  const ReplyRule* MatchReply(int code, std::string_view enhanced, std::string_view text) const;
};

// A rule as written (shipped or in the config): what it matches and the fields it sets.
struct ShapingRuleSpec {
  std::string name;
  std::vector<std::string> domains;      // lower case, exact match
  std::vector<std::string> mx_suffixes;  // lower case; ".google.com" or "google.com"
  std::optional<uint32_t> connections_max;
  std::optional<uint32_t> messages_per_connection_max;
  std::optional<uint32_t> messages_per_second;
  std::optional<uint32_t> messages_burst;
  std::optional<uint32_t> connections_per_minute;
  std::optional<TlsPolicy> tls;
  std::optional<bool> pipeline_transactions;
  std::optional<uint32_t> connect_timeout_ms;
  std::optional<uint32_t> greeting_timeout_ms;
  std::optional<uint32_t> command_timeout_ms;
  std::optional<uint32_t> data_init_timeout_ms;
  std::optional<uint32_t> data_block_timeout_ms;
  std::optional<uint32_t> data_done_timeout_ms;
  std::optional<uint32_t> tls_handshake_timeout_ms;
  std::vector<ReplyRule> reply_rules;

  // Sets on `rule` the fields this spec names; its reply rules go before the rule's own.
  void ApplyTo(ShapingRule& rule) const;
};

// The rules of every site. Built empty (the default rule of ShapingRule's defaults) and filled
// by Merge; the shipped rules and the config's are data, read by //relay/server/config.
class ShapingRules {
 public:
  ShapingRules() { default_.name = "default"; }

  // The effective rule for mail to `domain` whose MX hosts (preference order) are `mx_hosts`.
  // Names are compared case-insensitively, a trailing dot ignored.
  ShapingRule Resolve(std::string_view domain, const std::vector<std::string>& mx_hosts) const;

  // Adds `spec`, or merges it into the rule of the same name ("default" is the default rule):
  // fields it sets win, its domains and mx_suffixes each replace the old list when given, its reply
  // rules go first (or replace the old ones when `replace_reply_rules`).
  void Merge(const ShapingRuleSpec& spec, bool replace_reply_rules = false);

  const ShapingRule& default_rule() const { return default_; }
  const std::vector<ShapingRuleSpec>& specs() const { return specs_; }

 private:
  ShapingRule default_;
  std::vector<ShapingRuleSpec> specs_;  // named rules other than the default, in order
  absl::flat_hash_map<std::string, size_t> index_;  // name -> position in specs_
};

// A host or domain name as rules compare it: lower case, without a trailing dot.
std::string NormalizeHostName(std::string_view name);

// The share of `rule` for one of `shards` shards: connections_max, messages_per_second,
// messages_burst and connections_per_minute divided by the shard count, rounded up and at least 1
// (0, meaning unlimited, stays 0), so a shard never asks another before it sends.
ShapingRule SplitAcrossShards(const ShapingRule& rule, uint32_t shards);

}  // namespace relay::delivery
