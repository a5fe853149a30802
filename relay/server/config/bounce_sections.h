// [bounces]: how failures and deferrals are classified (relay/feedback/bounce_classifier.h).
//
//   [bounces]
//   replace_shipped_rules = false   # true: only the rules below, not shipped_bounce_rules.toml
//   [[bounces.rule]]                # tried before the shipped rules, in order
//   category = "spam-block"         # one of relay/feedback/bounce_category.h's names
//   codes = [550]                   # any of these reply codes        } each optional;
//   enhanced = ["5.7.1"]            # any of these (C.S.D, "*" parts)  } all given must hold
//   text = ['blocked by example']   # any of these RE2 patterns       }
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/feedback/bounce_classifier.h"
#include "relay/server/config/toml_section.h"

namespace relay::server::config {

// The [[bounces.rule]] entries of `root` (the document's root), in order; none when absent.
absl::StatusOr<std::vector<feedback::BounceRule>> ParseBounceRules(const Section& root,
                                                                   bool* replace_shipped);

// The classifier for `root`: its rules, falling back to the shipped classifier unless replaced.
absl::StatusOr<std::shared_ptr<const feedback::BounceClassifier>> ParseBounces(const Section& root);

// The shipped rules, parsed once (a broken shipped file fails the config tests).
const std::vector<feedback::BounceRule>& ShippedBounceRules();
// The classifier of the shipped rules alone, built once: what a configuration without [bounces]
// uses.
std::shared_ptr<const feedback::BounceClassifier> ShippedBounceClassifier();
std::string_view ShippedBounceRulesText();

}  // namespace relay::server::config
