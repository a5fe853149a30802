// MX selection per RFC 5321 §5.1 and RFC 7505, as pure functions over parsed answers, so that the
// rules are tested without a DNS server. The resolver strings them together.
//
//  - hosts sorted by preference, equal preferences in random order;
//  - no MX records (NODATA) means the implicit MX: the domain itself at preference 0;
//  - a null MX ("MX 0 .") is a permanent failure, NXDOMAIN is permanent, SERVFAIL transient;
//  - each host's addresses are ordered by the family preference; hosts without addresses are
//    skipped; the site key is the sorted set of MX host names, so that every domain hosted by one
//    provider maps to one site.
//
// Pure computation; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "dns/message.h"
#include "dns/outcome.h"
#include "relay/io/socket.h"

namespace dns {

enum class FamilyPreference { kIpv6First, kIpv4First, kIpv4Only, kIpv6Only };

struct MxHost {
  std::string name;  // canonical (lower case, no final dot)
  uint16_t preference = 0;
  // Its address records were validated with DNSSEC (dns::ResolverOptions::trust_ad).
  bool dnssec = false;
};

// One place to try delivery: an MX host and one of its addresses (port 0; the caller sets 25).
struct Candidate {
  std::string host;
  uint16_t preference = 0;
  relay::io::SocketAddress address;
};

// The outcome of an answer with no usable records, from its RCODE (RFC 1035 §4.1.1,
// RFC 2308): NXDOMAIN permanent; SERVFAIL, REFUSED and the rest transient. NOERROR gives ok.
DnsStatus StatusFromRcode(uint8_t rcode, std::string_view name, uint16_t type);

// Reads the MX answer for `domain` into ordered hosts. `implicit` is set when the domain has no
// MX and the domain itself is the host (RFC 5321 §5.1). Returns the answer's status: permanent
// kNullMx for RFC 7505 null MX, StatusFromRcode otherwise.
DnsStatus SelectMxHosts(const Message& answer, std::string_view domain, absl::BitGenRef random,
                        std::vector<MxHost>* hosts, bool* implicit);

// Sorts by preference and shuffles runs of equal preference.
void OrderMxHosts(std::vector<MxHost>* hosts, absl::BitGenRef random);

// Orders one host's addresses by family preference, dropping excluded families (stable within a
// family, keeping the DNS server's order).
std::vector<relay::io::SocketAddress> OrderAddresses(
    const std::vector<relay::io::SocketAddress>& v6,
    const std::vector<relay::io::SocketAddress>& v4, FamilyPreference preference);

// The site key: sorted, de-duplicated, lower-cased host names joined by ','.
std::string SiteKey(const std::vector<MxHost>& hosts);

// Addresses from the A or AAAA records answering `name` in `answer`.
std::vector<relay::io::SocketAddress> AddressesFrom(const Message& answer, std::string_view name,
                                                    uint16_t type);

const char* FamilyPreferenceName(FamilyPreference preference);

}  // namespace dns
