// Egress sources: where outbound connections come from. A source is a local address with the EHLO
// name whose PTR matches it; a pool is a named, weighted set of sources, and a message goes out
// from the pool its tenant, sending domain or campaign is routed to (the engine's choice,
// relay/delivery/engine.h). Pool 0 is "default": the pool of that name when the configuration
// has one, else every source. An IPv6 prefix served by an AnyIP
// route (`ip -6 route add local PREFIX dev lo`) stands for many sources: addresses are derived from
// it and bound with IPV6_FREEBIND (Linux does not let a socket bind an unassigned address through
// the route alone: bind fails with EADDRNOTAVAIL).
//
// Selection: round-robin, weighted, or sticky per destination site (the same source for a site as
// long as it is usable, so a receiver sees a stable sender). A source the kernel refuses
// (EADDRNOTAVAIL at bind or connect) is suspended for a while with a log line; the others go on.
// A source in warm-up may send only so many messages a day to a site (relay/delivery/warmup.h):
// the caller says whether the chosen source may take one more, and when it may not, the pool's
// next source is asked, so that mail beyond one source's allowance goes to the others.
//
// One Egress per shard; shard thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "relay/io/socket.h"

namespace relay::delivery {

enum class EgressStrategy { kRoundRobin, kWeighted, kSticky };

struct EgressSourceConfig {
  // How pools and the operator name it; "": its address, its prefix, or "default".
  std::string name;
  std::string address;    // "192.0.2.10", "2001:db8::25", or "" for the kernel's choice
  std::string ehlo_name;  // the name its PTR gives; EHLO uses it
  uint32_t weight = 1;
  // An IPv6 prefix ("2001:db8:0:1::/64") with an AnyIP route: `count` sources are derived from it
  // (address = prefix + index + 1), each with ehlo_name "<index+1>.<ehlo_name>" unless
  // ehlo_name contains "{n}", which is replaced by the index + 1.
  std::string prefix;
  uint32_t count = 0;
  // Warm-up: the messages it may send to one site on its first, second, ... day (days counted in
  // UTC from warmup_start_day, days since 1970-01-01); past the list's end, no limit. Empty: none.
  std::vector<uint32_t> warmup;
  int64_t warmup_start_day = 0;
};

struct EgressPoolConfig {
  std::string name;
  std::vector<std::string> sources;        // source names (EgressSourceConfig::name, or an address)
  std::optional<EgressStrategy> strategy;  // unset: the [delivery] strategy
};

struct EgressSource {
  std::string name;        // the address as text, or "default"
  std::string group;       // its configuration entry's name (a prefix's sources share it)
  io::SocketAddress address;  // family AF_UNSPEC when the kernel chooses
  bool any_address = true;
  bool freebind = false;   // derived from an AnyIP prefix
  std::string ehlo_name;
  uint32_t weight = 1;
  int64_t suspended_until_ms = 0;
  uint64_t connections = 0;  // opened from this source so far
  std::vector<uint32_t> warmup;  // EgressSourceConfig's
  int64_t warmup_start_day = 0;
};

// Which pool a message goes out of: its campaign's, else its sending domain's, else its tenant's
// (queue::TenantOf), else "default". Values are pool names.
struct PoolRoutes {
  absl::flat_hash_map<std::string, std::string> campaigns;
  absl::flat_hash_map<std::string, std::string> domains;
  absl::flat_hash_map<std::string, std::string> tenants;
  bool empty() const { return campaigns.empty() && domains.empty() && tenants.empty(); }
};

class Egress {
 public:
  static constexpr int kDefaultPool = 0;

  // An error names a pool without sources or a source name no entry has.
  static absl::StatusOr<Egress> Create(const std::vector<EgressSourceConfig>& sources,
                                       const std::vector<EgressPoolConfig>& pools,
                                       EgressStrategy strategy, std::string default_ehlo);

  // The index of the source of `pool` for a new connection towards `site` whose addresses include
  // `family` (AF_INET / AF_INET6) and that `may_send` (asked about the one about to be chosen;
  // it may count the message) lets take one more message; -1 when there is none.
  int Pick(int pool, std::string_view site, int family, int64_t now_ms,
           absl::FunctionRef<bool(int source)> may_send);
  const EgressSource& source(int index) const { return sources_[index]; }
  size_t size() const { return sources_.size(); }
  // The pool named `name`, or -1.
  int PoolIndex(std::string_view name) const;
  const std::string& pool_name(int pool) const { return pools_[pool].name; }
  size_t pool_count() const { return pools_.size(); }
  bool InPool(int pool, int source) const;
  // The same sources in the same order (names, addresses, EHLO names), whatever their weights,
  // warm-up schedules and pools: what a reload may change while ready queues are keyed by source.
  bool SameSourcesAs(const Egress& other) const;
  // Takes over `old`'s suspensions (kernel refusals) and connection counts; SameSourcesAs(old).
  void CarryStateFrom(const Egress& old);
  // Suspends a source the kernel refused.
  void Suspend(int index, int64_t until_ms, std::string_view why);

  // A non-blocking TCP socket for `destination`, bound to source `index` (IP_BIND_ADDRESS_NO_PORT
  // so the port is chosen at connect time and source ports are not exhausted by bind). Returns
  // the fd or -errno.
  int OpenSocket(int index, const io::SocketAddress& destination) const;

 private:
  struct Pool {
    std::string name;
    std::vector<int> members;  // source indices, in configuration order
    std::vector<bool> member;  // by source index
    EgressStrategy strategy = EgressStrategy::kRoundRobin;
    size_t next = 0;  // round-robin cursor into members
    uint64_t weighted_turn = 0;
  };
  // Where Pick starts looking in `p.members`, by the pool's strategy; -1 when none is usable.
  int StartOf(Pool& p, std::string_view site, absl::FunctionRef<bool(size_t)> usable);

  std::vector<EgressSource> sources_;
  std::vector<Pool> pools_;
};

}  // namespace relay::delivery
