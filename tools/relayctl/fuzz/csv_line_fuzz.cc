// Fuzz target for relayctl suppress import's CSV reader (ParseCsvLine, RFC 4180): the file may
// come from another system. Checks: a record that parses writes back (CsvField) to a line that
// parses to the same fields; the fields hold no more bytes than the line; time and memory are
// linear in the line.
#include <string>
#include <string_view>
#include <vector>

#include "tools/fuzz/fuzz.h"
#include "tools/relayctl/suppress_commands.h"

namespace relay::relayctl {
namespace {

void FuzzCsvLine(std::string_view input) {
  const std::string_view line = input.substr(0, input.find_first_of("\r\n"));
  absl::StatusOr<std::vector<std::string>> fields = ParseCsvLine(line);
  if (!fields.ok()) return;
  size_t bytes = 0;
  std::string again;
  for (const std::string& f : *fields) {
    bytes += f.size();
    if (&f != &fields->front()) again += ',';
    again += CsvField(f);
  }
  FUZZ_CHECK(bytes <= line.size());
  absl::StatusOr<std::vector<std::string>> reread = ParseCsvLine(again);
  FUZZ_CHECK(reread.ok() && *reread == *fields);
}

std::string ManyCommas(size_t bytes) { return std::string(bytes, ','); }
std::string QuotedQuotes(size_t bytes) { return "\"" + std::string(bytes & ~size_t{1}, '"') + "\""; }

}  // namespace
}  // namespace relay::relayctl

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "csv_line",
      .run = relay::relayctl::FuzzCsvLine,
      // The fields (each a string: an empty one per comma), their written form and its fields.
      .bounds = {.heap_peak_bytes = {4096, 200},
                 .heap_allocated_bytes = {16384, 400},
                 .allocations = {64, 8}},
      .scaled = {{.name = "many commas", .make = relay::relayctl::ManyCommas},
                 {.name = "quoted quotes", .make = relay::relayctl::QuotedQuotes}},
  };
  return target;
}
