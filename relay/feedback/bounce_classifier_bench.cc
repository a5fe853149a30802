// What classifying one reply costs with the shipped rules: typical replies (one that an early
// rule takes, one that falls through to the code-class rules, one no rule takes) and the longest
// reply a record holds (4 KiB). The aim (issue 15): a few microseconds per reply.
//
//   bazel run -c opt //relay/feedback:bounce_classifier_bench
#include <string>

#include "benchmark/benchmark.h"
#include "relay/feedback/bounce_classifier.h"
#include "relay/server/config/bounce_sections.h"

namespace relay::feedback {
namespace {

void Classify(benchmark::State& state, int code, const char* enhanced, std::string text) {
  const auto classifier = server::config::ShippedBounceClassifier();
  const ReplyToClassify reply{code, enhanced, text};
  for (auto _ : state) benchmark::DoNotOptimize(classifier->Classify(reply));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["rules"] = static_cast<double>(classifier->rules().size());
}

BENCHMARK_CAPTURE(Classify, gmail_no_such_user, 550, "5.1.1",
                  "The email account that you tried to reach does not exist. Please try "
                  "double-checking the recipient's email address for typos or unnecessary spaces. "
                  "https://support.google.com/mail/?p=NoSuchUser");
BENCHMARK_CAPTURE(Classify, microsoft_s3150, 550, "5.7.1",
                  "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
                  "Internet service provider since part of their network is on our block list "
                  "(S3150).");
BENCHMARK_CAPTURE(Classify, code_class_only, 503, "", "Bad sequence of commands");
BENCHMARK_CAPTURE(Classify, no_rule, 550, "", "Administrative prohibition");
BENCHMARK_CAPTURE(Classify, reply_4kib, 550, "5.0.0", std::string(4096, 'x'));

}  // namespace
}  // namespace relay::feedback
