#include "dns/mx.h"

#include <map>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace dns {
namespace {

using Section = MessageBuilder::Section;

Message Parse(const MessageBuilder& b) { return *ParseMessage(b.wire()); }

TEST(MxTest, SortsByPreferenceAndShufflesTies) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("example", kTypeMx);
  b.AddMx(Section::kAnswer, "example", 60, 20, "c.mx.example");
  b.AddMx(Section::kAnswer, "example", 60, 10, "A.mx.example.");
  b.AddMx(Section::kAnswer, "example", 60, 10, "b.mx.example");
  b.AddMx(Section::kAnswer, "example", 60, 30, "d.mx.example");
  Message m = Parse(b);
  std::mt19937_64 rng(42);
  std::map<std::string, int> first;
  for (int i = 0; i < 200; ++i) {
    std::vector<MxHost> hosts;
    bool implicit = true;
    ASSERT_TRUE(SelectMxHosts(m, "example", rng, &hosts, &implicit).ok());
    EXPECT_FALSE(implicit);
    ASSERT_EQ(hosts.size(), 4u);
    EXPECT_EQ(hosts[0].preference, 10);
    EXPECT_EQ(hosts[1].preference, 10);
    EXPECT_EQ(hosts[2].name, "c.mx.example");
    EXPECT_EQ(hosts[3].name, "d.mx.example");
    ++first[hosts[0].name];
    EXPECT_EQ(SiteKey(hosts), "a.mx.example,b.mx.example,c.mx.example,d.mx.example");
  }
  // RFC 5321 §5.1: both equal-preference hosts come first, in random order.
  EXPECT_GT(first["a.mx.example"], 50);
  EXPECT_GT(first["b.mx.example"], 50);
}

TEST(MxTest, NoMxMeansImplicitMx) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("Example.ORG", kTypeMx);
  b.AddSoa(Section::kAuthority, "example.org", 60, SoaData{"ns", "h", 1, 2, 3, 4, 5});
  std::mt19937_64 rng(1);
  std::vector<MxHost> hosts;
  bool implicit = false;
  ASSERT_TRUE(SelectMxHosts(Parse(b), "Example.ORG", rng, &hosts, &implicit).ok());
  EXPECT_TRUE(implicit);
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].name, "example.org");
}

TEST(MxTest, NullMxIsPermanent) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("example", kTypeMx);
  b.AddMx(Section::kAnswer, "example", 60, 0, ".");
  std::mt19937_64 rng(1);
  std::vector<MxHost> hosts;
  bool implicit = false;
  DnsStatus s = SelectMxHosts(Parse(b), "example", rng, &hosts, &implicit);
  EXPECT_TRUE(s.permanent());
  EXPECT_EQ(s.reason, Reason::kNullMx);
  EXPECT_TRUE(hosts.empty());
}

TEST(MxTest, NullMxBesideRealHostsIsIgnored) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("example", kTypeMx);
  b.AddMx(Section::kAnswer, "example", 60, 0, ".");
  b.AddMx(Section::kAnswer, "example", 60, 10, "mx.example");
  std::mt19937_64 rng(1);
  std::vector<MxHost> hosts;
  bool implicit = false;
  ASSERT_TRUE(SelectMxHosts(Parse(b), "example", rng, &hosts, &implicit).ok());
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].name, "mx.example");
}

TEST(MxTest, DuplicateHostKeepsBestPreference) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("example", kTypeMx);
  b.AddMx(Section::kAnswer, "example", 60, 30, "mx.example");
  b.AddMx(Section::kAnswer, "example", 60, 10, "MX.example");
  std::mt19937_64 rng(1);
  std::vector<MxHost> hosts;
  bool implicit = false;
  ASSERT_TRUE(SelectMxHosts(Parse(b), "example", rng, &hosts, &implicit).ok());
  ASSERT_EQ(hosts.size(), 1u);
  EXPECT_EQ(hosts[0].preference, 10);
}

TEST(MxTest, RcodesMapToOutcomes) {
  EXPECT_TRUE(StatusFromRcode(kRcodeNoError, "x", kTypeMx).ok());
  EXPECT_TRUE(StatusFromRcode(kRcodeNxDomain, "x", kTypeMx).permanent());
  EXPECT_TRUE(StatusFromRcode(kRcodeServFail, "x", kTypeMx).transient());
  EXPECT_TRUE(StatusFromRcode(kRcodeRefused, "x", kTypeMx).transient());
  EXPECT_EQ(StatusFromRcode(kRcodeServFail, "x", kTypeMx).reason, Reason::kServFail);
}

TEST(MxTest, AddressOrderFollowsFamilyPreference) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("h", kTypeA);
  b.AddA(Section::kAnswer, "h", 60, "192.0.2.1");
  b.AddA(Section::kAnswer, "h", 60, "192.0.2.2");
  auto v4 = AddressesFrom(Parse(b), "h", kTypeA);
  MessageBuilder b6(1, MessageBuilder::kFlagResponse);
  b6.AddQuestion("h", kTypeAaaa);
  b6.AddAaaa(Section::kAnswer, "h", 60, "2001:db8::1");
  auto v6 = AddressesFrom(Parse(b6), "h", kTypeAaaa);
  ASSERT_EQ(v4.size(), 2u);
  ASSERT_EQ(v6.size(), 1u);
  auto names = [](const std::vector<relay::io::SocketAddress>& v) {
    std::vector<std::string> out;
    for (const auto& a : v) out.push_back(a.IpString());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(names(OrderAddresses(v6, v4, FamilyPreference::kIpv6First)),
            (V{"2001:db8::1", "192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(names(OrderAddresses(v6, v4, FamilyPreference::kIpv4First)),
            (V{"192.0.2.1", "192.0.2.2", "2001:db8::1"}));
  EXPECT_EQ(names(OrderAddresses(v6, v4, FamilyPreference::kIpv4Only)),
            (V{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(names(OrderAddresses(v6, v4, FamilyPreference::kIpv6Only)), (V{"2001:db8::1"}));
}

}  // namespace
}  // namespace dns
