#include "relay/server/config/bounce_sections.h"

#include <cstdio>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "relay/base/check.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

constexpr char kShippedBounceRules[] =
#include "relay/server/config/shipped_bounce_rules.inc"
    ;

absl::StatusOr<feedback::BounceRule> ParseRule(const Section& t) {
  RETURN_IF_ERROR(t.Known({"category", "codes", "enhanced", "text"}));
  feedback::BounceRule rule;
  rule.name = t.name();
  std::string category;
  if (!t.Has("category")) return t.Error("category", "is required");
  RETURN_IF_ERROR(t.NonEmptyString("category", &category));
  std::optional<feedback::BounceCategory> named = feedback::CategoryNamed(category);
  if (!named) {
    std::string names;
    for (int i = 0; i < feedback::kBounceCategoryCount; ++i) {
      absl::StrAppend(&names, i == 0 ? "" : ", ",
                      std::string(feedback::CategoryName(static_cast<feedback::BounceCategory>(i))));
    }
    return t.Error("category", absl::StrCat("\"", category, "\" is not a category (", names, ")"));
  }
  rule.category = *named;
  if (t.Has("codes")) {
    std::vector<int64_t> codes;
    RETURN_IF_ERROR(t.IntList("codes", &codes, 200, 599, /*non_decreasing=*/false));
    rule.codes.assign(codes.begin(), codes.end());
  }
  RETURN_IF_ERROR(t.StringList("enhanced", &rule.enhanced));
  RETURN_IF_ERROR(t.StringList("text", &rule.text));
  for (size_t i = 0; i < rule.enhanced.size(); ++i) {
    absl::Status s = feedback::BounceClassifier::CheckEnhanced(rule.enhanced[i]);
    if (!s.ok()) return t.ItemError("enhanced", i, std::string(s.message()));
  }
  for (size_t i = 0; i < rule.text.size(); ++i) {
    absl::Status s = feedback::BounceClassifier::CheckText(rule.text[i]);
    if (!s.ok()) return t.ItemError("text", i, std::string(s.message()));
  }
  return rule;
}

absl::StatusOr<std::vector<feedback::BounceRule>> ParseShipped() {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(kShippedBounceRules, "shipped_bounce_rules.toml"));
  bool replace = false;
  return ParseBounceRules(Section("shipped_bounce_rules.toml", "", doc), &replace);
}

}  // namespace

absl::StatusOr<std::vector<feedback::BounceRule>> ParseBounceRules(const Section& root,
                                                                   bool* replace_shipped) {
  std::vector<feedback::BounceRule> rules;
  ASSIGN_OR_RETURN(std::optional<Section> bounces, root.Table("bounces"));
  if (!bounces) return rules;
  RETURN_IF_ERROR(bounces->Known({"replace_shipped_rules", "rule"}));
  RETURN_IF_ERROR(bounces->Bool("replace_shipped_rules", replace_shipped));
  ASSIGN_OR_RETURN(std::vector<Section> entries, bounces->Tables("rule"));
  for (const Section& entry : entries) {
    ASSIGN_OR_RETURN(feedback::BounceRule rule, ParseRule(entry));
    rules.push_back(std::move(rule));
  }
  return rules;
}

absl::StatusOr<std::shared_ptr<const feedback::BounceClassifier>> ParseBounces(const Section& root) {
  bool replace = false;
  ASSIGN_OR_RETURN(std::vector<feedback::BounceRule> rules, ParseBounceRules(root, &replace));
  if (rules.empty() && !replace) return ShippedBounceClassifier();
  absl::StatusOr<std::shared_ptr<const feedback::BounceClassifier>> classifier =
      feedback::BounceClassifier::Make(std::move(rules),
                                       replace ? nullptr : ShippedBounceClassifier());
  if (!classifier.ok()) return root.Error("bounces", std::string(classifier.status().message()));
  return classifier;
}

const std::vector<feedback::BounceRule>& ShippedBounceRules() {
  static const std::vector<feedback::BounceRule>* const rules = [] {
    absl::StatusOr<std::vector<feedback::BounceRule>> parsed = ParseShipped();
    if (!parsed.ok()) std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
    CHECK(parsed.ok());
    return new std::vector<feedback::BounceRule>(std::move(*parsed));
  }();
  return *rules;
}

std::shared_ptr<const feedback::BounceClassifier> ShippedBounceClassifier() {
  static const auto* const classifier = [] {
    auto made = feedback::BounceClassifier::Make(ShippedBounceRules());
    if (!made.ok()) std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    CHECK(made.ok());
    return new std::shared_ptr<const feedback::BounceClassifier>(std::move(*made));
  }();
  return *classifier;
}

std::string_view ShippedBounceRulesText() { return kShippedBounceRules; }

}  // namespace relay::server::config
