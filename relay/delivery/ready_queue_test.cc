// ReadyQueue on a fake clock: the message rate, the connection rate and count, when a new
// connection is worth opening, suspension, and what a new MX lookup may change.
#include "relay/delivery/ready_queue.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

auto* const kConnection = reinterpret_cast<OutboundConnection*>(0x10);
auto* const kOther = reinterpret_cast<OutboundConnection*>(0x20);

Job MakeJob(uint64_t n) {
  Job job;
  job.id = queue::MessageId{0, n};
  job.domain = "example.com";
  return job;
}

ShapingRule Rule(uint32_t per_second, uint32_t burst, uint32_t connections_max,
                 uint32_t connections_per_minute) {
  ShapingRule rule;
  rule.name = "test";
  rule.messages_per_second = per_second;
  rule.messages_burst = burst;
  rule.connections_max = connections_max;
  rule.connections_per_minute = connections_per_minute;
  return rule;
}

TEST(ReadyQueueTest, TakesJobsInOrderAtTheMessageRate) {
  ReadyQueue q("google", 0, 1000);
  q.Update(Rule(2, 2, 10, 0), {}, -1, 1000);
  int64_t wait = -1;
  EXPECT_EQ(q.TakeJob(1000, &wait), nullptr);  // empty
  EXPECT_EQ(wait, 0);
  for (uint64_t i = 1; i <= 4; ++i) q.Push(MakeJob(i));
  // A burst of 2, then one every 500 ms.
  EXPECT_EQ(q.TakeJob(1000, &wait)->id.lo, 1u);
  EXPECT_EQ(q.TakeJob(1000, &wait)->id.lo, 2u);
  EXPECT_EQ(q.TakeJob(1000, &wait), nullptr);
  EXPECT_EQ(wait, 500);
  EXPECT_EQ(q.waiting(), 2u);
  EXPECT_EQ(q.TakeJob(1499, &wait), nullptr);
  EXPECT_EQ(wait, 1);
  EXPECT_EQ(q.TakeJob(1500, &wait)->id.lo, 3u);
  EXPECT_EQ(q.TakeAll().size(), 1u);
  EXPECT_TRUE(q.empty());
}

// At a throttled site a tenant's backlog of bulk jobs delays neither a transactional job nor
// another tenant's: the rate's tokens go by class, then round robin by weight.
TEST(ReadyQueueTest, TheRateIsSharedByClassThenByTenant) {
  ReadyQueue q("google", 0, 1000);
  q.Update(Rule(1, 1, 10, 0), {}, -1, 1000);
  for (uint64_t i = 1; i <= 100; ++i) {
    Job job = MakeJob(i);
    job.tenant = "news";
    job.priority = queue::Priority::kBulk;
    q.Push(std::move(job));
  }
  Job other = MakeJob(200);
  other.tenant = "club";
  other.priority = queue::Priority::kBulk;
  q.Push(std::move(other));
  Job reset = MakeJob(300);
  reset.tenant = "shop";
  reset.priority = queue::Priority::kTransactional;
  q.Push(std::move(reset));
  int64_t wait = 0;
  EXPECT_EQ(q.TakeJob(1000, &wait)->id.lo, 300u) << "the transactional job first";
  EXPECT_EQ(q.TakeJob(2000, &wait)->id.lo, 1u);
  EXPECT_EQ(q.TakeJob(3000, &wait)->id.lo, 200u) << "the other tenant's turn";
  EXPECT_EQ(q.TakeJob(4000, &wait)->id.lo, 2u);
  EXPECT_EQ(q.waiting(), 98u);
  std::vector<Job> rest = q.TakeAll();
  ASSERT_EQ(rest.size(), 98u);
  EXPECT_EQ(rest.front().id.lo, 3u);
}

TEST(ReadyQueueTest, NoRateMeansNoWait) {
  ReadyQueue q("default", 0, 0);
  q.Update(Rule(0, 0, 10, 0), {}, -1, 0);
  for (uint64_t i = 0; i < 1000; ++i) q.Push(MakeJob(i));
  int64_t wait = 0;
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_NE(q.TakeJob(0, &wait), nullptr) << i;
}

TEST(ReadyQueueTest, OpensConnectionsOnlyWhenTheOpenOnesCannotKeepUp) {
  ReadyQueue q("default", 0, 0);
  q.Update(Rule(0, 0, 2, 0), {}, -1, 0);
  int64_t wait = -1;
  EXPECT_FALSE(q.MayOpenConnection(0, 0, &wait));  // nothing waits
  q.Push(MakeJob(1));
  EXPECT_TRUE(q.MayOpenConnection(0, 0, &wait));
  q.AddConnection(kConnection);
  // One busy connection and one job: the busy one takes it next.
  EXPECT_FALSE(q.MayOpenConnection(0, 0, &wait));
  EXPECT_EQ(wait, 0);
  q.Push(MakeJob(2));
  EXPECT_TRUE(q.MayOpenConnection(0, 0, &wait));  // more jobs than connections
  q.AddConnection(kOther);
  q.Push(MakeJob(3));
  EXPECT_FALSE(q.MayOpenConnection(0, 0, &wait));  // connections_max
  q.RemoveConnection(kOther);
  EXPECT_EQ(q.connections().size(), 1u);
  EXPECT_TRUE(q.MayOpenConnection(0, 0, &wait));
}

TEST(ReadyQueueTest, ConnectionRateSpacesNewConnections) {
  ReadyQueue q("yahoo", 1, 0);
  q.Update(Rule(0, 0, 100, 6), {}, -1, 0);  // 6 a minute: a burst of 6, then one every 10 s
  for (uint64_t i = 0; i < 50; ++i) q.Push(MakeJob(i));
  int64_t wait = -1;
  int opened = 0;
  while (q.MayOpenConnection(0, 0, &wait)) {
    q.AddConnection(kConnection);
    ++opened;
  }
  EXPECT_EQ(opened, 6);
  EXPECT_EQ(wait, 10000);
  EXPECT_FALSE(q.MayOpenConnection(0, 9999, &wait));
  EXPECT_EQ(wait, 1);
  EXPECT_TRUE(q.MayOpenConnection(0, 10000, &wait));
}

TEST(ReadyQueueTest, ALookupDoesNotRefillTheBuckets) {
  ReadyQueue q("google", 0, 0);
  q.Update(Rule(1, 1, 10, 0), {}, 3, 0);
  q.Push(MakeJob(1));
  q.Push(MakeJob(2));
  int64_t wait = 0;
  ASSERT_NE(q.TakeJob(0, &wait), nullptr);
  // The same rule again (the next message's lookup): the bucket stays empty.
  dns::Candidate c;
  c.host = "mx1.example.com";
  q.Update(Rule(1, 1, 10, 0), {c}, 3, 10);
  EXPECT_EQ(q.TakeJob(10, &wait), nullptr);
  EXPECT_EQ(wait, 990);
  ASSERT_EQ(q.candidates().size(), 1u);
  EXPECT_EQ(q.candidates()[0].host, "mx1.example.com");
  EXPECT_EQ(q.metrics_site(), 3);
  // A changed rate is a new bucket, full.
  q.Update(Rule(5, 5, 10, 0), {}, 3, 20);
  EXPECT_NE(q.TakeJob(20, &wait), nullptr);
  EXPECT_EQ(q.limits().messages_per_second, 5u);
}

TEST(ReadyQueueTest, SuspensionEnds) {
  ReadyQueue q("google", 0, 0);
  EXPECT_FALSE(q.suspended(0));
  q.Suspend(60000, "421 4.7.28 rate limited");
  EXPECT_TRUE(q.suspended(59999));
  EXPECT_EQ(q.suspended_reason(), "421 4.7.28 rate limited");
  EXPECT_FALSE(q.suspended(60000));
  EXPECT_EQ(q.site(), "google");
  EXPECT_EQ(q.source(), 0);
}

// A backoff scales the rate and the connections down for a while, then gives them back; a new
// MX lookup during it does not undo it.
TEST(ReadyQueueTest, ABackoffSlowsTheQueueForAWhile) {
  ReadyQueue q("google", 0, 1000);
  q.Update(Rule(10, 10, 8, 600), {}, -1, 1000);
  q.Backoff(0.25, 61000, 1000);
  EXPECT_EQ(q.messages_per_second(), 2u);
  EXPECT_EQ(q.connections_max(), 2u);
  EXPECT_EQ(q.connections_per_minute(), 150u);
  EXPECT_EQ(q.limits().messages_per_second, 10u);
  q.Update(Rule(10, 10, 8, 600), {}, -1, 2000);  // another lookup
  EXPECT_EQ(q.messages_per_second(), 2u);
  for (uint64_t i = 1; i <= 10; ++i) q.Push(MakeJob(i));
  int64_t wait = 0;
  ASSERT_NE(q.TakeJob(2000, &wait), nullptr);
  ASSERT_NE(q.TakeJob(2000, &wait), nullptr);
  EXPECT_EQ(q.TakeJob(2000, &wait), nullptr) << "a burst of 2 at a quarter of the rate";
  EXPECT_EQ(wait, 500);
  // Never below one connection or one message a second.
  q.Backoff(0.01, 61000, 2000);
  EXPECT_EQ(q.messages_per_second(), 1u);
  EXPECT_EQ(q.connections_max(), 1u);
  // Over: the rule's limits again, at the next question.
  EXPECT_NE(q.TakeJob(61000, &wait), nullptr);
  EXPECT_EQ(q.backoff(), 1.0);
  EXPECT_EQ(q.messages_per_second(), 10u);
  EXPECT_EQ(q.connections_max(), 8u);
  // A rule without a rate gets none from a backoff; its connections are still scaled.
  ReadyQueue open("yahoo", 0, 1000);
  open.Update(Rule(0, 0, 10, 0), {}, -1, 1000);
  open.Backoff(0.5, 5000, 1000);
  EXPECT_EQ(open.messages_per_second(), 0u);
  EXPECT_EQ(open.connections_max(), 5u);
  open.Backoff(1, 0, 2000);
  EXPECT_EQ(open.connections_max(), 10u);
}

}  // namespace
}  // namespace relay::delivery
