#include "relay/server/config.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "relay/server/init_config.h"

namespace relay::server {
namespace {

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// What `relayd --init` writes, without DKIM keys (whose files would have to exist).
std::string DefaultText(const std::string& hostname) {
  InitOptions options;
  options.hostname = hostname;
  return InitConfigText(options, {});
}

TEST(Config, DefaultTextLoadsWithDefaults) {
  auto c = LoadConfig(WriteFile("default.toml", DefaultText("relay.test")));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hostname, "relay.test");
  ASSERT_EQ(c->submission_listen.size(), 1u);
  EXPECT_EQ(c->submission_listen[0], "127.0.0.1:2587");
  EXPECT_EQ(c->submissions_listen[0], "127.0.0.1:2465");
  EXPECT_EQ(c->smtp.command_line_bytes_max, 1024u);
  EXPECT_EQ(c->queue.segment_bytes, 64u << 20);
  EXPECT_TRUE(c->queue.fsync);
  // Relative paths resolve against the file's directory.
  EXPECT_EQ(c->tls_cert_path, std::string(getenv("TEST_TMPDIR")) + "/tls/cert.pem");
  EXPECT_EQ(c->spool_dir, std::string(getenv("TEST_TMPDIR")) + "/spool");
}

TEST(Config, ErrorsNameFileLineAndKey) {
  auto c = LoadConfig(WriteFile("bad1.toml", "hostname = \"h\"\n[limits]\nrecipients_max = 0\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad1.toml:3"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("limits.recipients_max: must be between"), std::string::npos);

  c = LoadConfig(WriteFile("bad2.toml", "hostname = \"h\"\n[limits]\nrecipient_max = 5\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("limits.recipient_max: unknown key"), std::string::npos)
      << c.status();

  c = LoadConfig(WriteFile("bad3.toml", "hostname = \n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad3.toml:1"), std::string::npos) << c.status();

  c = LoadConfig(WriteFile("bad4.toml", "hostname = \"h\"\n[submission]\nlisten=[\"127.0.0.1:1\"]\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("AUTH requires TLS"), std::string::npos) << c.status();
}

// The default text with each (old, new) replaced; `old` must be there.
std::string Edited(std::string text,
                   const std::vector<std::pair<std::string, std::string>>& edits) {
  for (const auto& [old_text, new_text] : edits) {
    const size_t at = text.find(old_text);
    EXPECT_NE(at, std::string::npos) << old_text;
    if (at != std::string::npos) text.replace(at, old_text.size(), new_text);
  }
  return text;
}

TEST(Config, OutboundBoundsAreReadAndChecked) {
  auto c = LoadConfig(WriteFile(
      "bounds.toml", Edited(DefaultText("h"),
                            {{"reply_line_bytes_max = 2048", "reply_line_bytes_max = 1000"},
                             {"reply_lines_max = 128", "reply_lines_max = 20"},
                             {"reply_bytes_max = 65536", "reply_bytes_max = 8192"},
                             {"outcome_retry_ms = 1000", "outcome_retry_ms = 500"},
                             {"outcome_retry_ms_max = 60000", "outcome_retry_ms_max = 8000"},
                             {"unrecorded_outcomes_max = 1000", "unrecorded_outcomes_max = 50"}})));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->delivery.reply_limits.reply_line_bytes_max, 1000u);
  EXPECT_EQ(c->delivery.reply_limits.reply_lines_max, 20u);
  EXPECT_EQ(c->delivery.reply_limits.reply_bytes_max, 8192u);
  EXPECT_EQ(c->delivery.outcome_retry_ms, 500u);
  EXPECT_EQ(c->delivery.outcome_retry_ms_max, 8000u);
  EXPECT_EQ(c->delivery.unrecorded_outcomes_max, 50u);

  // RFC 5321 §4.5.3.1.5: a client takes reply lines of 512 octets at least.
  c = LoadConfig(WriteFile(
      "bounds2.toml",
      Edited(DefaultText("h"), {{"reply_line_bytes_max = 2048", "reply_line_bytes_max = 100"}})));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("delivery.reply_line_bytes_max: must be between"),
            std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile(
      "bounds3.toml",
      Edited(DefaultText("h"), {{"reply_line_bytes_max = 2048", "reply_line_bytes_max = 4096"},
                                {"reply_bytes_max = 65536", "reply_bytes_max = 2048"}})));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("reply_bytes_max: must be at least"), std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile(
      "bounds4.toml",
      Edited(DefaultText("h"), {{"outcome_retry_ms = 1000", "outcome_retry_ms = 5000"},
                                {"outcome_retry_ms_max = 60000", "outcome_retry_ms_max = 1000"}})));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("outcome_retry_ms_max: must be at least"), std::string::npos)
      << c.status();
}

// The bound on how long a delivery outcome waits for a group commit: read, and range-checked.
TEST(Config, PoolsAndWarmUp) {
  const std::string base = DefaultText("relay.test");
  auto c = LoadConfig(WriteFile("pools.toml", base + R"(
[[delivery.source]]
name = "warm"
address = "192.0.2.10"
ehlo_name = "mta1.example.com"
[[delivery.source]]
address = "192.0.2.11"
ehlo_name = "mta2.example.com"
warmup = [50, 100, 500]
warmup_start = "2026-12-01"
[[delivery.pool]]
name = "bulk"
sources = ["192.0.2.11", "warm"]
strategy = "weighted"
tenants = ["news"]
domains = ["News.Example.com"]
campaigns = ["black-friday"]
[[delivery.pool]]
name = "default"
sources = ["warm"]
)"));
  ASSERT_TRUE(c.ok()) << c.status();
  const DeliverySettings& d = c->delivery;
  ASSERT_EQ(d.sources.size(), 2u);
  EXPECT_EQ(d.sources[0].name, "warm");
  EXPECT_EQ(d.sources[1].warmup, (std::vector<uint32_t>{50, 100, 500}));
  EXPECT_EQ(d.sources[1].warmup_start_day, 20788);  // 2026-12-01
  ASSERT_EQ(d.pools.size(), 2u);
  EXPECT_EQ(d.pools[0].name, "bulk");
  EXPECT_EQ(d.pools[0].strategy, delivery::EgressStrategy::kWeighted);
  EXPECT_FALSE(d.pools[1].strategy.has_value());
  EXPECT_EQ(d.pool_routes.tenants.at("news"), "bulk");
  EXPECT_EQ(d.pool_routes.domains.at("news.example.com"), "bulk");
  EXPECT_EQ(d.pool_routes.campaigns.at("black-friday"), "bulk");

  const std::string source = R"(
[[delivery.source]]
name = "a"
address = "192.0.2.10"
ehlo_name = "mta1.example.com"
)";
  const std::pair<std::string, std::string> bad[] = {
      {"[[delivery.pool]]\nname = \"p\"\nsources = [\"b\"]\n", "names source b"},
      {"[[delivery.pool]]\nname = \"p\"\nsources = []\n", "must name at least one source"},
      {"[[delivery.pool]]\nname = \"p q\"\nsources = [\"a\"]\n", "pool[0].name: must be"},
      {"[[delivery.pool]]\nname = \"p\"\nsources = [\"a\"]\ntenants = [\"t\"]\n"
       "[[delivery.pool]]\nname = \"q\"\nsources = [\"a\"]\ntenants = [\"t\"]\n",
       "t goes out of pool p already"},
      {"[[delivery.pool]]\nname = \"p\"\nsources = [\"a\"]\n"
       "[[delivery.pool]]\nname = \"p\"\nsources = [\"a\"]\n",
       "named twice"},
      {"[[delivery.source]]\nname = \"a\"\naddress = \"192.0.2.11\"\nehlo_name = \"m\"\n",
       "names source a a second time"},
      {"[[delivery.source]]\naddress = \"192.0.2.11\"\nehlo_name = \"m\"\n"
       "warmup_start = \"2026-12-01\"\n",
       "goes with warmup"},
      {"[[delivery.source]]\naddress = \"192.0.2.11\"\nehlo_name = \"m\"\nwarmup = [1]\n"
       "warmup_start = \"1 Dec\"\n",
       "must be a date"},
      {"[[delivery.source]]\naddress = \"192.0.2.11\"\nehlo_name = \"m\"\nwarmup = [1]\n",
       "needs warmup_start"},
  };
  int n = 0;
  for (const auto& [extra, problem] : bad) {
    auto b =
        LoadConfig(WriteFile("pools-bad" + std::to_string(n++) + ".toml", base + source + extra));
    ASSERT_FALSE(b.ok()) << extra;
    EXPECT_NE(b.status().message().find(problem), std::string::npos) << b.status();
  }
}

TEST(Config, QueueOutcomeSyncMs) {
  // The generated config shows the setting with its default; change only that line.
  const std::string text = DefaultText("h");
  const std::string line = "outcome_sync_ms = 5\n";
  ASSERT_NE(text.find(line), std::string::npos);
  auto with = [&](const std::string& value) {
    std::string edited = text;
    edited.replace(edited.find(line), line.size(), "outcome_sync_ms = " + value + "\n");
    return edited;
  };
  auto c = LoadConfig(WriteFile("osync1.toml", with("2")));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->queue.outcome_sync_ms, 2u);
  c = LoadConfig(WriteFile("osync2.toml", with("0")));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->queue.outcome_sync_ms, 0u);
  c = LoadConfig(WriteFile("osync3.toml", with("5000")));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("outcome_sync_ms"), std::string::npos) << c.status();
}

TEST(Config, TlsPolicy) {
  // The generated config shows [tls_policy] with its defaults.
  const std::string text = DefaultText("h");
  auto c = LoadConfig(WriteFile("tlsp0.toml", text));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->tls_policy.downgrade_memory);
  EXPECT_TRUE(c->tls_policy.mta_sts);
  EXPECT_EQ(c->tls_policy.mta_sts_port, 443u);
  EXPECT_EQ(c->tls_policy.memory_days, 90u);
  auto with = [&](const std::string& line, const std::string& replacement) {
    std::string edited = text;
    const size_t at = edited.find(line);
    EXPECT_NE(at, std::string::npos) << line;
    edited.replace(at, line.size(), replacement);
    return edited;
  };
  c = LoadConfig(
      WriteFile("tlsp1.toml", with("mta_sts = true\n", "mta_sts = false\nmta_sts_port = 8443\n")));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tls_policy.mta_sts);
  EXPECT_EQ(c->tls_policy.mta_sts_port, 8443u);
  c = LoadConfig(WriteFile("tlsp2.toml", with("memory_days = 90\n", "memory_days = 0\n")));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("memory_days"), std::string::npos) << c.status();
  c = LoadConfig(WriteFile("tlsp3.toml", with("mta_sts = true\n", "mta_sts = true\ndane = 1\n")));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("dane"), std::string::npos) << c.status();
}

TEST(Config, AuthThrottleAndQueueBoundsAreReadAndChecked) {
  const std::string text = DefaultText("h");
  auto c = LoadConfig(WriteFile("auth1.toml", Edited(text, {
      {"failures_before_block = 10", "failures_before_block = 30"},
      {"user_failures_before_block = 5", "user_failures_before_block = 4"},
      {"throttle_entries_max = 100000", "throttle_entries_max = 5000"},
      {"checks_queued_max = 128", "checks_queued_max = 16"}})));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->auth.failures_before_block, 30u);
  EXPECT_EQ(c->auth.user_failures_before_block, 4u);
  EXPECT_EQ(c->auth.throttle_entries_max, 5000u);
  EXPECT_EQ(c->auth.checks_queued_max, 16u);

  for (const auto& [old_line, new_line] : std::vector<std::pair<std::string, std::string>>{
           {"checks_queued_max = 128", "checks_queued_max = 0"},
           {"user_failures_before_block = 5", "user_failures_before_block = 0"},
           {"throttle_entries_max = 100000", "throttle_entries_max = 10"}}) {
    c = LoadConfig(WriteFile("auth2.toml", Edited(text, {{old_line, new_line}})));
    ASSERT_FALSE(c.ok()) << new_line;
    EXPECT_NE(c.status().message().find("auth." + new_line.substr(0, new_line.find(' ')) +
                                        ": must be between"),
              std::string::npos)
        << c.status();
  }
}

// A file written before the unit-last names still loads: each old name is read under its new one,
// with a notice naming where it is; both names at once is an error.
TEST(Config, OldNamesAreReadWithANotice) {
  const std::string text = DefaultText("h");
  auto c = LoadConfig(
      WriteFile("old1.toml",
                Edited(text, {{"message_age_s_max = 432000", "max_age_s = 7200"},
                              {"failure_delay_ms_max = 10000", "failure_delay_max_ms = 2000"},
                              {"outcome_retry_ms_max = 60000", "outcome_retry_max_ms = 30000"}})));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->queue.message_age_s_max, 7200u);
  EXPECT_EQ(c->retry.message_age_s_max, 7200);
  EXPECT_EQ(c->auth.failure_delay_ms_max, 2000u);
  EXPECT_EQ(c->delivery.outcome_retry_ms_max, 30000u);
  ASSERT_EQ(c->notices.size(), 3u);
  EXPECT_NE(c->notices[0].find("old1.toml:"), std::string::npos) << c->notices[0];
  EXPECT_NE(c->notices[0].find(": queue.max_age_s: is an old name; read as "
                               "queue.message_age_s_max"),
            std::string::npos)
      << c->notices[0];

  c = LoadConfig(WriteFile("old_srs.toml",
                           "hostname = \"mx.test\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"
                           "domains = [\"local.test\"]\nsrs_max_age_days = 7\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->receive.srs_age_days_max, 7u);
  ASSERT_EQ(c->notices.size(), 1u);
  EXPECT_NE(c->notices[0].find("old_srs.toml:5:20: receive.srs_max_age_days: is an old name"),
            std::string::npos)
      << c->notices[0];

  c = LoadConfig(
      WriteFile("old2.toml", Edited(text, {{"message_age_s_max = 432000",
                                            "message_age_s_max = 432000\nmax_age_s = 60"}})));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("queue.max_age_s: is the old name of "
                                      "queue.message_age_s_max, which is set too"),
            std::string::npos)
      << c.status();

  c = LoadConfig(WriteFile("new.toml", text));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->notices.empty());
}

TEST(Config, SuppressionSection) {
  auto c = LoadConfig(WriteFile("supp0.toml", DefaultText("h")));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->suppression.enabled);
  EXPECT_FALSE(c->suppression.accept_suppressed);
  EXPECT_EQ(c->suppression.path, c->spool_dir + "/suppression.mdb");
  // A resolver that cannot see a domain must not suppress every address it touched.
  EXPECT_EQ(c->suppression.bounce_categories,
            (std::vector<feedback::BounceCategory>{feedback::BounceCategory::kBadMailbox,
                                                   feedback::BounceCategory::kInactiveMailbox}));
  c = LoadConfig(WriteFile(
      "supp1.toml", DefaultText("h") + "[suppression]\nat_rcpt = \"accept\"\n"
                                       "bounce_categories = [\"quota\"]\npath = \"s.mdb\"\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->suppression.accept_suppressed);
  EXPECT_EQ(c->suppression.bounce_categories,
            (std::vector<feedback::BounceCategory>{feedback::BounceCategory::kQuota}));
  EXPECT_EQ(c->suppression.path, std::string(getenv("TEST_TMPDIR")) + "/s.mdb");
  c = LoadConfig(WriteFile("supp2.toml",
                           DefaultText("h") + "[suppression]\nbounce_categories = [\"hard\"]\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "suppression.bounce_categories[0]: \"hard\" is not a bounce category"),
            std::string::npos)
      << c.status();
}

TEST(Config, DkimKeysAreListed) {
  auto c = LoadConfig(WriteFile("dkim.toml", DefaultText("h") +
                                                 "[[dkim.key]]\ndomain = \"example.com\"\n"
                                                 "selector = \"s1\"\nkey = \"k/a.pem\"\n"
                                                 "[[dkim.key]]\ndomain = \"example.com\"\n"
                                                 "selector = \"s2\"\nkey = \"/abs/b.pem\"\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->dkim_keys.size(), 2u);
  EXPECT_EQ(c->dkim_keys[0].selector, "s1");
  EXPECT_EQ(c->dkim_keys[1].key_path, "/abs/b.pem");
}

TEST(Config, MetricsEndpointStaysOnLoopbackUnlessAllowed) {
  std::string base = DefaultText("h");
  auto c = LoadConfig(WriteFile("m1.toml", base));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9587");  // what `relayd --init` writes
  EXPECT_FALSE(c->metrics.allow_public);

  std::string tls = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
  std::string head = "hostname = \"h\"\n[submission]\nlisten = [\"127.0.0.1:1\"]\n" + tls;
  c = LoadConfig(WriteFile("m2.toml", head));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics.listen, "");  // no [metrics] section: no endpoint

  c = LoadConfig(WriteFile("m3.toml", head + "[metrics]\nlisten = \"[::1]:9000\"\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics.listen, "[::1]:9000");

  c = LoadConfig(WriteFile("m4.toml", head + "[metrics]\nlisten = \"0.0.0.0:9587\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(
      c.status().message().find("m4.toml:8:10: metrics.listen: 0.0.0.0:9587 is not a loopback"),
      std::string::npos)
      << c.status();

  c = LoadConfig(WriteFile(
      "m5.toml", head + "[metrics]\nlisten = \"192.0.2.1:9587\"\nallow_public = true\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->metrics.allow_public);

  c = LoadConfig(WriteFile("m6.toml", head + "[metrics]\nlisten = \"nonsense\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("metrics.listen: "), std::string::npos) << c.status();
}

}  // namespace
}  // namespace relay::server

namespace relay::server {
namespace {

TEST(Config, ReceiveSection) {
  auto c = LoadConfig(WriteFile("recv.toml",
                                "hostname = \"mx.test\"\n"
                                "[receive]\n"
                                "listen = [\"127.0.0.1:0\"]\n"
                                "domains = [\"Local.Test\", \"other.test\"]\n"
                                "aliases = { \"other.test\" = \"/etc/other-aliases\" }\n"
                                "dkim = false\n"
                                "alias_depth_max = 4\n"
                                "checks_queued_max = 7\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  const ReceiveSettings& r = c->receive;
  EXPECT_TRUE(r.enabled());
  ASSERT_EQ(r.aliases_files.size(), 2u);
  EXPECT_EQ(r.aliases_files[0].first, "local.test");
  EXPECT_EQ(r.aliases_files[0].second, std::string(getenv("TEST_TMPDIR")) + "/aliases/local.test");
  EXPECT_EQ(r.aliases_files[1].second, "/etc/other-aliases");
  EXPECT_EQ(r.srs_domain, "local.test");
  EXPECT_EQ(r.srs_secret_path, std::string(getenv("TEST_TMPDIR")) + "/srs.secret");
  EXPECT_TRUE(r.spf);
  EXPECT_FALSE(r.dkim);
  EXPECT_EQ(r.alias_depth_max, 4u);
  EXPECT_EQ(r.checks_queued_max, 7u);
  // Port 25 alone is a listener: no submission section needed, no certificate required.
  EXPECT_TRUE(c->submission_listen.empty());
}

TEST(Config, ReceiveErrors) {
  auto c = LoadConfig(WriteFile("recv1.toml", "hostname = \"h\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("receive.domains: is empty but receive.listen is set"),
            std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile("recv2.toml",
                           "hostname = \"h\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"
                           "domains = [\"a.test\"]\naliases = { \"b.test\" = \"x\" }\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("recv2.toml:5:24: receive.aliases.b.test: is not in"),
            std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile("recv3.toml",
                           "hostname = \"h\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"
                           "domains = [\"a.test\"]\nspf = \"yes\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("recv3.toml:5:7: receive.spf: must be true or false"),
            std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile("recv4.toml",
                           "hostname = \"h\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"
                           "domains = [\"a.test\"]\nchecks_queued_max = 0\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("checks_queued_max"), std::string::npos) << c.status();
}

TEST(Config, ReceiveDmarcPolicy) {
  const std::string head =
      "hostname = \"h\"\n[receive]\nlisten = [\"127.0.0.1:0\"]\n"
      "domains = [\"a.test\"]\n";
  auto c = LoadConfig(WriteFile("dmarc0.toml", head));
  ASSERT_TRUE(c.ok()) << c.status();
  // The defaults: DMARC on, p=reject failures refused, p=quarantine ones marked, SPF fail
  // without a verifying signature refused.
  EXPECT_TRUE(c->receive.dmarc);
  EXPECT_EQ(c->receive.policy.dmarc_reject, receive::InboundAction::kRefuse);
  EXPECT_EQ(c->receive.policy.dmarc_quarantine, receive::InboundAction::kQuarantineHeader);
  EXPECT_TRUE(c->receive.policy.refuse_spf_fail_without_dkim);

  c = LoadConfig(
      WriteFile("dmarc1.toml", head + "dmarc = false\ndmarc_reject = \"quarantine-header\"\n"
                                      "dmarc_quarantine = \"accept\"\n"
                                      "spf_fail_without_dkim = \"accept\"\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->receive.dmarc);
  EXPECT_EQ(c->receive.policy.dmarc_reject, receive::InboundAction::kQuarantineHeader);
  EXPECT_EQ(c->receive.policy.dmarc_quarantine, receive::InboundAction::kAccept);
  EXPECT_FALSE(c->receive.policy.refuse_spf_fail_without_dkim);

  c = LoadConfig(WriteFile("dmarc2.toml", head + "dmarc_reject = \"reject\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            std::string(getenv("TEST_TMPDIR")) +
                "/dmarc2.toml:5:16: receive.dmarc_reject: must be one of \"refuse\", "
                "\"quarantine-header\", \"accept\" (got \"reject\")");
  c = LoadConfig(
      WriteFile("dmarc3.toml", head + "spf_fail_without_dkim = \"quarantine-header\"\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(
                "receive.spf_fail_without_dkim: must be one of \"refuse\", \"accept\""),
            std::string::npos)
      << c.status();
  c = LoadConfig(WriteFile("dmarc4.toml", head + "dmarc_quarantine = 1\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("receive.dmarc_quarantine: must be a string"),
            std::string::npos)
      << c.status();
}

// SIGHUP applies only some of relayd.toml (DKIM keys, shaping rules); what else changed in it is
// named so that the operator knows a restart is needed (a [metrics] section added later used to
// be ignored without a word).
TEST(Config, ChangedSettingsNamesWhatDiffers) {
  const std::string before = R"(# comment
hostname = "a.example"
[limits]
connections_max = 100
[[dkim.key]]
domain = "example.com"
selector = "s1"
)";
  auto same = ChangedSettings(before, "hostname   =  \"a.example\"  # moved\n"
                                      "[[dkim.key]]\nselector = \"s1\"\ndomain = \"example.com\"\n"
                                      "[limits]\nconnections_max = 100\n");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->empty());

  const std::string after = R"(hostname = "b.example"
[limits]
connections_max = 100
recipients_max = 5
[[dkim.key]]
domain = "example.com"
selector = "s2"
[metrics]
listen = "127.0.0.1:9587"
)";
  auto changed = ChangedSettings(before, after);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(*changed, (std::vector<std::string>{"dkim.key[0].selector", "hostname",
                                                "limits.recipients_max", "metrics"}));

  auto broken = ChangedSettings(before, "hostname = \n");
  EXPECT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("the file does not parse: line 1"), std::string::npos)
      << broken.status();
}

}  // namespace
}  // namespace relay::server
