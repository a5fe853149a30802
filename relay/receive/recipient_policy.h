// RecipientPolicy: what port 25 answers to RCPT TO, and where an accepted recipient's mail goes.
//
//   - an SRS address of our SRS domain (SRS0=/SRS1=...@srs_domain) is reversed and the mail goes
//     to the original sender: that is how a bounce of forwarded mail finds its way back. A bad
//     hash, a malformed or an expired SRS address is 550 5.1.1;
//   - an address of a local domain is expanded through the aliases (relay/receive/aliases.h):
//     its external targets, or 550 5.1.1 for an unknown user when the domain has no catch-all;
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

#include "relay/receive/aliases.h"
#include "relay/receive/srs.h"
#include "relay/smtp/server_session.h"

namespace relay::receive {

enum class RecipientKind {
  kAlias,      // a local address, expanded
  kSrsReturn,  // an SRS address reversed to the original sender
  kRelay,      // another domain, for an authenticated client
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
  // `srs` may be null (no SRS reversal); both must outlive the policy.
  RecipientPolicy(std::shared_ptr<const Aliases> aliases, std::shared_ptr<const Srs> srs)
      : aliases_(std::move(aliases)), srs_(std::move(srs)) {}

  RecipientRoute Route(std::string_view address, bool authenticated, int64_t now_s) const;

  const Aliases& aliases() const { return *aliases_; }
  const Srs* srs() const { return srs_.get(); }

 private:
  std::shared_ptr<const Aliases> aliases_;
  std::shared_ptr<const Srs> srs_;
};

}  // namespace relay::receive
