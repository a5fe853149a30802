// DKIM verification of received mail (RFC 6376 §6) and validation of its ARC chain (RFC 8617
// §5.2), with the keys fetched asynchronously through the shard's resolver.
//
//   DkimChecker checker(&reactor, resolver.get());
//   dns::QueryHandle h = checker.Check(message, now_s, [](DkimCheckResult r) { ... });
//
// Check looks up "selector._domainkey.domain" TXT (RFC 6376 §3.6.2.1) for each of the first
// `signatures_max` DKIM-Signature fields, and for the keys of the ARC chain when `check_arc`,
// each name once, all at the same time. When every answer is in, dkim/verifier.h and dkim/arc.h
// run on the answers. With an `offload`, the message is parsed and its key names read on a worker
// before the queries go out, and the verification runs on a worker after (issue 13: many
// signatures or a long ARC chain take long enough to stall the shard's other sessions); without,
// on the reactor's thread. The message is parsed once (linear in it: dkim/message.h), and the
// result carries that parse on to whoever seals the message. Key outcomes (RFC 6376 §6.1.2): no
// record (NXDOMAIN, no TXT) is permerror "no key"; a DNS timeout or SERVFAIL is temperror; a record
// over `key_record_bytes_max` is permerror. A message without DKIM-Signature gives no results
// (dkim=none).
//
// With a `parsed` callback, Check also reads the message's From domain from that one parse (as
// MessageFromDomain does, relay/receive/dmarc.h) and hands both over on the reactor's thread
// before the key queries go out, so that the DMARC policy lookup runs alongside them and nothing
// parses the header on the shard again.
//
// Threading and ownership, as the Resolver's (dns/resolver.h): create, call and destroy on the
// reactor's thread. The callback runs on that thread exactly once, never inside Check, and never
// after the returned handle is destroyed or cancelled (the DNS queries already sent run to their
// end inside the resolver and feed its cache). Check keeps `message` by reference: it must stay
// valid until the callback runs or the handle is cancelled, and with an `offload`, also until
// every `done` that offload was given has run (a verification already running is not stopped by
// a cancel: InboundChecks counts them, see busy()).
// The Resolver and the Reactor must outlive every check; the DkimChecker itself may go first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/arc.h"
#include "dkim/message.h"
#include "dkim/verifier.h"
#include "dns/resolver.h"
#include "relay/io/reactor.h"
#include "relay/receive/auth_results.h"

namespace relay::receive {

// Runs `work` off the reactor's thread, then `done` on it; false (neither runs) when the work
// cannot be queued now (relay/server/signing_pool.h, TryRun).
using Offload = std::function<bool(std::function<void()> work, std::function<void()> done)>;

struct DkimCheckOptions {
  // Signatures checked per message; the rest are ignored (capped by dkim::kSignaturesCheckedMax).
  size_t signatures_max = 8;
  // A key record longer than this is refused: 1,024 bytes hold an RSA-4096 key (RFC 8301 §3.2
  // asks verifiers to take up to 4096 bits) with room to spare.
  size_t key_record_bytes_max = 1024;
  bool check_arc = true;
};

struct DkimCheckResult {
  // One per checked signature, in header order, ready for Authentication-Results.
  std::vector<DkimAuth> dkim;
  // The verifier's own results, parallel to `dkim`.
  std::vector<dkim::VerifyResult> details;
  // The chain as received (status kNone when not checked or no ARC fields).
  dkim::ArcValidation arc;
  // Key lookups made (distinct names).
  size_t key_lookups = 0;
  // The message as the checks parsed it, with the body hashes they computed (null when its header
  // could not be parsed): for the ARC seal, which then parses and hashes nothing again.
  std::shared_ptr<const dkim::ParsedMessage> message;
  // The offload refused the verification (too much already waits): nothing was verified.
  bool overloaded = false;
};

using DkimCheckCallback = std::function<void(DkimCheckResult)>;

// What Check's parse of the message found, before any key is fetched.
struct DkimParsed {
  // The message as parsed (null when its header could not be parsed). The verification still
  // reads it afterwards (on the offload): until the check's callback has run or its handle is
  // cancelled with nothing handed to the offload, only hold it.
  std::shared_ptr<const dkim::ParsedMessage> message;
  // The From domain of its header, or why there is none (relay/receive/dmarc.h).
  absl::StatusOr<std::string> from_domain;
};

using DkimParsedCallback = std::function<void(DkimParsed)>;

// The Authentication-Results verdict for a verifier status.
DkimVerdict ToDkimVerdict(dkim::VerifyStatus status);
ArcVerdict ToArcVerdict(dkim::ArcChainStatus status);

class DkimChecker {
 public:
  DkimChecker(io::Reactor* reactor, dns::Resolver* resolver,
              DkimCheckOptions options = DkimCheckOptions());
  DkimChecker(const DkimChecker&) = delete;
  DkimChecker& operator=(const DkimChecker&) = delete;

  // `message`: the whole message, CRLF line ends. `now_s`: for x= expiry. `offload`: where the
  // verification runs once the keys are in; null: on the reactor's thread. `parsed`: when given,
  // runs once on the reactor's thread when the message is parsed, before `callback` (inside Check
  // when there is no offload); not when the offload refuses the parse, nor after a cancel.
  [[nodiscard]] dns::QueryHandle Check(std::string_view message, int64_t now_s,
                                       DkimCheckCallback callback, Offload offload = nullptr,
                                       DkimParsedCallback parsed = nullptr);

 private:
  io::Reactor* reactor_;
  dns::Resolver* resolver_;
  DkimCheckOptions options_;
};

}  // namespace relay::receive
