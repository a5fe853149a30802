// Egress sources: where outbound connections come from. A source is a local address with the EHLO
// name whose PTR matches it; a pool is a weighted set of sources. An IPv6 prefix served by an AnyIP
// route (`ip -6 route add local PREFIX dev lo`) stands for many sources: addresses are derived from
// it and bound with IPV6_FREEBIND (Linux does not let a socket bind an unassigned address through
// the route alone: bind fails with EADDRNOTAVAIL).
//
// Selection: round-robin, weighted, or sticky per destination site (the same source for a site as
// long as it is usable, so a receiver sees a stable sender). A source the kernel refuses
// (EADDRNOTAVAIL at bind or connect) is suspended for a while with a log line; the others go on.
//
// One pool per shard; shard thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/io/socket.h"

namespace relay::delivery {

enum class EgressStrategy { kRoundRobin, kWeighted, kSticky };

struct EgressSourceConfig {
  std::string address;    // "192.0.2.10", "2001:db8::25", or "" for the kernel's choice
  std::string ehlo_name;  // the name its PTR gives; EHLO uses it
  uint32_t weight = 1;
  // An IPv6 prefix ("2001:db8:0:1::/64") with an AnyIP route: `count` sources are derived from it
  // (address = prefix + index + 1), each with ehlo_name "<index+1>.<ehlo_name>" unless
  // ehlo_name contains "{n}", which is replaced by the index + 1.
  std::string prefix;
  uint32_t count = 0;
};

struct EgressSource {
  std::string name;        // the address as text, or "default"
  io::SocketAddress address;  // family AF_UNSPEC when the kernel chooses
  bool any_address = true;
  bool freebind = false;   // derived from an AnyIP prefix
  std::string ehlo_name;
  uint32_t weight = 1;
  int64_t suspended_until_ms = 0;
  uint64_t connections = 0;  // opened from this source so far
};

class EgressPool {
 public:
  static absl::StatusOr<EgressPool> Create(const std::vector<EgressSourceConfig>& configs,
                                           EgressStrategy strategy, std::string default_ehlo);

  // The index of the source for a new connection towards `site` whose addresses include
  // `family` (AF_INET / AF_INET6), or -1 when every usable source is suspended or of the wrong
  // family.
  int Pick(std::string_view site, int family, int64_t now_ms);
  const EgressSource& source(int index) const { return sources_[index]; }
  size_t size() const { return sources_.size(); }
  // Suspends a source the kernel refused.
  void Suspend(int index, int64_t until_ms, std::string_view why);

  // A non-blocking TCP socket for `destination`, bound to source `index` (IP_BIND_ADDRESS_NO_PORT
  // so the port is chosen at connect time and source ports are not exhausted by bind). Returns
  // the fd or -errno.
  int OpenSocket(int index, const io::SocketAddress& destination) const;

 private:
  std::vector<EgressSource> sources_;
  EgressStrategy strategy_ = EgressStrategy::kRoundRobin;
  size_t next_ = 0;           // round-robin cursor
  uint64_t weighted_turn_ = 0;
};

}  // namespace relay::delivery
