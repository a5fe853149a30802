// [cluster]: a fleet of relays sharing limits, suspensions and suppressions through one Redis
// (relay/cluster/fleet.h). Without `redis` the node runs on its own.
//
//   [cluster]
//   redis = "10.0.0.5:6379"        # host:port or [v6]:port; "" (the default): no fleet
//   password_file = "redis.secret" # or password = "..."; Redis AUTH (none when neither)
//   node = ""                      # this node's name in the fleet; "": the host name
//   fleet_size = 3                 # nodes sharing the limits: each keeps to 1/fleet_size of
//                                  # every limit while Redis cannot be reached
//   key_prefix = "relay:"          # every key; fleets sharing one Redis use different ones
//   sync_ms = 100                  # the agent's round: how soon changes reach the other nodes
//   heartbeat_ms = 1000
//   lease_ttl_ms = 10000           # a node silent this long loses its connection leases
//   lease_linger_ms = 1000         # an unused lease goes back to the fleet after this
//   token_batch_ms = 200           # rate tokens fetched at once: this long at the rate
//   token_ttl_ms = 1000            # fetched tokens unused this long are dropped
//   retry_ms = 20                  # a shard told no by the fleet asks again after this
//   full_sync_ms = 10000           # the suspensions read whole this often
//   connect_timeout_ms = 1000, command_timeout_ms = 1000, reconnect_ms = 1000
//   pending_changes_max = 100000   # changes queued while Redis is away (beyond: dropped, counted)
//   changes_stream_max = 1000000   # entries the change stream keeps
//   keys_max = 100000              # (source, site) pairs tracked for leases, tokens and warm-up
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "relay/cluster/fleet.h"
#include "relay/server/config/toml_section.h"

namespace relay::server::config {

struct ClusterSettings {
  bool enabled = false;  // `redis` given
  // Everything but the node's sources, cursor path and status, which the daemon fills in.
  cluster::FleetOptions fleet;
};

// The [cluster] table of `root`; a relative password_file is read under `config_dir`.
absl::StatusOr<ClusterSettings> ParseCluster(const Section& root, const std::string& config_dir);

}  // namespace relay::server::config
