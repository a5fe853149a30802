#include "relay/feedback/bounce_classifier.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace relay::feedback {
namespace {

// The compiled set's memory budget. The shipped rules need well under 1 MiB; past the budget
// RE2 reports it and each pattern is matched on its own (still linear, slower).
constexpr int64_t kSetMemoryBytesMax = 16 << 20;

RE2::Options PatternOptions() {
  RE2::Options options;
  options.set_case_sensitive(false);
  options.set_encoding(RE2::Options::EncodingLatin1);  // replies are bytes, not always UTF-8
  options.set_never_capture(true);
  options.set_log_errors(false);
  options.set_max_mem(kSetMemoryBytesMax);
  return options;
}

// "5.7.26" -> {5, 7, 26}; "*" parts -> -1 when `wildcards`. False when not C.S.D (each part at
// most three digits).
bool ParseEnhanced(std::string_view text, bool wildcards, int parts[3]) {
  size_t pos = 0;
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      if (pos >= text.size() || text[pos] != '.') return false;
      ++pos;
    }
    if (wildcards && pos < text.size() && text[pos] == '*') {
      parts[i] = -1;
      ++pos;
      continue;
    }
    int value = 0, digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && digits < 4) {
      value = value * 10 + (text[pos++] - '0');
      ++digits;
    }
    if (digits == 0 || digits > 3) return false;
    parts[i] = value;
  }
  return pos == text.size() &&
         (parts[0] == -1 || parts[0] == 2 || parts[0] == 4 || parts[0] == 5);
}

}  // namespace

// Every rule's patterns in one RE2::Set, and each on its own for when the set's DFA runs out of
// its memory budget.
class BounceClassifier::PatternSet {
 public:
  PatternSet() : set_(PatternOptions(), RE2::UNANCHORED) {}

  // The index of the pattern; an error message when RE2 refuses it.
  absl::StatusOr<int> Add(const std::string& pattern) {
    std::string error;
    const int index = set_.Add(pattern, &error);
    if (index < 0) return absl::InvalidArgumentError(error);
    singles_.push_back(std::make_unique<RE2>(pattern, PatternOptions()));
    if (!singles_.back()->ok()) return absl::InvalidArgumentError(singles_.back()->error());
    return index;
  }
  bool Compile() { return singles_.empty() || set_.Compile(); }
  size_t size() const { return singles_.size(); }

  // matched[i] = whether pattern i occurs in `text`.
  void Match(std::string_view text, std::vector<bool>* matched) const {
    matched->assign(singles_.size(), false);
    if (singles_.empty()) return;
    std::vector<int> hits;
    RE2::Set::ErrorInfo error{RE2::Set::kNoError};
    const re2::StringPiece piece(text.data(), text.size());
    if (set_.Match(piece, &hits, &error)) {
      for (int i : hits) (*matched)[static_cast<size_t>(i)] = true;
      return;
    }
    if (error.kind == RE2::Set::kNoError) return;  // nothing matched
    for (size_t i = 0; i < singles_.size(); ++i) {
      (*matched)[i] = RE2::PartialMatch(piece, *singles_[i]);
    }
  }

 private:
  RE2::Set set_;
  std::vector<std::unique_ptr<RE2>> singles_;
};

constexpr char kNotEnhanced[] =
    " is not an enhanced status code pattern (class.subject.detail, class 2, 4 or 5, each part a "
    "number or *)";

absl::Status BounceClassifier::CheckEnhanced(std::string_view pattern) {
  int parts[3];
  if (ParseEnhanced(pattern, /*wildcards=*/true, parts)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("\"", std::string(pattern), "\"", kNotEnhanced));
}

absl::Status BounceClassifier::CheckText(const std::string& pattern) {
  RE2 re(pattern, PatternOptions());
  if (re.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("\"", pattern, "\" is not a regular expression: ", re.error()));
}

BounceClassifier::BounceClassifier() : patterns_(std::make_unique<PatternSet>()) {}
BounceClassifier::~BounceClassifier() = default;

absl::StatusOr<std::shared_ptr<const BounceClassifier>> BounceClassifier::Make(
    std::vector<BounceRule> rules, std::shared_ptr<const BounceClassifier> fallback) {
  std::shared_ptr<BounceClassifier> c(new BounceClassifier());
  c->fallback_ = std::move(fallback);
  for (const BounceRule& rule : rules) {
    Compiled compiled;
    for (int code : rule.codes) {
      if (code < 200 || code > 599) {
        return absl::InvalidArgumentError(
            absl::StrCat(rule.name, ".codes: ", code, " is not a reply code (200 to 599)"));
      }
    }
    compiled.codes = rule.codes;
    for (const std::string& e : rule.enhanced) {
      EnhancedPattern p;
      if (!ParseEnhanced(e, /*wildcards=*/true, p.parts)) {
        return absl::InvalidArgumentError(
            absl::StrCat(rule.name, ".enhanced: \"", e, "\"", kNotEnhanced));
      }
      compiled.enhanced.push_back(p);
    }
    compiled.first_pattern = static_cast<int>(c->patterns_->size());
    for (const std::string& t : rule.text) {
      absl::StatusOr<int> index = c->patterns_->Add(t);
      if (!index.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(rule.name, ".text: \"", t,
                                                       "\" is not a regular expression: ",
                                                       index.status().message()));
      }
    }
    compiled.patterns = static_cast<int>(rule.text.size());
    c->compiled_.push_back(std::move(compiled));
  }
  if (!c->patterns_->Compile()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the bounce rules' patterns need more than ", kSetMemoryBytesMax >> 20,
                     " MiB compiled"));
  }
  c->rules_ = std::move(rules);
  return std::shared_ptr<const BounceClassifier>(std::move(c));
}

int BounceClassifier::FirstMatch(const ReplyToClassify& reply) const {
  int enhanced[3];
  const bool has_enhanced = ParseEnhanced(reply.enhanced, /*wildcards=*/false, enhanced);
  std::vector<bool> matched;
  patterns_->Match(reply.text, &matched);
  for (size_t r = 0; r < compiled_.size(); ++r) {
    const Compiled& rule = compiled_[r];
    if (!rule.codes.empty() &&
        std::find(rule.codes.begin(), rule.codes.end(), reply.code) == rule.codes.end()) {
      continue;
    }
    if (!rule.enhanced.empty()) {
      if (!has_enhanced) continue;
      const bool any = std::any_of(rule.enhanced.begin(), rule.enhanced.end(),
                                   [&](const EnhancedPattern& p) {
                                     for (int i = 0; i < 3; ++i) {
                                       if (p.parts[i] >= 0 && p.parts[i] != enhanced[i]) {
                                         return false;
                                       }
                                     }
                                     return true;
                                   });
      if (!any) continue;
    }
    if (rule.patterns > 0) {
      const auto begin = matched.begin() + rule.first_pattern;
      if (std::find(begin, begin + rule.patterns, true) == begin + rule.patterns) continue;
    }
    return static_cast<int>(r);
  }
  return -1;
}

const BounceRule* BounceClassifier::Match(const ReplyToClassify& reply) const {
  const int r = FirstMatch(reply);
  if (r >= 0) return &rules_[static_cast<size_t>(r)];
  return fallback_ != nullptr ? fallback_->Match(reply) : nullptr;
}

BounceCategory BounceClassifier::Classify(const ReplyToClassify& reply) const {
  const BounceRule* rule = Match(reply);
  return rule == nullptr ? BounceCategory::kOther : rule->category;
}

}  // namespace relay::feedback
