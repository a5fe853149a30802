// Limits that hold for more than this relay: a fleet of nodes sharing one Redis
// (relay/cluster/fleet.h implements this). The delivery engine asks before it opens a connection
// and before it sends a message, after its own per-shard limits said yes; a no is never final:
// the engine asks again after retry_ms() (the fleet fetches more leases or tokens meanwhile).
//
// Keys name one (egress source, site) pair by the source's name, "<source>|<site>", so that nodes
// sending from the same address (behind one NAT address, or an address that moved) share its
// limits, and nodes with addresses of their own keep their own.
//
// Thread-safe: every shard calls it; each call is a lock and a hash lookup, never the network.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace relay::delivery {

class SharedLimits {
 public:
  virtual ~SharedLimits() = default;

  // One more connection under `limit` connections at once over the fleet: true when this node may
  // open it now (a lease is taken, and given back by ReturnLease when the connection closes).
  virtual bool TryLease(std::string_view key, uint32_t limit) = 0;
  virtual void ReturnLease(std::string_view key) = 0;
  // This node holds more connections than it may now (Redis is away, or came back a moment ago,
  // or other nodes are refused leases, and this node holds more than its share): one lease is
  // given back now, for a connection that quits instead of taking its next message and does not
  // call ReturnLease when it closes. False: it may go on.
  virtual bool ReleaseOverShare(std::string_view key, uint32_t limit) = 0;
  // One message under `per_second` messages a second (bursts of `burst`) over the fleet.
  virtual bool TryToken(std::string_view key, uint32_t per_second, uint32_t burst) = 0;
  // A token taken that was not used after all.
  virtual void ReturnToken(std::string_view key) = 0;
  // One message of a source in warm-up under `allowance` messages on UTC day `day` over the fleet
  // (relay/delivery/warmup.h); GiveBackWarmup undoes one that did not go out.
  virtual bool TakeWarmup(std::string_view key, int64_t allowance, int64_t day) = 0;
  virtual void GiveBackWarmup(std::string_view key, int64_t day) = 0;
  // How long to wait before asking again after a no.
  virtual int64_t retry_ms() const = 0;
};

// The key of (source `source_name`, `site`).
inline std::string SharedLimitKey(std::string_view source_name, std::string_view site) {
  std::string key;
  key.reserve(source_name.size() + 1 + site.size());
  key.append(source_name).append("|").append(site);
  return key;
}

}  // namespace relay::delivery
