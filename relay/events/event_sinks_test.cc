#include "relay/events/event_sinks.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace relay::events {
namespace {

delivery::DeliveryRecord Delivered(int i) {
  static std::string recipient;
  recipient = "r" + std::to_string(i) + "@example.org";
  delivery::DeliveryRecord r;
  r.event = delivery::DeliveryEvent::kDelivered;
  r.time_unix_ms = 1700000000000;
  r.queue_id = "q";
  r.sender = "a@example.com";
  r.recipient = recipient;
  return r;
}

template <typename Predicate>
bool WaitUntil(Predicate done) {
  for (int i = 0; i < 300 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// Files every sink has passed become the shard's next files; the shard writes into them and a
// reader takes only what was written there under their new number.
TEST(EventSinks, RecyclesPassedFilesAsTheNextOnes) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/sinks";
  std::filesystem::remove_all(dir);
  EventSinksOptions o;
  o.dir = dir;
  o.file_bytes_max = 65536;
  WebhookOptions w;
  w.name = "none";
  w.url = "http://127.0.0.1:9/";
  w.tenants = {"nobody.example"};  // passes every event without posting
  w.secret = "0123456789abcdef";
  o.webhooks = {w};
  auto sinks = EventSinks::Create(o);
  ASSERT_TRUE(sinks.ok()) << sinks.status();
  auto journal = EventJournal::Open({.dir = dir, .file_bytes_max = 65536}, (*sinks)->head(0));
  ASSERT_TRUE(journal.ok());
  for (int i = 0; i < 1000; ++i) (*journal)->Append(Delivered(i));
  (*journal)->WriteAndPublish();
  const Position head = (*sinks)->head(0)->Get();
  ASSERT_GE(head.seq, 3u) << "the lines span several files";
  const std::vector<uint32_t> before = ListJournalFiles(dir, 0);

  (*sinks)->Start();
  ASSERT_TRUE(WaitUntil([&] { return (*sinks)->sinks()[0]->PersistedCursor()[0] == head; }));
  (*sinks)->Maintain();
  std::vector<uint32_t> after = ListJournalFiles(dir, 0);
  EXPECT_EQ(after.front(), head.seq) << "the passed files are gone from their old numbers";
  EXPECT_EQ(after.size(), 3u) << "the head's file and two ahead";
  EXPECT_EQ(after.back(), head.seq + 2);
  EXPECT_FALSE(JournalFileUsed(dir, 0, head.seq + 1));
  EXPECT_EQ(std::filesystem::file_size(dir + "/" + JournalFileName(0, head.seq + 1)), 65536u);

  // Written into a recycled file: a reader sees its new lines only, not its earlier life.
  for (int i = 0; i < 700; ++i) (*journal)->Append(Delivered(i));
  (*journal)->WriteAndPublish();
  const Position later = (*sinks)->head(0)->Get();
  ASSERT_GT(later.seq, head.seq);
  JournalReader reader(dir, 0);
  int seen = 0;
  Position end = reader.Read(head, later, 1 << 20, [&](const JournalEvent&) {
    ++seen;
    return true;
  });
  EXPECT_EQ(end, later);
  EXPECT_EQ(seen, 700);
  EXPECT_EQ(reader.malformed_lines(), 0u);
  (*sinks)->Stop();
}

}  // namespace
}  // namespace relay::events
