#include "tools/relayctl/queue_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "queue/spool.h"

namespace relay::relayctl {
namespace {

namespace fs = std::filesystem;

// The fields of the line of `out` whose first field is `name` (split on spaces); empty if none.
std::vector<std::string> Row(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<std::string> row;
    for (std::string f; fields >> f;) row.push_back(f);
    if (!row.empty() && row[0] == name) return row;
  }
  return {};
}

// Runs QueueCommand with stdout captured.
int RunQueue(std::vector<std::string> args, std::string* out) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/stdout.txt";
  std::fflush(stdout);
  int saved = ::dup(1);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(fd, 1);
  ::close(fd);
  int rc = QueueCommand(static_cast<int>(argv.size()), argv.data());
  std::fflush(stdout);
  ::dup2(saved, 1);
  ::close(saved);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return rc;
}

class QueueCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::string(std::getenv("TEST_TMPDIR")) + "/spool";
    fs::remove_all(root_);
    fs::create_directories(root_);
    queue::SpoolOptions o;
    o.directory = root_ + "/shard-0";
    o.segment_bytes = 64 << 10;
    o.reserve_segments = 1;
    auto spool = queue::Spool::Open(o);
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = std::move(*spool);
    queue::Envelope env{"app@example.net", {"x@gmail.com", "y@yahoo.com"}};
    env.attributes.tenant = "shop";
    env.attributes.campaign = "receipts";
    env.attributes.priority = queue::Priority::kTransactional;
    auto a =
        spool_->AppendMessage(env, "DKIM-Signature: v=1\r\n",
                              "Subject: receipt\r\nFrom: app@example.net\r\n\r\nbody\r\n", nullptr);
    ASSERT_TRUE(a.ok());
    a_ = a->id;
    auto b =
        spool_->AppendMessage({"", {"z@gmail.com"}}, "", "Subject: bounce\r\n\r\nx\r\n", nullptr);
    ASSERT_TRUE(b.ok());
    b_ = b->id;
    queue::StateRecord s;
    s.id = a_;
    s.type = queue::RecordType::kDelivered;
    s.recipient = 1;
    s.reply = "250 ok";
    ASSERT_TRUE(spool_->AppendState(s, nullptr).ok());
    s.type = queue::RecordType::kDeferred;
    s.recipient = 0;
    s.reply = "421 4.7.28 rate limited";
    s.attempts = 3;
    s.next_attempt_unix_ms = 1;
    ASSERT_TRUE(spool_->AppendState(s, nullptr).ok());
    ASSERT_TRUE(spool_->SyncNow().ok());
    // Appended but not yet durable: the reader must not show it.
    auto c =
        spool_->AppendMessage({"late@example.net", {"q@example.org"}}, "", "S: x\r\n\r\n", nullptr);
    ASSERT_TRUE(c.ok());
    c_ = c->id;
  }

  std::string root_;
  std::unique_ptr<queue::Spool> spool_;
  queue::MessageId a_, b_, c_;
};

TEST_F(QueueCommandsTest, ListWhileTheWriterRuns) {
  std::string out;
  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_}, &out), 0);
  EXPECT_NE(out.find(a_.ToString()), std::string::npos) << out;
  EXPECT_NE(out.find(b_.ToString()), std::string::npos) << out;
  EXPECT_EQ(out.find(c_.ToString()), std::string::npos) << out;
  EXPECT_NE(out.find("421 4.7.28 rate limited"), std::string::npos) << out;
  EXPECT_NE(out.find("1/2"), std::string::npos) << out;
  EXPECT_NE(out.find("<>"), std::string::npos) << out;

  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_, "--domain", "yahoo.com"}, &out), 0);
  // a's yahoo.com recipient is delivered: nothing pending there.
  EXPECT_EQ(out.find(a_.ToString()), std::string::npos) << out;
  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_, "--sender", "@example.net"}, &out), 0);
  EXPECT_NE(out.find(a_.ToString()), std::string::npos) << out;
  EXPECT_EQ(out.find(b_.ToString()), std::string::npos) << out;
  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_, "--tenant", "Shop"}, &out), 0);
  EXPECT_NE(out.find(a_.ToString()), std::string::npos) << out;
  EXPECT_EQ(out.find(b_.ToString()), std::string::npos) << out;
  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_, "--campaign", "newsletter"}, &out), 0);
  EXPECT_EQ(out.find(a_.ToString()), std::string::npos) << out;

  ASSERT_TRUE(spool_->SyncNow().ok());
  ASSERT_EQ(RunQueue({"queue", "list", "--spool", root_ + "/shard-0"}, &out), 0);
  EXPECT_NE(out.find(c_.ToString()), std::string::npos) << out;
}

TEST_F(QueueCommandsTest, ShowPrintsEnvelopeStateAndHeaders) {
  std::string out;
  ASSERT_EQ(RunQueue({"queue", "show", a_.ToString(), "--spool", root_}, &out), 0);
  EXPECT_NE(out.find("sender: app@example.net"), std::string::npos) << out;
  EXPECT_NE(out.find("tenant: shop\ncampaign: receipts\npriority: transactional\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("recipient 0: x@gmail.com pending attempts=3"), std::string::npos) << out;
  EXPECT_NE(out.find("recipient 1: y@yahoo.com delivered"), std::string::npos) << out;
  EXPECT_NE(out.find("DKIM-Signature: v=1"), std::string::npos) << out;
  EXPECT_NE(out.find("Subject: receipt"), std::string::npos) << out;
  EXPECT_EQ(out.find("body"), std::string::npos) << out;
  EXPECT_EQ(RunQueue({"queue", "show", "1-0-999", "--spool", root_}, &out), 1);
  EXPECT_EQ(RunQueue({"queue", "show", "not-an-id", "--spool", root_}, &out), 2);
}

TEST_F(QueueCommandsTest, StatsCountsByStateAndDomain) {
  std::string out;
  ASSERT_EQ(RunQueue({"queue", "stats", "--spool", root_}, &out), 0);
  EXPECT_NE(out.find("messages: 2"), std::string::npos) << out;
  EXPECT_NE(out.find("2 pending, 1 delivered, 0 bounced"), std::string::npos) << out;
  EXPECT_NE(out.find("gmail.com"), std::string::npos) << out;
  EXPECT_EQ(out.find("yahoo.com"), std::string::npos) << out;
}

TEST_F(QueueCommandsTest, SummaryByDomainAndAge) {
  std::string out;
  ASSERT_EQ(RunQueue({"queue", "summary", "--spool", root_}, &out), 0);
  // Two pending recipients at gmail.com (x deferred, z new), both queued just now: the first
  // bucket. y@yahoo.com was delivered.
  // Columns: name, total, bytes, then the age buckets.
  EXPECT_NE(out.find("DESTINATION DOMAIN"), std::string::npos) << out;
  const std::string a_bytes = std::to_string(spool_->Find(a_)->message.size());
  const std::string b_bytes = std::to_string(spool_->Find(b_)->message.size());
  const std::string both =
      std::to_string(spool_->Find(a_)->message.size() + spool_->Find(b_)->message.size());
  std::vector<std::string> total = Row(out, "TOTAL");
  ASSERT_GE(total.size(), 5u) << out;
  EXPECT_EQ(total[1], "2");
  EXPECT_EQ(total[2], both);
  EXPECT_EQ(total[3], "2");
  EXPECT_EQ(total[4], "0");
  EXPECT_EQ(Row(out, "gmail.com").at(1), "2") << out;
  EXPECT_TRUE(Row(out, "yahoo.com").empty()) << out;
  ASSERT_EQ(RunQueue({"queue", "summary", "--spool", root_, "--by", "sender", "--top", "1"}, &out),
            0);
  EXPECT_NE(out.find("SENDING DOMAIN"), std::string::npos) << out;
  EXPECT_EQ(Row(out, "(other)").at(1), "1") << out;
  // By tenant: a is the named tenant's, b (the null sender's) has none; by campaign and class.
  ASSERT_EQ(RunQueue({"queue", "summary", "--spool", root_, "--by", "tenant"}, &out), 0);
  EXPECT_EQ(Row(out, "shop").at(2), a_bytes) << out;
  EXPECT_EQ(Row(out, "(none)").at(2), b_bytes) << out;
  ASSERT_EQ(RunQueue({"queue", "summary", "--spool", root_, "--by", "campaign"}, &out), 0);
  EXPECT_EQ(Row(out, "receipts").at(1), "1") << out;
  ASSERT_EQ(RunQueue({"queue", "summary", "--spool", root_, "--by", "priority"}, &out), 0);
  EXPECT_EQ(Row(out, "transactional").at(1), "1") << out;
  EXPECT_EQ(Row(out, "normal").at(1), "1") << out;
  EXPECT_EQ(RunQueue({"queue", "summary", "--by", "source"}, &out), 2);
}

TEST_F(QueueCommandsTest, UsageAndMissingSpool) {
  std::string out;
  EXPECT_EQ(RunQueue({"queue"}, &out), 2);
  EXPECT_EQ(RunQueue({"queue", "retry"}, &out), 2);
  EXPECT_EQ(RunQueue({"queue", "list", "--spool", root_ + "/nothing"}, &out), 1);
}

}  // namespace
}  // namespace relay::relayctl
