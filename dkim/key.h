// DKIM keys: private keys for signing, public keys from DNS records for verifying, and the
// public key record to publish (RFC 6376 §3.6.1, RFC 8463 §4).
//
// PrivateKey loads PEM (PKCS#8 "PRIVATE KEY" for RSA or Ed25519, PKCS#1 "RSA PRIVATE KEY") or an
// RFC 8463 style file holding the base64 of a raw 32-byte Ed25519 seed. RSA keys of 1024 to 4096
// bits are accepted (RFC 8301 §3.2). Signing takes the SHA-256 digest of the canonical header
// data: RSASSA-PKCS1-v1_5 over it for rsa-sha256 (RFC 6376 §3.3.1), PureEdDSA over the 32 digest
// bytes for ed25519-sha256 (RFC 8463 §3).
//
// A loaded key is immutable; Sign is const and may be called from any thread at once (BoringSSL's
// RSA blinding is internally locked; each shard still keeps its own copy to avoid contention).
#pragma once

#include <openssl/base.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dkim {

enum class KeyAlgorithm { kRsaSha256, kEd25519Sha256 };

// "rsa-sha256" / "ed25519-sha256", the a= tag value.
std::string_view AlgorithmTagValue(KeyAlgorithm a);
// "rsa" / "ed25519", the k= tag value of the key record.
std::string_view KeyTypeTagValue(KeyAlgorithm a);

inline constexpr unsigned kRsaBitsMin = 1024;
inline constexpr unsigned kRsaBitsMax = 4096;

class PrivateKey {
 public:
  static absl::StatusOr<PrivateKey> FromFileContents(std::string_view contents);
  static absl::StatusOr<PrivateKey> FromFile(const std::string& path);
  static absl::StatusOr<PrivateKey> Generate(KeyAlgorithm algorithm, unsigned rsa_bits);

  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;
  ~PrivateKey();

  KeyAlgorithm algorithm() const { return algorithm_; }
  unsigned rsa_bits() const;
  // Signature of a 32-byte SHA-256 digest: 64 bytes (Ed25519) or the RSA modulus size.
  absl::StatusOr<std::string> SignDigest(std::string_view digest) const;
  // The p= value: base64 of the SubjectPublicKeyInfo (RSA) or of the raw 32-byte key (Ed25519).
  std::string PublicKeyBase64() const;
  // "v=DKIM1; k=rsa; p=...".
  std::string PublicKeyRecord() const;
  // PKCS#8 PEM for writing a key file.
  absl::StatusOr<std::string> ToPem() const;

 private:
  PrivateKey() = default;

  KeyAlgorithm algorithm_ = KeyAlgorithm::kRsaSha256;
  RSA* rsa_ = nullptr;                         // owned, for kRsaSha256
  std::array<uint8_t, 64> ed25519_private_{};  // seed || public key, for kEd25519Sha256
};

// A public key from a DKIM key record.
class PublicKey {
 public:
  // Parses a TXT record (the strings already joined) per RFC 6376 §3.6.1. Errors are permanent:
  // syntax, v= not DKIM1, unknown k=, revoked key (empty p=), RSA shorter than 1024 bits.
  static absl::StatusOr<PublicKey> FromRecord(std::string_view record);

  PublicKey(PublicKey&&) noexcept;
  PublicKey& operator=(PublicKey&&) noexcept;
  ~PublicKey();

  KeyAlgorithm algorithm() const { return algorithm_; }
  bool testing() const { return testing_; }  // t=y
  bool strict() const { return strict_; }    // t=s: i= must equal d=, no subdomain
  bool VerifyDigest(std::string_view digest, std::string_view signature) const;

 private:
  PublicKey() = default;

  KeyAlgorithm algorithm_ = KeyAlgorithm::kRsaSha256;
  RSA* rsa_ = nullptr;
  std::array<uint8_t, 32> ed25519_public_{};
  bool testing_ = false;
  bool strict_ = false;
};

// Splits a TXT record value into strings of at most 255 bytes (RFC 1035 §3.3.14).
std::vector<std::string> SplitTxtStrings(std::string_view record, size_t string_bytes_max = 255);

// RFC 6376 §3.2 tag=value list. Values have their surrounding FWS removed. Refuses duplicate
// tags and malformed specs.
absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> ParseTagList(
    std::string_view text);

}  // namespace dkim
