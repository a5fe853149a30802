#include "relay/server/config/cluster_section.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {

absl::StatusOr<ClusterSettings> ParseCluster(const Section& root, const std::string& config_dir) {
  ClusterSettings s;
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table("cluster"));
  if (!t) return s;
  RETURN_IF_ERROR(t->Known({"redis",
                            "password",
                            "password_file",
                            "node",
                            "fleet_size",
                            "key_prefix",
                            "sync_ms",
                            "heartbeat_ms",
                            "lease_ttl_ms",
                            "lease_linger_ms",
                            "token_batch_ms",
                            "token_ttl_ms",
                            "retry_ms",
                            "full_sync_ms",
                            "connect_timeout_ms",
                            "command_timeout_ms",
                            "reconnect_ms",
                            "pending_changes_max",
                            "changes_stream_max",
                            "keys_max"}));
  cluster::FleetOptions& f = s.fleet;
  std::string redis;
  RETURN_IF_ERROR(t->String("redis", &redis));
  if (redis.empty()) {
    if (t->Has("fleet_size") || t->Has("node")) {
      return t->Error("redis", "is needed: a fleet shares its state through Redis");
    }
    return s;
  }
  absl::StatusOr<cluster::RedisAddress> address = cluster::ParseRedisAddress(redis);
  if (!address.ok()) return t->Error("redis", std::string(address.status().message()));
  f.redis.address = *address;
  if (t->Has("password") && t->Has("password_file")) {
    return t->TableError("has both password and password_file");
  }
  RETURN_IF_ERROR(t->String("password", &f.redis.password));
  if (t->Has("password_file")) {
    std::string path;
    RETURN_IF_ERROR(t->NonEmptyString("password_file", &path));
    if (path.front() != '/') path = (std::filesystem::path(config_dir) / path).string();
    std::ifstream in(path);
    if (!in) return t->Error("password_file", absl::StrCat("cannot read ", path));
    std::stringstream text;
    text << in.rdbuf();
    f.redis.password = std::string(absl::StripTrailingAsciiWhitespace(text.str()));
    if (f.redis.password.empty()) return t->Error("password_file", absl::StrCat(path, " is empty"));
  }
  RETURN_IF_ERROR(t->String("node", &f.node));
  for (char c : f.node) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-' && c != '_') {
      return t->Error("node", "may hold only letters, digits, '.', '-' and '_'");
    }
  }
  if (f.node.size() > 64) return t->Error("node", "is longer than 64 characters");
  // Required: a default of 1 would give every node the whole limit whenever Redis is away.
  if (!t->Has("fleet_size")) {
    return t->Error("fleet_size",
                    "is required: each node keeps to 1/fleet_size of every limit "
                    "while Redis cannot be reached");
  }
  RETURN_IF_ERROR(t->Int("fleet_size", &f.fleet_size, 1, 1000));
  RETURN_IF_ERROR(t->String("key_prefix", &f.key_prefix));
  if (f.key_prefix.size() > 64 || f.key_prefix.find_first_of(" \t\r\n") != std::string::npos) {
    return t->Error("key_prefix", "must be at most 64 characters without spaces");
  }
  RETURN_IF_ERROR(t->Int("sync_ms", &f.sync_ms, 1, 10000));
  RETURN_IF_ERROR(t->Int("heartbeat_ms", &f.heartbeat_ms, 10, 60000));
  RETURN_IF_ERROR(t->Int("lease_ttl_ms", &f.lease_ttl_ms, 100, 600000));
  if (f.lease_ttl_ms < 2 * f.heartbeat_ms) {
    return t->Error("lease_ttl_ms",
                    "must be at least twice heartbeat_ms, or live nodes lose "
                    "their leases between two heartbeats");
  }
  RETURN_IF_ERROR(t->Int("lease_linger_ms", &f.lease_linger_ms, 0, 600000));
  RETURN_IF_ERROR(t->Int("token_batch_ms", &f.token_batch_ms, 1, 10000));
  RETURN_IF_ERROR(t->Int("token_ttl_ms", &f.token_ttl_ms, 10, 60000));
  if (f.token_ttl_ms < f.token_batch_ms) {
    return t->Error("token_ttl_ms",
                    "must be at least token_batch_ms, or fetched tokens are "
                    "dropped before they can be used");
  }
  RETURN_IF_ERROR(t->Int("retry_ms", &f.retry_ms, 1, 10000));
  RETURN_IF_ERROR(t->Int("full_sync_ms", &f.full_sync_ms, 100, 3600000));
  RETURN_IF_ERROR(t->Int("connect_timeout_ms", &f.redis.connect_timeout_ms, 10, 60000));
  RETURN_IF_ERROR(t->Int("command_timeout_ms", &f.redis.command_timeout_ms, 10, 60000));
  RETURN_IF_ERROR(t->Int("reconnect_ms", &f.redis.reconnect_ms, 0, 600000));
  RETURN_IF_ERROR(t->Int("pending_changes_max", &f.pending_changes_max, 1000, 100000000));
  RETURN_IF_ERROR(t->Int("changes_stream_max", &f.changes_stream_max, 1000, 1000000000));
  RETURN_IF_ERROR(t->Int("keys_max", &f.keys_max, 100, 100000000));
  s.enabled = true;
  return s;
}

}  // namespace relay::server::config
