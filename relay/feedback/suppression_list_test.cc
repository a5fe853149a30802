#include "relay/feedback/suppression_list.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

std::string TestPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::unique_ptr<SuppressionList> OpenList(const std::string& name, size_t map_bytes = 1 << 24) {
  SuppressionListOptions o;
  o.path = TestPath(name);
  o.map_bytes_max = map_bytes;
  o.batch_wait_ms = 5;
  auto list = SuppressionList::Open(o);
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? std::move(*list) : nullptr;
}

SuppressionEntry Entry(std::string tenant, std::string address, SuppressionReason reason) {
  SuppressionEntry e;
  e.tenant = std::move(tenant);
  e.address = std::move(address);
  e.reason = reason;
  e.category = reason == SuppressionReason::kBounce ? "bad-mailbox" : "";
  e.time_unix_ms = 1765000000123;
  e.queue_id = "0a1b2c";
  e.detail = "550 5.1.1 user\tunknown\r\n";
  return e;
}

TEST(SuppressionList, AddFindRemoveAcrossReopen) {
  {
    auto list = OpenList("a.mdb");
    ASSERT_NE(list, nullptr);
    ASSERT_TRUE(list->Add(Entry("Example.COM", "Gone@Gmail.com", SuppressionReason::kBounce)).ok());
    auto found = list->Find("example.com", "gone@gmail.com");
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ((*found)->tenant, "example.com");
    EXPECT_EQ((*found)->address, "gone@gmail.com");
    EXPECT_EQ((*found)->reason, SuppressionReason::kBounce);
    EXPECT_EQ((*found)->category, "bad-mailbox");
    EXPECT_EQ((*found)->time_unix_ms, 1765000000123);
    EXPECT_EQ((*found)->queue_id, "0a1b2c");
    EXPECT_EQ((*found)->detail, "550 5.1.1 user unknown  ");  // no tab or line end survives
    // Per tenant: another sending domain may still mail the address.
    EXPECT_FALSE(list->Find("other.example", "gone@gmail.com")->has_value());
  }
  auto list = OpenList("a.mdb");
  ASSERT_NE(list, nullptr);
  EXPECT_TRUE(list->Find("EXAMPLE.com", "GONE@gmail.com")->has_value());  // durable
  EXPECT_EQ(*list->Count(), 1u);
  EXPECT_TRUE(*list->Remove("example.com", "gone@gmail.com"));
  EXPECT_FALSE(*list->Remove("example.com", "gone@gmail.com"));
  EXPECT_FALSE(list->Find("example.com", "gone@gmail.com")->has_value());
}

TEST(SuppressionList, ForEachByTenantAndAll) {
  auto list = OpenList("b.mdb");
  ASSERT_NE(list, nullptr);
  std::vector<SuppressionEntry> many;
  for (int i = 0; i < 100; ++i) {
    many.push_back(Entry(i % 2 ? "a.example" : "b.example", "u" + std::to_string(i) + "@x.test",
                         SuppressionReason::kUnsubscribe));
  }
  ASSERT_TRUE(list->AddMany(many).ok());
  int a = 0, all = 0;
  ASSERT_TRUE(list->ForEach("A.example", [&](const SuppressionEntry& e) {
                    EXPECT_EQ(e.tenant, "a.example");
                    ++a;
                    return true;
                  }).ok());
  ASSERT_TRUE(list->ForEach("", [&](const SuppressionEntry&) { return ++all < 70; }).ok());
  EXPECT_EQ(a, 50);
  EXPECT_EQ(all, 70);  // stopped by the visitor
  // "a.example" is not a prefix match for "a.exampl".
  int none = 0;
  ASSERT_TRUE(list->ForEach("a.exampl", [&](const SuppressionEntry&) { return ++none > 0; }).ok());
  EXPECT_EQ(none, 0);
}

TEST(SuppressionList, AddLaterCommitsInTheBackground) {
  auto list = OpenList("c.mdb");
  ASSERT_NE(list, nullptr);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(list->AddLater(
        Entry("example.com", "b" + std::to_string(i) + "@x.test", SuppressionReason::kBounce)));
  }
  list->Flush();
  EXPECT_EQ(*list->Count(), 1000u);
  EXPECT_EQ(list->dropped(), 0u);
  // An entry that cannot be keyed is dropped alone, not with its batch.
  ASSERT_TRUE(list->AddLater(Entry("", "x@x.test", SuppressionReason::kBounce)));
  ASSERT_TRUE(list->AddLater(Entry("example.com", "ok@x.test", SuppressionReason::kBounce)));
  list->Flush();
  EXPECT_EQ(list->dropped(), 1u);
  EXPECT_TRUE(list->Find("example.com", "ok@x.test")->has_value());
}

TEST(SuppressionList, AFullMapIsAClearError) {
  auto list = OpenList("d.mdb", 64 << 10);
  ASSERT_NE(list, nullptr);
  absl::Status s;
  for (int i = 0; i < 10000 && s.ok(); ++i) {
    s = list->Add(Entry("example.com", "full" + std::to_string(i) + "@x.test",
                        SuppressionReason::kManual));
  }
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("suppression list full"), std::string::npos);
  EXPECT_TRUE(list->Find("example.com", "full0@x.test")->has_value());  // what was in stays
}

TEST(SuppressionList, KeysAndValuesAreChecked) {
  EXPECT_FALSE(EntryKey("", "a@b").ok());
  EXPECT_FALSE(EntryKey("b", "").ok());
  EXPECT_FALSE(EntryKey(std::string(256, 'd'), "a@b").ok());
  EXPECT_FALSE(EntryKey("b", std::string(255, 'a')).ok());
  EXPECT_EQ(*EntryKey("B.Example", "A@B"), std::string("b.example\0a@b", 13));
  const std::string key("t\0a@b", 5);
  EXPECT_TRUE(DecodeEntry(key, "v1\tmanual\t\t5\t\tnote").ok());
  EXPECT_EQ(DecodeEntry(key, "v1\tmanual\t\t5\t\tnote\twith tab")->detail, "note\twith tab");
  for (const char* bad : {"", "v1", "v2\tmanual\t\t5\t\t", "v1\tlost\t\t5\t\t", "v1\tmanual\t\tx\t\t",
                          "v1\tmanual\t\t\t\t", "v1\tmanual\t\t5\t"}) {
    EXPECT_FALSE(DecodeEntry(key, bad).ok()) << bad;
  }
  EXPECT_FALSE(DecodeEntry("no-nul", "v1\tmanual\t\t5\t\t").ok());
}

}  // namespace
}  // namespace relay::feedback
