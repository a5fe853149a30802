// Fuzz target for the TLS downgrade memory's file (relay/tlspolicy/tls_memory.h), read at start:
// on-disk input that a bad disk or a hand edit may have changed. Checks: every entry read has a
// domain of [a-z0-9.-] only and a day that is not negative; at most the maximum asked for;
// formatting the entries and reading them again gives the same entries; time and memory linear
// in the input.
#include <string>
#include <string_view>

#include "relay/tlspolicy/tls_memory.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

constexpr size_t kMax = 1000;

void FuzzTlsMemoryFile(std::string_view input) {
  const std::vector<TlsMemoryEntry> entries = ParseTlsMemoryFile(input, kMax);
  FUZZ_CHECK(entries.size() <= kMax);
  for (const TlsMemoryEntry& e : entries) {
    FUZZ_CHECK(!e.domain.empty() && e.day >= 0);
    FUZZ_CHECK(e.domain.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") ==
               std::string::npos);
  }
  const std::vector<TlsMemoryEntry> again = ParseTlsMemoryFile(FormatTlsMemoryFile(entries), kMax);
  FUZZ_CHECK(again.size() == entries.size());
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(again[i].domain == entries[i].domain && again[i].day == entries[i].day);
  }
}

std::string ManyLines(size_t bytes) {
  return relay::fuzz::Repeat("# memory\n", "gmail.com\t20430\n", "", bytes);
}

std::string OneLongLine(size_t bytes) { return std::string(bytes, 'a') + "\t20430\n"; }

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "tls_memory_file",
      .run = relay::tlspolicy::FuzzTlsMemoryFile,
      // The entries (at most kMax), the file formatted again and its entries: the shortest line
      // that parses ("a\t1\n", 4 bytes) makes an entry of about 40 bytes, in a vector that
      // doubles.
      .bounds = {.heap_peak_bytes = {8192, 64},
                 .heap_allocated_bytes = {32768, 160},
                 .allocations = {256, 1.0}},
      .scaled = {{.name = "many lines", .make = relay::tlspolicy::ManyLines},
                 {.name = "one long line", .make = relay::tlspolicy::OneLongLine}},
  };
  return target;
}
