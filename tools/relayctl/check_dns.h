// `relayctl check-dns`: compares what the live DNS publishes with what the relay's configuration
// needs (tools/relayctl/dns_records.h), through the relay's own resolver (dns/resolver.h), so the
// operator sees what receivers will see.
//
//   relayctl check-dns [--config PATH] [--domain D ...] [--dns-server HOST:PORT ...]
//
// The servers are the config's delivery.dns_servers unless --dns-server is given (then
// /etc/resolv.conf when both are empty). One line per check, what the DNS publishes next to what
// the configuration needs:
//
//   OK   dkim     rsa2026._domainkey.example.com | published: rsa key sha256:... | expected: ...
//   WARN mx       example.com | published: 10 mx.provider.net | expected: 10 mail.example.com
//            | problem: the MX points at mx.provider.net, not at mail.example.com
//   FAIL ptr      192.0.2.10 | published: (none) | expected: mail.example.com | problem: no PTR ...
//
// Checks, per mail domain: mx (present, pointing at the hostname; pointing elsewhere is only a
// warning, a separate inbound service is legitimate), host (the hostname resolves to each fixed
// source address), spf (one record, valid, under the lookup limits, RFC 7208 §4.6.4, evaluated
// by dns/spf.h, not ending in +all or ?all) and spf-auth (check_host() gives pass for each
// source address; SKIP when there is no usable record), dkim (for each selector: published,
// valid, the private key's public half; keys are shown by fingerprint), dmarc (one record,
// valid, aligned with the DKIM signing domain, RFC 7489 §3.1); per egress source address: ptr (a
// PTR name that resolves back, forward-confirmed; else what it resolves to) and ehlo (the
// source's EHLO name equals that PTR name; SKIP when there is no confirmed PTR name to compare
// with). Every problem text is one of ProblemTexts(), which the README's table lists.
//
// Exit 0 when no line is FAIL or SKIP (WARN lines allowed); 1 when one is; 2 when nothing could
// be checked: usage or configuration errors, or a DNS server that does not answer (one line on
// stderr, not one failed line per check).
//
// Main thread; each run owns its reactor and resolver.
#pragma once

#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/relayctl/dns_records.h"

namespace relay::relayctl {

enum class CheckState { kOk, kWarn, kFail, kSkip };

// How a problem is reported: a line in WARN (exit status unaffected), FAIL or SKIP state, or an
// error that ends the run before anything is checked.
enum class ProblemKind { kWarn, kFail, kSkip, kError };

// "WARN", "FAIL", "SKIP", "error": the README table's "state" column.
const char* ProblemKindName(ProblemKind kind);

// One problem check-dns can report. `text` names the values of a run as {PLACEHOLDER}s; the
// README's table shows the same text with each placeholder as a bare word (PLACEHOLDER).
struct ProblemText {
  const char* checks;  // the check column: "mx", "spf, dkim, dmarc"
  ProblemKind kind;
  const char* text;
};

// Every problem check-dns can report, in the order of the README's table
// (check_dns_problems_test keeps the two equal, row for row).
std::span<const ProblemText> ProblemTexts();

struct CheckLine {
  CheckState state = CheckState::kOk;
  std::string check;      // "mx", "host", "spf", "spf-auth", "dkim", "dmarc", "ptr", "ehlo"
  std::string subject;    // the DNS name or address checked
  std::string published;  // what the DNS answered, "(none)" when nothing
  std::string expected;
  std::string problem;  // empty when OK; else one of ProblemTexts() filled in
};

// "OK   dkim     NAME | published: ... | expected: ... [| problem: ...]".
std::string FormatCheckLine(const CheckLine& line);

// Runs every check for `expected` against `dns_servers` (empty: /etc/resolv.conf). Lookups run
// one after another, each bounded by the resolver's own timeout and tries. An error (its message
// one of the "dns" ProblemTexts()) when the servers cannot be used or give no answer at all to
// the first query: then nothing was checked.
absl::StatusOr<std::vector<CheckLine>> CheckDns(const ExpectedDns& expected,
                                                const std::vector<std::string>& dns_servers);

int CheckDnsCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
