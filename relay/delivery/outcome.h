// The outcome of one delivery attempt for one recipient, as every layer of delivery reports it:
// delivered, transient (try again later) or permanent (bounce), with the SMTP reply that decided
// it (code, enhanced status code, text) or a local reason in the same shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "relay/feedback/bounce_category.h"
#include "relay/smtp/outcome_kind.h"

namespace relay::delivery {

// The session's kinds (relay/smtp/outcome_kind.h): no mapping between two copies.
using OutcomeKind = smtp::OutcomeKind;

struct RecipientOutcome {
  OutcomeKind kind = OutcomeKind::kTransient;
  int code = 0;              // SMTP reply code, or 0 for a local reason (DNS, connection)
  std::string enhanced;      // "5.1.1", "" when none
  std::string text;          // the reply text or the local reason
  // The relay's own verdict on a failure it made up (expired, DNS, unreachable); unset: the bounce
  // rules classify the reply (DeliveryPolicy::Classify).
  std::optional<feedback::BounceCategory> category;
  // Deferred by a hold before any attempt (the operator's, or a suspension of its site): not
  // counted as an attempt, and due again when the hold ends, held_until_unix_ms (0: a hold until
  // resumed, the retry schedule's time), or at once when it is lifted (the engine's).
  bool held = false;
  int64_t held_until_unix_ms = 0;

  // "550 5.1.1 No such user" or "connection refused by mx.example [192.0.2.1]".
  std::string ToString() const;
  // This outcome with ToString() at most `bytes_max` bytes, for a record that holds no more: the
  // code and the enhanced code are kept, the text is cut at a UTF-8 boundary and marked (only
  // the start of a reply helps a reader; a receiver's 6 KB of text must not make the outcome
  // impossible to record).
  RecipientOutcome FittedTo(size_t bytes_max) const;
  static RecipientOutcome Transient(std::string text, int code = 0, std::string enhanced = "");
  static RecipientOutcome Permanent(std::string text, int code = 0, std::string enhanced = "");
  // This outcome with the relay's own category.
  RecipientOutcome Categorized(feedback::BounceCategory c) &&;
};

// How a delivery used TLS (issue 17, item 6); the order of metrics::kTlsModeNames.
enum class TlsMode : uint8_t {
  kNone,           // plain text
  kOpportunistic,  // encrypted; the certificate was not valid for the MX name (or not checked)
  kVerified,       // the certificate is valid for the MX name (WebPKI, the CA store)
  kMtaSts,         // verified as the domain's MTA-STS policy demands
  kDane,           // verified by the MX host's TLSA records
};
std::string_view TlsModeName(TlsMode mode);

// What the delivery log records about the attempt.
struct AttemptInfo {
  std::string mx_host;
  std::string remote_ip;
  std::string source_ip;
  std::string tls_version;   // "" when plain text
  std::string tls_cipher;
  TlsMode tls_mode = TlsMode::kNone;
  int64_t duration_ms = 0;
  // The outcome is the remote's reply. False when it was made up here (timeout, connection lost,
  // DNS): after the body went out, such an outcome leaves the attempt's real outcome unknown.
  bool reply_received = false;
  // The server offered DSN (RFC 3461) and the sender's NOTIFY went with each RCPT (never with a
  // VERP return path).
  bool remote_dsn = false;
};

}  // namespace relay::delivery
