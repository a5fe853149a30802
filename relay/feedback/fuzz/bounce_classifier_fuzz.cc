// Fuzz target for the bounce classifier (relay/feedback/bounce_classifier.h) with the shipped
// rules: any MX can send any reply. The input is the reply code (decimal), 0x1f, the enhanced
// code, 0x1f, the reply text. Checks:
//   - the category is one of the named ones, and is the category of the rule Match names
//     ("other" when none);
//   - time and memory linear in the reply (RE2 never backtracks; its DFA's cache is bounded by
//     the classifier's memory budget, allocated once by `init`'s warm-up for the common states).
#include <string>
#include <string_view>

#include "relay/feedback/bounce_classifier.h"
#include "relay/server/config/bounce_sections.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

const BounceClassifier* classifier = nullptr;

void Init() {
  static const auto shared = server::config::ShippedBounceClassifier();
  classifier = shared.get();
  // Warm the DFA's cache with the common states, so that the measured inputs see its steady
  // state rather than its first allocations.
  for (const char* text : {"user unknown", "spam", "[TSS04] temporarily deferred", "x"}) {
    classifier->Classify({550, "5.1.1", text});
  }
}

void FuzzClassify(std::string_view input) {
  const size_t a = input.find('\x1f');
  const size_t b = a == std::string_view::npos ? a : input.find('\x1f', a + 1);
  int code = 0;
  const std::string_view code_text = input.substr(0, a);
  for (char c : code_text.substr(0, 3)) {
    if (c < '0' || c > '9') break;
    code = code * 10 + (c - '0');
  }
  const std::string_view enhanced =
      a == std::string_view::npos ? std::string_view() : input.substr(a + 1, b - a - 1);
  const std::string_view text = b == std::string_view::npos ? input : input.substr(b + 1);
  const ReplyToClassify reply{code, enhanced, text};
  const BounceCategory category = classifier->Classify(reply);
  FUZZ_CHECK(static_cast<int>(category) >= 0 &&
             static_cast<int>(category) < kBounceCategoryCount);
  const BounceRule* rule = classifier->Match(reply);
  FUZZ_CHECK(rule == nullptr || (rule >= classifier->rules().data() &&
                                 rule < classifier->rules().data() + classifier->rules().size()));
  FUZZ_CHECK(category == (rule == nullptr ? BounceCategory::kOther : rule->category));
}

// Words that start many patterns and complete none, so that the scan keeps many states alive.
std::string NearMisses(size_t bytes) {
  std::string s = "550\x1f" "5.1.1\x1f";
  const char* words[] = {"user unknow ", "mailbox is ", "spamhau ", "[TSS0 ", "rate limi ",
                         "account has been ", "too many ", "does not ", "blocked ", "over quot "};
  for (size_t i = 0; s.size() < bytes; ++i) s += words[i % 10];
  return s;
}

std::string OneLongWord(size_t bytes) { return "421\x1f" "4.7.0\x1f" + std::string(bytes, 'a'); }

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "bounce_classifier",
      .run = relay::feedback::FuzzClassify,
      // The matched-pattern flags (one bit per pattern) and RE2's per-match scratch; the DFA's
      // cache, when a new text reaches states the warm-up did not, grows within the budget.
      .bounds = {.heap_peak_bytes = {1 << 20, 64},
                 .heap_allocated_bytes = {4 << 20, 256},
                 .allocations = {4096, 4}},
      .init = relay::feedback::Init,
      .scaled = {{.name = "near misses", .make = relay::feedback::NearMisses},
                 {.name = "one long word", .make = relay::feedback::OneLongWord}},
  };
  return target;
}
