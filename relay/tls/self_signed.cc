#include "relay/tls/self_signed.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace relay::tls {
namespace {

std::string SslErrors() {
  std::string text;
  while (uint32_t err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

std::string BioContents(BIO* bio) {
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

// Writes `contents` to `path` atomically with the given mode.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents,
                                 mode_t mode) {
  // A fresh, unpredictable name opened with O_EXCL (mkostemp, mode 0600): a link planted at a
  // guessable temporary name cannot redirect the private key's write.
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("create ", tmp, ": ", strerror(errno)));
  bool ok = fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      ok = false;
    else
      done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  int saved_errno = errno;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) saved_errno = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("write ", path, ": ", strerror(saved_errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status GenerateSelfSignedCertificate(const std::string& hostname,
                                           const std::string& cert_path,
                                           const std::string& key_path) {
  ERR_clear_error();
  if (hostname.empty()) return absl::InvalidArgumentError("empty host name");
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (ec == nullptr || key == nullptr || !EC_KEY_generate_key(ec.get()) ||
      !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    return absl::InternalError("key generation: " + SslErrors());
  }

  bssl::UniquePtr<X509> cert(X509_new());
  if (cert == nullptr) return absl::InternalError("X509_new: " + SslErrors());
  // A random positive 64-bit serial (RFC 5280 §4.1.2.2).
  uint8_t serial_bytes[8];
  RAND_bytes(serial_bytes, sizeof(serial_bytes));
  serial_bytes[0] &= 0x7f;
  bssl::UniquePtr<BIGNUM> serial(BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr));
  bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
  bool ok =
      serial != nullptr && name != nullptr && X509_set_version(cert.get(), X509_VERSION_3) &&
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr &&
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) != nullptr &&
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kSelfSignedValiditySeconds) != nullptr &&
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const uint8_t*>(hostname.data()),
                                 static_cast<int>(hostname.size()), -1, 0) &&
      X509_set_subject_name(cert.get(), name.get()) &&
      X509_set_issuer_name(cert.get(), name.get()) && X509_set_pubkey(cert.get(), key.get());
  if (!ok) return absl::InternalError("certificate fields: " + SslErrors());

  // subjectAltName: dNSName = hostname.
  bssl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
  GENERAL_NAME* dns = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  if (names == nullptr || dns == nullptr || ia5 == nullptr ||
      !ASN1_STRING_set(ia5, hostname.data(), static_cast<int>(hostname.size()))) {
    GENERAL_NAME_free(dns);
    ASN1_IA5STRING_free(ia5);
    return absl::InternalError("subjectAltName: " + SslErrors());
  }
  GENERAL_NAME_set0_value(dns, GEN_DNS, ia5);
  if (!sk_GENERAL_NAME_push(names.get(), dns)) {
    GENERAL_NAME_free(dns);
    return absl::InternalError("subjectAltName: " + SslErrors());
  }
  if (!X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT)) {
    return absl::InternalError("subjectAltName: " + SslErrors());
  }
  // Not a CA: a leaf that signs TLS handshakes only (RFC 5280 §4.2.1.9, §4.2.1.12).
  bssl::UniquePtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
  bssl::UniquePtr<EXTENDED_KEY_USAGE> eku(sk_ASN1_OBJECT_new_null());
  if (bc == nullptr || eku == nullptr ||
      !sk_ASN1_OBJECT_push(eku.get(), OBJ_nid2obj(NID_server_auth)) ||
      !X509_add1_ext_i2d(cert.get(), NID_basic_constraints, bc.get(), 1, X509V3_ADD_DEFAULT) ||
      !X509_add1_ext_i2d(cert.get(), NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT)) {
    return absl::InternalError("certificate extensions: " + SslErrors());
  }
  if (!X509_sign(cert.get(), key.get(), EVP_sha256())) {
    return absl::InternalError("signing: " + SslErrors());
  }

  bssl::UniquePtr<BIO> key_bio(BIO_new(BIO_s_mem()));
  bssl::UniquePtr<BIO> cert_bio(BIO_new(BIO_s_mem()));
  if (key_bio == nullptr || cert_bio == nullptr ||
      !PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ||
      !PEM_write_bio_X509(cert_bio.get(), cert.get())) {
    return absl::InternalError("PEM encoding: " + SslErrors());
  }
  // The key first: a certificate without its key is useless, the reverse is harmless.
  if (absl::Status s = WriteFileAtomically(key_path, BioContents(key_bio.get()), 0600); !s.ok()) {
    return s;
  }
  return WriteFileAtomically(cert_path, BioContents(cert_bio.get()), 0644);
}

}  // namespace relay::tls
