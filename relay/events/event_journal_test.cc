#include "relay/events/event_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/events/journal_reader.h"

namespace relay::events {
namespace {

std::string FreshDir(const std::string& name) {
  std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

// `recipient` outlives the record (a literal): the record holds a view of it.
delivery::DeliveryRecord Delivered(std::string_view recipient) {
  delivery::DeliveryRecord r;
  r.event = delivery::DeliveryEvent::kDelivered;
  r.time_unix_ms = 1700000000123;
  r.queue_id = "q1";
  r.sender = "App@Example.COM";
  r.recipient = recipient;
  r.reply_code = 250;
  r.reply_enhanced = "2.0.0";
  r.reply_text = "ok";
  return r;
}

struct Read {
  std::vector<std::string> recipients_json;
  std::vector<JournalEvent> events;
  Position next;
};

Read ReadAll(JournalReader& reader, Position from, Position head) {
  Read out;
  out.next = reader.Read(from, head, 1 << 20, [&](const JournalEvent& e) {
    out.recipients_json.emplace_back(e.json);
    out.events.push_back(e);
    return true;
  });
  return out;
}

TEST(JournalFileName, RoundTripsAndRefusesOthers) {
  EXPECT_EQ(JournalFileName(3, 42), "s3-0000000042.events");
  auto parsed = ParseJournalFileName("s3-0000000042.events");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->first, 3u);
  EXPECT_EQ(parsed->second, 42u);
  for (const char* bad :
       {"s3-42.events", "x3-0000000042.events", "s-0000000042.events", "s3-0000000042.events.tmp",
        "s3-00000000a2.events", "cursor-app", "s3-0000000000.events"}) {
    EXPECT_FALSE(ParseJournalFileName(bad)) << bad;
  }
}

TEST(FindMessageId, ReadsTheFieldInTheHeaderOnly) {
  std::string storage;
  EXPECT_EQ(FindMessageId("From: a\r\nMessage-ID: <x@y>\r\n\r\nbody", &storage), "<x@y>");
  EXPECT_EQ(FindMessageId("message-id :\r\n <folded@y>\r\nSubject: s\r\n\r\n", &storage),
            "<folded@y>");
  EXPECT_EQ(FindMessageId("From: a\r\n\r\nMessage-ID: <in-body@y>\r\n", &storage), "");
  EXPECT_EQ(FindMessageId("Message-IDs: <no@y>\r\n\r\n", &storage), "");
  EXPECT_EQ(FindMessageId("", &storage), "");
  std::string huge = "Message-ID: <" + std::string(5000, 'a') + ">\r\n\r\n";
  const size_t kept = FindMessageId(huge, &storage).size();
  EXPECT_LE(kept, 998u);
  EXPECT_GE(kept, 990u);
}

TEST(EventJournal, LinesBecomeReadableWhenTheirSyncEnds) {
  const std::string dir = FreshDir("sync");
  JournalHead head;
  auto journal = EventJournal::Open({.dir = dir, .shard = 1}, &head);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ(head.Get(), (Position{1, 0}));
  delivery::DeliveryRecord with_id = Delivered("a@example.org");
  with_id.message_id = "<m1@x>";
  (*journal)->Append(with_id);
  (*journal)->Append(Delivered("b@example.org"));
  EXPECT_TRUE((*journal)->HasUnsynced());
  std::vector<int> fds;
  const uint64_t token = (*journal)->BeginSync(&fds);
  EXPECT_EQ(fds.size(), 1u);
  EXPECT_FALSE((*journal)->HasUnsynced());

  JournalReader reader(dir, 1);
  EXPECT_TRUE(ReadAll(reader, Position{}, head.Get()).events.empty()) << "not durable yet";
  (*journal)->EndSync(token, 0);
  Read read = ReadAll(reader, Position{}, head.Get());
  ASSERT_EQ(read.events.size(), 2u);
  EXPECT_EQ(read.events[0].event, "delivered");
  EXPECT_EQ(read.events[0].tenant, "example.com");
  EXPECT_EQ(read.events[0].time_unix_ms, 1700000000123);
  EXPECT_EQ(read.events[0].at, (Position{1, 0}));
  EXPECT_NE(read.recipients_json[0].find("\"message_id\":\"<m1@x>\""), std::string::npos);
  EXPECT_NE(read.recipients_json[0].find("\"tenant\":\"example.com\""), std::string::npos);
  EXPECT_EQ(read.recipients_json[1].find("message_id"), std::string::npos);
  EXPECT_EQ(read.next, head.Get());
  EXPECT_TRUE(ReadAll(reader, read.next, head.Get()).events.empty());
}

TEST(EventJournal, PublishesInOrderWhenSyncsEndOutOfOrder) {
  JournalHead head;
  auto journal = EventJournal::Open({.dir = FreshDir("order")}, &head);
  ASSERT_TRUE(journal.ok());
  std::vector<int> fds;
  (*journal)->Append(Delivered("a@example.org"));
  const uint64_t first = (*journal)->BeginSync(&fds);
  (*journal)->Append(Delivered("b@example.org"));
  const uint64_t second = (*journal)->BeginSync(&fds);
  (*journal)->EndSync(second, 0);
  EXPECT_EQ(head.Get(), (Position{1, 0})) << "the first batch has not ended";
  (*journal)->EndSync(first, 0);
  EXPECT_GT(head.Get().offset, 0u);
}

TEST(EventJournal, RotatesAndARestartStartsTheNextFile) {
  const std::string dir = FreshDir("rotate");
  JournalHead head;
  {
    auto journal = EventJournal::Open({.dir = dir, .file_bytes_max = 600}, &head);
    ASSERT_TRUE(journal.ok());
    for (int i = 0; i < 10; ++i) {
      (*journal)->Append(Delivered("r" + std::to_string(i) + "@example.org"));
      (*journal)->WriteAndPublish();
    }
  }
  std::vector<uint32_t> files = ListJournalFiles(dir, 0);
  EXPECT_GT(files.size(), 2u);
  JournalReader reader(dir, 0);
  Read read = ReadAll(reader, Position{}, head.Get());
  EXPECT_EQ(read.events.size(), 10u);
  JournalHead again;
  auto reopened = EventJournal::Open({.dir = dir}, &again);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(again.Get(), (Position{files.back() + 1, 0}));
}

TEST(JournalReader, EndsACompleteFileAtItsFirstForeignLineAndSkipsGoneFiles) {
  const std::string dir = FreshDir("broken");
  std::filesystem::create_directories(dir);
  const std::string one = "1\tdelivered\texample.com\t5\t{\"a\":1}\n";
  const std::string three = "3\tdelivered\texample.com\t5\t{\"a\":1}\n";
  {
    std::ofstream f(dir + "/" + JournalFileName(0, 1));
    // Two lines of this file, then its earlier life as file 0 (recycled): not read.
    f << one << one << "0\tdelivered\texample.com\t5\t{\"old\":1}\n" << one;
  }
  {
    std::ofstream f(dir + "/" + JournalFileName(0, 3));  // 2 is gone
    f << three << "no tabs here\n" << std::string(kLineBytesMax + 10, 'x') << "\n" << three;
  }
  JournalReader reader(dir, 0);
  const Position head{
      3, static_cast<uint32_t>(std::filesystem::file_size(dir + "/" + JournalFileName(0, 3)))};
  Read read = ReadAll(reader, Position{}, head);
  EXPECT_EQ(read.events.size(), 4u) << "two of file 1, two of file 3 (the head's)";
  EXPECT_EQ(reader.malformed_lines(), 2u) << "in the head's file, bad lines are skipped";
  EXPECT_EQ(reader.missing_files(), 1u);
  EXPECT_EQ(read.next, head);
}

TEST(EventJournal, WritesIntoFilesMadeAheadAndReadersStopAtTheirZeros) {
  const std::string dir = FreshDir("ahead");
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(PrepareJournalFile(dir, 0, 1, 65536, "t").ok());
  ASSERT_TRUE(PrepareJournalFile(dir, 0, 1, 65536, "u").ok()) << "a file there is kept";
  EXPECT_EQ(std::filesystem::file_size(dir + "/" + JournalFileName(0, 1)), 65536u);
  JournalHead head;
  {
    auto journal = EventJournal::Open({.dir = dir, .file_bytes_max = 65536}, &head);
    ASSERT_TRUE(journal.ok());
    EXPECT_EQ(head.Get(), (Position{1, 0})) << "the unused file made ahead is taken";
    (*journal)->Append(Delivered("a@example.org"));
    (*journal)->WriteAndPublish();
  }
  EXPECT_EQ(std::filesystem::file_size(dir + "/" + JournalFileName(0, 1)), 65536u);
  // A later start goes on in a new file; the first is complete: read up to its zeros.
  JournalHead again;
  auto reopened = EventJournal::Open({.dir = dir, .file_bytes_max = 65536}, &again);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(again.Get(), (Position{2, 0}));
  JournalReader reader(dir, 0);
  Read read = ReadAll(reader, Position{}, again.Get());
  EXPECT_EQ(read.events.size(), 1u);
  EXPECT_EQ(read.next, again.Get());
  EXPECT_EQ(reader.malformed_lines(), 0u);
  // A line cut short before the zeros (a crash mid-write) is dropped and counted.
  {
    std::ofstream f(dir + "/" + JournalFileName(0, 2), std::ios::in | std::ios::out);
    f << "2\tdelivered\texample.com\t5\t{\"a\":1}\n2\tdelivered\texam";
  }
  Read torn = ReadAll(reader, Position{2, 0}, Position{3, 0});
  EXPECT_EQ(torn.events.size(), 1u);
  EXPECT_EQ(reader.malformed_lines(), 1u);
}

TEST(JournalReader, WaitsForALineTheHeadEndsIn) {
  const std::string dir = FreshDir("midline");
  std::filesystem::create_directories(dir);
  const std::string whole = "1\tdelivered\texample.com\t5\t{\"a\":1}\n";
  {
    std::ofstream f(dir + "/" + JournalFileName(0, 1));
    f << whole << "1\tdelivered\texam";  // a short write: the head ends inside this line
  }
  JournalReader reader(dir, 0);
  const Position head{1, static_cast<uint32_t>(whole.size() + 17)};
  Read read = ReadAll(reader, Position{}, head);
  EXPECT_EQ(read.events.size(), 1u);
  EXPECT_EQ(read.next, (Position{1, static_cast<uint32_t>(whole.size())}));
  EXPECT_EQ(ReadAll(reader, read.next, head).next, read.next) << "returns, takes nothing";
}

TEST(EventJournal, NeverStartsAtANumberTheHeadIsPast) {
  const std::string dir = FreshDir("floor");
  JournalHead head;
  head.Publish(Position{7, 0});  // a sink's cursor: files up to 6 were passed (and are gone)
  auto journal = EventJournal::Open({.dir = dir, .file_bytes_max = 65536}, &head);
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ(head.Get(), (Position{7, 0}));
  EXPECT_EQ(ListJournalFiles(dir, 0), std::vector<uint32_t>{7});
}

TEST(JournalReader, TakesAtMostTheBudgetAndStopsWhereVisitSays) {
  const std::string dir = FreshDir("budget");
  JournalHead head;
  auto journal = EventJournal::Open({.dir = dir}, &head);
  ASSERT_TRUE(journal.ok());
  for (int i = 0; i < 5; ++i) (*journal)->Append(Delivered("r@example.org"));
  (*journal)->WriteAndPublish();
  JournalReader reader(dir, 0);
  int seen = 0;
  Position after_two = reader.Read(Position{}, head.Get(), 1 << 20,
                                   [&](const JournalEvent&) { return ++seen <= 2; });
  EXPECT_EQ(seen, 3);
  Read rest = ReadAll(reader, after_two, head.Get());
  EXPECT_EQ(rest.events.size(), 3u) << "the refused line is read again";
}

}  // namespace
}  // namespace relay::events
