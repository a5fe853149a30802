#include "relay/tlspolicy/tlsa.h"

#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"

namespace relay::tlspolicy {

absl::StatusOr<TlsaRecord> ParseTlsaRdata(std::string_view rdata) {
  if (rdata.size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("a TLSA record of ", rdata.size(), " bytes (at least 4)"));
  }
  if (rdata.size() - 3 > kTlsaDataBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("a TLSA record with more than ", kTlsaDataBytesMax, " bytes of data"));
  }
  TlsaRecord r;
  r.usage = static_cast<uint8_t>(rdata[0]);
  r.selector = static_cast<uint8_t>(rdata[1]);
  r.mtype = static_cast<uint8_t>(rdata[2]);
  r.data = std::string(rdata.substr(3));
  return r;
}

bool TlsaUsableForSmtp(const TlsaRecord& r) {
  if (r.usage != 2 && r.usage != 3) return false;
  if (r.selector > 1) return false;
  switch (r.mtype) {
    case 0:
      return !r.data.empty();
    case 1:
      return r.data.size() == SHA256_DIGEST_LENGTH;
    case 2:
      return r.data.size() == SHA512_DIGEST_LENGTH;
    default:
      return false;
  }
}

bool TlsaMatches(const TlsaRecord& record, std::string_view cert_der) {
  if (!TlsaUsableForSmtp(record)) return false;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(cert_der.data());
  bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(cert_der.size())));
  if (cert == nullptr || p != reinterpret_cast<const uint8_t*>(cert_der.data()) + cert_der.size()) {
    return false;
  }
  std::string selected;
  if (record.selector == 0) {
    selected = std::string(cert_der);
  } else {
    uint8_t* spki = nullptr;
    const int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &spki);
    if (n <= 0) return false;
    selected.assign(reinterpret_cast<const char*>(spki), static_cast<size_t>(n));
    OPENSSL_free(spki);
  }
  const uint8_t* in = reinterpret_cast<const uint8_t*>(selected.data());
  if (record.mtype == 0) return selected == record.data;
  uint8_t digest[SHA512_DIGEST_LENGTH];
  size_t length = 0;
  if (record.mtype == 1) {
    SHA256(in, selected.size(), digest);
    length = SHA256_DIGEST_LENGTH;
  } else {
    SHA512(in, selected.size(), digest);
    length = SHA512_DIGEST_LENGTH;
  }
  // Not secret: the record is public and so is the certificate.
  return record.data == std::string_view(reinterpret_cast<const char*>(digest), length);
}

}  // namespace relay::tlspolicy
