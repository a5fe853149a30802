#include "relay/tlspolicy/tlsa.h"

#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

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

}  // namespace
}  // namespace relay::tlspolicy
