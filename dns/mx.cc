#include "dns/mx.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dns {

const char* FamilyPreferenceName(FamilyPreference preference) {
  switch (preference) {
    case FamilyPreference::kIpv6First:
      return "ipv6-first";
    case FamilyPreference::kIpv4First:
      return "ipv4-first";
    case FamilyPreference::kIpv4Only:
      return "ipv4-only";
    case FamilyPreference::kIpv6Only:
      return "ipv6-only";
  }
  return "?";
}

DnsStatus StatusFromRcode(uint8_t rcode, std::string_view name, uint16_t type) {
  switch (rcode) {
    case kRcodeNoError:
      return DnsStatus::Ok();
    case kRcodeNxDomain:
      return DnsStatus::Permanent(Reason::kNxDomain,
                                  absl::StrCat(ToAbsl(name), ": no such domain"));
    case kRcodeServFail:
      return DnsStatus::Transient(Reason::kServFail,
                                  absl::StrCat(ToAbsl(name), " type ", type, ": server failure"));
    case kRcodeRefused:
      return DnsStatus::Transient(Reason::kRefused,
                                  absl::StrCat(ToAbsl(name), " type ", type, ": query refused"));
    default:
      return DnsStatus::Transient(Reason::kOther,
                                  absl::StrCat(ToAbsl(name), " type ", type, ": rcode ", rcode));
  }
}

void OrderMxHosts(std::vector<MxHost>* hosts, absl::BitGenRef random) {
  // RFC 5321 §5.1: lowest preference first; hosts of equal preference in random order so that
  // senders spread their load.
  std::shuffle(hosts->begin(), hosts->end(), random);
  std::stable_sort(hosts->begin(), hosts->end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
}

DnsStatus SelectMxHosts(const Message& answer, std::string_view domain, absl::BitGenRef random,
                        std::vector<MxHost>* hosts, bool* implicit) {
  hosts->clear();
  *implicit = false;
  DnsStatus status = StatusFromRcode(answer.rcode, domain, kTypeMx);
  if (!status.ok()) return status;
  std::vector<const ResourceRecord*> records = AnswersFor(answer, domain, kTypeMx);
  if (records.empty()) {
    // RFC 5321 §5.1: no MX records: the domain is its own implicit MX at preference 0.
    hosts->push_back(MxHost{CanonicalName(domain), 0});
    *implicit = true;
    return DnsStatus::Ok();
  }
  bool null_mx = false;
  for (const ResourceRecord* rr : records) {
    if (rr->target == ".") {
      // RFC 7505 §3: "." as exchange is the null MX; it is never a host to connect to.
      null_mx = true;
      continue;
    }
    hosts->push_back(MxHost{CanonicalName(rr->target), rr->preference});
  }
  if (hosts->empty() && null_mx) {
    // RFC 7505 §4.1: a domain with a null MX accepts no mail: fail without retrying.
    return DnsStatus::Permanent(Reason::kNullMx,
                                absl::StrCat(ToAbsl(domain), " does not accept mail (null MX)"));
  }
  OrderMxHosts(hosts, random);
  // The same host listed twice (at different preferences) is tried once, at its best one.
  std::vector<MxHost> unique;
  for (MxHost& h : *hosts) {
    bool seen = std::any_of(unique.begin(), unique.end(),
                            [&](const MxHost& u) { return u.name == h.name; });
    if (!seen) unique.push_back(std::move(h));
  }
  hosts->swap(unique);
  return DnsStatus::Ok();
}

std::vector<relay::io::SocketAddress> OrderAddresses(
    const std::vector<relay::io::SocketAddress>& v6,
    const std::vector<relay::io::SocketAddress>& v4, FamilyPreference preference) {
  std::vector<relay::io::SocketAddress> out;
  out.reserve(v6.size() + v4.size());
  auto add = [&](const std::vector<relay::io::SocketAddress>& v) {
    out.insert(out.end(), v.begin(), v.end());
  };
  switch (preference) {
    case FamilyPreference::kIpv6First:
      add(v6);
      add(v4);
      break;
    case FamilyPreference::kIpv4First:
      add(v4);
      add(v6);
      break;
    case FamilyPreference::kIpv4Only:
      add(v4);
      break;
    case FamilyPreference::kIpv6Only:
      add(v6);
      break;
  }
  return out;
}

std::string SiteKey(const std::vector<MxHost>& hosts) {
  std::vector<std::string> names;
  names.reserve(hosts.size());
  for (const MxHost& h : hosts) names.push_back(CanonicalName(h.name));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return absl::StrJoin(names, ",");
}

std::vector<relay::io::SocketAddress> AddressesFrom(const Message& answer, std::string_view name,
                                                    uint16_t type) {
  std::vector<relay::io::SocketAddress> out;
  for (const ResourceRecord* rr : AnswersFor(answer, name, type)) {
    relay::io::SocketAddress a;
    if (type == kTypeA) {
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      std::memcpy(&sin.sin_addr, rr->address.data(), 4);
      a = relay::io::SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
    } else {
      sockaddr_in6 sin6{};
      sin6.sin6_family = AF_INET6;
      std::memcpy(&sin6.sin6_addr, rr->address.data(), 16);
      a = relay::io::SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6));
    }
    out.push_back(a);
  }
  return out;
}

}  // namespace dns
