#include "relay/tlspolicy/sts_cache.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace relay::tlspolicy {
namespace {

StsCacheEntry Entry(const std::string& domain, int64_t fetched, int64_t max_age) {
  StsCacheEntry e;
  e.domain = domain;
  e.id = "id1";
  e.fetched_unix_s = fetched;
  e.policy.mode = StsMode::kEnforce;
  e.policy.max_age_s = max_age;
  e.policy.mx = {"mx." + domain};
  return e;
}

TEST(StsCacheTest, StoresReplacesAndIsBounded) {
  StsCache cache(2);
  EXPECT_EQ(cache.Find("a.example"), nullptr);
  cache.Store(Entry("a.example", 1000, 100));
  StsEntryPtr a = cache.Find("a.example");
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(StsEntryFresh(*a, 1099));
  EXPECT_FALSE(StsEntryFresh(*a, 1100));
  StsCacheEntry newer = Entry("a.example", 2000, 100);
  newer.id = "id2";
  cache.Store(newer);
  EXPECT_EQ(cache.Find("a.example")->id, "id2");
  EXPECT_EQ(a->id, "id1");  // a reader's entry does not change under it
  cache.Store(Entry("b.example", 1000, 100));
  cache.Store(Entry("c.example", 1000, 100));  // full
  EXPECT_EQ(cache.Find("c.example"), nullptr);
  size_t total = 0;
  std::vector<StsEntryPtr> list = cache.List(10, &total);
  ASSERT_EQ(total, 2u);
  EXPECT_EQ(list[0]->domain, "a.example");
}

TEST(StsCacheTest, TheFileKeepsFreshPoliciesAcrossARestart) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/mta-sts";
  unlink(path.c_str());
  {
    StsCache cache;
    ASSERT_TRUE(cache.Load(path, 5000).ok());  // none yet
    cache.SetFile(path);
    cache.Store(Entry("fresh.example", 5000, 86400));
    cache.Store(Entry("stale.example", 10, 100));
    cache.Flush();
  }
  StsCache again;
  ASSERT_TRUE(again.Load(path, 6000).ok());
  ASSERT_NE(again.Find("fresh.example"), nullptr);
  EXPECT_EQ(again.Find("fresh.example")->policy.mx, std::vector<std::string>{"mx.fresh.example"});
  EXPECT_EQ(again.Find("stale.example"), nullptr);
}

}  // namespace
}  // namespace relay::tlspolicy
