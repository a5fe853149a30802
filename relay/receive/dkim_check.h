// DKIM verification of received mail (RFC 6376 §6) and validation of its ARC chain (RFC 8617
// §5.2), with the keys fetched asynchronously through the shard's resolver.
//
//   DkimChecker checker(&reactor, resolver.get());
//   dns::QueryHandle h = checker.Check(message, now_s, [](DkimCheckResult r) { ... });
//
// Check looks up "selector._domainkey.domain" TXT (RFC 6376 §3.6.2.1) for each of the first
// `signatures_max` DKIM-Signature fields, and for the keys of the ARC chain when `check_arc`,
// each name once, all at the same time. When every answer is in, dkim/verifier.h and dkim/arc.h
// run on the answers. Key outcomes (RFC 6376 §6.1.2): no record (NXDOMAIN, no TXT) is permerror
// "no key"; a DNS timeout or SERVFAIL is temperror; a record over `key_record_bytes_max`
// is permerror. A message without DKIM-Signature gives no results (dkim=none).
//
// Threading and ownership, as the Resolver's (dns/resolver.h): create, call and destroy on the
// reactor's thread. The callback runs on that thread exactly once, never inside Check, and never
// after the returned handle is destroyed or cancelled (the DNS queries already sent run to their
// end inside the resolver and feed its cache). Check keeps `message` by reference: it must stay
// valid until the callback runs or the handle is cancelled.
// The Resolver and the Reactor must outlive every check; the DkimChecker itself may go first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/arc.h"
#include "dkim/verifier.h"
#include "dns/resolver.h"
#include "relay/io/reactor.h"
#include "relay/receive/auth_results.h"

namespace relay::receive {

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
};

using DkimCheckCallback = std::function<void(DkimCheckResult)>;

// The Authentication-Results verdict for a verifier status.
DkimVerdict ToDkimVerdict(dkim::VerifyStatus status);
ArcVerdict ToArcVerdict(dkim::ArcChainStatus status);

class DkimChecker {
 public:
  DkimChecker(io::Reactor* reactor, dns::Resolver* resolver,
              DkimCheckOptions options = DkimCheckOptions());
  DkimChecker(const DkimChecker&) = delete;
  DkimChecker& operator=(const DkimChecker&) = delete;

  // `message`: the whole message, CRLF line ends. `now_s`: for x= expiry.
  [[nodiscard]] dns::QueryHandle Check(std::string_view message, int64_t now_s,
                                       DkimCheckCallback callback);

 private:
  io::Reactor* reactor_;
  dns::Resolver* resolver_;
  DkimCheckOptions options_;
};

}  // namespace relay::receive
