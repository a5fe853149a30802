#include "dkim/key.h"

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/rsa.h>

#include <string>

#include "dkim/canon.h"
#include "dkim/test_util.h"
#include "gtest/gtest.h"

namespace dkim {
namespace {

using ::dkim::testing::TestData;

// A PKCS#1 PEM of a freshly generated RSA key of `bits` (BoringSSL allows 512 for the test).
std::string RsaPem(int bits) {
  RSA* rsa = RSA_new();
  BIGNUM* e = BN_new();
  BN_set_word(e, RSA_F4);
  RSA_generate_key_ex(rsa, bits, e, nullptr);
  CBB cbb;
  uint8_t* der = nullptr;
  size_t len = 0;
  CBB_init(&cbb, 0);
  RSA_marshal_private_key(&cbb, rsa);
  CBB_finish(&cbb, &der, &len);
  std::string b64 = Base64Encode(std::string_view(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  BN_free(e);
  RSA_free(rsa);
  std::string pem = "-----BEGIN RSA PRIVATE KEY-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  return pem + "-----END RSA PRIVATE KEY-----\n";
}

TEST(KeyTest, LoadsTheRfc8463Keys) {
  absl::StatusOr<PrivateKey> ed = PrivateKey::FromFileContents(TestData("rfc8463-ed25519.key"));
  ASSERT_TRUE(ed.ok()) << ed.status();
  EXPECT_EQ(ed->algorithm(), KeyAlgorithm::kEd25519Sha256);
  EXPECT_EQ(ed->PublicKeyBase64(), "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  absl::StatusOr<PrivateKey> rsa = PrivateKey::FromFileContents(TestData("rfc8463-rsa.pem"));
  ASSERT_TRUE(rsa.ok()) << rsa.status();
  EXPECT_EQ(rsa->algorithm(), KeyAlgorithm::kRsaSha256);
  EXPECT_EQ(rsa->rsa_bits(), 1024u);
}

TEST(KeyTest, PemRoundTripAndRecords) {
  for (KeyAlgorithm a : {KeyAlgorithm::kRsaSha256, KeyAlgorithm::kEd25519Sha256}) {
    absl::StatusOr<PrivateKey> key = PrivateKey::Generate(a, 2048);
    ASSERT_TRUE(key.ok());
    absl::StatusOr<std::string> pem = key->ToPem();
    ASSERT_TRUE(pem.ok());
    EXPECT_EQ(pem->rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
    absl::StatusOr<PrivateKey> again = PrivateKey::FromFileContents(*pem);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->PublicKeyRecord(), key->PublicKeyRecord());
    // The record parses back, and a signature made with the key verifies under it.
    absl::StatusOr<PublicKey> pub = PublicKey::FromRecord(key->PublicKeyRecord());
    ASSERT_TRUE(pub.ok()) << pub.status();
    std::string digest(32, '\x5a');
    absl::StatusOr<std::string> sig = key->SignDigest(digest);
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(pub->VerifyDigest(digest, *sig));
    digest[0] ^= 1;
    EXPECT_FALSE(pub->VerifyDigest(digest, *sig));
  }
}

TEST(KeyTest, RefusesBadKeys) {
  EXPECT_FALSE(PrivateKey::FromFileContents(RsaPem(512)).ok());  // RFC 8301 §3.2
  EXPECT_TRUE(PrivateKey::FromFileContents(RsaPem(1024)).ok());
  EXPECT_FALSE(PrivateKey::FromFileContents("").ok());
  EXPECT_FALSE(PrivateKey::FromFileContents("c2hvcnQ=").ok());  // base64, not 32 bytes
  EXPECT_FALSE(PrivateKey::FromFileContents("-----BEGIN PRIVATE KEY-----\n!!!\n"
                                            "-----END PRIVATE KEY-----\n")
                   .ok());
  EXPECT_FALSE(PrivateKey::FromFileContents("-----BEGIN RSA PRIVATE KEY-----\n"
                                            "Proc-Type: 4,ENCRYPTED\n"
                                            "-----END RSA PRIVATE KEY-----\n")
                   .ok());
  EXPECT_FALSE(PrivateKey::FromFile("/nonexistent/key").ok());
}

TEST(KeyTest, PublicKeyRecords) {
  const std::string p = "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
  EXPECT_TRUE(PublicKey::FromRecord("v=DKIM1; k=ed25519; " + p).ok());
  EXPECT_TRUE(PublicKey::FromRecord("k=ed25519; " + p + ";").ok());
  EXPECT_TRUE(PublicKey::FromRecord("v=DKIM1;k=ed25519;h=sha256;s=email;t=y:s;" + p).ok());
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM2; k=ed25519; " + p).ok());
  EXPECT_FALSE(PublicKey::FromRecord("k=ed25519; v=DKIM1; " + p).ok());  // v= must be first
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM1; k=ed25519; p=").ok());     // revoked
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM1; k=dsa; " + p).ok());
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM1; k=ed25519; h=sha1; " + p).ok());
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM1; k=rsa; " + p).ok());  // not an RSA key
  EXPECT_FALSE(PublicKey::FromRecord("v=DKIM1; k=ed25519").ok());
  absl::StatusOr<PublicKey> testing = PublicKey::FromRecord("k=ed25519; t=y; " + p);
  ASSERT_TRUE(testing.ok());
  EXPECT_TRUE(testing->testing());
  EXPECT_FALSE(testing->strict());
}

TEST(KeyTest, TagLists) {
  auto tags = ParseTagList(" a = 1 ;b=\r\n 2 3;c=;");
  ASSERT_TRUE(tags.ok()) << tags.status();
  ASSERT_EQ(tags->size(), 3u);
  EXPECT_EQ((*tags)[0].first, "a");
  EXPECT_EQ((*tags)[0].second, "1");
  EXPECT_EQ((*tags)[1].second, "2 3");
  EXPECT_EQ((*tags)[2].second, "");
  EXPECT_FALSE(ParseTagList("a=1; a=2").ok());
  EXPECT_FALSE(ParseTagList("a=1;;b=2").ok());
  EXPECT_FALSE(ParseTagList("novalue").ok());
  EXPECT_FALSE(ParseTagList("1a=x").ok());
}

TEST(KeyTest, TxtStringsAreAtMost255Bytes) {
  std::string record(600, 'x');
  std::vector<std::string> parts = SplitTxtStrings(record);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].size(), 255u);
  EXPECT_EQ(parts[1].size(), 255u);
  EXPECT_EQ(parts[2].size(), 90u);
  EXPECT_EQ(parts[0] + parts[1] + parts[2], record);
  EXPECT_EQ(SplitTxtStrings("short").size(), 1u);
}

}  // namespace
}  // namespace dkim
