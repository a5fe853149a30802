#include "relay/server/config/cluster_section.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

absl::StatusOr<ClusterSettings> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relayd.toml"));
  return ParseCluster(Section("relayd.toml", "", doc), std::getenv("TEST_TMPDIR"));
}

TEST(Cluster, NoRedisNoFleet) {
  auto s = Parse("");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enabled);
  s = Parse("[cluster]\nredis = \"\"\n");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enabled);
}

TEST(Cluster, ReadsEverySetting) {
  std::ofstream(std::string(std::getenv("TEST_TMPDIR")) + "/redis.secret") << "s3cret\n";
  auto s = Parse(
      "[cluster]\nredis = \"[::1]:7000\"\npassword_file = \"redis.secret\"\nnode = \"relay-2\"\n"
      "fleet_size = 3\nkey_prefix = \"eu:\"\nsync_ms = 50\nheartbeat_ms = 500\n"
      "lease_ttl_ms = 5000\nlease_linger_ms = 200\ntoken_batch_ms = 100\ntoken_ttl_ms = 800\n"
      "retry_ms = 10\nfull_sync_ms = 2000\nconnect_timeout_ms = 300\ncommand_timeout_ms = 400\n"
      "reconnect_ms = 500\npending_changes_max = 1000\nchanges_stream_max = 5000\n"
      "keys_max = 1000\n");
  ASSERT_TRUE(s.ok()) << s.status();
  const cluster::FleetOptions& f = s->fleet;
  EXPECT_TRUE(s->enabled);
  EXPECT_EQ(f.redis.address.host, "::1");
  EXPECT_EQ(f.redis.address.port, 7000);
  EXPECT_EQ(f.redis.password, "s3cret");
  EXPECT_EQ(f.node, "relay-2");
  EXPECT_EQ(f.fleet_size, 3u);
  EXPECT_EQ(f.key_prefix, "eu:");
  EXPECT_EQ(f.sync_ms, 50);
  EXPECT_EQ(f.heartbeat_ms, 500);
  EXPECT_EQ(f.lease_ttl_ms, 5000);
  EXPECT_EQ(f.lease_linger_ms, 200);
  EXPECT_EQ(f.token_batch_ms, 100);
  EXPECT_EQ(f.token_ttl_ms, 800);
  EXPECT_EQ(f.retry_ms, 10);
  EXPECT_EQ(f.full_sync_ms, 2000);
  EXPECT_EQ(f.redis.connect_timeout_ms, 300);
  EXPECT_EQ(f.redis.command_timeout_ms, 400);
  EXPECT_EQ(f.redis.reconnect_ms, 500);
  EXPECT_EQ(f.pending_changes_max, 1000u);
  EXPECT_EQ(f.changes_stream_max, 5000u);
  EXPECT_EQ(f.keys_max, 1000u);
}

TEST(Cluster, RefusesWhatCannotWork) {
  auto error = [](const std::string& text) {
    auto s = Parse(text);
    return s.ok() ? std::string("(loaded)") : std::string(s.status().message());
  };
  EXPECT_NE(error("[cluster]\nfleet_size = 3\n").find("redis"), std::string::npos);
  EXPECT_NE(error("[cluster]\nredis = \"::1:6379\"\nfleet_size = 2\n").find("brackets"),
            std::string::npos);
  EXPECT_NE(error("[cluster]\nredis = \"r:6379\"\nfleet_size = 2\nnode = \"a b\"\n").find("node"),
            std::string::npos);
  EXPECT_NE(
      error("[cluster]\nredis = \"r\"\nfleet_size = 2\nheartbeat_ms = 1000\nlease_ttl_ms = 1500\n")
          .find("twice"),
      std::string::npos);
  EXPECT_NE(
      error("[cluster]\nredis = \"r\"\nfleet_size = 2\npassword = \"a\"\npassword_file = \"b\"\n")
          .find("both"),
      std::string::npos);
  EXPECT_NE(error("[cluster]\nredis = \"r\"\nshards = 2\n").find("shards"), std::string::npos);
  EXPECT_NE(error("[cluster]\nredis = \"r\"\n").find("fleet_size"), std::string::npos);
  EXPECT_NE(error("[cluster]\nredis = \"r\"\nfleet_size = 2\ntoken_batch_ms = 500\n"
                  "token_ttl_ms = 100\n")
                .find("token_batch_ms"),
            std::string::npos);
}

}  // namespace
}  // namespace relay::server::config
