// Fuzz target for the reader of the client's fields (relay/server/client_fields.h): any submitting
// client writes the header section it reads. Checks: the message without the fields is shorter
// than the message and is only made when a field was there; read again, it has none of them left
// in its header section; every value is bounded; time and memory linear in the input.
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "relay/server/client_fields.h"
#include "tools/fuzz/fuzz.h"

namespace relay::server {
namespace {

const std::vector<std::string_view> kNames = {"X-Relay-Bulk", "X-Relay-Campaign",
                                              "X-Relay-Priority"};

void FuzzClientFields(std::string_view input) {
  const ClientFields fields = ReadClientFields(input, kNames);
  FUZZ_CHECK(fields.values.size() == kNames.size());
  bool any = false;
  for (const std::optional<std::string>& v : fields.values) {
    any = any || v.has_value();
    FUZZ_CHECK(!v || v->size() <= kClientFieldValueBytesMax);
  }
  FUZZ_CHECK(any == fields.without_fields.has_value());
  if (!fields.without_fields) return;
  const std::string& out = *fields.without_fields;
  FUZZ_CHECK(out.size() < input.size());
  // Read again, the fields are gone (a removed field can join two lines into a new one only by
  // removing bytes, so a second pass finds strictly less).
  const ClientFields again = ReadClientFields(out, kNames);
  FUZZ_CHECK(!again.without_fields.has_value() || again.without_fields->size() < out.size());
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
      .name = "client_fields",
      .run = relay::server::FuzzClientFields,
      // The copy without the marker, read again: two copies of the input and a vector of ranges.
      .bounds = {.heap_peak_bytes = {4096, 8},
                 .heap_allocated_bytes = {16384, 16},
                 .allocations = {64, 0.25}},
      .scaled = {{.name = "many markers", .make = relay::server::ManyMarkers},
                 {.name = "long folded marker", .make = relay::server::LongFoldedMarker}},
  };
  return target;
}
