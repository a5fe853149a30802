// The relay's two answers to the SMTP session's questions (smtp::ServerPolicy): what an
// authenticated user may send as, and which recipients a listener takes.
//
// SubmissionPolicy (587, 465): AUTH is required before MAIL; the user may use the addresses the
// users file gives it as MAIL FROM, and send to anyone not on the suppression list of the
// transaction's tenant ([[tenants]], else the sending domain) nor on the sending domain's own
// (entries made by returned reports and unsubscribe links are keyed by it): a suppressed recipient
// gets 550 5.7.1 naming the reason.
//
// ReceivePolicy (port 25): anyone may send to the local domains; each recipient is routed by the
// aliases (relay/receive/recipient_policy.h) of the receive state snapshot taken at MAIL FROM,
// so a SIGHUP in the middle of a transaction does not change its routes; an authenticated client
// (after STARTTLS) may relay. It keeps the route of each accepted recipient for the message.
//
// Shard thread only (each belongs to one connection).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "relay/base/clock.h"
#include "relay/feedback/suppression_list.h"
#include "relay/receive/receive_state.h"
#include "relay/receive/recipient_policy.h"
#include "relay/server/authenticator.h"
#include "relay/server/config/tenant_sections.h"
#include "relay/smtp/server_session.h"

namespace relay::server {

class SubmissionPolicy final : public smtp::ServerPolicy {
 public:
  // `suppression` null: no list is checked. `accept_suppressed`: a suppressed recipient is
  // accepted and listed in suppressed() for the driver to leave out of the queued envelope.
  // `tenants` (null: no named tenants) is where the tenants in force are: each transaction takes
  // them at MAIL FROM and holds them to its end, whatever a reload does meanwhile.
  SubmissionPolicy(Authenticator* authenticator, const feedback::SuppressionList* suppression,
                   bool accept_suppressed = false,
                   const std::shared_ptr<const config::TenantSettings>* tenants = nullptr)
      : authenticator_(authenticator),
        suppression_(suppression),
        accept_suppressed_(accept_suppressed),
        tenants_(tenants) {}
  // The session asks this for MAIL FROM right before OnMailFrom: the user is remembered there.
  bool MaySendAs(std::string_view user, std::string_view address) override;
  smtp::RcptDecision CheckRecipient(std::string_view address) override;
  void OnMailFrom(std::string_view address) override;
  std::string RefusalText() override { return refusal_; }
  // This transaction's named tenant (null: none, the sending domain is the tenant) and its
  // tenant's name ("" for the null sender without a named tenant). Set at MAIL FROM.
  const config::Tenant* named_tenant() const { return named_tenant_; }
  // The tenants this transaction took at MAIL FROM (null: none named).
  const config::TenantSettings* tenant_settings() const { return held_tenants_.get(); }
  const std::string& tenant() const { return tenant_; }
  // The recipients of this transaction accepted although suppressed (accept_suppressed), with
  // their entries; cleared at each MAIL FROM.
  const std::vector<feedback::SuppressionEntry>& suppressed() const { return suppressed_; }

 private:
  Authenticator* const authenticator_;
  const feedback::SuppressionList* const suppression_;
  const bool accept_suppressed_;
  const std::shared_ptr<const config::TenantSettings>* const tenants_;
  std::shared_ptr<const config::TenantSettings> held_tenants_;  // named_tenant_ points into it
  std::vector<feedback::SuppressionEntry> suppressed_;
  std::string user_;  // the last MaySendAs's
  const config::Tenant* named_tenant_ = nullptr;
  std::string tenant_;          // named_tenant_'s name, else sending_domain_
  std::string sending_domain_;  // of this transaction, lower-case; "" for <>
  std::string refusal_;         // the text of the last kSuppressed
  // The entry for `address` on the tenant's list, else on the sending domain's; nullopt: none.
  absl::StatusOr<std::optional<feedback::SuppressionEntry>> FindEntry(
      std::string_view address) const;
};

// "recipient@example.org is on the suppression list of example.com: bad-mailbox bounce on
// 2026-12-07 (message 0a1b2c)": printable ASCII only, whatever the entry holds.
std::string SuppressedText(const feedback::SuppressionEntry& entry);

// Where a message received on port 25 goes: every target of its recipients once, in the order the
// recipients came, with the address the sender used for it when it is an alias's target (that
// one is private: a DSN names the sender's instead).
struct ForwardPlan {
  std::vector<std::string> targets;
  std::vector<std::string> originals;  // parallel to targets; "" for a relayed recipient
  bool forwarding = false;             // some recipient is local (alias or SRS): SRS and ARC apply
  std::string local_domain;            // the first local domain addressed by alias: it seals
  std::vector<std::string> feedback;   // bounce-domain recipients: the message is a report
};

class ReceivePolicy final : public smtp::ServerPolicy {
 public:
  struct Hooks {
    // Whether the session has authenticated (RCPT to a non-local domain is then relaying).
    std::function<bool()> authenticated;
    // MAIL FROM was accepted (port 25 starts its SPF evaluation then).
    std::function<void(std::string_view mail_from)> on_mail_from;
  };
  // All outlive the policy. `clock` dates SRS addresses.
  ReceivePolicy(Authenticator* authenticator, const receive::ReceiveStateHolder* state,
                std::string peer_ip, Hooks hooks, const Clock* clock = RealClock::Get());

  bool MaySendAs(std::string_view user, std::string_view address) override;
  smtp::RcptDecision CheckRecipient(std::string_view address) override;
  void OnMailFrom(std::string_view address) override;

  // The snapshot of this transaction (null before MAIL FROM).
  const receive::ReceiveState* state() const { return state_.get(); }
  std::shared_ptr<const receive::ReceiveState> state_shared() const { return state_; }
  // The route of accepted recipient `rcpt` in this transaction; null when it was not accepted.
  const receive::RecipientRoute* RouteOf(std::string_view rcpt) const;
  // The plan for the accepted `recipients` of this transaction. Linear: up to recipients_max
  // recipients of up to alias_targets_max targets each are deduplicated with a set (issue 13).
  ForwardPlan Plan(const std::vector<std::string>& recipients) const;

 private:
  Authenticator* const authenticator_;
  const receive::ReceiveStateHolder* const holder_;
  const std::string peer_ip_;
  const Hooks hooks_;
  const Clock* const clock_;
  std::shared_ptr<const receive::ReceiveState> state_;  // taken at MAIL FROM
  absl::flat_hash_map<std::string, receive::RecipientRoute> routes_;  // accepted RCPT -> route
};

}  // namespace relay::server
