// SPF (RFC 7208): the check_host() function of §4, evaluated asynchronously on the shard's
// resolver, for the port-25 receiver (is the connecting client authorised by the MAIL FROM or
// HELO domain?) and for the operator tool (does the published record authorise every egress
// source, and does it stay under the lookup limits?).
//
// Every DNS query goes through the Resolver (dns/resolver.h) and its cache; nothing blocks. Terms
// are evaluated left to right as §4.6.2 orders, one lookup at a time (only the address lookups of
// one mx's hosts or of one ptr's names run together), so the limits of §4.6.4 stop an evaluation
// at the exact term that exceeds them and the problem text names it. Addresses are A records for
// an IPv4 client and AAAA for an IPv6 one (§5.3); "exists" always asks for A (§5.7).
//
// Threading and ownership, as the Resolver's: create the SpfEvaluator, call it and destroy it on
// the resolver's thread (the reactor's); the Reactor and the Resolver must outlive it and every
// check in flight. The callback runs on that thread, exactly once, never inside the call that
// started the check, and never after the returned QueryHandle is destroyed or cancelled.
// Destroying the evaluator while checks are in flight is allowed: they hold what they need, and
// their handles still cancel them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"
#include "relay/io/reactor.h"

namespace dns {

// The results of RFC 7208 §2.6, named as in Authentication-Results (RFC 8601 §2.7.2) and
// Received-SPF (RFC 7208 §9.1).
enum class SpfResult { kNone, kNeutral, kPass, kFail, kSoftFail, kTempError, kPermError };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror".
const char* SpfResultName(SpfResult result);

// The processing limits of RFC 7208 §4.6.4 (defaults are the RFC's) and a few of our own.
struct SpfLimits {
  // Terms that cause DNS queries: include, a, mx, ptr, exists, redirect (exp= not counted).
  int dns_terms_max = 10;
  // Names looked up for addresses per "mx" mechanism; more MX records is a permerror.
  int mx_names_max = 10;
  // PTR names looked at per "ptr" mechanism or %{p}; the rest are ignored (§4.6.4, §5.5).
  int ptr_names_max = 10;
  // Terms whose own lookup (the address of an "a" or "exists" target, the MX of an "mx"
  // target) answers NXDOMAIN or no records; one more is a permerror. §4.6.4 counts terms, so
  // the address lookups of MX hosts are not counted (pyspf counts those too, and then fails
  // IPv6 clients of domains whose MX hosts have no AAAA).
  int void_lookups_max = 2;
  // Bytes of a macro expansion before it is truncated from the left (§7.3: domain names longer
  // than 253 bytes drop labels from the left).
  size_t domain_bytes_max = 253;
  // The explanation string is cut at this length (it is put in an SMTP reply).
  size_t explanation_bytes_max = 512;
  // §4.6.4: a bound on the whole evaluation (the RFC asks for at least 20 s); past it the result
  // is temperror. 0: none (each lookup is still bounded by the resolver's timeout).
  int64_t evaluation_timeout_ms = 20000;
};

// The inputs of check_host() (RFC 7208 §4.1).
struct SpfRequest {
  // The SMTP client's address as text, IPv4 or IPv6. An IPv4-mapped IPv6 address is an IPv4
  // client (§5).
  std::string ip;
  // The domain whose record is evaluated: the MAIL FROM domain, or the HELO name (§2.3, §2.4).
  std::string domain;
  // "local@domain" from MAIL FROM; for the null reverse-path "postmaster@" + HELO name (§2.4).
  // A sender without "@" means local-part "postmaster" at that domain (§4.3).
  std::string sender;
  // The HELO/EHLO name given by the client, for %{h}.
  std::string helo;
  // The receiving host's name, for %{r} in explanations (§7.3); "unknown" when empty.
  std::string receiver;
  // The time of the check, for %{t} in explanations (§7.3): Unix seconds, or -1 for the clock
  // at the start of the evaluation (one value for the whole evaluation either way).
  int64_t time_unix_s = -1;
};

struct SpfOutcome {
  SpfResult result = SpfResult::kNone;
  // The term that decided the result, as written in the record ("-all", "ip4:192.0.2.0/24",
  // "include:_spf.example.net"), prefixed with the domain whose record held it when that was not
  // the checked domain ("_spf.example.net: ip4:192.0.2.0/24"). Empty when nothing matched and the
  // default result (neutral, §4.7) applies, or for none / errors before any term matched.
  std::string mechanism;
  // For fail: the expansion of the exp= modifier's TXT record (§6.2), empty when there is none
  // or it could not be fetched or expanded (best effort, as §6.2 says).
  std::string explanation;
  // For permerror, temperror and none: what went wrong, naming the domain, e.g.
  // "example.com: more than 10 DNS-querying terms", "example.com: two v=spf1 records",
  // "example.com: unknown mechanism 'ipv4:192.0.2.1'", "void lookup limit (2) exceeded at
  // 'a:nx.example.com'", "example.com: DNS timeout (TXT)", "example.com: no SPF record".
  std::string problem;
  // The check's own domain's record as published (the joined TXT strings), empty if none.
  std::string record;
  // DNS-querying terms evaluated (§4.6.4), all levels of include/redirect counted.
  int dns_terms = 0;
  // Lookups that returned no data or NXDOMAIN (§4.6.4).
  int void_lookups = 0;
};

using SpfCallback = std::function<void(SpfOutcome)>;

// How an evaluation asks the DNS, with Resolver::Query's contract: the callback runs on the
// reactor's thread, once, never inside the call that asked, never after the handle is gone.
using SpfQueryFunction =
    std::function<QueryHandle(std::string_view name, uint16_t type, Resolver::QueryCallback)>;

class SpfEvaluator {
 public:
  SpfEvaluator(relay::io::Reactor* reactor, Resolver* resolver, SpfLimits limits = SpfLimits());
  // Asks `query` instead of a Resolver (tests and the fuzz target answer from memory).
  SpfEvaluator(relay::io::Reactor* reactor, SpfQueryFunction query, SpfLimits limits = SpfLimits());
  SpfEvaluator(const SpfEvaluator&) = delete;
  SpfEvaluator& operator=(const SpfEvaluator&) = delete;

  // check_host(ip, domain, sender) of RFC 7208 §4. A malformed domain gives none (§4.3), a
  // malformed ip gives permerror.
  [[nodiscard]] QueryHandle CheckHost(const SpfRequest& request, SpfCallback callback);

  // The worst case of check_host for the lookup limits: evaluates request.domain's record as if
  // no mechanism matched ("all" included), following every include and, when the record has no
  // "all", its redirect. Its result is neutral (or none) for a sound record, permerror or
  // temperror for a broken, over-limit or unreachable one; dns_terms is the most any client can
  // cost. request.ip still feeds macros.
  [[nodiscard]] QueryHandle Walk(const SpfRequest& request, SpfCallback callback);

  const SpfLimits& limits() const { return limits_; }

 private:
  relay::io::Reactor* reactor_;
  SpfQueryFunction query_;
  SpfLimits limits_;
};

// ---- For the operator tool (relayctl check-dns) ----

// What check-dns prints about a domain's SPF: the record, whether it is valid and within the
// lookup limit whatever address asks (a walk that matches nothing, so every include and redirect
// is followed), and check_host(source, domain, "postmaster@domain") for each source address.
struct SpfSourceCheck {
  std::string ip;
  SpfOutcome outcome;
  bool authorised() const { return outcome.result == SpfResult::kPass; }
};

struct SpfDomainReport {
  std::string domain;
  std::string record;  // as published, empty when there is none
  // The worst-case walk: terms counted as if no mechanism matched. Its result is permerror or
  // temperror when the record (or one it includes) is broken, over the limits, or unreachable.
  SpfOutcome walk;
  std::vector<SpfSourceCheck> sources;  // in the order given
  // One line per problem, ready to print: no record, the walk's problem, each source that does
  // not pass ("2001:db8::25: softfail (matched ~all)"). Empty when everything is right.
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// Runs the walk and one check per source, all concurrently; the callback runs once when all are
// done, on the resolver's thread, never after the handle is gone.
[[nodiscard]] QueryHandle CheckSpfSources(SpfEvaluator* evaluator, std::string_view domain,
                                          std::vector<std::string> source_ips,
                                          std::function<void(SpfDomainReport)> callback);

}  // namespace dns
