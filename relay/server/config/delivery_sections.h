// The delivery engine's sections of relayd.toml: [retry] and [[shaping]], and the shipped shaping
// rules (shipped_shaping.toml, built into the binary and read by the same parser).
#pragma once

#include "absl/status/statusor.h"
#include "relay/delivery/retry.h"
#include "relay/delivery/shaping.h"
#include "relay/server/config/toml_section.h"

namespace relay::server::config {

// [retry], keys (all optional, defaults in delivery::RetryPolicy):
//   intervals_s = [60, 300, 900, 1800, 3600]   # 1 to 604800, non-decreasing
//   jitter_fraction = 0.1                       # 0 <= f < 1
//   delay_warning_s = 0                         # 0 to 31536000
// The last wait repeats until the message is queue.message_age_s_max old (RetryPolicy's
// message_age_s_max is set from there); [retry] refuses that key.
absl::StatusOr<delivery::RetryPolicy> ParseRetry(const Section& retry);

// The [[shaping]] entries of `root` merged over `base` (ShapingRules::Merge). Each entry: name
// (required); domains and/or mx_suffixes (required for a new rule); connections_max,
// messages_per_connection_max, messages_per_second, messages_burst, connections_per_minute,
// tls ("required" | "opportunistic" | "disabled"), pipeline_transactions, connect_timeout_ms,
// greeting_timeout_ms, command_timeout_ms, data_init_timeout_ms, data_block_timeout_ms,
// data_done_timeout_ms, tls_handshake_timeout_ms, replace_reply_rules, and [[shaping.reply]]
// entries with `contains = "..."` or `regex = "..."` and one of `suspend_s = N`,
// `backoff_s = N` (with `backoff_rate`, default 0.5) or `bounce = true`.
absl::StatusOr<delivery::ShapingRules> ParseShaping(const Section& root,
                                                    delivery::ShapingRules base);

// The shipped rules: Google, Yahoo/AOL, Microsoft, Apple and the default rule. Parsed once.
const delivery::ShapingRules& ShippedShapingRules();
// The text they are parsed from (for `relayctl init`'s commented copy).
std::string_view ShippedShapingText();

}  // namespace relay::server::config
