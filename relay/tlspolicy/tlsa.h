// DANE TLSA records for SMTP (RFC 6698 §2.1, RFC 7672 §3.1): what a record says and whether a
// certificate of the MX host's chain matches it. Pure: the lookup (with the validating
// resolver's AD bit) and the handshake are the caller's.
//
// RDATA: certificate usage (1 byte), selector (1), matching type (1), association data (the
// rest). For SMTP only DANE-TA(2) and DANE-EE(3) are usable (RFC 7672 §3.1.3: PKIX-TA and
// PKIX-EE are not), with selector Cert(0) or SPKI(1) and matching type Full(0), SHA2-256(1) or
// SHA2-512(2), the digest of the right length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relay::tlspolicy {

struct TlsaRecord {
  uint8_t usage = 0;     // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  uint8_t selector = 0;  // 0 the whole certificate, 1 its SubjectPublicKeyInfo
  uint8_t mtype = 0;     // 0 the data itself, 1 SHA-256, 2 SHA-512
  std::string data;

  bool operator==(const TlsaRecord&) const = default;
};

// Usable records kept per MX host, at most: a signed zone may publish kilobytes of them, and each
// costs certificate work per connection.
inline constexpr size_t kTlsaRecordsPerHostMax = 16;

// What DANE says for a destination (RFC 7672 §2.2), made after a DNSSEC-validated MX answer: the
// usable TLSA records of each MX host that published validated TLSA records (canonical name).
// An empty list: records, none usable: TLS is mandatory but not authenticated (§2.2). A host not
// named has none: it gets what the destination's other policies say.
struct DanePolicy {
  absl::flat_hash_map<std::string, std::vector<TlsaRecord>> hosts;
};

// Bytes of association data kept at most (a full certificate; more is refused).
inline constexpr size_t kTlsaDataBytesMax = 16 << 10;

// The record of `rdata`; an error names what is wrong (too short, too long).
absl::StatusOr<TlsaRecord> ParseTlsaRdata(std::string_view rdata);

// Whether the record can authenticate an SMTP server (RFC 7672 §3.1): DANE-TA or DANE-EE, a known
// selector, a known matching type with data of its length.
bool TlsaUsableForSmtp(const TlsaRecord& record);

// Whether `cert_der` (one certificate, DER) matches `record`'s selector and matching type. False
// for a certificate that does not parse.
bool TlsaMatches(const TlsaRecord& record, std::string_view cert_der);

// The record in presentation form (RFC 6698 §2.2): "3 1 1 0A1B...".
std::string TlsaPresentation(const TlsaRecord& record);

// Whether the chain an SMTP server presented (`chain_der`, leaf first, DER) is authenticated by
// its usable TLSA records (RFC 7672 §3.1, §3.2): OK when a DANE-EE record matches the leaf (no
// name or date check: the record is the authority), or a DANE-TA record matches one of the
// presented certificates and the leaf chains up to it, is valid at `now_unix_s` and names one of
// `names` (the MX host name; wildcards as RFC 6125 allows). Otherwise an error saying why, for
// the delivery log. Records that are not usable are skipped; none usable is an error.
absl::Status DaneAuthenticate(const std::vector<TlsaRecord>& records,
                              const std::vector<std::string>& chain_der,
                              const std::vector<std::string>& names, int64_t now_unix_s);

}  // namespace relay::tlspolicy
