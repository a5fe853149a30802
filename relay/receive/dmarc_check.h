// DMARC policy discovery (RFC 7489 §6.6.3) through the shard's resolver: the TXT records at
// _dmarc.<From domain>, and when none of them is a DMARC record (or the name does not exist),
// those at _dmarc.<organizational domain> (relay/receive/org_domain.h), one lookup after the
// other.
//
//   DmarcChecker checker(resolver.get());
//   dns::QueryHandle h = checker.Discover("news.example.com", [](DmarcDiscovery d) { ... });
//
// Outcomes: one DMARC record, valid, is kFound; none at either name is kNone; a timeout or
// SERVFAIL is kTempError (the organizational domain is not asked instead: the From domain may
// well have a record); several DMARC records at one name (§6.6.3 step 5: no DMARC processing)
// or one that does not parse (relay/receive/dmarc_record.h) is kPermError.
//
// Threading and ownership, as the Resolver's (dns/resolver.h): create, call and destroy on the
// reactor's thread. The callback runs on that thread exactly once, never inside Discover, and
// never after the returned handle is destroyed or cancelled. The Resolver must outlive every
// discovery; the DmarcChecker itself may go first.
#pragma once

#include <functional>
#include <string_view>

#include "dns/resolver.h"
#include "relay/receive/dmarc.h"

namespace relay::receive {

using DmarcCallback = std::function<void(DmarcDiscovery)>;

class DmarcChecker {
 public:
  // Loads the public suffix list if no one has yet (relay/receive/org_domain.h).
  explicit DmarcChecker(dns::Resolver* resolver);
  DmarcChecker(const DmarcChecker&) = delete;
  DmarcChecker& operator=(const DmarcChecker&) = delete;

  // `from_domain`: lower-case, as MessageFromDomain gives it.
  [[nodiscard]] dns::QueryHandle Discover(std::string_view from_domain, DmarcCallback callback);

 private:
  dns::Resolver* resolver_;
};

}  // namespace relay::receive
