// Fuzz target for the report parser (relay/feedback/report_parser.h): anyone can send anything to
// a bounce address. The input is the message; a first line "MAIL FROM:<...>" gives the envelope
// sender (else the null sender, which opens the bounce-text path). Each input is parsed with the
// default limits and with tight ones. Checks:
//   - at most recipients_max recipients and addresses_max candidates, every extracted value at
//     most field_bytes_max bytes;
//   - the candidates are distinct, lower-case and hold an '@';
//   - what each kind promises: a DSN has recipients, a complaint its Feedback-Type, a bounce
//     text's recipients failed, kUnknown and kAutoReply a reason and no recipients;
//   - time and memory linear in the message (the scaled inputs: many parts, deep nesting, a huge
//     header, many recipient blocks, a long folded diagnostic, many addresses).
#include <string>
#include <string_view>

#include "relay/feedback/report_parser.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

bool IsLowerCase(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

void Check(const ParsedReport& r, const ReportLimits& limits) {
  FUZZ_CHECK(!ReportKindName(r.kind).empty());
  FUZZ_CHECK(r.recipients.size() <= limits.recipients_max);
  FUZZ_CHECK(r.candidate_addresses.size() <= limits.addresses_max);
  const size_t max = limits.field_bytes_max;
  for (const std::string* s :
       {&r.feedback_type, &r.user_agent, &r.original_mail_from, &r.original_rcpt_to, &r.source_ip,
        &r.arrival_date, &r.reported_domain, &r.original_message_id, &r.original_return_path,
        &r.why}) {
    FUZZ_CHECK_MSG(s->size() <= max, *s);
  }
  for (const ReportedRecipient& p : r.recipients) {
    for (const std::string* s : {&p.final_recipient, &p.original_recipient, &p.action, &p.status,
                                 &p.enhanced, &p.diagnostic, &p.remote_mta}) {
      FUZZ_CHECK_MSG(s->size() <= max, *s);
    }
    FUZZ_CHECK(p.code == 0 || (p.code >= 200 && p.code <= 559));
    if (r.kind == ReportKind::kBounceText) FUZZ_CHECK(p.action == "failed" || max < 6);
  }
  for (size_t i = 0; i < r.candidate_addresses.size(); ++i) {
    const std::string& a = r.candidate_addresses[i];
    FUZZ_CHECK_MSG(a.size() <= max, a);
    FUZZ_CHECK_MSG(IsLowerCase(a), a);
    FUZZ_CHECK_MSG(a.find('@') != std::string::npos, a);
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK_MSG(r.candidate_addresses[j] != a, a);
  }
  switch (r.kind) {
    case ReportKind::kDsn:
      FUZZ_CHECK(!r.recipients.empty() || limits.recipients_max == 0);
      break;
    case ReportKind::kComplaint:
      FUZZ_CHECK(!r.feedback_type.empty() || max == 0);
      FUZZ_CHECK(r.recipients.empty());
      break;
    case ReportKind::kUnknown:
    case ReportKind::kAutoReply:
      FUZZ_CHECK(!r.why.empty() || max == 0);
      FUZZ_CHECK(r.recipients.empty() && r.candidate_addresses.empty());
      break;
    case ReportKind::kBounceText:
      break;
  }
}

void FuzzParse(std::string_view input) {
  std::string_view sender;
  std::string_view message = input;
  if (input.substr(0, 10) == "MAIL FROM:") {
    const size_t eol = input.find('\n');
    sender = input.substr(10, eol == std::string_view::npos ? std::string_view::npos : eol - 10);
    message = eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1);
  }
  const ReportLimits defaults;
  Check(ParseReport(message, sender, defaults), defaults);
  ReportLimits tight;
  tight.parts_max = 5;
  tight.depth_max = 2;
  tight.addresses_max = 3;
  tight.recipients_max = 2;
  tight.field_bytes_max = 17;
  tight.text_bytes_max = 4096;
  Check(ParseReport(message, sender, tight), tight);
}

constexpr std::string_view kReportHeader =
    "From: MAILER-DAEMON@mx.example.org\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n";

std::string ManyParts(size_t bytes) {
  return fuzz::Repeat(kReportHeader, "--b\nContent-Type: text/plain\n\n<a@example.com>: 550 x\n",
                      "--b--\n", bytes);
}

// Multiparts nested far past depth_max, each with a boundary of its own.
std::string DeepNesting(size_t bytes) {
  std::string s = "Subject: failure notice\n";
  for (size_t i = 0; s.size() < bytes; ++i) {
    const std::string b = "b" + std::to_string(i);
    s += "Content-Type: multipart/mixed; boundary=" + b + "\n\npreamble\n--" + b + "\n";
  }
  return s;
}

// One header field folded over many lines, with addresses in it.
std::string HugeHeader(size_t bytes) {
  return fuzz::Repeat("From: MAILER-DAEMON@mx.example.org\nTo: a@example.com",
                      ",\n b@example.com, \"Some One\" <c@example.com>", "\n\nfailure notice\n",
                      bytes);
}

std::string ManyRecipientBlocks(size_t bytes) {
  return fuzz::Repeat(
      std::string(kReportHeader) +
          "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n",
      "Final-Recipient: rfc822; user@example.com\nAction: failed\nStatus: 5.1.1\n"
      "Diagnostic-Code: smtp; 550 5.1.1 <user@example.com> unknown\n\n",
      "--b--\n", bytes);
}

std::string LongFoldedDiagnostic(size_t bytes) {
  return fuzz::Repeat(
      std::string(kReportHeader) +
          "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
          "Final-Recipient: rfc822; user@example.com\nAction: failed\nStatus: 5.1.1\n"
          "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach",
      "\n 550-5.1.1 does not exist. Please try double-checking", "\n\n--b--\n", bytes);
}

// A bounce text naming a different address on every line.
std::string ManyAddresses(size_t bytes) {
  std::string s =
      "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n\n"
      "Hi. This is the qmail-send program at mx.example.com.\n";
  for (size_t i = 0; s.size() < bytes; ++i) {
    s += "<user" + std::to_string(i) + "@example.com>:\nRemote host said: 550 5.1.1 <user" +
         std::to_string(i) + "@example.com>... User unknown\n";
  }
  return s;
}

// Lines that start like the delimiters of every enclosing multipart and are none of them: each
// level compares each line of its body against its boundary.
std::string NearDelimiters(size_t bytes) {
  return fuzz::Repeat(
      "From: MAILER-DAEMON@mx.example.org\nSubject: failure notice\n"
      "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
      "Content-Type: multipart/mixed; boundary=bb\n\n--bb\n"
      "Content-Type: multipart/mixed; boundary=bbb\n\n--bbb\n"
      "Content-Type: text/plain\n\n",
      "--bbbb\n--bb x\n<a@example.com>: said 550 5.1.1 x\n", "--bbb--\n--bb--\n--b--\n", bytes);
}

// A base64 delivery-status part: decoded within its bound.
std::string LongBase64Part(size_t bytes) {
  return fuzz::Repeat(std::string(kReportHeader) +
                          "--b\nContent-Type: message/delivery-status\n"
                          "Content-Transfer-Encoding: base64\n\n",
                      "RmluYWwtUmVjaXBpZW50OiByZmM4MjI7IGFAZXhhbXBsZS5jb20KCg==\n", "--b--\n",
                      bytes);
}

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "report_parser",
      .run = relay::feedback::FuzzParse,
      // The MIME leaves and their header fields (at most 256 per block, each a few views), one
      // decoded part at a time, and the bounded results: a few times the input at most.
      .bounds = {.heap_peak_bytes = {256 << 10, 48},
                 .heap_allocated_bytes = {1 << 20, 96},
                 .allocations = {4096, 2}},
      .scaled = {{.name = "many parts", .make = relay::feedback::ManyParts},
                 {.name = "deep nesting", .make = relay::feedback::DeepNesting},
                 {.name = "huge header", .make = relay::feedback::HugeHeader},
                 {.name = "many recipient blocks", .make = relay::feedback::ManyRecipientBlocks},
                 {.name = "long folded diagnostic", .make = relay::feedback::LongFoldedDiagnostic},
                 {.name = "many addresses", .make = relay::feedback::ManyAddresses},
                 {.name = "long base64 part", .make = relay::feedback::LongBase64Part},
                 {.name = "near delimiters", .make = relay::feedback::NearDelimiters}},
  };
  return target;
}
