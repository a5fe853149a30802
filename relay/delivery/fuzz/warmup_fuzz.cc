// Fuzz target for the warm-up file (relay/delivery/warmup.h), read at start: on-disk input that a
// bad disk or a hand edit may have changed. Checks: every count read is about the day asked for,
// has a source and a site without tab or line end and is not negative; formatting the counts and
// reading them again gives the same counts; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/delivery/warmup.h"
#include "tools/fuzz/fuzz.h"

namespace relay::delivery {
namespace {

constexpr int64_t kDay = 20430;

void FuzzWarmupFile(std::string_view input) {
  const std::vector<WarmupCount> counts = ParseWarmupFile(input, kDay);
  FUZZ_CHECK(counts.size() <= WarmupLedger::kEntriesMax);
  for (const WarmupCount& c : counts) {
    FUZZ_CHECK(!c.source.empty() && !c.site.empty() && c.count >= 0);
    FUZZ_CHECK(c.source.find_first_of("\t\n") == std::string::npos);
    FUZZ_CHECK(c.site.find_first_of("\t\n") == std::string::npos);
  }
  const std::vector<WarmupCount> again = ParseWarmupFile(FormatWarmupFile(kDay, counts), kDay);
  // A name with a carriage return is left out of the file (it would not read back the same).
  size_t writable = 0;
  for (const WarmupCount& c : counts) {
    writable += c.source.find('\r') == std::string::npos && c.site.find('\r') == std::string::npos;
  }
  FUZZ_CHECK(again.size() == writable);
  FUZZ_CHECK(ParseWarmupFile(FormatWarmupFile(kDay + 1, counts), kDay).empty());
}

std::string ManyLines(size_t bytes) {
  return relay::fuzz::Repeat("20430\n", "192.0.2.10\tgmail-smtp-in.l.google.com\t1234\n", "",
                             bytes);
}

std::string OneLongLine(size_t bytes) {
  return "20430\n" + std::string(bytes, 's') + "\tsite\t1\n";
}

}  // namespace
}  // namespace relay::delivery

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "warmup_file",
      .run = relay::delivery::FuzzWarmupFile,
      // The counts, the file formatted again and its counts. The shortest line that parses
      // ("a\tb\t1\n", 6 bytes) makes an entry of about 80 bytes, in a vector that doubles.
      .bounds = {.heap_peak_bytes = {8192, 64},
                 .heap_allocated_bytes = {32768, 160},
                 .allocations = {256, 1.0}},
      .scaled = {{.name = "many lines", .make = relay::delivery::ManyLines},
                 {.name = "one long line", .make = relay::delivery::OneLongLine}},
  };
  return target;
}
