// DMARC (RFC 7489) for mail received on port 25: the evaluation of §6.6 from the SPF and DKIM
// results the receiver has already computed and the policy record that discovery found
// (relay/receive/dmarc_check.h), and what the receiver then does with the message.
//
//   - Identifier alignment (§3.1): a DKIM signature that passed with d= aligned with the From
//     domain, or SPF that passed for a MAIL FROM domain (the HELO name for the null path, RFC 7208
//     §2.4) aligned with it, is a pass. Relaxed alignment (the default) compares organizational
//     domains (relay/receive/org_domain.h), strict compares the names.
//   - The policy (§6.6.3): p=, or sp= when the record was found at the organizational domain of
//     a subdomain. pct= (§6.6.4): a failing message not sampled gets the next milder policy.
//   - No answer from DNS is not a failure: temperror, and nothing is refused for it. RFC 7489
//     §6.6.3 leaves the choice between failing open (deliver, "to ensure minimal disruption of
//     mail flow") and closed (a 4yx reply) to the receiver. This fails open: a forwarder that
//     answered 451 would hold every message of a domain whose DNS (or our resolver) is slow,
//     while the final receiver evaluates DMARC again anyway; dmarc=temperror tells it so. A fail
//     becomes temperror too when an aligned SPF or DKIM check could not be completed.
//   - A message without exactly one From address cannot be evaluated (§6.6.1 allows refusing
//     it): permerror, refused like a p=reject failure.
//
// Pure functions, any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/header.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dmarc_record.h"

namespace relay::receive {

// What policy discovery (§6.6.3) found.
struct DmarcDiscovery {
  enum class Status {
    kFound,      // one valid record
    kNone,       // no DMARC record at the From domain nor at its organizational domain
    kTempError,  // a lookup got no answer
    kPermError,  // several DMARC records at one name, or an invalid one
  };
  Status status = Status::kNone;
  DmarcRecord record;  // kFound
  std::string domain;  // where the record was found (kFound)
  // The record is the organizational domain's and the From domain is a subdomain: sp= applies.
  bool organizational = false;
  std::string problem;  // for kTempError and kPermError, naming the domain
};

// The identifiers DMARC looks at, as the receiver's own checks left them.
struct DmarcIdentifiers {
  std::string from_domain;   // the RFC5322.From domain, lower-case; empty when from_problem
  std::string from_problem;  // why the message has no single From address to evaluate
  SpfVerdict spf = SpfVerdict::kNone;
  std::string spf_domain;      // the domain SPF was evaluated for
  std::vector<DkimAuth> dkim;  // every signature checked, with its d= and result
};

struct DmarcOutcome {
  DmarcVerdict result = DmarcVerdict::kNone;
  std::string from_domain;
  std::string policy_domain;                     // where the policy came from
  DmarcPolicy policy = DmarcPolicy::kNone;       // requested: p= or sp=
  DmarcPolicy disposition = DmarcPolicy::kNone;  // applied, after pct= (kNone unless fail)
  bool spf_aligned = false;   // SPF passed for a domain aligned with the From domain
  bool dkim_aligned = false;  // a signature passed with d= aligned with the From domain
  std::string problem;        // for the log: why not pass
};

// The From domain of `message` (CRLF line ends), or InvalidArgument when its header has no From
// field, several (RFC 5322 §3.6 allows one), or a From without exactly one address with a domain.
absl::StatusOr<std::string> MessageFromDomain(std::string_view message);
// The same from a header already parsed (dkim/header.h), for the checks that parse it once
// (relay/receive/dkim_check.h).
absl::StatusOr<std::string> HeaderFromDomain(const std::vector<dkim::HeaderField>& fields);

// §3.1.1 and §3.1.2: `domain` (d= or the SPF domain) aligned with `from_domain`.
bool DmarcAligned(std::string_view domain, std::string_view from_domain, DmarcAlignment mode);

// §6.6. `pct_roll` is uniform in [0, 100): the policy applies when pct_roll < pct, so pct=100
// always applies and pct=0 never does.
DmarcOutcome EvaluateDmarc(const DmarcIdentifiers& ids, const DmarcDiscovery& discovery,
                           int pct_roll);

// For Authentication-Results (RFC 7489 §11.2).
DmarcAuth ToDmarcAuth(const DmarcOutcome& outcome);

// What port 25 does with a message, from [receive] dmarc_reject, dmarc_quarantine and
// spf_fail_without_dkim.
enum class InboundAction {
  kAccept,            // forward it; the results are in Authentication-Results
  kQuarantineHeader,  // forward it with kQuarantineField added, for the final mailbox's filters
  kRefuse,            // 550 5.7.1 at the end of DATA: nothing is queued, nothing bounces later
};

const char* InboundActionName(InboundAction a);  // "accept", "quarantine-header", "refuse"
std::optional<InboundAction> ParseInboundAction(std::string_view name);

// The field a quarantined message gets: the de facto spam marker that Sieve scripts, procmail
// recipes and mail clients already filter on. The reason is in the Authentication-Results.
inline constexpr std::string_view kQuarantineField = "X-Spam-Flag: YES\r\n";

struct InboundPolicy {
  InboundAction dmarc_reject = InboundAction::kRefuse;                // a p=reject failure
  InboundAction dmarc_quarantine = InboundAction::kQuarantineHeader;  // a p=quarantine failure
  // SPF fail (the domain's "-all") and no DKIM signature that passes, whatever DMARC says:
  // refused (RFC 7208 §8.4) or accepted.
  bool refuse_spf_fail_without_dkim = true;
};

struct InboundDecision {
  InboundAction action = InboundAction::kAccept;
  std::string reply_text;  // for kRefuse: the text after "550 5.7.1 ", printable ASCII
  std::string why;         // for the log
};

// `dmarc` is null when DMARC was not evaluated. Refusal wins over quarantine.
InboundDecision DecideInbound(const DmarcIdentifiers& ids, const DmarcOutcome* dmarc,
                              const InboundPolicy& policy);

}  // namespace relay::receive
