// relayctl top's view, without a relay or a terminal: expositions as relayd writes them, summed
// and drawn, with rates between two scrapes.
#include "tools/relayctl/top_command.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/metrics/exposition_parser.h"

namespace relay::relayctl {
namespace {

TopSnapshot Snap(const std::string& text, double time_s) {
  auto samples = metrics::ParseExposition(text);
  EXPECT_TRUE(samples.ok()) << samples.status();
  return Summarize(samples.ok() ? *samples : std::vector<metrics::ExpositionSample>{}, time_s);
}

std::string Exposition(int delivered_google, int deferred_google, int delivered_default,
                       int received, int turns) {
  return "relay_build_info{version=\"1.2\"} 1\n"
         "relay_process_start_time_seconds 1763846400\n"
         "relay_messages_received_total " +
         std::to_string(received) + "\n" +
         "relay_recipients_delivered_total{site=\"google\",source=\"192.0.2.1\"} " +
         std::to_string(delivered_google) + "\n" +
         "relay_recipients_delivered_total{site=\"google\",source=\"192.0.2.2\"} 1\n"
         "relay_recipients_deferred_total{site=\"google\",source=\"192.0.2.1\"} " +
         std::to_string(deferred_google) + "\n" +
         "relay_recipients_bounced_total{site=\"google\",source=\"192.0.2.1\"} 0\n"
         "relay_recipients_delivered_total{site=\"default\",source=\"192.0.2.1\"} " +
         std::to_string(delivered_default) + "\n" +
         "relay_recipients_bounced_total{site=\"default\",source=\"192.0.2.1\"} 2\n"
         "relay_recipients_delivered_total{site=\"yahoo\",source=\"192.0.2.1\"} 0\n"
         "relay_recipients_delivered_tls_total{site=\"google\"} " +
         std::to_string(delivered_google + 1) + "\n" +
         "relay_site_suspended_queues{site=\"google\"} 1\n"
         "relay_ready_queue_messages{site=\"default\"} 4\n"
         "relay_queue_messages 7\n"
         "relay_queue_bytes 16777216\n"
         "relay_queue_capacity_bytes 134217728\n"
         "relay_queue_oldest_message_age_seconds 245\n"
         "relay_connections_open{listener=\"submission\"} 2\n"
         "relay_connections_open{listener=\"receive\"} 1\n"
         "relay_outbound_connections_open 3\n"
         "relay_tls_handshake_failures_total{direction=\"outbound\"} 0\n"
         "relay_dns_queries_total 10\n"
         "relay_dns_failures_total 0\n"
         "relay_shard_loop_turns_total{shard=\"0\"} " +
         std::to_string(turns) + "\n" +
         "relay_shard_loop_turns_total{shard=\"1\"} 500\n"
         "relay_shard_loop_turns_total{shard=\"x\"} 9\n";  // not a shard index: ignored
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& l : lines) all += l + "\n";
  return all;
}

TEST(TopCommandTest, SumsBySiteAndOverall) {
  TopSnapshot s = Snap(Exposition(10, 3, 5, 20, 100), 1.0);
  EXPECT_EQ(s.version, "1.2");
  EXPECT_EQ(s.received, 20);
  EXPECT_EQ(s.delivered, 16);  // 10 + 1 + 5 + 0
  EXPECT_EQ(s.deferred, 3);
  EXPECT_EQ(s.bounced, 2);
  EXPECT_EQ(s.inbound_connections, 3);
  ASSERT_EQ(s.loop_turns.size(), 2u);
  EXPECT_EQ(s.loop_turns[1], 500);
  ASSERT_EQ(s.sites.size(), 3u);  // by name
  EXPECT_EQ(s.sites[0].name, "default");
  EXPECT_EQ(s.sites[0].ready_messages, 4);
  EXPECT_EQ(s.sites[1].name, "google");
  EXPECT_EQ(s.sites[1].delivered, 11);
  EXPECT_EQ(s.sites[1].suspended_queues, 1);
}

TEST(TopCommandTest, RatesFromTwoScrapesAndTheSiteTable) {
  TopSnapshot a = Snap(Exposition(10, 3, 5, 20, 100), 10.0);
  TopSnapshot b = Snap(Exposition(30, 7, 6, 40, 104), 12.0);  // 2 s later
  TopFrameOptions o;
  o.width = 100;
  o.target = "http://127.0.0.1:9587/metrics";
  o.now_unix_s = 1763846400 + 3725;
  std::string frame = Joined(RenderTop(&a, b, o));
  EXPECT_NE(frame.find("relayd http://127.0.0.1:9587/metrics   version 1.2   up 1h02m   2 shards"),
            std::string::npos)
      << frame;
  EXPECT_NE(frame.find("received               40       10.0\n"), std::string::npos) << frame;
  EXPECT_NE(frame.find("delivered              37       10.5\n"), std::string::npos) << frame;
  EXPECT_NE(frame.find("deferred                7       2.00\n"), std::string::npos) << frame;
  EXPECT_NE(frame.find("bounced                 2       0.00\n"), std::string::npos) << frame;
  EXPECT_NE(frame.find("queue      7 messages   16.0 MiB of 128.0 MiB (12%)   oldest 4m05s   "
                       "ready for a connection 4"),
            std::string::npos)
      << frame;
  EXPECT_NE(frame.find("outbound   3 connections   TLS 84% of deliveries"), std::string::npos);
  EXPECT_NE(frame.find("suspended  google (1 queue)\n"), std::string::npos);
  EXPECT_NE(frame.find("loop turns/s by shard   0: 2.00   1: 0.00\n"), std::string::npos);
  // Busiest site first; yahoo (nothing ever) is left out.
  size_t google = frame.find(
      "\ngoogle                  31    10.0         7    2.00         0    0.00"
      "      0     1  100%\n");
  size_t dflt = frame.find(
      "\ndefault                  6    0.50         0    0.00         2    0.00"
      "      4     0    0%\n");
  EXPECT_NE(google, std::string::npos) << frame;
  EXPECT_NE(dflt, std::string::npos) << frame;
  EXPECT_LT(google, dflt);
  EXPECT_EQ(frame.find("yahoo"), std::string::npos);
  for (const std::string& line : RenderTop(&a, b, o)) EXPECT_LE(line.size(), 100u) << line;
}

TEST(TopCommandTest, FirstFrameNarrowScreenRestartAndTooManySites) {
  TopSnapshot b = Snap(Exposition(30, 7, 6, 40, 104), 12.0);
  TopFrameOptions o;
  o.width = 40;
  o.height = 24;
  o.interactive = true;
  o.error = "cannot connect";
  std::vector<std::string> lines = RenderTop(nullptr, b, o);
  std::string frame = Joined(lines);
  EXPECT_NE(frame.find("received               40          -\n"), std::string::npos) << frame;
  for (const std::string& line : lines) EXPECT_LE(line.size(), 40u) << line;
  EXPECT_EQ(lines.back(), "q quits");
  EXPECT_EQ(lines[lines.size() - 2], "scrape failed: cannot connect");
  // A relay restarted between two scrapes: its counters start again from zero.
  TopSnapshot later = Snap(Exposition(2, 0, 0, 4, 10), 14.0);
  o.width = 100;
  frame = Joined(RenderTop(&b, later, o));
  EXPECT_NE(frame.find("received                4       2.00\n"), std::string::npos) << frame;
  // 40 sites on a 24-line screen: the table is cut to fit, and says so.
  std::string many = "relay_build_info{version=\"x\"} 1\n";
  for (int i = 0; i < 40; ++i) {
    many += "relay_recipients_delivered_total{site=\"s" + std::to_string(i) + "\",source=\"a\"} " +
            std::to_string(i + 1) + "\n";
  }
  lines = RenderTop(nullptr, Snap(many, 1.0), o);
  EXPECT_EQ(lines.size(), 24u);
  EXPECT_NE(Joined(lines).find(" more sites\n"), std::string::npos);
  size_t header = 0;
  while (header < lines.size() && lines[header].substr(0, 4) != "SITE") ++header;
  ASSERT_LT(header + 1, lines.size());
  EXPECT_EQ(lines[header + 1].substr(0, 4), "s39 ");  // the busiest first
}

}  // namespace
}  // namespace relay::relayctl
