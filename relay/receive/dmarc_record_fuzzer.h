// The DMARC record parser's fuzz body, shared by the bounded random test
// (dmarc_record_fuzz_test.cc) and the libFuzzer entry point (dmarc_record_fuzzer.cc). It parses
// the input as a TXT record's text and checks what the rest of DMARC relies on; a broken
// invariant traps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/receive/dmarc_record.h"

namespace relay::receive {

// Returns true when the input parsed as a record.
inline bool FuzzOneDmarcRecord(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  bool is_record = IsDmarcRecord(text);
  absl::StatusOr<DmarcRecord> r = ParseDmarcRecord(text);
  if (!r.ok()) return false;
  // Only a version-tagged record of bounded size parses, and what it holds is in range.
  if (!is_record || size > kDmarcRecordBytesMax) __builtin_trap();
  if (r->pct < 0 || r->pct > 100) __builtin_trap();
  if (DmarcPolicyName(r->p)[0] == '\0') __builtin_trap();
  return true;
}

}  // namespace relay::receive
