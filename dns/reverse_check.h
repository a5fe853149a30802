// Forward-confirmed reverse DNS of a source address: the PTR names of the address, and which of
// them resolve back (A or AAAA) to that same address. Gmail refuses IPv6 mail from a source
// without it (550-5.7.1), so the operator tool checks every egress source with this.
//
// Runs on the resolver's thread, like the Resolver (dns/resolver.h): the callback runs there, at
// most once, never after the returned handle is destroyed or cancelled.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/outcome.h"
#include "dns/resolver.h"

namespace dns {

// What one PTR name resolves to, so that a caller can say where it points instead of back.
struct ForwardAnswer {
  std::string name;
  DnsStatus status;                    // of the A/AAAA lookup; ok when it gave addresses
  std::vector<std::string> addresses;  // canonical text, IPv6 first
};

struct ReverseCheckResult {
  // ok when at least one PTR name resolves back to the address; permanent when none does (or
  // there is no PTR); transient when a lookup failed transiently and nothing was confirmed.
  DnsStatus status;
  std::vector<std::string> ptr_names;        // as published
  std::vector<std::string> confirmed_names;  // those whose A/AAAA include the address
  std::vector<ForwardAnswer> forward;        // one per PTR name, in the order of ptr_names
};

[[nodiscard]] QueryHandle CheckReverse(Resolver* resolver, std::string_view ip,
                                       std::function<void(ReverseCheckResult)> callback);

}  // namespace dns
