#include "relay/tlspolicy/tlsa.h"

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
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

std::string TlsaPresentation(const TlsaRecord& r) {
  return absl::StrCat(r.usage, " ", r.selector, " ", r.mtype, " ",
                      absl::AsciiStrToUpper(absl::BytesToHexString(r.data)));
}

namespace {

bssl::UniquePtr<X509> ParseCertificate(std::string_view der) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
  bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert != nullptr && p != reinterpret_cast<const uint8_t*>(der.data()) + der.size()) {
    cert.reset();
  }
  return cert;
}

// Whether the leaf of `chain` chains up to `anchor` (trusted as it is, wherever it sits: RFC 7672
// §3.1.2 lets a DANE-TA record name an intermediate) and names one of `names` at `now_unix_s`.
absl::Status VerifyToAnchor(const std::vector<bssl::UniquePtr<X509>>& chain, X509* anchor,
                            const std::vector<std::string>& names, int64_t now_unix_s) {
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  bssl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (store == nullptr || untrusted == nullptr || ctx == nullptr ||
      !X509_STORE_add_cert(store.get(), anchor)) {
    return absl::ResourceExhaustedError("out of memory checking a DANE-TA chain");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!sk_X509_push(untrusted.get(), chain[i].get())) {
      return absl::ResourceExhaustedError("out of memory checking a DANE-TA chain");
    }
    X509_up_ref(chain[i].get());
  }
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get())) {
    ERR_clear_error();
    return absl::InternalError("X509_STORE_CTX_init failed");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(now_unix_s));
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    if (!(i == 0 ? X509_VERIFY_PARAM_set1_host(param, n.data(), n.size())
                 : X509_VERIFY_PARAM_add1_host(param, n.data(), n.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("bad host name \"", n, "\""));
    }
  }
  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return absl::PermissionDeniedError(X509_verify_cert_error_string(error));
}

}  // namespace

absl::Status DaneAuthenticate(const std::vector<TlsaRecord>& records,
                              const std::vector<std::string>& chain_der,
                              const std::vector<std::string>& names, int64_t now_unix_s) {
  if (chain_der.empty()) return absl::PermissionDeniedError("the server sent no certificate");
  std::vector<bssl::UniquePtr<X509>> chain;
  for (const std::string& der : chain_der) {
    chain.push_back(ParseCertificate(der));
    if (chain.back() == nullptr) {
      return absl::PermissionDeniedError(
          absl::StrCat("certificate ", chain.size() - 1, " of the server's chain does not parse"));
    }
  }
  size_t usable = 0;
  std::string ta_failure;
  for (const TlsaRecord& r : records) {
    if (!TlsaUsableForSmtp(r)) continue;
    ++usable;
    if (r.usage == 3) {
      if (TlsaMatches(r, chain_der[0])) return absl::OkStatus();
      continue;
    }
    for (size_t i = 0; i < chain.size(); ++i) {
      if (!TlsaMatches(r, chain_der[i])) continue;
      absl::Status verified = VerifyToAnchor(chain, chain[i].get(), names, now_unix_s);
      if (verified.ok()) return verified;
      ta_failure = absl::StrCat("the chain up to the DANE-TA certificate ", i,
                                " does not verify: ", verified.message());
    }
  }
  if (usable == 0) return absl::PermissionDeniedError("no usable TLSA record");
  if (!ta_failure.empty()) return absl::PermissionDeniedError(ta_failure);
  return absl::PermissionDeniedError(
      absl::StrCat("no certificate of the server's chain matches its ", usable, " TLSA record",
                   usable == 1 ? "" : "s"));
}

}  // namespace relay::tlspolicy
