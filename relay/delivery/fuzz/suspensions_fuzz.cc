// Fuzz target for the suspensions file (relay/delivery/suspensions.h), read at start: on-disk
// input that a bad disk or a hand edit may have changed. Checks: every entry read has a key with
// a '|' or a ':', a reason without tab or line end, a backoff only on a backoff key and a pool
// only on a rebind key; formatting the entries and reading them again gives
// the same entries; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/delivery/suspensions.h"
#include "tools/fuzz/fuzz.h"

namespace relay::delivery {
namespace {

void FuzzSuspensionsFile(std::string_view input) {
  const std::vector<Suspension> entries = ParseSuspensionsFile(input);
  FUZZ_CHECK(entries.size() <= Suspensions::kEntriesMax);
  for (const Suspension& s : entries) {
    FUZZ_CHECK(s.key.find_first_of("|:") != std::string::npos);
    FUZZ_CHECK((s.key.rfind(kBackoffPrefix, 0) == 0) == (s.backoff > 0 && s.backoff < 1));
    FUZZ_CHECK((s.key.rfind(kRebindPrefix, 0) == 0) == !s.pool.empty());
    FUZZ_CHECK(s.reason.find_first_of("\t\r\n") == std::string::npos);
    FUZZ_CHECK(s.reason.size() <= Suspensions::kReasonBytesMax);
  }
  const std::vector<Suspension> again = ParseSuspensionsFile(FormatSuspensionsFile(entries));
  FUZZ_CHECK(again.size() == entries.size());
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(again[i].key == entries[i].key &&
               again[i].until_unix_ms == entries[i].until_unix_ms &&
               again[i].shard == entries[i].shard && again[i].reason == entries[i].reason &&
               again[i].backoff == entries[i].backoff && again[i].pool == entries[i].pool);
  }
}

std::string ManyLines(size_t bytes) {
  return relay::fuzz::Repeat("", "0|google\t1893456000000\t1\t421 4.7.28 unusual rate\n", "",
                             bytes);
}

std::string OneLongLine(size_t bytes) { return "0|" + std::string(bytes, 's') + "\t1\t1\tx\n"; }

}  // namespace
}  // namespace relay::delivery

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "suspensions_file",
      .run = relay::delivery::FuzzSuspensionsFile,
      // The entries, the file formatted again and its entries. The shortest line that parses
      // ("|\t1\t1\t\n", 8 bytes) makes an entry of about 80 bytes, in a vector that doubles:
      // tens of bytes per input byte at worst, still in proportion.
      .bounds = {.heap_peak_bytes = {8192, 48},
                 .heap_allocated_bytes = {32768, 128},
                 .allocations = {256, 0.75}},
      .scaled = {{.name = "many lines", .make = relay::delivery::ManyLines},
                 {.name = "one long line", .make = relay::delivery::OneLongLine}},
  };
  return target;
}
