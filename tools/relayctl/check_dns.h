// `relayctl check-dns`: compares what the live DNS publishes with what the relay's configuration
// needs (tools/relayctl/dns_records.h), through the relay's own resolver (dns/resolver.h), so the
// operator sees what receivers will see.
//
//   relayctl check-dns [--config PATH] [--domain D ...] [--dns-server HOST:PORT ...]
//
// The servers are the config's delivery.dns_servers unless --dns-server is given (then
// /etc/resolv.conf when both are empty). One line per check:
//
//   OK   dkim   rsa2026._domainkey.example.com | published: ... | expected: ...
//   FAIL ptr    192.0.2.10 | published: (none) | expected: mail.example.com | problem: no PTR ...
//
// Checks, per mail domain: mx (present, pointing at the hostname), host (the hostname resolves
// to each fixed source address), spf (present, valid, under the lookup limits, RFC 7208 §4.6.4,
// evaluated by dns/spf.h) and spf-auth (check_host() gives pass for each source address; SKIP
// when there is no usable record), dkim (for each selector: published, valid, equal to the
// private key's public half), dmarc (present, valid, aligned with the DKIM signing domain,
// RFC 7489 §3.1); per egress source address: ptr (a PTR name that resolves back, forward-
// confirmed) and ehlo (the source's EHLO name equals that PTR name; SKIP when there is no
// confirmed PTR name to compare with). Exit 0 only when every check is OK; 1 when any failed;
// 2 usage or configuration errors.
//
// Main thread; each run owns its reactor and resolver.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "tools/relayctl/dns_records.h"

namespace relay::relayctl {

enum class CheckState { kOk, kFail, kSkip };

struct CheckLine {
  CheckState state = CheckState::kOk;
  std::string check;      // "mx", "host", "spf", "spf-auth", "dkim", "dmarc", "ptr", "ehlo"
  std::string subject;    // the DNS name or address checked
  std::string published;  // what the DNS answered, "(none)" when nothing
  std::string expected;
  std::string problem;  // empty when OK
};

// "OK   dkim   NAME | published: ... | expected: ... [| problem: ...]".
std::string FormatCheckLine(const CheckLine& line);

// Runs every check for `expected` against `dns_servers` (empty: /etc/resolv.conf). Lookups run
// one after another, each bounded by the resolver's own timeout and tries.
std::vector<CheckLine> CheckDns(const ExpectedDns& expected,
                                const std::vector<std::string>& dns_servers);

int CheckDnsCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
