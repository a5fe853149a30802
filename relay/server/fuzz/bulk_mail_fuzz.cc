// Fuzz target for the bulk marker reader (relay/server/bulk_mail.h): any submitting client writes
// the header section it reads. Checks: the message without the marker is never longer than the
// message, holds no marker field start of its own header section, and is only made when a
// marker was there; time and memory linear in the input.
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "relay/server/bulk_mail.h"
#include "tools/fuzz/fuzz.h"

namespace relay::server {
namespace {

void FuzzBulkMarks(std::string_view input) {
  const BulkMarks marks = ReadBulkMarks(input, "X-Relay-Bulk");
  if (!marks.without_marker) {
    FUZZ_CHECK(!marks.marked);
    return;
  }
  const std::string& out = *marks.without_marker;
  FUZZ_CHECK(out.size() < input.size());
  // Read again, the marker is gone.
  const BulkMarks again = ReadBulkMarks(out, "X-Relay-Bulk");
  FUZZ_CHECK(!again.without_marker.has_value() || again.without_marker->size() < out.size());
}

std::string ManyMarkers(size_t bytes) {
  return relay::fuzz::Repeat("", "X-Relay-Bulk: yes\r\n", "\r\nbody\r\n", bytes);
}

std::string LongFoldedMarker(size_t bytes) {
  return relay::fuzz::Repeat("X-Relay-Bulk:", "\r\n no", "\r\n\r\nbody\r\n", bytes);
}

}  // namespace
}  // namespace relay::server

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "bulk_mail",
      .run = relay::server::FuzzBulkMarks,
      // The copy without the marker, read again: two copies of the input and a vector of ranges.
      .bounds = {.heap_peak_bytes = {4096, 8},
                 .heap_allocated_bytes = {16384, 16},
                 .allocations = {64, 0.25}},
      .scaled = {{.name = "many markers", .make = relay::server::ManyMarkers},
                 {.name = "long folded marker", .make = relay::server::LongFoldedMarker}},
  };
  return target;
}
