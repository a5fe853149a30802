#include "relay/tlspolicy/tlsa.h"

#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "gtest/gtest.h"
#include "relay/tls/self_signed.h"

namespace relay::tlspolicy {
namespace {

// A certificate made for the test, as DER, and the DER of its SubjectPublicKeyInfo.
struct Cert {
  std::string der;
  std::string spki;
};

Cert MakeCert(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  const std::string cert_path = dir + "/" + name + ".crt", key_path = dir + "/" + name + ".key";
  EXPECT_TRUE(tls::GenerateSelfSignedCertificate(name, cert_path, key_path).ok());
  FILE* f = std::fopen(cert_path.c_str(), "r");
  bssl::UniquePtr<X509> x509(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  Cert c;
  uint8_t* der = nullptr;
  int n = i2d_X509(x509.get(), &der);
  c.der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  uint8_t* spki = nullptr;
  n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509.get()), &spki);
  c.spki.assign(reinterpret_cast<char*>(spki), static_cast<size_t>(n));
  OPENSSL_free(spki);
  return c;
}

std::string Sha256(const std::string& s) {
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(s.data()), s.size(), d);
  return std::string(reinterpret_cast<char*>(d), sizeof(d));
}

std::string Sha512(const std::string& s) {
  uint8_t d[SHA512_DIGEST_LENGTH];
  SHA512(reinterpret_cast<const uint8_t*>(s.data()), s.size(), d);
  return std::string(reinterpret_cast<char*>(d), sizeof(d));
}

TlsaRecord Record(uint8_t usage, uint8_t selector, uint8_t mtype, std::string data) {
  auto r = ParseTlsaRdata(
      std::string{static_cast<char>(usage), static_cast<char>(selector), static_cast<char>(mtype)} +
      data);
  EXPECT_TRUE(r.ok());
  return *r;
}

// A certificate issued for the test: an EC P-256 key, CA or not, signed by `issuer` (itself when
// null), valid from `not_before` to `not_after` (Unix seconds), with a DNS name when not "".
struct Issued {
  bssl::UniquePtr<EVP_PKEY> key;
  bssl::UniquePtr<X509> cert;
  std::string der;
};

Issued Issue(const std::string& cn, bool ca, const Issued* issuer, int64_t not_before,
             int64_t not_after, const std::string& dns_name = "") {
  Issued out;
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  EXPECT_TRUE(EC_KEY_generate_key(ec.get()));
  out.key.reset(EVP_PKEY_new());
  EXPECT_TRUE(EVP_PKEY_assign_EC_KEY(out.key.get(), ec.release()));
  out.cert.reset(X509_new());
  X509* x = out.cert.get();
  static long serial = 1;
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const uint8_t*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer->cert.get()) : name);
  ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(not_before));
  ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(not_after));
  X509_set_pubkey(x, out.key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->cert.get() : x, x, nullptr, nullptr, 0);
  auto add = [&](int nid, const char* value) {
    bssl::UniquePtr<X509_EXTENSION> e(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
    ASSERT_NE(e, nullptr) << value;
    X509_add_ext(x, e.get(), -1);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (ca) add(NID_key_usage, "critical,keyCertSign");
  if (!dns_name.empty()) add(NID_subject_alt_name, ("DNS:" + dns_name).c_str());
  EXPECT_TRUE(X509_sign(x, issuer != nullptr ? issuer->key.get() : out.key.get(), EVP_sha256()));
  uint8_t* der = nullptr;
  const int n = i2d_X509(x, &der);
  out.der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

TEST(TlsaTest, ParsesAndBoundsTheRdata) {
  EXPECT_FALSE(ParseTlsaRdata("").ok());
  EXPECT_FALSE(ParseTlsaRdata("\x03\x01\x01").ok());  // no data
  EXPECT_FALSE(ParseTlsaRdata(std::string(3 + kTlsaDataBytesMax + 1, 'x')).ok());
  absl::StatusOr<TlsaRecord> r = ParseTlsaRdata(std::string("\x03\x01\x01", 3) + "abc");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->usage, 3);
  EXPECT_EQ(r->selector, 1);
  EXPECT_EQ(r->mtype, 1);
  EXPECT_EQ(r->data, "abc");
}

TEST(TlsaTest, OnlyDaneUsagesWithWellFormedDataAreUsable) {
  const std::string d256(32, 'x'), d512(64, 'x');
  EXPECT_TRUE(TlsaUsableForSmtp(Record(3, 1, 1, d256)));
  EXPECT_TRUE(TlsaUsableForSmtp(Record(2, 0, 2, d512)));
  EXPECT_TRUE(TlsaUsableForSmtp(Record(3, 0, 0, "der")));
  EXPECT_FALSE(TlsaUsableForSmtp(Record(1, 1, 1, d256)));  // PKIX-EE: not for SMTP
  EXPECT_FALSE(TlsaUsableForSmtp(Record(0, 1, 1, d256)));  // PKIX-TA
  EXPECT_FALSE(TlsaUsableForSmtp(Record(3, 2, 1, d256)));  // unknown selector
  EXPECT_FALSE(TlsaUsableForSmtp(Record(3, 1, 3, d256)));  // unknown matching type
  EXPECT_FALSE(TlsaUsableForSmtp(Record(3, 1, 1, d512)));  // a SHA-256 of 64 bytes
}

TEST(TlsaTest, MatchesTheCertificateOrItsKeyByEachMatchingType) {
  const Cert mx = MakeCert("mx.dane.test");
  const Cert other = MakeCert("other.dane.test");
  for (const TlsaRecord& r : {Record(3, 0, 0, mx.der), Record(3, 0, 1, Sha256(mx.der)),
                              Record(3, 0, 2, Sha512(mx.der)), Record(3, 1, 0, mx.spki),
                              Record(3, 1, 1, Sha256(mx.spki)), Record(2, 1, 2, Sha512(mx.spki))}) {
    EXPECT_TRUE(TlsaMatches(r, mx.der)) << int(r.usage) << int(r.selector) << int(r.mtype);
    EXPECT_FALSE(TlsaMatches(r, other.der)) << int(r.usage) << int(r.selector) << int(r.mtype);
  }
  EXPECT_FALSE(TlsaMatches(Record(1, 1, 1, Sha256(mx.spki)), mx.der));  // unusable: no match
  EXPECT_FALSE(TlsaMatches(Record(3, 1, 1, Sha256(mx.spki)), "not a certificate"));
  EXPECT_FALSE(TlsaMatches(Record(3, 1, 1, Sha256(mx.spki)), mx.der + "x"));  // trailing bytes
}

TEST(TlsaTest, DaneEeAuthenticatesTheLeafWhateverItsNameOrDates) {
  const Cert mx = MakeCert("mx.dane.test");
  const Cert other = MakeCert("other.dane.test");
  const int64_t now = 1790000000;
  EXPECT_TRUE(
      DaneAuthenticate({Record(3, 1, 1, Sha256(mx.spki))}, {mx.der}, {"elsewhere.test"}, now).ok());
  // Far beyond its validity: DANE-EE does not look at dates (RFC 7672 §3.1.1).
  EXPECT_TRUE(
      DaneAuthenticate({Record(3, 0, 1, Sha256(mx.der))}, {mx.der}, {"mx.dane.test"}, now * 4)
          .ok());
  // Any of several records; a chain certificate other than the leaf does not count for EE.
  EXPECT_TRUE(
      DaneAuthenticate({Record(3, 1, 1, Sha256(other.spki)), Record(3, 1, 1, Sha256(mx.spki))},
                       {mx.der}, {"mx.dane.test"}, now)
          .ok());
  absl::Status s = DaneAuthenticate({Record(3, 1, 1, Sha256(mx.spki))}, {other.der, mx.der},
                                    {"mx.dane.test"}, now);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no certificate of the server's chain matches its 1 TLSA record"),
            std::string::npos)
      << s;
}

TEST(TlsaTest, DaneTaChecksTheNameAndTheDates) {
  // The leaf is its own anchor here (self-signed); the chain up to a CA is the end-to-end test's.
  const Cert mx = MakeCert("mx.dane.test");
  const int64_t now = std::time(nullptr);
  const TlsaRecord ta = Record(2, 1, 1, Sha256(mx.spki));
  EXPECT_TRUE(DaneAuthenticate({ta}, {mx.der}, {"mx.dane.test"}, now).ok());
  EXPECT_TRUE(DaneAuthenticate({ta}, {mx.der}, {"other.test", "MX.Dane.Test"}, now).ok());
  absl::Status wrong_name = DaneAuthenticate({ta}, {mx.der}, {"other.dane.test"}, now);
  EXPECT_FALSE(wrong_name.ok());
  EXPECT_NE(wrong_name.message().find("DANE-TA"), std::string::npos) << wrong_name;
  EXPECT_FALSE(DaneAuthenticate({ta}, {mx.der}, {"mx.dane.test"}, now + 20 * 365 * 86400LL).ok());
}

TEST(TlsaTest, NothingUsableOrNothingPresentedIsRefused) {
  const Cert mx = MakeCert("mx.dane.test");
  absl::Status s = DaneAuthenticate({Record(1, 1, 1, Sha256(mx.spki))}, {mx.der}, {"mx.dane.test"},
                                    std::time(nullptr));
  EXPECT_EQ(s.message(), "no usable TLSA record");
  EXPECT_FALSE(DaneAuthenticate({Record(3, 1, 1, Sha256(mx.spki))}, {}, {"mx.dane.test"}, 0).ok());
  EXPECT_FALSE(
      DaneAuthenticate({Record(3, 1, 1, Sha256(mx.spki))}, {"junk"}, {"mx.dane.test"}, 0).ok());
}

TEST(TlsaTest, DaneTaNamesARootOrAnIntermediateOfTheChain) {
  const int64_t now = 1790000000, day = 86400;
  const Issued root = Issue("test root", true, nullptr, now - day, now + 365 * day);
  const Issued inter = Issue("test intermediate", true, &root, now - day, now + 365 * day);
  const Issued leaf = Issue("mx", false, &inter, now - day, now + 30 * day, "mx.dane.test");
  const std::vector<std::string> chain = {leaf.der, inter.der, root.der};
  // The root, or the intermediate, by its certificate's digest: the leaf chains up to either.
  EXPECT_TRUE(
      DaneAuthenticate({Record(2, 0, 1, Sha256(root.der))}, chain, {"mx.dane.test"}, now).ok());
  absl::Status s = DaneAuthenticate({Record(2, 0, 1, Sha256(inter.der))}, {leaf.der, inter.der},
                                    {"mx.dane.test"}, now);
  EXPECT_TRUE(s.ok()) << s;
  // The name is checked against the leaf's, and the dates along the chain.
  EXPECT_FALSE(
      DaneAuthenticate({Record(2, 0, 1, Sha256(root.der))}, chain, {"other.dane.test"}, now).ok());
  EXPECT_FALSE(
      DaneAuthenticate({Record(2, 0, 1, Sha256(root.der))}, chain, {"mx.dane.test"}, now + 60 * day)
          .ok());
  // A chain that carries the named certificate while its leaf was issued by someone else.
  const Issued other_ca = Issue("another CA", true, nullptr, now - day, now + 365 * day);
  const Issued stranger = Issue("mx", false, &other_ca, now - day, now + 30 * day, "mx.dane.test");
  s = DaneAuthenticate({Record(2, 0, 1, Sha256(root.der))}, {stranger.der, inter.der, root.der},
                       {"mx.dane.test"}, now);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not verify"), std::string::npos) << s;
  // An intermediate that ran out makes the chain fail even though the root is named.
  const Issued old_inter = Issue("old intermediate", true, &root, now - 90 * day, now - day);
  const Issued late_leaf =
      Issue("mx", false, &old_inter, now - 2 * day, now + 30 * day, "mx.dane.test");
  EXPECT_FALSE(DaneAuthenticate({Record(2, 0, 1, Sha256(root.der))},
                                {late_leaf.der, old_inter.der, root.der}, {"mx.dane.test"}, now)
                   .ok());
  // A leaf that is not a CA cannot stand in for one.
  const Issued fake = Issue("mx", false, &leaf, now - day, now + 30 * day, "mx.dane.test");
  EXPECT_FALSE(DaneAuthenticate({Record(2, 0, 1, Sha256(leaf.der))}, {fake.der, leaf.der},
                                {"mx.dane.test"}, now)
                   .ok());
}

}  // namespace
}  // namespace relay::tlspolicy
