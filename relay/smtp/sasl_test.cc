#include "relay/smtp/sasl.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

using namespace std::string_literals;

TEST(Sasl, Mechanisms) {
  EXPECT_EQ(ParseSaslMechanism("PLAIN"), SaslMechanism::kPlain);
  EXPECT_EQ(ParseSaslMechanism("login"), SaslMechanism::kLogin);
  EXPECT_EQ(ParseSaslMechanism("CRAM-MD5"), SaslMechanism::kUnknown);
}

TEST(Sasl, DecodesBase64Strictly) {
  std::string out;
  ASSERT_EQ(DecodeSaslResponse("AHVzZXIAcGFzcw==", &out), SaslResponse::kOk);
  EXPECT_EQ(out, "\0user\0pass"s);
  ASSERT_EQ(DecodeSaslResponse("dXNlcg==", &out), SaslResponse::kOk);
  EXPECT_EQ(out, "user");
  EXPECT_EQ(DecodeSaslResponse("*", &out), SaslResponse::kCancelled);
  ASSERT_EQ(DecodeSaslResponse("=", &out), SaslResponse::kOk);
  EXPECT_EQ(out, "");
  EXPECT_EQ(DecodeSaslResponse("dXNlcg=", &out), SaslResponse::kBadBase64);
  EXPECT_EQ(DecodeSaslResponse("dXN=cg==", &out), SaslResponse::kBadBase64);
  EXPECT_EQ(DecodeSaslResponse("dX Nl", &out), SaslResponse::kBadBase64);
  EXPECT_EQ(DecodeSaslResponse("dXNlc=g=", &out), SaslResponse::kBadBase64);
  EXPECT_EQ(DecodeSaslResponse("!!!!", &out), SaslResponse::kBadBase64);
}

TEST(Sasl, SplitPlain) {
  PlainCredentials creds;
  ASSERT_TRUE(SplitPlain("\0user\0pass"s, &creds));
  EXPECT_EQ(creds.authzid, "");
  EXPECT_EQ(creds.authcid, "user");
  EXPECT_EQ(creds.password, "pass");
  ASSERT_TRUE(SplitPlain("admin\0user\0p\xc3\xa4ss"s, &creds));
  EXPECT_EQ(creds.authzid, "admin");
  EXPECT_FALSE(SplitPlain("\0\0pass"s, &creds));
  EXPECT_FALSE(SplitPlain("\0user\0"s, &creds));
  EXPECT_FALSE(SplitPlain("userpass"s, &creds));
  EXPECT_FALSE(SplitPlain("\0user\0pa\0ss"s, &creds));
}

TEST(Sasl, Base64Encode) {
  EXPECT_EQ(Base64Encode("Username:"), "VXNlcm5hbWU6");
  EXPECT_EQ(Base64Encode("Password:"), "UGFzc3dvcmQ6");
}

}  // namespace
}  // namespace relay::smtp
