// ReceiveState: what every shard's port-25 sessions share and SIGHUP replaces as a whole: the
// recipient policy (aliases and SRS) and the ARC sealers of the local domains. A session takes a snapshot at MAIL FROM and keeps it for the
// transaction, so a reload never changes the routes of a message half-way.
//
// Immutable once built; the holder is thread-safe (the main thread sets, shards get).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "dkim/arc.h"

#include "relay/receive/recipient_policy.h"

namespace relay::receive {

struct ReceiveState {
  std::shared_ptr<const RecipientPolicy> policy;
  // Local domain (lower-case) -> the sealer with that domain's DKIM key; no entry: no ARC set.
  absl::flat_hash_map<std::string, std::shared_ptr<const dkim::ArcSealer>> sealers;
};

class ReceiveStateHolder {
 public:
  explicit ReceiveStateHolder(std::shared_ptr<const ReceiveState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<const ReceiveState> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return state_;
  }
  void Set(std::shared_ptr<const ReceiveState> state) {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = std::move(state);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ReceiveState> state_;
};

}  // namespace relay::receive
