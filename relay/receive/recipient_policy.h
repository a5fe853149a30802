// RecipientPolicy: what port 25 answers to RCPT TO, and where an accepted recipient's mail goes.
//
//   - an SRS address of our SRS domain (SRS0=/SRS1=...@srs_domain) is reversed and the mail goes
//     to the original sender: that is how a bounce of forwarded mail finds its way back. A bad
//     hash, a malformed or an expired SRS address is 550 5.1.1;
//   - an address of a local domain is expanded through the aliases (relay/receive/aliases.h):
//     its external targets, or 550 5.1.1 for an unknown user when the domain has no catch-all;
//   - an address of a bounce domain ([feedback], relay/feedback/verp.h) is a VERP return path
//     (bounces+TOKEN, its structure checked here, its MAC once the report names the recipient),
//     an unsubscribe mailto (unsubscribe+MAC, relay/feedback/unsubscribe.h), or the bare
//     feedback-loop address: the mail is read as a report, never forwarded. Any
//     other local part there is 550 5.1.1;
//   - any other domain is relayed only for an authenticated client (the same rule as submission);
//     without AUTH it is 550 5.7.1 relay access denied (RFC 5321 §3.6.2: no open relay).
//
// Immutable; any thread. The aliases are a snapshot: a SIGHUP reload makes a new policy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "relay/feedback/unsubscribe.h"
#include "relay/feedback/verp.h"
#include "relay/receive/aliases.h"
#include "relay/receive/srs.h"
#include "relay/smtp/server_session.h"

namespace relay::receive {

enum class RecipientKind {
  kAlias,      // a local address, expanded
  kSrsReturn,  // an SRS address reversed to the original sender
  kRelay,      // another domain, for an authenticated client
  kFeedback,   // a bounce domain's return path or feedback-loop address: read, not forwarded
};

struct RecipientRoute {
  smtp::RcptDecision decision = smtp::RcptDecision::kRelayDenied;
  RecipientKind kind = RecipientKind::kRelay;
  std::vector<std::string> targets;  // where the mail goes (when accepted)
  std::string domain;                // the local domain addressed (kAlias), lower-case
  std::string why;                   // for the log when refused
};

class RecipientPolicy {
 public:
  // `srs` may be null (no SRS reversal), `verp` null (no bounce domain), `unsubscribe` null (no
  // [unsubscribe]).
  RecipientPolicy(std::shared_ptr<const Aliases> aliases, std::shared_ptr<const Srs> srs,
                  std::shared_ptr<const feedback::Verp> verp = nullptr,
                  std::shared_ptr<const feedback::Unsubscribe> unsubscribe = nullptr)
      : aliases_(std::move(aliases)),
        srs_(std::move(srs)),
        verp_(std::move(verp)),
        unsubscribe_(std::move(unsubscribe)) {}

  RecipientRoute Route(std::string_view address, bool authenticated, int64_t now_s) const;

  const Aliases& aliases() const { return *aliases_; }
  const Srs* srs() const { return srs_.get(); }
  const feedback::Verp* verp() const { return verp_.get(); }
  const feedback::Unsubscribe* unsubscribe() const { return unsubscribe_.get(); }

 private:
  std::shared_ptr<const Aliases> aliases_;
  std::shared_ptr<const Srs> srs_;
  std::shared_ptr<const feedback::Verp> verp_;
  std::shared_ptr<const feedback::Unsubscribe> unsubscribe_;
};

}  // namespace relay::receive
