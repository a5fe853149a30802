// relayctl's DNS lookups, as library code the relayctl main dispatches to. They ask the same
// resolver the relay uses (dns/resolver.h), so an operator sees what the relay will see:
//
//   relayctl dns-mx DOMAIN [--server ADDR[:PORT]] [--family FAMILY]
//       (FAMILY: ipv6-first, the default, ipv4-first, ipv4-only or ipv6-only)
//       the delivery candidates in order (RFC 5321 §5.1), the site key, or why there are none;
//   relayctl dns-txt NAME [--server ADDR[:PORT]]
//       each TXT record, its strings joined (as SPF, DKIM and DMARC read them);
//   relayctl dns-ptr IP [--server ADDR[:PORT]]
//       the PTR names of IP and whether each resolves back to it (forward-confirmed reverse DNS,
//       which Gmail requires of IPv6 sources).
//
// --server may be given several times; without it /etc/resolv.conf is used. Each function takes
// the subcommand's argv (argv[0] is the subcommand name), writes results to `out` and messages to
// stderr, and returns the exit code: 0 found, 1 permanent failure (no such domain, null MX, no
// records), 3 transient failure (timeout, SERVFAIL: try again), 2 usage. Main thread only; each
// call runs its own reactor until the answer is in.
#pragma once

#include <cstdio>

namespace relay::relayctl {

int DnsMxCommand(int argc, char** argv, FILE* out = stdout);
int DnsTxtCommand(int argc, char** argv, FILE* out = stdout);
int DnsPtrCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
