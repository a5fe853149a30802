// MessagePreparer: what a submitted message gets before it is queued: the header fields it lacks
// (Message-ID and Date, RFC 6409 §8.2-8.3, which are signed) and its DKIM signatures, computed on
// the SigningPool when there is one (this shard's other connections go on meanwhile) or inline.
// The Received field, which names the queue id of the append, is the connection's.
//
// One per shard, on its thread. With a pool, appends happen in the order signatures come back,
// so a Message-ID cannot use the queue id the append will get: its left part is the id next to be
// handed out when the message was prepared, plus this preparer's sequence number.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dkim/key.h"
#include "dkim/signer.h"
#include "relay/io/reactor.h"
#include "relay/server/signing_pool.h"

namespace relay::server {

struct PreparedMessage {
  std::string missing;     // header fields the message lacked, to add above it
  std::string signatures;  // DKIM-Signature fields to add above those; "" when not signed
  std::vector<dkim::KeyAlgorithm> algorithms;  // of each signature
  int64_t signing_ns = 0;  // from the hand-over to the result, a pool's queueing included
};

class MessagePreparer {
 public:
  // `signer` null: messages are not signed. `pool` null: signatures are computed inline. The
  // pool and the reactor outlive the preparer.
  MessagePreparer(std::shared_ptr<const dkim::Signer> signer, SigningPool* pool,
                  io::Reactor* reactor, std::string hostname);

  // An error means the message cannot be signed (a malformed header): it is refused rather than
  // sent unsigned. Never for an unsigned relay.
  using Done = std::function<void(absl::StatusOr<PreparedMessage>)>;
  // Prepares `message`, signing with the key of `forced_domain` when it is not empty (else the
  // From domain's). `next_queue_id` is the id the spool hands out next. `added_fields` (complete
  // header fields, CRLF-terminated, or "") go on top of the missing ones, signed with them
  // (List-Unsubscribe). `done` runs inside this call when the signature is computed inline (or
  // there is none), else later on the reactor's thread; until it has run the caller keeps
  // `message` as it is.
  void Prepare(std::string_view message, const std::string& forced_domain,
               const std::string& next_queue_id, absl::Time now, std::string added_fields,
               Done done);

  bool signs() const { return signer_ != nullptr; }
  // From the next message on, signs with `signer` (null: not at all): a reload's new keys. A
  // signature under way keeps the signer it started with.
  void SetSigner(std::shared_ptr<const dkim::Signer> signer) { signer_ = std::move(signer); }

 private:
  // Completes `prepared` with the signing result and hands it to `done`.
  void Finish(PreparedMessage prepared, absl::StatusOr<std::string> signatures,
              const dkim::SignReport& report, int64_t started_ns, const Done& done) const;

  std::shared_ptr<const dkim::Signer> signer_;
  SigningPool* const pool_;
  io::Reactor* const reactor_;
  const std::string hostname_;
  uint64_t sequence_ = 0;  // Message-IDs of signed messages on the pool (see above)
};

}  // namespace relay::server
