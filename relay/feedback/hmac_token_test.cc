#include "relay/feedback/hmac_token.h"

#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

// RFC 4231 test case 2, in base32 (Python's base64.b32encode of the same HMAC, lower-cased).
TEST(HmacTokenTest, KnownValues) {
  EXPECT_EQ(Base32Hmac("Jefe", {"what do ya want for nothing?"}, 16), "lpomcrv7mb2u42qe");
  EXPECT_EQ(Base32Hmac("k", {"a", "b"}, 12), "tauhf74eeljn") << "fields joined by NUL";
  EXPECT_EQ(Base32Hmac("k", {"a"}, 100).size(), 51u) << "at most 256 bits";
}

TEST(HmacTokenTest, MatchesUnderAnySecretOnly) {
  const std::string mac = Base32Hmac("old", {"x", "y"}, 12);
  EXPECT_TRUE(Base32HmacMatches({"new", "old"}, {"x", "y"}, mac));
  EXPECT_FALSE(Base32HmacMatches({"new"}, {"x", "y"}, mac));
  EXPECT_FALSE(Base32HmacMatches({"old"}, {"xy"}, mac)) << "NUL separates the fields";
  EXPECT_FALSE(Base32HmacMatches({"old"}, {"x", "y"}, mac.substr(1)));
}

TEST(HmacTokenTest, Base32Alphabet) {
  EXPECT_TRUE(IsBase32("abz27AZ"));
  EXPECT_FALSE(IsBase32("a1"));
  EXPECT_FALSE(IsBase32("a8"));
  EXPECT_EQ(Lower("AbC"), "abc");
}

}  // namespace
}  // namespace relay::feedback
