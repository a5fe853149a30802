#include "relay/server/client_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "gtest/gtest.h"

namespace relay::server {
namespace {

TEST(ClientKeyTest, Ipv6SharesAKeyPerSlash64AndMappedIpv4IsIpv4) {
  EXPECT_EQ(ClientKeyFromText("2001:db8:1:2::1"), ClientKeyFromText("2001:db8:1:2:ffff::9"));
  EXPECT_NE(ClientKeyFromText("2001:db8:1:2::1"), ClientKeyFromText("2001:db8:1:3::1"));
  EXPECT_EQ(ClientKeyFromText("2001:db8:1:2::1").size(), 8u);
  EXPECT_EQ(ClientKeyFromText("::ffff:192.0.2.1"), ClientKeyFromText("192.0.2.1"));
  EXPECT_EQ(ClientKeyFromText("192.0.2.1").size(), 4u);
  EXPECT_NE(ClientKeyFromText("192.0.2.1"), ClientKeyFromText("192.0.2.2"));
  // ::1 and ::2 share the /64 ::/64; 127.0.0.1 is a different key (not mapped).
  EXPECT_EQ(ClientKeyFromText("::1"), ClientKeyFromText("::2"));
  EXPECT_NE(ClientKeyFromText("::1"), ClientKeyFromText("127.0.0.1"));
  EXPECT_EQ(ClientKeyFromText("not an address"), "");
  EXPECT_EQ(ClientKeyFromText(""), "");
}

TEST(ClientKeyTest, SockaddrGivesTheSameKeyAsText) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
  EXPECT_EQ(ClientKey(reinterpret_cast<sockaddr*>(&v4)), ClientKeyFromText("198.51.100.7"));
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::5", &v6.sin6_addr);
  EXPECT_EQ(ClientKey(reinterpret_cast<sockaddr*>(&v6)), ClientKeyFromText("2001:db8::77"));
  inet_pton(AF_INET6, "::ffff:198.51.100.7", &v6.sin6_addr);
  EXPECT_EQ(ClientKey(reinterpret_cast<sockaddr*>(&v6)), ClientKeyFromText("198.51.100.7"));
  sockaddr unix_address{};
  unix_address.sa_family = AF_UNIX;
  EXPECT_EQ(ClientKey(&unix_address), "");
  EXPECT_EQ(ClientKey(nullptr), "");
}

}  // namespace
}  // namespace relay::server
