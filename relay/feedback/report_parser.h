// Reads what comes back to a VERP bounce address and says what it is: a delivery status
// notification (RFC 3464 multipart/report; report-type=delivery-status, also text/delivery-status
// and RFC 6533 message/global-delivery-status), one of the common non-standard bounce texts
// (qmail, Exim, old Postfix, Exchange/Gmail/Lotus texts), a feedback-loop complaint (ARF,
// RFC 5965) or an auto-reply (RFC 3834 and its non-standard cousins), with the fields a sender
// acts on. Everything it reads is untrusted input from any host on the Internet.
//
// Contract: ParseReport is a pure function of its arguments, thread-safe, and never fails: a
// message it cannot make sense of is kUnknown with a reason. The result owns copies of what it
// extracts (nothing points into `message`). Time and memory are linear in the message: each byte
// is looked at a bounded number of times (at most once per multipart nesting level, which
// ReportLimits::depth_max caps), and everything kept has a limit in ReportLimits.
//
// Precedence, because real messages carry several signals at once (Postfix's DSNs also say
// Auto-Submitted: auto-replied): a feedback report, then a delivery-status part with recipient
// blocks, then a bounce text, and only then an auto-reply.
//
// MIME is read by a small walker here rather than a MIME library: only the report parts and the
// returned message's headers are needed, it must stay bounded and linear on hostile input, and
// GMime would bring GLib into the daemon.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace relay::feedback {

struct ReportLimits {
  size_t parts_max = 64;          // MIME parts looked at, whole message
  int depth_max = 4;              // multipart nesting
  size_t addresses_max = 32;      // candidate_addresses kept
  size_t recipients_max = 64;     // per-recipient blocks kept from a DSN
  size_t field_bytes_max = 1000;  // any one extracted value is cut to this (at a UTF-8 boundary)
  // Decoded text (text/plain parts, in order) read for a bounce text's recipients and addresses;
  // the recipients and reasons are at its top, the rest is usually the returned message.
  size_t text_bytes_max = 256 * 1024;
};

enum class ReportKind { kUnknown, kDsn, kBounceText, kComplaint, kAutoReply };

// "unknown", "dsn", "bounce-text", "complaint", "auto-reply".
std::string_view ReportKindName(ReportKind kind);

// One per-recipient block (RFC 3464 §2.3), or one recipient a bounce text names.
struct ReportedRecipient {
  std::string final_recipient;     // the address only ("rfc822;" type and <> stripped), may be ""
  std::string original_recipient;  // the same for Original-Recipient
  // Lower-case: failed, delayed, delivered, relayed, expanded (RFC 3464 §2.3.3); bounce text:
  // "failed".
  std::string action;
  // "5.1.1" (RFC 3463), "" when none. Bounce text: the enhanced code found in the text.
  std::string status;
  // The SMTP reply code from Diagnostic-Code ("smtp; 550 ...") or from the text, 0 when none.
  int code = 0;
  std::string enhanced;  // the enhanced code in the diagnostic text when given, else status
  // Diagnostic-Code without its "smtp;" type, unfolded (a multi-line reply's repeated
  // "550-5.1.1" prefixes dropped); bounce text: the line(s) with the reason.
  std::string diagnostic;
  std::string remote_mta;  // Remote-MTA without "dns;"
};

struct ParsedReport {
  ReportKind kind = ReportKind::kUnknown;
  std::vector<ReportedRecipient> recipients;  // kDsn, kBounceText
  // kComplaint (RFC 5965 §3.1, §3.2); feedback_type lower-cased (abuse, fraud, virus, other,
  // not-spam); the addresses without <>; the first Original-Rcpt-To and Reported-Domain.
  std::string feedback_type;
  std::string user_agent;
  std::string original_mail_from;
  std::string original_rcpt_to;
  std::string source_ip;
  std::string arrival_date;
  std::string reported_domain;
  // From the returned message (a DSN's message/rfc822 or text/rfc822-headers part, an ARF
  // report's third part, the copy a bounce text quotes after its marker line).
  std::string original_message_id;   // the Message-ID value, without <>
  std::string original_return_path;  // its Return-Path, without <>
  // Every address-looking token (local@domain, with or without <>) seen in the recipients'
  // fields, Original-Rcpt-To / Original-Mail-From, the returned message's To/Cc/Return-Path and
  // the text of a bounce text: deduplicated, lower-cased, at most addresses_max, in order of
  // appearance with the most specific (Final-Recipient, Original-Recipient, Original-Rcpt-To, a
  // bounce text's recipients) first. The caller checks each against its VERP HMAC.
  std::vector<std::string> candidate_addresses;
  // kUnknown / kAutoReply: a short reason for the log ("no report part",
  // "Auto-Submitted: auto-replied").
  std::string why;
};

// `envelope_sender` is the MAIL FROM the message came with ("" or "<>" for the null sender that
// bounces and auto-replies use, RFC 5321 §4.5.5, RFC 3834 §3.1.5).
ParsedReport ParseReport(std::string_view message, std::string_view envelope_sender,
                         const ReportLimits& limits = {});

}  // namespace relay::feedback
