#include "dkim/key.h"

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/curve25519.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dkim/canon.h"
#include "relay/base/status_macros.h"

namespace dkim {
namespace {

// A key file larger than this is not a key (a 4096-bit RSA PEM is ~3.3 KiB).
constexpr size_t kKeyFileBytesMax = 64 * 1024;
constexpr size_t kEd25519SeedBytes = 32;

inline bool IsFws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view TrimFws(std::string_view s) {
  while (!s.empty() && IsFws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsFws(s.back())) s.remove_suffix(1);
  return s;
}

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// Finds the first PEM block; returns its label and DER bytes.
absl::Status DecodePem(std::string_view text, std::string* label, std::string* der) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  size_t b = text.find(kBegin);
  if (b == std::string_view::npos) return absl::InvalidArgumentError("no PEM BEGIN line");
  size_t label_end = text.find("-----", b + kBegin.size());
  if (label_end == std::string_view::npos) return absl::InvalidArgumentError("bad PEM BEGIN line");
  *label = std::string(text.substr(b + kBegin.size(), label_end - b - kBegin.size()));
  size_t body = label_end + 5;
  std::string end_line = absl::StrCat("-----END ", *label, "-----");
  size_t e = text.find(end_line, body);
  if (e == std::string_view::npos) return absl::InvalidArgumentError("no PEM END line");
  std::string_view b64 = text.substr(body, e - body);
  if (b64.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError("encrypted PEM keys are not supported");
  }
  if (!Base64Decode(b64, der)) return absl::InvalidArgumentError("bad base64 in PEM");
  return absl::OkStatus();
}

}  // namespace

std::string_view AlgorithmTagValue(KeyAlgorithm a) {
  return a == KeyAlgorithm::kRsaSha256 ? "rsa-sha256" : "ed25519-sha256";
}

std::string_view KeyTypeTagValue(KeyAlgorithm a) {
  return a == KeyAlgorithm::kRsaSha256 ? "rsa" : "ed25519";
}

PrivateKey::PrivateKey(PrivateKey&& o) noexcept
    : algorithm_(o.algorithm_), rsa_(std::exchange(o.rsa_, nullptr)),
      ed25519_private_(o.ed25519_private_) {
  OPENSSL_cleanse(o.ed25519_private_.data(), o.ed25519_private_.size());
}

PrivateKey& PrivateKey::operator=(PrivateKey&& o) noexcept {
  if (this != &o) {
    if (rsa_ != nullptr) RSA_free(rsa_);
    algorithm_ = o.algorithm_;
    rsa_ = std::exchange(o.rsa_, nullptr);
    ed25519_private_ = o.ed25519_private_;
    OPENSSL_cleanse(o.ed25519_private_.data(), o.ed25519_private_.size());
  }
  return *this;
}

PrivateKey::~PrivateKey() {
  if (rsa_ != nullptr) RSA_free(rsa_);
  OPENSSL_cleanse(ed25519_private_.data(), ed25519_private_.size());
}

unsigned PrivateKey::rsa_bits() const { return rsa_ == nullptr ? 0 : RSA_bits(rsa_); }

absl::StatusOr<PrivateKey> PrivateKey::FromFileContents(std::string_view contents) {
  PrivateKey key;
  std::string_view trimmed = TrimFws(contents);
  if (trimmed.find("-----BEGIN") == std::string_view::npos) {
    // RFC 8463 Appendix A.1 style: the base64 of the raw 32-byte Ed25519 seed.
    std::string seed;
    if (!Base64Decode(trimmed, &seed) || seed.size() != kEd25519SeedBytes) {
      return absl::InvalidArgumentError(
          "key is neither PEM nor the base64 of a 32-byte Ed25519 seed");
    }
    uint8_t pub[32];
    ED25519_keypair_from_seed(pub, key.ed25519_private_.data(),
                              reinterpret_cast<const uint8_t*>(seed.data()));
    OPENSSL_cleanse(seed.data(), seed.size());
    key.algorithm_ = KeyAlgorithm::kEd25519Sha256;
    return key;
  }
  std::string label, der;
  RETURN_IF_ERROR(DecodePem(trimmed, &label, &der));
  CBS cbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(der.data()), der.size());
  if (label == "RSA PRIVATE KEY") {
    key.rsa_ = RSA_parse_private_key(&cbs);
    if (key.rsa_ == nullptr || CBS_len(&cbs) != 0) {
      return absl::InvalidArgumentError("bad PKCS#1 RSA private key");
    }
    key.algorithm_ = KeyAlgorithm::kRsaSha256;
  } else if (label == "PRIVATE KEY") {
    EvpPkeyPtr pkey(EVP_parse_private_key(&cbs));
    if (pkey == nullptr) return absl::InvalidArgumentError("bad PKCS#8 private key");
    switch (EVP_PKEY_id(pkey.get())) {
      case EVP_PKEY_RSA:
        key.rsa_ = EVP_PKEY_get1_RSA(pkey.get());
        key.algorithm_ = KeyAlgorithm::kRsaSha256;
        break;
      case EVP_PKEY_ED25519: {
        uint8_t seed[32];
        size_t len = sizeof(seed);
        if (!EVP_PKEY_get_raw_private_key(pkey.get(), seed, &len) || len != sizeof(seed)) {
          return absl::InvalidArgumentError("bad Ed25519 private key");
        }
        uint8_t pub[32];
        ED25519_keypair_from_seed(pub, key.ed25519_private_.data(), seed);
        OPENSSL_cleanse(seed, sizeof(seed));
        key.algorithm_ = KeyAlgorithm::kEd25519Sha256;
        break;
      }
      default:
        return absl::InvalidArgumentError("private key is neither RSA nor Ed25519");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported PEM block \"", label, "\""));
  }
  OPENSSL_cleanse(der.data(), der.size());
  if (key.algorithm_ == KeyAlgorithm::kRsaSha256) {
    unsigned bits = RSA_bits(key.rsa_);
    if (bits < kRsaBitsMin || bits > kRsaBitsMax) {
      return absl::InvalidArgumentError(absl::StrCat("RSA key of ", bits, " bits; DKIM needs ",
                                                     kRsaBitsMin, " to ", kRsaBitsMax));
    }
    if (!RSA_check_key(key.rsa_)) return absl::InvalidArgumentError("inconsistent RSA key");
  }
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open key file ", path));
  std::string contents;
  contents.resize(kKeyFileBytesMax + 1);
  in.read(contents.data(), contents.size());
  contents.resize(in.gcount());
  if (contents.size() > kKeyFileBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("key file ", path, " is too large"));
  }
  absl::StatusOr<PrivateKey> key = FromFileContents(contents);
  OPENSSL_cleanse(contents.data(), contents.size());
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::Generate(KeyAlgorithm algorithm, unsigned rsa_bits) {
  PrivateKey key;
  key.algorithm_ = algorithm;
  if (algorithm == KeyAlgorithm::kEd25519Sha256) {
    uint8_t pub[32];
    ED25519_keypair(pub, key.ed25519_private_.data());
    return key;
  }
  if (rsa_bits < kRsaBitsMin || rsa_bits > kRsaBitsMax) {
    return absl::InvalidArgumentError("RSA key size out of range");
  }
  BIGNUM* e = BN_new();
  key.rsa_ = RSA_new();
  bool ok = e != nullptr && key.rsa_ != nullptr && BN_set_word(e, RSA_F4) &&
            RSA_generate_key_ex(key.rsa_, static_cast<int>(rsa_bits), e, nullptr);
  BN_free(e);
  if (!ok) return absl::InternalError("RSA key generation failed");
  return key;
}

absl::StatusOr<std::string> PrivateKey::SignDigest(std::string_view digest) const {
  if (digest.size() != 32) return absl::InvalidArgumentError("digest must be 32 bytes");
  const uint8_t* d = reinterpret_cast<const uint8_t*>(digest.data());
  if (algorithm_ == KeyAlgorithm::kEd25519Sha256) {
    // RFC 8463 §3: PureEdDSA over the SHA-256 hash.
    std::string sig(64, '\0');
    ED25519_sign(reinterpret_cast<uint8_t*>(sig.data()), d, digest.size(),
                 ed25519_private_.data());
    return sig;
  }
  std::string sig(RSA_size(rsa_), '\0');
  unsigned len = 0;
  if (!RSA_sign(NID_sha256, d, digest.size(), reinterpret_cast<uint8_t*>(sig.data()), &len,
                rsa_)) {
    return absl::InternalError("RSA_sign failed");
  }
  sig.resize(len);
  return sig;
}

std::string PrivateKey::PublicKeyBase64() const {
  if (algorithm_ == KeyAlgorithm::kEd25519Sha256) {
    // The last 32 bytes of BoringSSL's 64-byte private key are the public key.
    return Base64Encode(std::string_view(
        reinterpret_cast<const char*>(ed25519_private_.data()) + 32, 32));
  }
  EvpPkeyPtr pkey(EVP_PKEY_new());
  EVP_PKEY_set1_RSA(pkey.get(), rsa_);
  CBB cbb;
  uint8_t* der = nullptr;
  size_t der_len = 0;
  std::string out;
  if (CBB_init(&cbb, 512) && EVP_marshal_public_key(&cbb, pkey.get()) &&
      CBB_finish(&cbb, &der, &der_len)) {
    out = Base64Encode(std::string_view(reinterpret_cast<const char*>(der), der_len));
  } else {
    CBB_cleanup(&cbb);
  }
  OPENSSL_free(der);
  return out;
}

std::string PrivateKey::PublicKeyRecord() const {
  return absl::StrCat("v=DKIM1; k=", std::string(KeyTypeTagValue(algorithm_)), "; p=", PublicKeyBase64());
}

absl::StatusOr<std::string> PrivateKey::ToPem() const {
  EvpPkeyPtr pkey;
  if (algorithm_ == KeyAlgorithm::kEd25519Sha256) {
    pkey.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, ed25519_private_.data(),
                                            32));
  } else {
    pkey.reset(EVP_PKEY_new());
    if (pkey != nullptr) EVP_PKEY_set1_RSA(pkey.get(), rsa_);
  }
  if (pkey == nullptr) return absl::InternalError("EVP_PKEY allocation failed");
  CBB cbb;
  uint8_t* der = nullptr;
  size_t der_len = 0;
  if (!CBB_init(&cbb, 2048) || !EVP_marshal_private_key(&cbb, pkey.get()) ||
      !CBB_finish(&cbb, &der, &der_len)) {
    CBB_cleanup(&cbb);
    return absl::InternalError("cannot encode the private key");
  }
  std::string b64 = Base64Encode(std::string_view(reinterpret_cast<const char*>(der), der_len));
  OPENSSL_cleanse(der, der_len);
  OPENSSL_free(der);
  std::string pem = "-----BEGIN PRIVATE KEY-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&pem, b64.substr(i, 64), "\n");
  pem += "-----END PRIVATE KEY-----\n";
  OPENSSL_cleanse(b64.data(), b64.size());
  return pem;
}

PublicKey::PublicKey(PublicKey&& o) noexcept
    : algorithm_(o.algorithm_), rsa_(std::exchange(o.rsa_, nullptr)),
      ed25519_public_(o.ed25519_public_), testing_(o.testing_), strict_(o.strict_) {}

PublicKey& PublicKey::operator=(PublicKey&& o) noexcept {
  if (this != &o) {
    if (rsa_ != nullptr) RSA_free(rsa_);
    algorithm_ = o.algorithm_;
    rsa_ = std::exchange(o.rsa_, nullptr);
    ed25519_public_ = o.ed25519_public_;
    testing_ = o.testing_;
    strict_ = o.strict_;
  }
  return *this;
}

PublicKey::~PublicKey() {
  if (rsa_ != nullptr) RSA_free(rsa_);
}

absl::StatusOr<PublicKey> PublicKey::FromRecord(std::string_view record) {
  ASSIGN_OR_RETURN(auto tags, ParseTagList(record));
  std::string_view k = "rsa";
  std::string_view p;
  bool have_p = false;
  PublicKey key;
  for (size_t i = 0; i < tags.size(); ++i) {
    auto [name, value] = tags[i];
    if (name == "v") {
      // §3.6.1: v= must be first and "DKIM1".
      if (i != 0 || value != "DKIM1") return absl::InvalidArgumentError("bad v= in key record");
    } else if (name == "k") {
      k = value;
    } else if (name == "p") {
      p = value;
      have_p = true;
    } else if (name == "h") {
      if (value.find("sha256") == std::string_view::npos) {
        return absl::InvalidArgumentError("key record h= excludes sha256");
      }
    } else if (name == "s") {
      if (value.find('*') == std::string_view::npos &&
          value.find("email") == std::string_view::npos) {
        return absl::InvalidArgumentError("key record s= excludes email");
      }
    } else if (name == "t") {
      for (char ch : value) {
        if (ch == 'y') key.testing_ = true;
        if (ch == 's') key.strict_ = true;
      }
    }
  }
  if (!have_p) return absl::InvalidArgumentError("key record without p=");
  std::string der;
  if (!Base64Decode(p, &der)) return absl::InvalidArgumentError("bad base64 in p=");
  if (der.empty()) return absl::InvalidArgumentError("key revoked (empty p=)");
  if (k == "ed25519") {
    if (der.size() != 32) return absl::InvalidArgumentError("Ed25519 key is not 32 bytes");
    key.algorithm_ = KeyAlgorithm::kEd25519Sha256;
    std::copy(der.begin(), der.end(), key.ed25519_public_.begin());
    return key;
  }
  if (k != "rsa") return absl::InvalidArgumentError(absl::StrCat("unknown key type k=", std::string(k)));
  key.algorithm_ = KeyAlgorithm::kRsaSha256;
  CBS cbs;
  CBS_init(&cbs, reinterpret_cast<const uint8_t*>(der.data()), der.size());
  EvpPkeyPtr pkey(EVP_parse_public_key(&cbs));
  if (pkey != nullptr && EVP_PKEY_id(pkey.get()) == EVP_PKEY_RSA) {
    key.rsa_ = EVP_PKEY_get1_RSA(pkey.get());
  } else {
    // Some publish the bare PKCS#1 RSAPublicKey; the reference verifiers accept it.
    CBS_init(&cbs, reinterpret_cast<const uint8_t*>(der.data()), der.size());
    key.rsa_ = RSA_parse_public_key(&cbs);
  }
  if (key.rsa_ == nullptr) return absl::InvalidArgumentError("bad RSA public key in p=");
  // RFC 8301 §3.2: keys shorter than 1024 bits must not be considered valid.
  if (RSA_bits(key.rsa_) < kRsaBitsMin) return absl::InvalidArgumentError("RSA key too short");
  return key;
}

bool PublicKey::VerifyDigest(std::string_view digest, std::string_view signature) const {
  const uint8_t* d = reinterpret_cast<const uint8_t*>(digest.data());
  const uint8_t* s = reinterpret_cast<const uint8_t*>(signature.data());
  if (algorithm_ == KeyAlgorithm::kEd25519Sha256) {
    return signature.size() == 64 &&
           ED25519_verify(d, digest.size(), s, ed25519_public_.data()) == 1;
  }
  return RSA_verify(NID_sha256, d, digest.size(), s, signature.size(), rsa_) == 1;
}

std::vector<std::string> SplitTxtStrings(std::string_view record, size_t string_bytes_max) {
  std::vector<std::string> out;
  for (size_t i = 0; i < record.size(); i += string_bytes_max) {
    out.emplace_back(record.substr(i, string_bytes_max));
  }
  if (out.empty()) out.emplace_back();
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> ParseTagList(
    std::string_view text) {
  std::vector<std::pair<std::string_view, std::string_view>> tags;
  // The names seen so far: a stranger's tag list may hold a hundred thousand tags, and comparing
  // each with every earlier one took seconds (issue 13).
  absl::flat_hash_set<std::string_view> names;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t semi = text.find(';', pos);
    std::string_view spec =
        text.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos);
    spec = TrimFws(spec);
    if (spec.empty()) {
      // Only a trailing ';' may leave an empty spec (§3.2).
      if (semi == std::string_view::npos) break;
      if (TrimFws(text.substr(semi + 1)).empty()) break;
      return absl::InvalidArgumentError("empty tag in tag list");
    }
    size_t eq = spec.find('=');
    if (eq == std::string_view::npos) return absl::InvalidArgumentError("tag without '='");
    std::string_view name = TrimFws(spec.substr(0, eq));
    std::string_view value = TrimFws(spec.substr(eq + 1));
    if (name.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(name[0]))) {
      return absl::InvalidArgumentError("bad tag name");
    }
    for (char ch : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
        return absl::InvalidArgumentError("bad tag name");
      }
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tag ", std::string(name)));
    }
    tags.emplace_back(name, value);
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return tags;
}

}  // namespace dkim
