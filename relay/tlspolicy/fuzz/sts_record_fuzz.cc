// Fuzz target for _mta-sts TXT answers (relay/tlspolicy/mta_sts.h), which whoever controls a zone
// writes: the input's lines are the records. Checks: an id found is 1 to 32 letters and digits
// and comes from exactly one record starting "v=STSv1" and a delimiter; no record starting so is
// NotFound; time
// and memory linear in the input.
#include <string>
#include <string_view>
#include <vector>

#include "relay/tlspolicy/mta_sts.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

void FuzzStsRecord(std::string_view input) {
  std::vector<std::string> records;
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t eol = input.find('\n', pos);
    if (eol == std::string_view::npos) eol = input.size();
    records.emplace_back(input.substr(pos, eol - pos));
    pos = eol + 1;
  }
  size_t starting = 0;
  for (const std::string& r : records) {
    // "v=STSv1" then the record's end or a field delimiter ("v=STSv10" is another version).
    starting +=
        r.rfind("v=STSv1", 0) == 0 && (r.size() == 7 || r[7] == ';' || r[7] == ' ' || r[7] == '\t');
  }
  absl::StatusOr<std::string> id = ParseStsRecord(records);
  if (starting == 0) FUZZ_CHECK(absl::IsNotFound(id.status()));
  if (!id.ok()) return;
  FUZZ_CHECK(starting == 1);
  FUZZ_CHECK(!id->empty() && id->size() <= 32);
  FUZZ_CHECK(
      id->find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") ==
      std::string::npos);
}

std::string ManyFields(size_t bytes) {
  return relay::fuzz::Repeat("v=STSv1", "; ext=value", "; id=1", bytes);
}

std::string ManyRecords(size_t bytes) {
  return relay::fuzz::Repeat("v=STSv1; id=1\n", "v=spf1 -all\n", "", bytes);
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "sts_record",
      .run = relay::tlspolicy::FuzzStsRecord,
      // The harness's records (a std::string of 32 bytes for each line, down to one byte a
      // line, in a vector that doubles), and the field split of the one record.
      .bounds = {.heap_peak_bytes = {8192, 80},
                 .heap_allocated_bytes = {16384, 160},
                 .allocations = {64, 1.0}},
      .scaled = {{.name = "many fields", .make = relay::tlspolicy::ManyFields},
                 {.name = "many records", .make = relay::tlspolicy::ManyRecords}},
  };
  return target;
}
