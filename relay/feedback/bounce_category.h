// What kind of failure a reply reports, whatever words the receiver chose: the category every
// deferral and bounce carries into the delivery log, the metrics, the DSN and the events. The
// names follow the bulk senders' common vocabulary (PowerMTA's bounce categories, KumoMTA's
// bounce classes), so that a sender's tooling can act on them: suppress on bad-mailbox, slow down
// on rate-limited, fix DNS on auth-failure.
#pragma once

#include <optional>
#include <string_view>

namespace relay::feedback {

enum class BounceCategory {
  kBadMailbox,        // the address does not exist (X.1.1, "user unknown")
  kInactiveMailbox,   // it existed: disabled, closed, moved (X.2.1, X.1.6)
  kBadDomain,         // the domain takes no mail: NXDOMAIN, null MX (X.1.2, X.1.10)
  kQuota,             // mailbox or system full (X.2.2, X.3.1)
  kNoAnswerFromHost,  // no MX host answered: refused, timed out (X.4.1)
  kBadConnection,     // the connection failed midway: lost, TLS failure (X.4.2)
  kRouting,           // no route: DNS failure, loops, relaying denied (X.4.x)
  kProtocol,          // the conversation went wrong: syntax, sequence (X.5.x, X.6.x)
  kPolicy,            // refused by local policy: greylisting, reverse DNS, not authorised (X.7.1)
  kSpamBlock,         // the source is blocked: block lists, IP reputation (S3150, TSS09)
  kSpamContent,       // the message looks like spam
  kVirus,             // malware or a dangerous attachment
  kAuthFailure,       // SPF, DKIM or DMARC failed (X.7.20-X.7.27, Gmail's 5.7.26)
  kRateLimited,       // too fast, too many: slow down (Gmail's 4.7.28, Microsoft's 4.7.650)
  kTooLarge,          // the message exceeds a size limit (X.3.4, X.2.3)
  kInvalidSender,     // the envelope sender is refused as an address (X.1.7, X.1.8)
  kMessageExpired,    // the relay gave up: too long in the queue (X.4.7)
  kOther,             // none of the above
};
inline constexpr int kBounceCategoryCount = static_cast<int>(BounceCategory::kOther) + 1;

// "bad-mailbox", "rate-limited", ...
std::string_view CategoryName(BounceCategory category);
// The category named `name` (as CategoryName writes it); nullopt for any other text.
std::optional<BounceCategory> CategoryNamed(std::string_view name);

}  // namespace relay::feedback
