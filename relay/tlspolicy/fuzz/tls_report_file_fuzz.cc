// Fuzz target for the TLS report counts' file (relay/tlspolicy/tls_report.h), read at start:
// on-disk input that a bad disk or a hand edit may have changed. Checks: an error names its line;
// what was loaded, formatted and loaded into a fresh ledger loads without error and formats the
// same; the ledger keeps within its limits (domains per window, failure details and policy lines
// per domain), with windows aligned and domains not empty; time and memory linear in the input.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "relay/tlspolicy/tls_report.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

constexpr TlsReportLimits kLimits{
    .domains_max = 32, .failure_details_max = 8, .policy_strings_max = 8};
constexpr int64_t kWindowS = 3600;

void FuzzTlsReportFile(std::string_view input) {
  TlsReportLedger ledger(kLimits, kWindowS);
  const absl::Status loaded = ledger.Load(input);
  if (!loaded.ok()) {
    FUZZ_CHECK_MSG(loaded.message().substr(0, 5) == "line ", std::string(loaded.message()));
  }
  const std::string file = ledger.Format();
  TlsReportLedger again(kLimits, kWindowS);
  const absl::Status reloaded = again.Load(file);
  FUZZ_CHECK_MSG(reloaded.ok(), std::string(reloaded.message()));
  FUZZ_CHECK(again.Format() == file);
  FUZZ_CHECK(again.domains() == ledger.domains() && again.domains() <= kLimits.domains_max);

  const std::vector<DomainReport> all = again.TakeDue(std::numeric_limits<int64_t>::max());
  size_t in_window = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const DomainReport& r = all[i];
    FUZZ_CHECK(!r.policy_domain.empty());
    FUZZ_CHECK(r.window_start_unix_s >= 0 && r.window_start_unix_s % kWindowS == 0 &&
               r.window_end_unix_s == r.window_start_unix_s + kWindowS);
    FUZZ_CHECK(r.details.size() <= kLimits.failure_details_max &&
               r.policy_strings.size() <= kLimits.policy_strings_max &&
               r.mx_hosts.size() <= kLimits.policy_strings_max);
    // Sorted by (window, domain), every (window, domain) once.
    const bool same_window = i > 0 && all[i - 1].window_start_unix_s == r.window_start_unix_s;
    FUZZ_CHECK(i == 0 || all[i - 1].window_start_unix_s < r.window_start_unix_s ||
               (same_window && all[i - 1].policy_domain < r.policy_domain));
    in_window = same_window ? in_window + 1 : 1;
    FUZZ_CHECK(in_window <= kLimits.domains_max);
  }
  FUZZ_CHECK(again.domains() == 0 && again.TakeDue(0).empty());
}

std::string SameDomain(size_t bytes) {
  return relay::fuzz::Repeat("# counts\n",
                             "D\t86400\texample.com\tsts\t1\t2\nP\tmode: enforce\nM\tmx.example\n"
                             "F\tcertificate-expired\t192.0.2.1\tmx.example.com\t\t\t1\n",
                             "", bytes);
}

// A new window on every line: every line an entry, as short as one can be, up to the end.
std::string ManyWindows(size_t bytes) {
  std::string s;
  for (int64_t i = 1; s.size() < bytes; ++i) {
    absl::StrAppend(&s, "D\t", i * kWindowS, "\ta\tsts\t0\t0\n");
  }
  return s;
}

// Distinct failure details past the limit: each compared with the ones kept.
std::string ManyDetails(size_t bytes) {
  std::string s = "D\t0\texample.com\tsts\t1\t1\n";
  for (int64_t i = 0; s.size() < bytes; ++i) {
    absl::StrAppend(&s, "F\tvalidation-failure\t10.0.0.", i, "\tmx\t\t\t1\n");
  }
  return s;
}

std::string OneLongLine(size_t bytes) {
  return relay::fuzz::Repeat("D\t0\t", "a\\t\\n\\\\", "\tsts\t1\t1\n", bytes);
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "tls_report_file",
      .run = relay::tlspolicy::FuzzTlsReportFile,
      // Two ledgers, the file formatted twice and the reports taken out: a D line of a new
      // window ("D\t3600\ta\tsts\t0\t0\n", 18 bytes; a window needs 4 digits or more) makes
      // an entry of about 200 bytes with its key and the window's count, in maps that double.
      .bounds = {.heap_peak_bytes = {16384, 120},
                 .heap_allocated_bytes = {65536, 240},
                 .allocations = {256, 0.5}},
      .scaled = {{.name = "one domain", .make = relay::tlspolicy::SameDomain},
                 {.name = "many windows", .make = relay::tlspolicy::ManyWindows},
                 {.name = "many details", .make = relay::tlspolicy::ManyDetails},
                 {.name = "one long line", .make = relay::tlspolicy::OneLongLine}},
  };
  return target;
}
