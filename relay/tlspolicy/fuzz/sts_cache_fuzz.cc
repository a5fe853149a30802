// Fuzz target for the MTA-STS cache file (relay/tlspolicy/mta_sts.h), read at start: on-disk
// input that a bad disk or a hand edit may have changed. Checks: every entry read is one the
// relay could have written (a domain, an id of letters and digits, a known mode, max_age within
// the RFC's maximum, mx patterns unless mode none); formatting the entries and reading them again
// gives the same entries; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/tlspolicy/mta_sts.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

constexpr size_t kMax = 1000;

void FuzzStsCache(std::string_view input) {
  const std::vector<StsCacheEntry> entries = ParseStsCacheFile(input, kMax);
  FUZZ_CHECK(entries.size() <= kMax);
  for (const StsCacheEntry& e : entries) {
    FUZZ_CHECK(!e.domain.empty() && !e.id.empty() && e.fetched_unix_s >= 0);
    FUZZ_CHECK(e.policy.max_age_s >= 0 && e.policy.max_age_s <= kStsMaxAgeMax);
    FUZZ_CHECK(!e.policy.mx.empty() || e.policy.mode == StsMode::kNone);
  }
  const std::vector<StsCacheEntry> again = ParseStsCacheFile(FormatStsCacheFile(entries), kMax);
  FUZZ_CHECK(again.size() == entries.size());
  for (size_t i = 0; i < again.size(); ++i) {
    FUZZ_CHECK(again[i].domain == entries[i].domain && again[i].id == entries[i].id &&
               again[i].fetched_unix_s == entries[i].fetched_unix_s &&
               again[i].policy.mode == entries[i].policy.mode &&
               again[i].policy.max_age_s == entries[i].policy.max_age_s &&
               again[i].policy.mx == entries[i].policy.mx);
  }
}

std::string ManyLines(size_t bytes) {
  return relay::fuzz::Repeat("# cache\n",
                             "example.com\t20260101\t1700000000\tenforce\t86400\tmx.example.com\n",
                             "", bytes);
}

std::string OneLongLine(size_t bytes) {
  return "example.com\tid\t1\tenforce\t1\t" + std::string(bytes, 'a') + "\n";
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "sts_cache_file",
      .run = relay::tlspolicy::FuzzStsCache,
      // The entries, the file formatted again and its entries: a short line
      // ("a\t1\t0\tnone\t0\t\n", 14 bytes) makes an entry of about 150 bytes, in a vector that
      // doubles.
      .bounds = {.heap_peak_bytes = {16384, 64},
                 .heap_allocated_bytes = {65536, 200},
                 .allocations = {256, 1.0}},
      .scaled = {{.name = "many lines", .make = relay::tlspolicy::ManyLines},
                 {.name = "one long line", .make = relay::tlspolicy::OneLongLine}},
  };
  return target;
}
