// Fuzz target for TLSA records (relay/tlspolicy/tlsa.h), which anyone who controls a DNS zone
// writes. Checks: a record parses exactly when it has 4 to kTlsaDataBytesMax + 3 bytes, keeps its
// bytes, and a usable one has a DANE usage and data of its matching type's length; matching it
// against bytes that are no certificate is false; DANE's check of a chain made of the data says
// yes or why not; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/tlspolicy/tlsa.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

void FuzzTlsa(std::string_view input) {
  absl::StatusOr<TlsaRecord> r = ParseTlsaRdata(input);
  FUZZ_CHECK(r.ok() == (input.size() >= 4 && input.size() - 3 <= kTlsaDataBytesMax));
  if (!r.ok()) return;
  FUZZ_CHECK(r->data == input.substr(3));
  if (TlsaUsableForSmtp(*r)) {
    FUZZ_CHECK(r->usage == 2 || r->usage == 3);
    FUZZ_CHECK(r->mtype != 1 || r->data.size() == 32);
    FUZZ_CHECK(r->mtype != 2 || r->data.size() == 64);
  }
  FUZZ_CHECK(!TlsaMatches(*r, "not a certificate"));
  // The chain a hostile MX presents: the data as its one certificate, checked against the
  // record (DANE-TA runs the chain check when it parses).
  const absl::Status s = DaneAuthenticate({*r}, {r->data}, {"mx.dane.test"}, 0);
  FUZZ_CHECK(s.ok() || !s.message().empty());
  FUZZ_CHECK(!DaneAuthenticate({*r}, {}, {"mx.dane.test"}, 0).ok());
}

std::string Long(size_t bytes) { return std::string("\x03\x00\x00", 3) + std::string(bytes, 'a'); }

std::string Tiny(size_t bytes) { return std::string(bytes % 4, '\x03'); }

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "tlsa_record",
      .run = relay::tlspolicy::FuzzTlsa,
      // Copies of the data (the record, the chain) and an error string; a certificate that parses
      // costs BoringSSL's structures on top, a small multiple of its bytes.
      .bounds = {.heap_peak_bytes = {16384, 8},
                 .heap_allocated_bytes = {32768, 16},
                 .allocations = {256, 0.5}},
      .scaled = {{.name = "long data", .make = relay::tlspolicy::Long},
                 {.name = "tiny", .make = relay::tlspolicy::Tiny}},
  };
  return target;
}
