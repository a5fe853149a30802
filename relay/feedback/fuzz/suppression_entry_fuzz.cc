// Fuzz target for the suppression list's value reader (DecodeEntry): the LMDB file is on-disk
// input that a bad disk or another program may have changed. The input is the key, 0x1e, the
// value. Checks: an entry read back encodes to a value that reads back the same (the fields
// survive a round trip), and time and memory are linear in the input.
#include <string>
#include <string_view>

#include "relay/feedback/suppression_list.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

void FuzzDecode(std::string_view input) {
  const size_t sep = input.find('\x1e');
  const std::string_view key = input.substr(0, sep);
  const std::string_view value = sep == std::string_view::npos ? "" : input.substr(sep + 1);
  absl::StatusOr<SuppressionEntry> e = DecodeEntry(key, value);
  if (!e.ok()) {
    FUZZ_CHECK(e.status().code() == absl::StatusCode::kDataLoss);
    return;
  }
  FUZZ_CHECK(!e->tenant.empty() && !e->address.empty());
  FUZZ_CHECK(e->detail.size() <= kDetailBytesMax);
  absl::StatusOr<SuppressionEntry> again = DecodeEntry(key, EncodeEntryValue(*e));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->reason == e->reason && again->time_unix_ms == e->time_unix_ms);
}

std::string LongDetail(size_t bytes) {
  return std::string("t\0a@b\x1ev1\tmanual\t\t5\t\t", 20) + std::string(bytes, 'd');
}

std::string LongKey(size_t bytes) {
  return std::string(bytes, 'k') + std::string("\0a@b\x1ev1\tmanual\t\t5\t\t", 18);
}

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "suppression_entry",
      .run = relay::feedback::FuzzDecode,
      // The entry's strings (a copy of the key and of at most 512 bytes of detail) and the
      // re-encoded value: a few copies of the input.
      .bounds = {.heap_peak_bytes = {4096, 8},
                 .heap_allocated_bytes = {16384, 16},
                 .allocations = {64, 0}},
      .scaled = {{.name = "long detail", .make = relay::feedback::LongDetail},
                 {.name = "long key", .make = relay::feedback::LongKey}},
  };
  return target;
}
