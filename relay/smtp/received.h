// Trace and missing header fields added on acceptance: the Received field (RFC 5321 §4.4 with
// the protocol names of RFC 3848 and RFC 6531 §3.7.3) and Message-ID / Date when the client left
// them out (RFC 5322 §3.6.1, §3.6.4; RFC 6409 §8.2-8.3 lets a submission server add them).
//
// Contract: pure functions, any thread. The results are complete header fields, folded to stay
// under 78 characters where the parts allow it, each ending in CRLF, to be prepended to the
// message (Received) or inserted in its header section (the others).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace relay::smtp {

struct ReceivedInfo {
  std::string_view ehlo_name;    // the client's EHLO/HELO argument
  std::string_view reverse_dns;  // the peer's verified name, "" when unknown
  std::string_view peer_ip;      // "192.0.2.1" or "2001:db8::1"
  std::string_view hostname;     // our name ("by")
  bool esmtp = true;             // EHLO rather than HELO
  bool tls = false;
  bool authenticated = false;
  bool smtputf8 = false;         // the transaction used SMTPUTF8
  std::string_view tls_version;  // "TLSv1.3"
  std::string_view tls_cipher;   // "TLS_AES_128_GCM_SHA256"
  std::string_view queue_id;
  std::vector<std::string_view> recipients;  // a "for" clause only when exactly one
  absl::Time time;
};

// "SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" (RFC 3848) or their "UTF8SMTP..." forms
// (RFC 6531 §3.7.3).
std::string_view ProtocolName(bool esmtp, bool tls, bool authenticated, bool smtputf8);

// "Received: from ... by ... with ... id ... for <...>; date CRLF" (folded).
std::string BuildReceivedHeader(const ReceivedInfo& info);

// RFC 5322 §3.3 date-time in UTC: "Sun, 22 Nov 2026 20:22:40 +0000".
std::string FormatRfc5322Date(absl::Time time);

struct HeaderPresence {
  bool message_id = false;
  bool date = false;
};

// Looks at the header section of `message` (up to the first empty line) for Message-ID and Date
// fields, case-insensitively (RFC 5322 §1.2.2).
HeaderPresence FindHeaders(std::string_view message);

// The header fields to add to `message`: "Message-ID: <id_left@hostname>" and/or
// "Date: ..." when missing, each ending in CRLF; "" when both are present. `id_left` must be
// unique (the queue id is).
std::string MissingHeaderFields(std::string_view message, std::string_view id_left,
                                std::string_view hostname, absl::Time now);

}  // namespace relay::smtp
