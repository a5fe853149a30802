// Fuzz target for _smtp._tls TXT records (relay/tlspolicy/tls_report.h), which whoever controls a
// zone writes. Checks: a record longer than kTlsRptRecordBytesMax is refused; a record taken
// starts with v=TLSRPTv1 (after whitespace) and gives 1 to kTlsRptRuaMax URIs, each a mailto: or
// https: URI of the input without whitespace around it, a comma or a semicolon; an error says
// what is wrong; time and memory linear in the input.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "relay/base/sv.h"
#include "relay/tlspolicy/tls_report.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

void FuzzTlsRptRecord(std::string_view input) {
  // A rua as the record gives it: the address taken from it is safe on an SMTP command line.
  if (std::optional<std::string> address = MailtoAddress(input); address.has_value()) {
    FUZZ_CHECK(!address->empty() && address->size() <= input.size());
    FUZZ_CHECK(address->find_first_of("\r\n <>\\\",") == std::string::npos);
    FUZZ_CHECK(std::count(address->begin(), address->end(), '@') == 1);
  }
  const absl::StatusOr<TlsRptRecord> record = ParseTlsRptRecord(input);
  if (!record.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(record.status()) && !record.status().message().empty());
    return;
  }
  FUZZ_CHECK(input.size() <= kTlsRptRecordBytesMax);
  size_t start = 0;
  while (start < input.size() && IsWsp(input[start])) ++start;
  FUZZ_CHECK(input.substr(start, 10) == "v=TLSRPTv1");
  FUZZ_CHECK(!record->rua.empty() && record->rua.size() <= kTlsRptRuaMax);
  for (const std::string& uri : record->rua) {
    FUZZ_CHECK((uri.size() > 7 && absl::StartsWithIgnoreCase(uri, "mailto:")) ||
               (uri.size() > 6 && absl::StartsWithIgnoreCase(uri, "https:")));
    FUZZ_CHECK(!IsWsp(uri.front()) && !IsWsp(uri.back()));
    FUZZ_CHECK(uri.find_first_of(",;") == std::string::npos);
    FUZZ_CHECK(input.find(uri) != std::string_view::npos);
  }
}

// `unit` repeated between `prefix` and `suffix`, at most `bytes` bytes in all: the parser refuses
// a longer record at once, which would not be timed.
std::string Fill(std::string_view prefix, std::string_view unit, std::string_view suffix,
                 size_t bytes) {
  std::string s(prefix);
  while (s.size() + unit.size() + suffix.size() <= bytes) s.append(unit);
  s.append(suffix);
  return s;
}

std::string ManyFields(size_t bytes) {
  return Fill("v=TLSRPTv1", "; ext=value", "; rua=mailto:a@example.com", bytes);
}

std::string ManyUris(size_t bytes) {
  return Fill("v=TLSRPTv1; rua=", "ftp://x.example/ , ", "mailto:a@example.com", bytes);
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "tlsrpt_record",
      .run = relay::tlspolicy::FuzzTlsRptRecord,
      // The URIs kept (at most kTlsRptRuaMax copies of parts of the input, in a vector that
      // doubles) and an error's text.
      .bounds = {.heap_peak_bytes = {2048, 2},
                 .heap_allocated_bytes = {4096, 2},
                 .allocations = {32, 0}},
      .scaled = {{.name = "many fields",
                  .make = relay::tlspolicy::ManyFields,
                  .bytes_max = relay::tlspolicy::kTlsRptRecordBytesMax},
                 {.name = "many URIs",
                  .make = relay::tlspolicy::ManyUris,
                  .bytes_max = relay::tlspolicy::kTlsRptRecordBytesMax}},
  };
  return target;
}
