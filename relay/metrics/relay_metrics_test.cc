#include "relay/metrics/relay_metrics.h"

#include "gtest/gtest.h"

namespace relay::metrics {
namespace {

RelayMetricsOptions Options() {
  RelayMetricsOptions o;
  o.shards = 2;
  o.sites = {"google", "yahoo", "default", "google"};  // a repeated name is one site
  o.sources = {"192.0.2.10", "2001:db8::25"};
  o.version = "test";
  o.start_time_unix_s = 1763850000;
  return o;
}

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(RelayMetricsTest, RecipientsBySiteAndSource) {
  RelayMetrics m(Options());
  EXPECT_EQ(m.SiteIndex("google"), 0);
  EXPECT_EQ(m.SiteIndex("default"), 2);
  EXPECT_EQ(m.SiteIndex("gmail.com"), -1);  // never a raw domain
  EXPECT_EQ(m.SiteIndex("example.com+google"), 0);
  EXPECT_EQ(m.SiteIndex("example.com+other"), -1);
  m.Recipient(0, RecipientResult::kDelivered, m.SiteIndex("google"), 1);
  m.Recipient(1, RecipientResult::kDelivered, m.SiteIndex("google"), 1);
  m.Recipient(1, RecipientResult::kDeferred, m.SiteIndex("yahoo"), 0);
  m.Recipient(0, RecipientResult::kBounced, -1, -1);
  m.Recipient(0, RecipientResult::kBounced, 99, 7);  // out of range: counted as none
  std::string text = m.Render();
  EXPECT_TRUE(
      Has(text, "relay_recipients_delivered_total{site=\"google\",source=\"2001:db8::25\"} 2"))
      << text;
  EXPECT_TRUE(Has(text, "relay_recipients_deferred_total{site=\"yahoo\",source=\"192.0.2.10\"} 1"));
  EXPECT_TRUE(Has(text, "relay_recipients_bounced_total{site=\"none\",source=\"none\"} 2"));
  EXPECT_TRUE(Has(text, "relay_recipients_delivered_total{site=\"default\",source=\"none\"} 0"));
  // 3 results x (3 sites + none) x (2 sources + none).
  size_t series = 0;
  for (size_t p = text.find("\nrelay_recipients_"); p != std::string::npos;
       p = text.find("\nrelay_recipients_", p + 1)) {
    ++series;
  }
  EXPECT_EQ(series, 3u * 4 * 3);
}

TEST(RelayMetricsTest, EveryFamilyIsExported) {
  RelayMetrics m(Options());
  m.listener(ListenerKind::kSubmissions).connections_accepted.Add(1);
  m.listener(ListenerKind::kSubmission).connections_open.Add(0, 2);
  m.tls_handshakes(Direction::kOutbound).Add(0);
  m.auth(AuthOutcome::kFailure).Add(1);
  m.dkim_signatures(DkimAlgorithm::kEd25519Sha256).Add(0, 3);
  m.fsync_us.Observe(0, 400);
  std::string text = m.Render();
  EXPECT_TRUE(Has(text, "relay_connections_accepted_total{listener=\"submissions\"} 1"));
  EXPECT_TRUE(Has(text, "relay_connections_open{listener=\"submission\"} 2"));
  EXPECT_TRUE(Has(text, "relay_tls_handshakes_total{direction=\"outbound\"} 1"));
  EXPECT_TRUE(Has(text, "relay_auth_attempts_total{result=\"failure\"} 1"));
  EXPECT_TRUE(Has(text, "relay_dkim_signatures_total{algorithm=\"ed25519-sha256\"} 3"));
  EXPECT_TRUE(Has(text, "relay_queue_fsync_seconds_bucket{le=\"0.0005\"} 1"));
  EXPECT_TRUE(Has(text, "relay_queue_fsync_seconds_sum 0.0004"));
  EXPECT_TRUE(Has(text, "relay_process_start_time_seconds 1763850000"));
  EXPECT_TRUE(Has(text, "relay_build_info{version=\"test\"} 1"));
  for (const char* family :
       {"relay_smtp_sessions_total", "relay_messages_received_total", "relay_queue_messages",
        "relay_queue_bytes", "relay_queue_fsync_batch_records", "relay_dkim_signing_seconds",
        "relay_dns_queries_total", "relay_dns_cache_hits_total", "relay_dns_failures_total",
        "relay_tls_handshake_failures_total", "relay_outbound_connections_open",
        "relay_connections_refused_total", "relay_expectation_failures_total"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
}

}  // namespace
}  // namespace relay::metrics
