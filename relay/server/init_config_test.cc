// The directory InitDirectory writes: what is in it and with which modes, the config loading
// with the defaults it shows, the keys loading and matching the records returned, the first user,
// and the refusal to overwrite.
#include "relay/server/init_config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "dkim/key.h"
#include "gtest/gtest.h"
#include "relay/receive/aliases.h"
#include "relay/server/config.h"
#include "relay/server/users.h"

namespace relay::server {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned Mode(const fs::path& p) {
  struct stat st;
  if (stat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class InitDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/init", ++n, "/relay");
    options_.domain = "example.test";
    options_.hostname = "relay.example.test";
    options_.year = 2031;
    options_.first_user = "app@example.test";
  }

  std::string dir_;
  InitOptions options_;
};

TEST_F(InitDirectoryTest, WritesAConfigThatLoadsWithBothKeysAndTheFirstUser) {
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->config_path, dir_ + "/relayd.toml");
  EXPECT_EQ(Mode(dir_), 0700u);
  EXPECT_EQ(Mode(dir_ + "/relayd.toml"), 0640u);
  EXPECT_EQ(Mode(dir_ + "/users"), 0600u);
  EXPECT_EQ(Mode(dir_ + "/tls/key.pem"), 0600u);
  EXPECT_TRUE(fs::exists(dir_ + "/tls/cert.pem"));
  // The SRS secret exists before the first start: relayd may not write the directory then.
  EXPECT_EQ(Mode(dir_ + "/srs.secret"), 0600u);
  std::ifstream srs(dir_ + "/srs.secret");
  std::string secret;
  std::getline(srs, secret);
  EXPECT_EQ(secret.size(), 48u);
  EXPECT_EQ(secret.find_first_not_of("0123456789abcdef"), std::string::npos) << secret;

  absl::StatusOr<Config> c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hostname, "relay.example.test");
  EXPECT_EQ(c->submission_listen, std::vector<std::string>{"127.0.0.1:2587"});
  EXPECT_EQ(c->submissions_listen, std::vector<std::string>{"127.0.0.1:2465"});
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9587");
  EXPECT_EQ(c->tls_cert_path, dir_ + "/tls/cert.pem");

  // Dual signing: RSA for the receivers that know only RSA, and Ed25519.
  ASSERT_EQ(r->keys.size(), 2u);
  ASSERT_EQ(c->dkim_keys.size(), 2u);
  const char* const selectors[] = {"rsa2031", "ed2031"};
  const dkim::KeyAlgorithm algorithms[] = {dkim::KeyAlgorithm::kRsaSha256,
                                           dkim::KeyAlgorithm::kEd25519Sha256};
  for (size_t i = 0; i < 2; ++i) {
    const InitKey& k = r->keys[i];
    SCOPED_TRACE(k.selector);
    EXPECT_EQ(k.selector, selectors[i]);
    EXPECT_EQ(k.algorithm, algorithms[i]);
    EXPECT_EQ(k.owner, absl::StrCat(selectors[i], "._domainkey.example.test"));
    EXPECT_EQ(k.path, absl::StrCat("keys/example.test.", selectors[i], ".pem"));
    EXPECT_EQ(c->dkim_keys[i].domain, "example.test");
    EXPECT_EQ(c->dkim_keys[i].selector, selectors[i]);
    EXPECT_EQ(c->dkim_keys[i].key_path, dir_ + "/" + k.path);
    EXPECT_EQ(Mode(c->dkim_keys[i].key_path), 0600u);

    absl::StatusOr<dkim::PrivateKey> key = dkim::PrivateKey::FromFile(c->dkim_keys[i].key_path);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(key->algorithm(), algorithms[i]);
    if (algorithms[i] == dkim::KeyAlgorithm::kRsaSha256) {
      EXPECT_EQ(key->rsa_bits(), 2048u);
    }
    // The record returned is the key's public half: a signature made with the file verifies
    // against it.
    EXPECT_EQ(k.record, key->PublicKeyRecord());
    EXPECT_TRUE(absl::StartsWith(
        k.record,
        absl::StrCat("v=DKIM1; k=", std::string(dkim::KeyTypeTagValue(algorithms[i])), "; p=")));
    absl::StatusOr<dkim::PublicKey> published = dkim::PublicKey::FromRecord(k.record);
    ASSERT_TRUE(published.ok()) << published.status();
    const std::string digest(32, '\x5a');
    absl::StatusOr<std::string> signature = key->SignDigest(digest);
    ASSERT_TRUE(signature.ok()) << signature.status();
    EXPECT_TRUE(published->VerifyDigest(digest, *signature));
  }

  // The aliases file for receiving: as written it names no one (receiving is off); with its two
  // example lines uncommented, postmaster and the DMARC report address reach their target.
  const std::string aliases_path = dir_ + "/aliases/example.test";
  EXPECT_EQ(Mode(aliases_path), 0640u);
  std::ifstream aliases_in(aliases_path);
  std::stringstream aliases_text;
  aliases_text << aliases_in.rdbuf();
  EXPECT_TRUE(absl::StrContains(aliases_text.str(), "rua=mailto:dmarc-reports@example.test"));
  auto built = receive::Aliases::Build({{"example.test", aliases_path, aliases_text.str()}}, {});
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->Expand("postmaster@example.test").status, receive::ExpandStatus::kUnknownUser);
  std::string enabled = aliases_text.str();
  absl::StrReplaceAll({{"# postmaster:", "postmaster:"}, {"# dmarc-reports:", "dmarc-reports:"}},
                      &enabled);
  built = receive::Aliases::Build({{"example.test", aliases_path, enabled}}, {});
  ASSERT_TRUE(built.ok()) << built.status();
  for (const char* address : {"postmaster@example.test", "dmarc-reports@example.test"}) {
    receive::Expansion e = built->Expand(address);
    EXPECT_EQ(e.status, receive::ExpandStatus::kExpanded) << address;
    EXPECT_EQ(e.targets, std::vector<std::string>{"you@example.net"}) << address;
  }

  absl::StatusOr<std::shared_ptr<UserDb>> users = UserDb::Load(c->users_path);
  ASSERT_TRUE(users.ok()) << users.status();
  EXPECT_EQ(r->password.size(), 20u);
  EXPECT_TRUE((*users)->Verify("app@example.test", r->password));
  EXPECT_TRUE((*users)->MaySendAs("app@example.test", "news@example.test"));
  EXPECT_FALSE((*users)->MaySendAs("app@example.test", "ceo@other.test"));
}

TEST_F(InitDirectoryTest, ShowsEveryDefaultAndTheLinesTestsEdit) {
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string text = ReadFile(r->config_path);
  EXPECT_FALSE(absl::StrContains(text, "${")) << "a placeholder was left in the template";
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    EXPECT_LE(line.size(), 100u) << line;
  }
  absl::StatusOr<Config> c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status();
  // The values written are the defaults themselves: loading the file changes nothing.
  const Config d;
  EXPECT_EQ(c->shards, d.shards);
  EXPECT_EQ(c->shutdown_grace_ms, d.shutdown_grace_ms);
  EXPECT_EQ(c->tls_reload_check_ms, d.tls_reload_check_ms);
  EXPECT_EQ(c->smtp.message_bytes_max, d.smtp.message_bytes_max);
  EXPECT_EQ(c->smtp.connections_max, d.smtp.connections_max);
  EXPECT_EQ(c->smtp.session_timeout_ms, d.smtp.session_timeout_ms);
  EXPECT_EQ(c->smtp.replies_unread_bytes_max, d.smtp.replies_unread_bytes_max);
  EXPECT_EQ(c->smtp.replies_unread_timeout_ms, d.smtp.replies_unread_timeout_ms);
  EXPECT_EQ(c->smtp.input_held_bytes_max, d.smtp.input_held_bytes_max);
  EXPECT_EQ(c->smtp.command_deadline_ms, d.smtp.command_deadline_ms);
  EXPECT_EQ(c->smtp.idle_before_auth_ms, d.smtp.idle_before_auth_ms);
  EXPECT_EQ(c->smtp.stress_connections_percent, d.smtp.stress_connections_percent);
  EXPECT_EQ(c->smtp.stress_timeout_ms, d.smtp.stress_timeout_ms);
  EXPECT_EQ(c->auth.block_ms, d.auth.block_ms);
  EXPECT_EQ(c->auth.worker_threads, d.auth.worker_threads);
  EXPECT_EQ(c->auth.failures_before_block, d.auth.failures_before_block);
  EXPECT_EQ(c->auth.user_failures_before_block, d.auth.user_failures_before_block);
  EXPECT_EQ(c->auth.throttle_entries_max, d.auth.throttle_entries_max);
  EXPECT_EQ(c->auth.checks_queued_max, d.auth.checks_queued_max);
  EXPECT_EQ(c->queue.segment_bytes, d.queue.segment_bytes);
  EXPECT_EQ(c->queue.syncs_in_flight_max, d.queue.syncs_in_flight_max);
  EXPECT_EQ(c->queue.outcome_sync_ms, d.queue.outcome_sync_ms);
  EXPECT_EQ(c->queue.message_age_s_max, d.queue.message_age_s_max);
  EXPECT_EQ(c->delivery.tls_ca_file, d.delivery.tls_ca_file);
  EXPECT_EQ(c->delivery.source_suspend_ms, d.delivery.source_suspend_ms);
  EXPECT_EQ(c->delivery.reply_limits.reply_line_bytes_max,
            d.delivery.reply_limits.reply_line_bytes_max);
  EXPECT_EQ(c->delivery.reply_limits.reply_lines_max, d.delivery.reply_limits.reply_lines_max);
  EXPECT_EQ(c->delivery.reply_limits.reply_bytes_max, d.delivery.reply_limits.reply_bytes_max);
  EXPECT_EQ(c->delivery.outcome_retry_ms, d.delivery.outcome_retry_ms);
  EXPECT_EQ(c->delivery.outcome_retry_ms_max, d.delivery.outcome_retry_ms_max);
  EXPECT_EQ(c->delivery.unrecorded_outcomes_max, d.delivery.unrecorded_outcomes_max);
  EXPECT_EQ(c->log.rotate_bytes, d.log.rotate_bytes);
  EXPECT_EQ(c->retry.intervals_s, d.retry.intervals_s);
  EXPECT_EQ(c->retry.jitter_fraction, d.retry.jitter_fraction);
  EXPECT_EQ(c->dkim_signing_threads, d.dkim_signing_threads);
  EXPECT_TRUE(c->delivery.sources.empty());
  EXPECT_FALSE(c->receive.enabled());

  // End-to-end tests and benchmarks edit the file by exact replacement
  // (tools/testing/relayd_process.py): each of these lines is there, once.
  for (const char* line : {"listen = [\"127.0.0.1:2587\"]",
                           "listen_tls = [\"127.0.0.1:2465\"]",
                           "listen = \"127.0.0.1:9587\"",
                           "\nshards = 0\n",
                           "segment_bytes = 67108864",
                           "dns_servers = []",
                           "mx_port = 25",
                           "grace_ms = 10000",
                           "auth_requires_tls = true",
                           "fsync = true",
                           "family = \"ipv4-first\"",
                           "control_socket = \"control.sock\"",
                           "dir = \"log\"",
                           "strategy = \"round-robin\"",
                           "reserve_segments = 2",
                           "intervals_s = [60, 300, 900, 1800, 3600]",
                           "jitter_fraction = 0.1",
                           "# false: accept and queue only.\nenabled = true",
                           "\nconnections_max = 16000",
                           "connections_per_ip_max = 500",
                           "\ncommand_timeout_ms = 300000",
                           "message_bytes_max = 36700160",
                           "failures_before_delay = 3",
                           "failure_delay_ms = 1000",
                           "failures_before_block = 10",
                           "user_failures_before_block = 5",
                           "checks_queued_max = 128",
                           "worker_threads = 1",
                           "reply_bytes_max = 65536",
                           "outcome_retry_ms = 1000",
                           "[metrics]\n"}) {
    EXPECT_EQ(Count(text, line), 1u) << line;
  }
  // The sections a newcomer turns on later, commented.
  EXPECT_TRUE(absl::StrContains(text, "\n# [receive]\n# listen = [\"0.0.0.0:25\", \"[::]:25\"]\n"));
  EXPECT_TRUE(absl::StrContains(text, "\n# [dkim]\n# signing_threads = 0\n"));
  EXPECT_TRUE(absl::StrContains(text, "\n# checks_queued_max = 64\n"));
  EXPECT_TRUE(absl::StrContains(text, "\n# [[shaping]]\n# name = \"google\"\n"));
  EXPECT_TRUE(absl::StrContains(text, "\n# [[tenants]]\n# name = \"shop\"\n"));
}

// The commented [receive] section, uncommented as an operator would, loads with the values it
// shows, which are the defaults (the DMARC policy keys included).
TEST_F(InitDirectoryTest, TheReceiveSectionUncommentedLoadsWithItsDefaults) {
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string text = ReadFile(r->config_path);
  for (const char* line : {"\n# dmarc = true\n", "\n# dmarc_reject = \"refuse\"\n",
                           "\n# dmarc_quarantine = \"quarantine-header\"\n",
                           "\n# spf_fail_without_dkim = \"refuse\"\n"}) {
    EXPECT_EQ(Count(text, line), 1u) << line;
  }
  // Every line of the block, from "# [receive]" to the empty line, loses its "# ", as the
  // operator guide says (and its test does): the block holds settings only.
  std::string edited;
  bool in_receive = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line == "# [receive]" || line == "# [feedback]" || line == "# [unsubscribe]" ||
        line == "# [[tenants]]" || line == "# [cluster]") {
      in_receive = true;
    }
    if (line.empty()) in_receive = false;
    if (in_receive && absl::StartsWith(line, "# ")) line.remove_prefix(2);
    absl::StrAppend(&edited, line, "\n");
  }
  std::ofstream(r->config_path, std::ios::trunc) << edited;
  absl::StatusOr<Config> c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status() << "\n" << edited;
  ASSERT_TRUE(c->receive.enabled());
  const ReceiveSettings d;
  EXPECT_EQ(c->receive.dmarc, d.dmarc);
  EXPECT_EQ(c->receive.policy.dmarc_reject, d.policy.dmarc_reject);
  EXPECT_EQ(c->receive.policy.dmarc_quarantine, d.policy.dmarc_quarantine);
  EXPECT_EQ(c->receive.policy.refuse_spf_fail_without_dkim, d.policy.refuse_spf_fail_without_dkim);
  EXPECT_EQ(c->receive.checks_timeout_ms, d.checks_timeout_ms);
  EXPECT_EQ(c->receive.srs_age_days_max, d.srs_age_days_max);
  // And the [feedback] block beside it: the domain's bounce domain.
  ASSERT_EQ(c->feedback.verp.size(), 1u);
  EXPECT_EQ(c->feedback.verp[0].bounce_domain, "bounce." + c->feedback.verp[0].domain);
  // And [unsubscribe], with the relay's own certificate.
  EXPECT_TRUE(c->unsubscribe.enabled());
  EXPECT_EQ(c->unsubscribe.url, "https://" + c->hostname);
  // And the two example tenants, the domain's and its newsletter user's.
  ASSERT_EQ(c->tenants.tenants().size(), 2u);
  const std::string domain = c->feedback.verp[0].domain;
  EXPECT_EQ(c->tenants.Find("app@" + domain, domain)->name, "shop");
  EXPECT_EQ(c->tenants.Find("news@" + domain, domain)->name, "newsletter");
  EXPECT_EQ(c->tenants.Find("news@" + domain, domain)->priority, queue::Priority::kBulk);
  // And [cluster], with the fleet's defaults.
  ASSERT_TRUE(c->cluster.enabled);
  const cluster::FleetOptions f;
  EXPECT_EQ(c->cluster.fleet.redis.address.port, 6379);
  EXPECT_EQ(c->cluster.fleet.fleet_size, 3u);
  EXPECT_EQ(c->cluster.fleet.sync_ms, f.sync_ms);
  EXPECT_EQ(c->cluster.fleet.lease_ttl_ms, f.lease_ttl_ms);
  EXPECT_EQ(c->cluster.fleet.token_batch_ms, f.token_batch_ms);
  EXPECT_EQ(c->cluster.fleet.pending_changes_max, f.pending_changes_max);
}

TEST_F(InitDirectoryTest, WithoutDkimWritesNoKey) {
  options_.dkim_algorithms.clear();
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->keys.empty());
  EXPECT_FALSE(fs::exists(dir_ + "/keys"));
  absl::StatusOr<Config> c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->dkim_keys.empty());
  const std::string text = ReadFile(r->config_path);
  EXPECT_FALSE(absl::StrContains(text, "\n[[dkim.key]]")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\n# [[dkim.key]]\n# domain = \"example.test\"\n"));
  EXPECT_TRUE(absl::StrContains(text, "relayctl dkim-keygen --domain example.test")) << text;
  // Appending keys of one's own, as tests do, still makes a valid file.
  std::ofstream(r->config_path, std::ios::app)
      << "[dkim]\nsigning_threads = 1\n[[dkim.key]]\ndomain = \"example.test\"\n"
         "selector = \"s\"\nkey = \"k.pem\"\n";
  c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dkim_keys.size(), 1u);
}

TEST_F(InitDirectoryTest, RefusesAnExistingConfiguration) {
  // An existing directory without relayd.toml is used (tests pass a new temporary directory) ...
  fs::create_directories(dir_);
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string config = ReadFile(r->config_path);
  const std::string users = ReadFile(dir_ + "/users");
  const std::string key = ReadFile(dir_ + "/keys/example.test.rsa2031.pem");

  // ... one with relayd.toml is not touched.
  options_.domain = "other.test";
  r = InitDirectory(dir_, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  EXPECT_EQ(ReadFile(dir_ + "/relayd.toml"), config);
  EXPECT_EQ(ReadFile(dir_ + "/users"), users);
  EXPECT_EQ(ReadFile(dir_ + "/keys/example.test.rsa2031.pem"), key);
  EXPECT_FALSE(fs::exists(dir_ + "/keys/other.test.rsa2031.pem"));

  // With refuse_earlier_init, a directory holding part of an earlier init (keys/ here) is
  // refused and left as it is ...
  const std::string half = dir_ + "-half";
  fs::create_directories(half + "/keys");
  std::ofstream(half + "/keys/old.pem") << "an earlier key\n";
  options_.refuse_earlier_init = true;
  r = InitDirectory(half, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  EXPECT_FALSE(fs::exists(half + "/tls"));
  EXPECT_EQ(ReadFile(half + "/keys/old.pem"), "an earlier key\n");

  // ... while other files, such as the Debian package's relayd.toml.example, do not stop it.
  const std::string packaged = dir_ + "-packaged";
  fs::create_directories(packaged);
  std::ofstream(packaged + "/relayd.toml.example") << "# reference\n";
  r = InitDirectory(packaged, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(fs::exists(packaged + "/relayd.toml"));
  EXPECT_EQ(ReadFile(packaged + "/relayd.toml.example"), "# reference\n");
}

TEST_F(InitDirectoryTest, EgressSourcesAndListenersAsGiven) {
  options_.submission_listen = {"0.0.0.0:587", "[::]:587"};
  options_.submissions_listen = {"0.0.0.0:465", "[::]:465"};
  options_.metrics_listen = "";
  options_.first_user.clear();
  options_.dkim_algorithms = {dkim::KeyAlgorithm::kEd25519Sha256};
  delivery::EgressSourceConfig v4;
  v4.address = "192.0.2.10";
  v4.ehlo_name = "relay.example.test";
  delivery::EgressSourceConfig prefix;
  prefix.prefix = "2001:db8:1::/64";
  prefix.count = 4;
  prefix.ehlo_name = "relay.example.test";
  options_.sources = {v4, prefix};
  absl::StatusOr<InitResult> r = InitDirectory(dir_, options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->password.empty());
  EXPECT_FALSE(fs::exists(dir_ + "/users"));
  ASSERT_EQ(r->keys.size(), 1u);
  EXPECT_EQ(r->keys[0].selector, "ed2031");
  absl::StatusOr<Config> c = LoadConfig(r->config_path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->submission_listen, (std::vector<std::string>{"0.0.0.0:587", "[::]:587"}));
  EXPECT_EQ(c->submissions_listen, (std::vector<std::string>{"0.0.0.0:465", "[::]:465"}));
  EXPECT_EQ(c->metrics.listen, "");
  ASSERT_EQ(c->delivery.sources.size(), 2u);
  EXPECT_EQ(c->delivery.sources[0].address, "192.0.2.10");
  EXPECT_EQ(c->delivery.sources[1].prefix, "2001:db8:1::/64");
  EXPECT_EQ(c->delivery.sources[1].count, 4u);
  EXPECT_TRUE(absl::StrContains(ReadFile(r->config_path), "EHLO name <n>.relay.example.test"));
}

}  // namespace
}  // namespace relay::server
