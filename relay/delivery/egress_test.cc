#include "relay/delivery/egress.h"

#include <sys/socket.h>

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

EgressSourceConfig Source(std::string name, std::string address, uint32_t weight = 1) {
  EgressSourceConfig c;
  c.name = std::move(name);
  c.address = std::move(address);
  c.ehlo_name = "mta.example.com";
  c.weight = weight;
  return c;
}

const auto kAny = [](int) { return true; };

TEST(EgressTest, WithoutPoolsTheDefaultPoolHasEverySource) {
  auto egress = Egress::Create({Source("a", "192.0.2.1"), Source("", "192.0.2.2")}, {},
                               EgressStrategy::kRoundRobin, "relay.example.com");
  ASSERT_TRUE(egress.ok()) << egress.status();
  ASSERT_EQ(egress->pool_count(), 1u);
  EXPECT_EQ(egress->pool_name(Egress::kDefaultPool), "default");
  EXPECT_EQ(egress->source(0).group, "a");
  EXPECT_EQ(egress->source(1).group, "192.0.2.2");  // unnamed: its address
  std::vector<int> picked;
  for (int i = 0; i < 4; ++i) picked.push_back(egress->Pick(0, "google", AF_INET, 0, kAny));
  EXPECT_EQ(picked, (std::vector<int>{0, 1, 0, 1}));
}

TEST(EgressTest, NamedPoolsPickOnlyTheirSources) {
  auto egress = Egress::Create(
      {Source("warm", "192.0.2.1"), Source("new", "192.0.2.2"), Source("", "192.0.2.3")},
      {{.name = "bulk", .sources = {"new", "192.0.2.3"}, .strategy = std::nullopt},
       {.name = "default", .sources = {"warm"}, .strategy = std::nullopt}},
      EgressStrategy::kRoundRobin, "relay.example.com");
  ASSERT_TRUE(egress.ok()) << egress.status();
  ASSERT_EQ(egress->pool_count(), 2u);
  EXPECT_EQ(egress->pool_name(0), "default");  // the configured one, first
  const int bulk = egress->PoolIndex("bulk");
  EXPECT_EQ(bulk, 1);
  EXPECT_EQ(egress->PoolIndex("none"), -1);
  std::set<int> from_bulk;
  for (int i = 0; i < 6; ++i) from_bulk.insert(egress->Pick(bulk, "google", AF_INET, 0, kAny));
  EXPECT_EQ(from_bulk, (std::set<int>{1, 2}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(egress->Pick(0, "google", AF_INET, 0, kAny), 0);
  EXPECT_TRUE(egress->InPool(bulk, 2));
  EXPECT_FALSE(egress->InPool(bulk, 0));
  EXPECT_EQ(egress->Pick(bulk, "google", AF_INET6, 0, kAny), -1);  // no IPv6 source
}

TEST(EgressTest, ASourceThatMayNotSendPassesTheMessageOn) {
  auto egress = Egress::Create({Source("a", "192.0.2.1"), Source("b", "192.0.2.2")}, {},
                               EgressStrategy::kSticky, "relay.example.com");
  ASSERT_TRUE(egress.ok());
  const int first = egress->Pick(0, "google", AF_INET, 0, kAny);
  const int other = egress->Pick(0, "google", AF_INET, 0, [&](int i) { return i != first; });
  EXPECT_NE(other, first);
  EXPECT_GE(other, 0);
  EXPECT_EQ(egress->Pick(0, "google", AF_INET, 0, [](int) { return false; }), -1);
  // A suspended source is not asked at all.
  egress->Suspend(other, 1000, "test");
  int asked = 0;
  EXPECT_EQ(egress->Pick(0, "google", AF_INET, 10,
                         [&](int i) {
                           ++asked;
                           return i == other;
                         }),
            -1);
  EXPECT_EQ(asked, 1);
}

TEST(EgressTest, PoolErrorsNameTheProblem) {
  auto unknown = Egress::Create({Source("a", "192.0.2.1")},
                                {{.name = "bulk", .sources = {"b"}, .strategy = std::nullopt}},
                                EgressStrategy::kRoundRobin, "x");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("names source b"), std::string::npos);
  auto twice = Egress::Create({Source("a", "192.0.2.1")},
                              {{.name = "p", .sources = {"a"}, .strategy = std::nullopt},
                               {.name = "p", .sources = {"a"}, .strategy = std::nullopt}},
                              EgressStrategy::kRoundRobin, "x");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("named twice"), std::string::npos);
}

TEST(EgressTest, APrefixIsNamedAsAGroup) {
  EgressSourceConfig prefix;
  prefix.name = "v6";
  prefix.prefix = "2001:db8:25::/64";
  prefix.count = 3;
  prefix.ehlo_name = "mail{n}.example.com";
  auto egress = Egress::Create({prefix, Source("v4", "192.0.2.1")},
                               {{.name = "six", .sources = {"v6"}, .strategy = std::nullopt}},
                               EgressStrategy::kRoundRobin, "x");
  ASSERT_TRUE(egress.ok()) << egress.status();
  const int six = egress->PoolIndex("six");
  std::set<int> picked;
  for (int i = 0; i < 6; ++i) picked.insert(egress->Pick(six, "site", AF_INET6, 0, kAny));
  EXPECT_EQ(picked, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(egress->source(1).name, "2001:db8:25::2");
  EXPECT_EQ(egress->source(1).group, "v6");
}

}  // namespace
}  // namespace relay::delivery
