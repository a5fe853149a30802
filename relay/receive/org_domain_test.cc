// The organizational domain (RFC 7489 §3.2) from Debian's Public Suffix List through libpsl.
#include "relay/receive/org_domain.h"

#include "gtest/gtest.h"

namespace relay::receive {
namespace {

TEST(OrganizationalDomain, FromThePublicSuffixList) {
  LoadPublicSuffixList();
  EXPECT_EQ(OrganizationalDomain("example.com"), "example.com");
  EXPECT_EQ(OrganizationalDomain("mail.news.example.com"), "example.com");
  // Multi-label suffixes: what "the last two labels" gets wrong.
  EXPECT_EQ(OrganizationalDomain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(OrganizationalDomain("a.b.example.com.au"), "example.com.au");
  // The private section counts: each github.io site is its own organization.
  EXPECT_EQ(OrganizationalDomain("alice.github.io"), "alice.github.io");
  EXPECT_EQ(OrganizationalDomain("www.alice.github.io"), "alice.github.io");
  // Case and a final dot do not matter.
  EXPECT_EQ(OrganizationalDomain("Mail.Example.CO.UK."), "example.co.uk");
  // A-labels are labels like any other.
  EXPECT_EQ(OrganizationalDomain("www.xn--bcher-kva.de"), "xn--bcher-kva.de");
}

TEST(OrganizationalDomain, UnlistedSuffixesAndSuffixesThemselves) {
  // Not on the list: the default rule "*" makes the last label the suffix.
  EXPECT_EQ(OrganizationalDomain("a.b.test"), "b.test");
  EXPECT_EQ(OrganizationalDomain("b.test"), "b.test");
  // A public suffix has no label to add: it stands for itself.
  EXPECT_EQ(OrganizationalDomain("co.uk"), "co.uk");
  EXPECT_EQ(OrganizationalDomain("test"), "test");
  EXPECT_EQ(OrganizationalDomain(""), "");
}

}  // namespace
}  // namespace relay::receive
