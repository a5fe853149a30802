// The DNS records a mail domain sent through this relay needs, derived from the relay's own
// configuration (relay/server/config.h): MX and host addresses, SPF (RFC 7208), DKIM key records
// (RFC 6376 §3.6.1, RFC 8463), DMARC (RFC 7489 §6.1) and the PTR of every egress source
// (forward-confirmed reverse DNS, which Gmail requires of every sender and checks strictly for
// IPv6). `relayctl dns-records` prints them in zone-file syntax; `relayctl check-dns` compares
// them with what the live DNS publishes (tools/relayctl/check_dns.h).
//
//   relayctl dns-records [--config PATH] [--domain D ...]
//
// The mail domains are those of the config's [[dkim.key]] entries unless --domain names them.
// Pure computation apart from reading the DKIM private keys; any thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/server/config.h"

namespace relay::relayctl {

// TTL printed on every record: an hour, short enough to correct a mistake the same day.
inline constexpr uint32_t kRecordTtlS = 3600;
// The MX preference printed (RFC 5321 §5.1: lower is tried first; one host, any value).
inline constexpr uint16_t kMxPreference = 10;

// One egress source address, a prefix's derived addresses included.
struct SourceRecord {
  std::string ip;  // "192.0.2.10", "2001:db8::25"
  bool ipv6 = false;
  std::string ehlo_name;  // what the relay says in EHLO from this address; the PTR must give it
  std::string ptr_owner;  // "10.2.0.192.in-addr.arpa", the name the PTR record is published at
  std::string prefix;     // the configured IPv6 prefix it was derived from, or ""
};

struct DkimRecord {
  std::string selector;
  std::string owner;              // "<selector>._domainkey.<domain>"
  std::string record;             // "v=DKIM1; k=rsa; p=...", from the private key's public half
  std::string public_key_base64;  // the p= value
  std::string key_path;
};

// A configured IPv6 prefix: every address in it that the relay may use needs PTR and AAAA.
struct PrefixRecord {
  std::string prefix;  // "2001:db8:1::/64", as configured
  uint32_t count = 0;  // addresses the pool derives from it
  std::string ehlo_pattern;
};

struct ExpectedDns {
  std::string domain;    // the mail domain (MAIL FROM / From / DKIM d=)
  std::string hostname;  // the relay's hostname: MX target, greeting, default EHLO name
  std::vector<std::string> hostname_ips;  // addresses published for the hostname
  std::vector<SourceRecord> sources;      // every egress address; empty: the kernel chooses
  std::vector<PrefixRecord> prefixes;
  std::vector<std::string> spf_terms;  // "ip4:192.0.2.10", "ip6:2001:db8:1::/64"
  std::string spf;                     // "v=spf1 ip4:... ~all"
  std::vector<DkimRecord> dkim;
  std::string dmarc;  // "v=DMARC1; p=none; rua=mailto:dmarc-reports@<domain>"
  // [[feedback.verp]]: where the domain's bounces and complaints come back (VERP return paths);
  // it needs an MX naming the relay and the same SPF as the domain. "" when none.
  std::string bounce_domain;
};

// The mail domains of a config: the distinct domains of its DKIM keys, in order.
std::vector<std::string> MailDomains(const server::Config& config);

// The records for `domain`. Loads the private key of every [[dkim.key]] of that domain; errors
// name the key file.
absl::StatusOr<ExpectedDns> ExpectedRecords(const server::Config& config,
                                            const std::string& domain);

// The name a PTR record for `ip` is published at (RFC 1035 §3.5, RFC 3596 §2.5), without the
// final dot. Empty when `ip` is not an address.
std::string ReverseOwner(absl::string_view ip);

// "a.example.com" vs "A.example.com." are the same name.
bool SameName(absl::string_view a, absl::string_view b);

// The records as a zone-file fragment (RFC 1035 §5.1), commented, names fully qualified.
std::string FormatZone(const ExpectedDns& expected);

// `relayctl dns-records`: argv[0] is the subcommand. Exit 0, 1 on a config or key error, 2 usage.
int DnsRecordsCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
