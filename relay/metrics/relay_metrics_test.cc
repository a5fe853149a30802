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
    if (text.find(",source=", p) < text.find('\n', p + 1)) ++series;  // not the per-site ones
  }
  EXPECT_EQ(series, 3u * 4 * 3);
}

// Named tenants have a label each; campaigns take one as they are first seen, up to
// kCampaignsMax, then share "other"; a label not yet taken is not rendered at all.
TEST(RelayMetricsTest, RecipientsByTenantAndCampaign) {
  RelayMetricsOptions o = Options();
  o.tenants = {"shop", "billing"};
  RelayMetrics m(o);
  EXPECT_EQ(m.TenantIndex(""), 0);
  EXPECT_EQ(m.TenantIndex("example.com"), 0) << "a sending domain is not a label";
  EXPECT_EQ(m.CampaignIndex(""), 0);
  EXPECT_EQ(m.CampaignIndex("none"), 0) << "a name of a fixed label counts in it";
  EXPECT_EQ(m.CampaignIndex("other"), 1);
  const int spring = m.CampaignIndex("spring-2027");
  EXPECT_EQ(m.CampaignIndex("spring-2027"), spring);
  m.TenantRecipient(0, RecipientResult::kDelivered, m.TenantIndex("shop"), spring);
  m.TenantRecipient(1, RecipientResult::kDelivered, m.TenantIndex("shop"), spring);
  m.TenantRecipient(1, RecipientResult::kBounced, m.TenantIndex("billing"), 0);
  m.TenantRecipient(0, RecipientResult::kDeferred, 0, 999);  // out of range: "none"
  std::string text = m.Render();
  EXPECT_TRUE(Has(text, "relay_tenant_recipients_total{result=\"delivered\",tenant=\"shop\"} 2"))
      << text;
  EXPECT_TRUE(Has(text, "relay_tenant_recipients_total{result=\"bounced\",tenant=\"billing\"} 1"));
  EXPECT_TRUE(Has(text, "relay_tenant_recipients_total{result=\"deferred\",tenant=\"none\"} 1"));
  EXPECT_TRUE(Has(
      text, "relay_campaign_recipients_total{result=\"delivered\",campaign=\"spring-2027\"} 2"));
  EXPECT_TRUE(Has(text, "relay_campaign_recipients_total{result=\"bounced\",campaign=\"none\"} 1"));
  EXPECT_EQ(text.find("\x01"), std::string::npos) << "placeholders never reach a scrape";
  for (int i = 1; i < RelayMetrics::kCampaignsMax; ++i) {
    EXPECT_GE(m.CampaignIndex("c" + std::to_string(i)), 2);
  }
  const int late = m.CampaignIndex("one-too-many");
  EXPECT_EQ(late, 1);
  m.TenantRecipient(0, RecipientResult::kDelivered, 0, late);
  text = m.Render();
  EXPECT_TRUE(
      Has(text, "relay_campaign_recipients_total{result=\"delivered\",campaign=\"other\"} 1"));
  EXPECT_TRUE(
      Has(text, "relay_campaign_recipients_total{result=\"delivered\",campaign=\"c31\"} 0"));
  EXPECT_EQ(text.find("one-too-many"), std::string::npos);
}

TEST(RelayMetricsTest, FailuresByCategoryAndSite) {
  RelayMetrics m(Options());
  m.Failure(0, RecipientResult::kBounced, m.SiteIndex("google"),
            feedback::BounceCategory::kBadMailbox);
  m.Failure(1, RecipientResult::kBounced, m.SiteIndex("google"),
            feedback::BounceCategory::kBadMailbox);
  m.Failure(1, RecipientResult::kDeferred, m.SiteIndex("yahoo"),
            feedback::BounceCategory::kRateLimited);
  m.Failure(0, RecipientResult::kDeferred, 99, feedback::BounceCategory::kOther);  // none
  m.Failure(0, RecipientResult::kDelivered, 0, feedback::BounceCategory::kOther);  // not counted
  const std::string text = m.Render();
  EXPECT_TRUE(Has(text,
                  "relay_recipient_failures_total{result=\"bounced\",category=\"bad-mailbox\","
                  "site=\"google\"} 2"))
      << text;
  EXPECT_TRUE(Has(text,
                  "relay_recipient_failures_total{result=\"deferred\",category=\"rate-limited\","
                  "site=\"yahoo\"} 1"));
  EXPECT_TRUE(Has(text,
                  "relay_recipient_failures_total{result=\"deferred\",category=\"other\","
                  "site=\"none\"} 1"));
  size_t series = 0;
  for (size_t p = text.find("\nrelay_recipient_failures_total{"); p != std::string::npos;
       p = text.find("\nrelay_recipient_failures_total{", p + 1)) {
    ++series;
  }
  EXPECT_EQ(series, 2u * 4 * feedback::kBounceCategoryCount);  // 2 results x (3 sites + none)
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

TEST(RelayMetricsTest, SitesAndSourcesBeyondTheCapShareOther) {
  RelayMetricsOptions o = Options();
  o.sites.clear();
  o.sources.clear();
  for (int i = 0; i < RelayMetrics::kSitesMax + 10; ++i)
    o.sites.push_back("rule" + std::to_string(i));
  for (int i = 0; i < RelayMetrics::kSourcesMax + 100; ++i) {
    o.sources.push_back("2001:db8::" + std::to_string(i + 1));
  }
  RelayMetrics m(o);
  const int last = RelayMetrics::kSitesMax - 1;
  EXPECT_EQ(m.SiteIndex("rule0"), 0);
  EXPECT_EQ(m.SiteIndex("rule" + std::to_string(last)), last);
  const int other = m.SiteIndex("rule" + std::to_string(last + 1));
  EXPECT_EQ(other, RelayMetrics::kSitesMax);
  EXPECT_EQ(m.SiteIndex("rule" + std::to_string(last + 10)), other);
  EXPECT_EQ(m.SiteIndex("example.com+rule40"), other);
  EXPECT_EQ(m.site_count(), RelayMetrics::kSitesMax + 2);
  m.Recipient(0, RecipientResult::kDelivered, other, RelayMetrics::kSourcesMax + 50);
  m.Recipient(1, RecipientResult::kDelivered, m.SiteIndex("rule41"), RelayMetrics::kSourcesMax);
  m.Recipient(1, RecipientResult::kDelivered, 0, RelayMetrics::kSourcesMax - 1);
  m.site(other).suspended_queues.Set(0, 3);
  std::string text = m.Render();
  EXPECT_TRUE(Has(text, "relay_recipients_delivered_total{site=\"other\",source=\"other\"} 2"))
      << text;
  EXPECT_TRUE(Has(text, "relay_recipients_delivered_total{site=\"rule0\",source=\"2001:db8::" +
                            std::to_string(RelayMetrics::kSourcesMax) + "\"} 1"));
  EXPECT_TRUE(Has(text, "relay_site_suspended_queues{site=\"other\"} 3"));
  size_t series = 0;
  for (size_t p = text.find("\nrelay_recipients_bounced_total{"); p != std::string::npos;
       p = text.find("\nrelay_recipients_bounced_total{", p + 1)) {
    ++series;
  }
  // The bound the header states: (sites + none + other) x (sources + none + other).
  EXPECT_EQ(series, size_t{RelayMetrics::kSitesMax + 2} * (RelayMetrics::kSourcesMax + 2));
}

TEST(RelayMetricsTest, PerSiteSeriesLoopTurnsAndOldestMessage) {
  RelayMetricsOptions o = Options();
  FakeClock clock(1000000000, 1763850000.0);
  o.clock = &clock;
  o.spool_directory = ::testing::TempDir();
  RelayMetrics m(o);
  std::string text = m.Render();
  EXPECT_TRUE(Has(text, "relay_queue_oldest_message_age_seconds 0")) << text;  // empty queue
  m.SetOldestMessage(0, 1763849700000);                                        // 300 s ago
  m.SetOldestMessage(1, 1763849900000);
  clock.AdvanceMillis(1500);
  const int google = m.SiteIndex("google");
  m.site(google).delivered_tls.Add(1, 4);
  m.site(google).suspensions.Add(0);
  m.site(google).suspended_queues.Set(1, 1);
  m.site(m.SiteIndex("yahoo")).ready_messages.Set(0, 7);
  m.site(m.SiteIndex("yahoo")).ready_messages.Set(1, 5);
  m.site(99).ready_messages.Set(0, 1);  // out of range: "none"
  m.loop_turns(1).Add(1, 42);
  m.queue_capacity_bytes.Set(0, 1 << 20);
  m.queue_capacity_bytes.Set(1, 1 << 20);
  text = m.Render();
  for (const char* line : {
           "relay_queue_oldest_message_age_seconds 301.5",
           "relay_recipients_delivered_tls_total{site=\"google\"} 4",
           "relay_site_suspensions_total{site=\"google\"} 1",
           "relay_site_suspended_queues{site=\"google\"} 1",
           "relay_ready_queue_messages{site=\"yahoo\"} 12",  // both shards' shares
           "relay_ready_queue_messages{site=\"none\"} 1",
           "relay_shard_loop_turns_total{shard=\"0\"} 0",
           "relay_shard_loop_turns_total{shard=\"1\"} 42",
           "relay_queue_capacity_bytes 2097152",
       }) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
  EXPECT_NE(text.find("\nrelay_spool_filesystem_avail_bytes "), std::string::npos);
  EXPECT_EQ(text.find("relay_spool_filesystem_size_bytes NaN"), std::string::npos);
  EXPECT_NE(text.find("\nrelay_spool_filesystem_size_bytes "), std::string::npos);
  m.SetOldestMessage(0, -1);
  EXPECT_TRUE(Has(m.Render(), "relay_queue_oldest_message_age_seconds 101.5"));
}

}  // namespace
}  // namespace relay::metrics
