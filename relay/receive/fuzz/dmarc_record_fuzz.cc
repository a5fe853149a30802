// Fuzz target for the DMARC policy record (relay/receive/dmarc_record.h): the TXT text at
// _dmarc.<domain>, which any DNS server can write. The input is the record. Checks:
//   - only a text that IsDmarcRecord accepts, within kDmarcRecordBytesMax, parses;
//   - what parses is in range: pct in [0, 100], policies with names;
//   - a refusal says why (names a tag or the limit).
#include <string>
#include <string_view>

#include "relay/receive/dmarc_record.h"
#include "tools/fuzz/fuzz.h"

namespace relay::receive {
namespace {

void FuzzDmarcRecord(std::string_view text) {
  const bool is_record = IsDmarcRecord(text);
  absl::StatusOr<DmarcRecord> r = ParseDmarcRecord(text);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    return;
  }
  FUZZ_CHECK(is_record && text.size() <= kDmarcRecordBytesMax);
  FUZZ_CHECK(r->pct >= 0 && r->pct <= 100);
  FUZZ_CHECK(DmarcPolicyName(r->p)[0] != '\0');
  if (r->sp) FUZZ_CHECK(DmarcPolicyName(*r->sp)[0] != '\0');
}

// Many tags the parser does not know, up to the record limit and past it.
std::string ManyTags(size_t bytes) {
  return relay::fuzz::Repeat("v=DMARC1; p=reject", "; x=y", "", bytes);
}

// One long report URI list.
std::string LongRua(size_t bytes) {
  return relay::fuzz::Repeat("v=DMARC1; p=none; rua=", "mailto:a@example.com,", "mailto:b@b.example",
                             bytes);
}

}  // namespace
}  // namespace relay::receive

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "dmarc_record",
      .run = relay::receive::FuzzDmarcRecord,
      // The parser keeps a handful of fields and allocates nothing on success; a refusal's
      // message names a tag (a few strings, a copy of the tag at most).
      .bounds = {.heap_peak_bytes = {2 << 10, 1},
                 .heap_allocated_bytes = {8 << 10, 2},
                 .allocations = {64, 0}},
      .scaled = {{.name = "many unknown tags",
                  .make = relay::receive::ManyTags,
                  .bytes_max = relay::receive::kDmarcRecordBytesMax},
                 {.name = "long rua", .make = relay::receive::LongRua,
                  .bytes_max = relay::receive::kDmarcRecordBytesMax}},
  };
  return target;
}
