// Fuzz target for MTA-STS policy bodies (relay/tlspolicy/mta_sts.h), which any web server that
// answers for mta-sts.<domain> writes. Checks: a policy that parses has a known mode, a max_age
// within the RFC's maximum, at most kStsMxMax lower-case mx patterns (at least one unless mode
// none), and every pattern matches a host made from it; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/tlspolicy/mta_sts.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

void FuzzStsPolicy(std::string_view input) {
  absl::StatusOr<StsPolicy> p = ParseStsPolicy(input);
  if (!p.ok()) return;
  FUZZ_CHECK(p->max_age_s >= 0 && p->max_age_s <= kStsMaxAgeMax);
  FUZZ_CHECK(p->mx.size() <= kStsMxMax);
  FUZZ_CHECK(!p->mx.empty() || p->mode == StsMode::kNone);
  for (const std::string& m : p->mx) {
    FUZZ_CHECK(!m.empty() &&
               m.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ \t\r\n") == std::string::npos);
    const std::string host = m.rfind("*.", 0) == 0 ? "x" + m.substr(1) : m;
    FUZZ_CHECK(StsPatternMatches(m, host));
  }
}

std::string ManyLines(size_t bytes) {
  return relay::fuzz::Repeat("version: STSv1\nmode: enforce\nmax_age: 1\n", "ext: value\n",
                             "mx: a.b\n", bytes);
}

std::string OneLongLine(size_t bytes) {
  return "version: STSv1\nmode: enforce\nmx: " + std::string(bytes, 'a') + "\nmax_age: 1\n";
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "sts_policy",
      .run = relay::tlspolicy::FuzzStsPolicy,
      // At most kStsMxMax patterns of at most 255 bytes whatever the input: a bounded policy.
      .bounds = {.heap_peak_bytes = {32768, 2},
                 .heap_allocated_bytes = {65536, 4},
                 .allocations = {256, 0.1}},
      .scaled = {{.name = "many lines", .make = relay::tlspolicy::ManyLines},
                 {.name = "one long line", .make = relay::tlspolicy::OneLongLine}},
  };
  return target;
}
