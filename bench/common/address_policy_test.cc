#include "bench/common/address_policy.h"

#include "gtest/gtest.h"

namespace bench {
namespace {

bool Allowed(const char* text) {
  auto a = relay::io::SocketAddress::Parse(text);
  EXPECT_TRUE(a.ok()) << text;
  return CheckBenchDestination(*a).ok();
}

TEST(AddressPolicyTest, LoopbackAndDocumentationPrefixesOnly) {
  EXPECT_TRUE(Allowed("127.0.0.1:25"));
  EXPECT_TRUE(Allowed("127.0.0.50:2525"));
  EXPECT_TRUE(Allowed("[::1]:25"));
  EXPECT_TRUE(Allowed("[::ffff:127.0.0.1]:25"));
  EXPECT_TRUE(Allowed("192.0.2.10:25"));
  EXPECT_TRUE(Allowed("198.51.100.1:25"));
  EXPECT_TRUE(Allowed("203.0.113.200:25"));
  EXPECT_TRUE(Allowed("[2001:db8::25]:25"));

  EXPECT_FALSE(Allowed("8.8.8.8:25"));
  EXPECT_FALSE(Allowed("10.0.0.1:25"));
  EXPECT_FALSE(Allowed("192.168.1.1:25"));
  EXPECT_FALSE(Allowed("0.0.0.0:25"));
  EXPECT_FALSE(Allowed("[::]:25"));
  EXPECT_FALSE(Allowed("[::ffff:8.8.8.8]:25"));
  EXPECT_FALSE(Allowed("[2001:db9::1]:25"));
  EXPECT_FALSE(Allowed("[2607:f8b0::1]:25"));
}

TEST(AddressPolicyTest, TheErrorSaysWhy) {
  auto a = relay::io::SocketAddress::Parse("8.8.8.8:25");
  absl::Status s = CheckBenchDestination(*a);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("8.8.8.8:25"), std::string::npos);
  EXPECT_NE(s.message().find("loopback"), std::string::npos);
}

}  // namespace
}  // namespace bench
