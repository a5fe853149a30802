// Delivery status notifications (bounces and delay warnings) per RFC 3464 in the
// multipart/report container of RFC 3462 (report-type=delivery-status):
//   1. text/plain for people: which recipients failed and what their server said;
//   2. message/delivery-status: Reporting-MTA and Arrival-Date (and the relay's X-Relay-Tenant
//      and X-Relay-Campaign), then per recipient
//      Final-Recipient, Action (failed | delayed), Status, Remote-MTA, Diagnostic-Code,
//      Last-Attempt-Date (and Will-Retry-Until for a delay);
//   3. text/rfc822-headers: the original message's header section (RFC 3462 §4).
// The DSN is marked Auto-Submitted: auto-replied (RFC 3834 §5) and travels with a null reverse
// path (MAIL FROM:<>) to the original envelope sender, so it can never cause another DSN
// (RFC 5321 §4.5.5: none is ever sent for a message whose reverse path is null).
//
// Contract: a pure function, any thread. The result uses CRLF everywhere, no line longer than
// 998 octets (RFC 5322 §2.1.1), and is not dot-stuffed (the SMTP client does that). Fields of
// the machine-readable part are kept 7-bit (bytes outside printable ASCII become '?');
// internationalized DSNs (RFC 6533) are not produced.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::delivery {

enum class DsnKind {
  kFailure,  // Action: failed, Status 5.x.x: the message will not be delivered
  kDelay,    // Action: delayed, Status 4.x.x: a warning, delivery is still being retried
  // Action: relayed, Status 2.x.x: delivered to a server that does not offer DSN, so no report
  // of the final delivery will come (RFC 3464 §2.3.3, RFC 3461 §6.2.3.1).
  kRelayed,
};

// RFC 3464 §2.3.3's Action of each kind: "failed", "delayed", "relayed".
const char* DsnActionName(DsnKind kind);

struct DsnRecipient {
  std::string final_recipient;     // the address the relay tried (RCPT TO)
  // ORCPT (RFC 3461 §4.2), "addr-type;address" or a bare address (rfc822); "" omits it.
  std::string original_recipient;
  std::string status;              // enhanced status, RFC 3463: "5.1.1", "4.4.7"
  std::string remote_mta;          // MX host that answered (optional)
  // The remote reply, for Diagnostic-Code: smtp; (omitted when reply_code is 0, e.g. null MX).
  int reply_code = 0;
  std::string reply_enhanced;
  std::string reply_text;
  // Why, for people, when there is no remote reply ("the domain accepts no mail (null MX)").
  std::string explanation;
  int64_t last_attempt_unix_s = 0;      // 0: omitted
  int64_t will_retry_until_unix_s = 0;  // delays only; 0: omitted
  // The bounce rules' category ("bad-mailbox"), as the extension field X-Bounce-Category
  // (RFC 3464 §7) and in the text part; "" omits it.
  std::string category;
};

struct DsnRequest {
  DsnKind kind = DsnKind::kFailure;
  std::string reporting_mta;    // our host name: From: MAILER-DAEMON@<it>, Reporting-MTA
  std::string envelope_sender;  // the original MAIL FROM; empty means null: no DSN
  std::string envelope_id;      // ENVID, RFC 3461 §4.4 (optional)
  std::string queue_id;         // for the text part and the Message-ID
  // The message's tenant and campaign, as the per-message extension fields X-Relay-Tenant and
  // X-Relay-Campaign (RFC 3464 §2.2, §7) so that the sender's software can file the report; ""
  // omits each.
  std::string tenant;
  std::string campaign;
  int64_t arrival_unix_s = 0;
  int64_t now_unix_s = 0;  // Date:
  std::vector<DsnRecipient> recipients;
  // The original message (or just its header section): everything up to the first empty line
  // is returned in the text/rfc822-headers part, or with `return_full` (RET=FULL, RFC 3461
  // §4.3; failures only) the whole of it as message/rfc822 (RFC 3462 §3).
  std::string_view original_message;
  bool return_full = false;
};

struct Dsn {
  std::string mail_from;        // always empty: MAIL FROM:<>
  std::string rcpt_to;          // the original envelope sender
  std::string data;             // the whole message, CRLF line ends, not dot-stuffed
  bool needs_8bitmime = false;  // the original headers carry 8-bit bytes (sent as 8bit)
};

// Builds the DSN. FailedPrecondition for a null envelope sender (callers log and drop);
// InvalidArgument for no recipients, a status whose class does not match the kind (5 for a
// failure, 4 for a delay), or a sender or host name with CR, LF or NUL in it.
absl::StatusOr<Dsn> BuildDsn(const DsnRequest& request);

// The header section of `message`: up to and excluding the empty line that ends it (the whole
// message when there is none).
std::string_view HeaderSection(std::string_view message);

}  // namespace relay::delivery
