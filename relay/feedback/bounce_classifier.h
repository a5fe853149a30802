// Puts a category on every failed or deferred recipient from the reply it got: its code, its
// enhanced status code (RFC 3463) and its text. The rules are data (relay/server/config's
// shipped_bounce_rules.toml, built into the binary, with the operator's [[bounces.rule]] entries
// ahead of them: a classifier of its own rules that falls back to the shipped one, so a config's
// few rules do not compile the shipped ones again), tried in order; the first rule that matches
// names the category, and a reply no rule matches is "other".
//
// A rule matches when each condition it gives holds (an empty list is no condition):
//   codes      the reply code is one of these (550, 421);
//   enhanced   the enhanced code matches one of these patterns, each part a number or "*"
//              ("5.1.1", "*.7.26", "4.*.*");
//   text       one of these regular expressions (RE2 syntax, case-insensitive, unanchored)
//              occurs in the reply's text.
//
// Cost: every pattern of every rule is compiled at build time into one RE2::Set, so a reply's
// text is scanned once, in time linear in its length whatever the number of rules (RE2 never
// backtracks: a receiver's reply cannot make it slow). Then the rules are walked in order with
// integer comparisons. A few microseconds per reply (bounce_classifier_bench).
//
// Built once when the configuration is loaded; immutable and thread-safe afterwards (RE2's
// matching is; the shards share one classifier).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/feedback/bounce_category.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace relay::feedback {

struct BounceRule {
  BounceCategory category = BounceCategory::kOther;
  std::vector<int> codes;
  std::vector<std::string> enhanced;
  std::vector<std::string> text;
  // Where the rule comes from, for errors and for `relayctl` explanations: "bounces.rule[3]".
  std::string name;
};

// One reply as the classifier sees it. `code` 0 is a reason made up by the relay (the connection
// failed, DNS); `enhanced` "" when the reply had none.
struct ReplyToClassify {
  int code = 0;
  std::string_view enhanced;
  std::string_view text;
};

class BounceClassifier {
 public:
  // Compiles `rules`; an error names the rule and what is wrong with it (a pattern RE2 refuses,
  // an enhanced pattern that is not C.S.D, a code outside 200-599). A reply none of them matches
  // goes to `fallback` when given.
  static absl::StatusOr<std::shared_ptr<const BounceClassifier>> Make(
      std::vector<BounceRule> rules, std::shared_ptr<const BounceClassifier> fallback = nullptr);
  ~BounceClassifier();
  // What Make says of one item of a rule's `enhanced` or `text`, without the rule's name.
  static absl::Status CheckEnhanced(std::string_view pattern);
  static absl::Status CheckText(const std::string& pattern);

  BounceCategory Classify(const ReplyToClassify& reply) const;
  // The first rule that matches `reply` (this classifier's, then the fallback's); nullptr when
  // none does.
  const BounceRule* Match(const ReplyToClassify& reply) const;
  // This classifier's own rules (not the fallback's).
  const std::vector<BounceRule>& rules() const { return rules_; }
  const BounceClassifier* fallback() const { return fallback_.get(); }

 private:
  struct EnhancedPattern {
    int parts[3];  // -1: any
  };
  struct Compiled {
    std::vector<int> codes;
    std::vector<EnhancedPattern> enhanced;
    int first_pattern = 0;  // the rule's patterns are [first_pattern, first_pattern + patterns)
    int patterns = 0;
  };
  class PatternSet;

  BounceClassifier();
  // The index of the first of this classifier's own rules that matches, -1 when none does.
  int FirstMatch(const ReplyToClassify& reply) const;

  std::vector<BounceRule> rules_;
  std::vector<Compiled> compiled_;
  std::unique_ptr<PatternSet> patterns_;
  std::shared_ptr<const BounceClassifier> fallback_;
};

}  // namespace relay::feedback
