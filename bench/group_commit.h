// GroupCommit: the shards' group commit (relay/server/spool_syncer.h) for benchmark loops that run
// a spool without a shard. Start() is the end of a loop turn (SpoolSyncer::TurnEnd); Finish()
// runs the benchmark's reactor until no batch is in flight, as a shard's next turns would.
// Single-threaded; the spool outlives it.
#pragma once

#include <memory>

#include "queue/spool.h"
#include "relay/io/reactor.h"
#include "relay/server/spool_syncer.h"

namespace queue {

class GroupCommit {
 public:
  explicit GroupCommit(Spool* spool) {
    auto reactor = relay::io::Reactor::Create({});
    if (!reactor.ok()) return;
    reactor_ = std::move(*reactor);
    syncer_ = std::make_unique<relay::server::SpoolSyncer>(reactor_.get(), spool, nullptr);
  }
  ~GroupCommit() { Finish(); }
  bool ok() const { return syncer_ != nullptr; }

  void Finish() {
    while (syncer_ != nullptr && syncer_->in_flight() > 0) reactor_->RunOnce(-1);
  }
  void Start() {
    if (syncer_ != nullptr) syncer_->TurnEnd(/*prompt=*/false);
  }

 private:
  std::unique_ptr<relay::io::Reactor> reactor_;
  std::unique_ptr<relay::server::SpoolSyncer> syncer_;  // destroyed before the reactor
};

}  // namespace queue
