#include "dns/cache.h"

#include <memory>

#include "gtest/gtest.h"
#include "relay/base/clock.h"

namespace dns {
namespace {

using Section = MessageBuilder::Section;

std::shared_ptr<const CachedAnswer> Answer(const MessageBuilder& b) {
  auto a = std::make_shared<CachedAnswer>();
  a->raw = b.wire();
  a->message = *ParseMessage(b.wire());
  return a;
}

std::shared_ptr<const CachedAnswer> MxAnswer(const std::string& name, uint32_t ttl_s) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion(name, kTypeMx);
  b.AddMx(Section::kAnswer, name, ttl_s, 10, "mx." + name);
  b.AddMx(Section::kAnswer, name, ttl_s + 100, 20, "mx2." + name);
  return Answer(b);
}

std::shared_ptr<const CachedAnswer> Negative(const std::string& name, uint8_t rcode,
                                             uint32_t soa_ttl_s, uint32_t minimum_s) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.SetRcode(rcode);
  b.AddQuestion(name, kTypeMx);
  b.AddSoa(Section::kAuthority, "example", soa_ttl_s,
           SoaData{"ns.example", "h.example", 1, 2, 3, 4, minimum_s});
  return Answer(b);
}

TEST(CacheTest, PositiveEntryLivesForTheSmallestTtl) {
  relay::FakeClock clock;
  Cache cache(&clock, CacheOptions{});
  EXPECT_EQ(cache.Insert("a.example", kTypeMx, MxAnswer("a.example", 300)), 300u);
  EXPECT_NE(cache.Lookup("A.Example.", kTypeMx), nullptr);
  EXPECT_EQ(cache.Lookup("a.example", kTypeA), nullptr);  // another type
  clock.AdvanceMillis(299'999);
  EXPECT_NE(cache.Lookup("a.example", kTypeMx), nullptr);
  clock.AdvanceMillis(1);
  EXPECT_EQ(cache.Lookup("a.example", kTypeMx), nullptr);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.expirations(), 1u);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(CacheTest, NegativeTtlIsSoaMinimumOrSoaTtlWhicheverIsSmaller) {
  relay::FakeClock clock;
  Cache cache(&clock, CacheOptions{});
  EXPECT_EQ(cache.Insert("nx.example", kTypeMx, Negative("nx.example", kRcodeNxDomain, 3600, 60)),
            60u);
  EXPECT_EQ(cache.Insert("nd.example", kTypeMx, Negative("nd.example", kRcodeNoError, 30, 600)),
            30u);
  clock.AdvanceMillis(45'000);
  EXPECT_NE(cache.Lookup("nx.example", kTypeMx), nullptr);
  EXPECT_EQ(cache.Lookup("nd.example", kTypeMx), nullptr);
  clock.AdvanceMillis(15'000);
  EXPECT_EQ(cache.Lookup("nx.example", kTypeMx), nullptr);
}

TEST(CacheTest, CapsAndUncacheableAnswers) {
  relay::FakeClock clock;
  CacheOptions options;
  options.positive_ttl_s_max = 100;
  options.negative_ttl_s_max = 10;
  Cache cache(&clock, options);
  EXPECT_EQ(cache.Insert("a.example", kTypeMx, MxAnswer("a.example", 86400)), 100u);
  EXPECT_EQ(cache.Insert("nx.example", kTypeMx, Negative("nx.example", kRcodeNxDomain, 900, 900)),
            10u);
  // SERVFAIL is never cached; neither is a negative answer without an SOA (RFC 2308 §5).
  EXPECT_EQ(cache.Insert("sf.example", kTypeMx, Negative("sf.example", kRcodeServFail, 60, 60)),
            0u);
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.SetRcode(kRcodeNxDomain);
  b.AddQuestion("nosoa.example", kTypeMx);
  EXPECT_EQ(cache.Insert("nosoa.example", kTypeMx, Answer(b)), 0u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(CacheTest, EvictsOldestWhenFull) {
  relay::FakeClock clock;
  CacheOptions options;
  options.entries_max = 3;
  Cache cache(&clock, options);
  for (int i = 0; i < 5; ++i) {
    std::string name = "d" + std::to_string(i) + ".example";
    cache.Insert(name, kTypeMx, MxAnswer(name, 300));
  }
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.evictions(), 2u);
  EXPECT_EQ(cache.Lookup("d0.example", kTypeMx), nullptr);
  EXPECT_EQ(cache.Lookup("d1.example", kTypeMx), nullptr);
  EXPECT_NE(cache.Lookup("d2.example", kTypeMx), nullptr);
  EXPECT_NE(cache.Lookup("d4.example", kTypeMx), nullptr);
  // Re-inserting refreshes the age of an entry.
  cache.Insert("d2.example", kTypeMx, MxAnswer("d2.example", 300));
  cache.Insert("d5.example", kTypeMx, MxAnswer("d5.example", 300));
  EXPECT_NE(cache.Lookup("d2.example", kTypeMx), nullptr);
  EXPECT_EQ(cache.Lookup("d3.example", kTypeMx), nullptr);
}

TEST(CacheTest, CnameTtlBoundsTheAnswer) {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("alias.example", kTypeA);
  b.AddName(Section::kAnswer, "alias.example", kTypeCname, 20, "real.example");
  b.AddA(Section::kAnswer, "real.example", 300, "192.0.2.1");
  EXPECT_EQ(Cache::TtlFor(*ParseMessage(b.wire()), "alias.example", kTypeA), 20u);
}

}  // namespace
}  // namespace dns
