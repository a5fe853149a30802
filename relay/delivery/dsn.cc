#include "relay/delivery/dsn.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "relay/base/status_macros.h"

namespace relay::delivery {
namespace {

constexpr size_t kLineBytesMax = 998;  // RFC 5322 §2.1.1, CRLF not counted
constexpr size_t kFoldColumn = 78;     // RFC 5322 §2.1.1 "SHOULD" limit: fold there if we can

std::string Rfc5322Date(int64_t unix_s) {
  // RFC 5322 §3.3; always UTC.
  return absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", absl::FromUnixSeconds(unix_s),
                          absl::UTCTimeZone());
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// Printable ASCII only: what a 7-bit header field body may hold. Tabs, CR and LF become spaces
// (a multi-line reply arrives joined or with its line breaks), anything else '?'.
std::string SevenBit(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\t' || c == '\r' || c == '\n') {
      out += ' ';
    } else if (c < 0x20 || c >= 0x7f) {
      out += '?';
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// When `line` is longer than kLineBytesMax, moves all but its last piece to `out` as lines of
// kLineBytesMax octets, each after the first starting with `prefix` (a fold's space, an indent).
// In one pass: cutting one line off at a time copied the rest of a long word each time.
void BreakLongLine(std::string& out, std::string& line, std::string_view prefix) {
  if (line.size() <= kLineBytesMax) return;
  out.append(line, 0, kLineBytesMax);
  out += "\r\n";
  const size_t room = kLineBytesMax - prefix.size();
  size_t pos = kLineBytesMax;
  while (line.size() - pos > room) {
    out.append(prefix.data(), prefix.size());
    out.append(line, pos, room);
    out += "\r\n";
    pos += room;
  }
  line.erase(0, pos);
  line.insert(0, prefix.data(), prefix.size());
}

// Appends "Name: value" folded (RFC 5322 §2.2.3): a line that would pass 78 columns is broken
// before the next word. Runs of spaces become one. A word longer than 998 octets is broken by
// force (unfolding then shows an extra space in it: better than an invalid message).
void AppendField(std::string& out, std::string_view name, std::string_view value) {
  std::string line = absl::StrCat(std::string(name), ":");
  bool has_word = false;
  size_t pos = 0;
  while (pos < value.size()) {
    size_t start = value.find_first_not_of(' ', pos);
    if (start == std::string_view::npos) break;
    size_t end = value.find(' ', start);
    if (end == std::string_view::npos) end = value.size();
    std::string_view word = value.substr(start, end - start);
    if (has_word && line.size() + 1 + word.size() > kFoldColumn) {
      out += line;
      out += "\r\n";
      line.clear();
    }
    line += ' ';
    line.append(word.data(), word.size());
    has_word = true;
    BreakLongLine(out, line, " ");
    pos = end;
  }
  out += line;
  out += "\r\n";
}

// Appends a paragraph of text wrapped at 76 columns, each line ended by CRLF.
void AppendWrapped(std::string& out, std::string_view text, std::string_view indent) {
  std::string line(indent);
  size_t pos = 0;
  bool line_has_word = false;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(' ', pos);
    if (start == std::string_view::npos) break;
    size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(start, end - start);
    if (line_has_word && line.size() + 1 + word.size() > 76) {
      out += line;
      out += "\r\n";
      line = std::string(indent);
      line_has_word = false;
    }
    if (line_has_word) line += ' ';
    line.append(word.data(), word.size());
    line_has_word = true;
    BreakLongLine(out, line, indent);
    pos = end;
  }
  if (line_has_word) {
    out += line;
    out += "\r\n";
  }
}

// The original header section with every line ending normalised to CRLF and lines over 998
// octets broken (as a fold: CRLF then a space), so the part is valid whatever came in.
std::string NormalizedHeaders(std::string_view headers, bool* eight_bit) {
  std::string out;
  out.reserve(headers.size() + 64);
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find_first_of("\r\n", pos);
    std::string_view line =
        headers.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    // The first piece may fill a line; later ones follow the fold's space.
    for (size_t room = kLineBytesMax; line.size() > room; room = kLineBytesMax - 1) {
      out.append(line.substr(0, room));
      out += "\r\n ";
      line.remove_prefix(room);
    }
    out.append(line);
    out += "\r\n";
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
    if (headers[eol] == '\r' && pos < headers.size() && headers[pos] == '\n') ++pos;
  }
  for (unsigned char c : out) {
    if (c >= 0x80) *eight_bit = true;
  }
  // A NUL is never valid in a message; no reader of the report needs it.
  std::replace(out.begin(), out.end(), '\0', '?');
  return out;
}

bool StatusMatches(std::string_view status, char cls) {
  // RFC 3463 §2: class "." subject "." detail, subject and detail 1-3 digits.
  if (status.size() < 5 || status[0] != cls || status[1] != '.') return false;
  int parts = 1, digits = 0;
  for (size_t i = 2; i < status.size(); ++i) {
    char c = status[i];
    if (c == '.') {
      if (digits == 0 || ++parts > 2) return false;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts == 2 && digits > 0;
}

std::string Alnum(std::string_view s) {
  std::string out;
  for (char c : s) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) out += c;
  }
  return out.substr(0, 40);
}

std::string DiagnosticText(const DsnRecipient& r) {
  std::string s = std::to_string(r.reply_code);
  if (!r.reply_enhanced.empty()) absl::StrAppend(&s, " ", r.reply_enhanced);
  if (!r.reply_text.empty()) absl::StrAppend(&s, " ", r.reply_text);
  return SevenBit(s);
}

}  // namespace

std::string_view HeaderSection(std::string_view message) {
  // The first empty line: at the very start, or after a line end.
  if (message.substr(0, 2) == "\r\n" || message.substr(0, 1) == "\n") return {};
  size_t crlf = message.find("\r\n\r\n");
  size_t lf = message.find("\n\n");
  size_t end = std::min(crlf == std::string_view::npos ? message.size() : crlf + 2,
                        lf == std::string_view::npos ? message.size() : lf + 1);
  return message.substr(0, end);
}

const char* DsnActionName(DsnKind kind) {
  switch (kind) {
    case DsnKind::kFailure:
      return "failed";
    case DsnKind::kDelay:
      return "delayed";
    case DsnKind::kRelayed:
      return "relayed";
  }
  return "failed";
}

namespace {

absl::Status CheckRequest(const DsnRequest& req) {
  if (req.envelope_sender.empty()) {
    return absl::FailedPreconditionError(
        "no DSN for a message with a null reverse path (RFC 5321 §4.5.5)");
  }
  if (req.recipients.empty()) return absl::InvalidArgumentError("DSN without recipients");
  if (HasLineBreakOrNul(req.envelope_sender) || HasLineBreakOrNul(req.reporting_mta) ||
      req.reporting_mta.empty()) {
    return absl::InvalidArgumentError("DSN sender or reporting host is empty or has a line break");
  }
  const char status_class = req.kind == DsnKind::kFailure ? '5'
                            : req.kind == DsnKind::kDelay ? '4'
                                                          : '2';
  for (const DsnRecipient& r : req.recipients) {
    if (!StatusMatches(r.status, status_class)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DSN status \"", SevenBit(r.status), "\" for ", SevenBit(r.final_recipient), " must be ",
          std::string(1, status_class), ".x.x for a ", DsnActionName(req.kind)));
    }
  }
  return absl::OkStatus();
}

// Part 1, for people: what happened to each recipient, in words.
std::string Notification(const DsnRequest& req, const std::string& host) {
  const bool failure = req.kind == DsnKind::kFailure;
  std::string notification;
  AppendWrapped(notification, absl::StrCat("This is the mail system at host ", host, "."), "");
  notification += "\r\n";
  if (failure) {
    AppendWrapped(notification,
                  req.return_full
                      ? "I'm sorry to have to inform you that your message could not be delivered "
                        "to one or more recipients. The message is attached below."
                      : "I'm sorry to have to inform you that your message could not be delivered "
                        "to one or more recipients. The message's headers are attached below.",
                  "");
  } else if (req.kind == DsnKind::kRelayed) {
    AppendWrapped(notification,
                  "Your message was delivered to the server of each recipient below, as you asked "
                  "to be told. That server does not report delivery status, so no further notice "
                  "will follow.",
                  "");
  } else {
    AppendWrapped(notification,
                  "Your message could not yet be delivered to one or more recipients. This is a "
                  "warning only: delivery is still being attempted and you do not need to send "
                  "the message again.",
                  "");
  }
  if (!req.queue_id.empty()) {
    notification += "\r\n";
    AppendWrapped(notification, absl::StrCat("Queue ID: ", SevenBit(req.queue_id)), "");
  }
  for (const DsnRecipient& r : req.recipients) {
    notification += "\r\n";
    std::string what = absl::StrCat("<", SevenBit(r.final_recipient), ">:");
    if (r.reply_code != 0) {
      // No host for a forwarded recipient: where it was forwarded is private.
      absl::StrAppend(&what,
                      r.remote_mta.empty() ? " the receiving server"
                                           : absl::StrCat(" host ", SevenBit(r.remote_mta)),
                      " said: ", DiagnosticText(r));
    }
    if (!r.explanation.empty()) absl::StrAppend(&what, " ", SevenBit(r.explanation));
    if (r.reply_code == 0 && r.explanation.empty()) {
      absl::StrAppend(&what, " delivery status ", SevenBit(r.status));
    }
    if (!r.category.empty()) absl::StrAppend(&what, " (", SevenBit(r.category), ")");
    AppendWrapped(notification, what, "");
    if (req.kind == DsnKind::kDelay && r.will_retry_until_unix_s != 0) {
      AppendWrapped(notification,
                    absl::StrCat("Delivery will be retried until ",
                                 Rfc5322Date(r.will_retry_until_unix_s), "."),
                    "    ");
    }
  }
  return notification;
}

// Part 2, for programs: RFC 3464 §2.2 per-message fields, then §2.3 per-recipient blocks, each
// preceded by an empty line.
std::string DeliveryReport(const DsnRequest& req, const std::string& host) {
  std::string report;
  AppendField(report, "Reporting-MTA", absl::StrCat("dns; ", host));
  if (!req.envelope_id.empty()) {
    AppendField(report, "Original-Envelope-Id", SevenBit(req.envelope_id));
  }
  if (req.arrival_unix_s != 0) AppendField(report, "Arrival-Date", Rfc5322Date(req.arrival_unix_s));
  if (!req.tenant.empty()) AppendField(report, "X-Relay-Tenant", SevenBit(req.tenant));
  if (!req.campaign.empty()) AppendField(report, "X-Relay-Campaign", SevenBit(req.campaign));
  for (const DsnRecipient& r : req.recipients) {
    report += "\r\n";
    if (!r.original_recipient.empty()) {
      // RFC 3464 §2.3.1: the ORCPT as given, "addr-type; address".
      const size_t semi = r.original_recipient.find(';');
      const std::string_view orcpt = r.original_recipient;
      AppendField(report, "Original-Recipient",
                  semi == std::string::npos ? absl::StrCat("rfc822; ", SevenBit(orcpt))
                                            : absl::StrCat(SevenBit(orcpt.substr(0, semi)), "; ",
                                                           SevenBit(orcpt.substr(semi + 1))));
    }
    AppendField(report, "Final-Recipient", absl::StrCat("rfc822; ", SevenBit(r.final_recipient)));
    AppendField(report, "Action", DsnActionName(req.kind));
    AppendField(report, "Status", r.status);
    if (!r.category.empty()) AppendField(report, "X-Bounce-Category", SevenBit(r.category));
    if (!r.remote_mta.empty()) {
      AppendField(report, "Remote-MTA", absl::StrCat("dns; ", SevenBit(r.remote_mta)));
    }
    if (r.reply_code != 0) {
      AppendField(report, "Diagnostic-Code", absl::StrCat("smtp; ", DiagnosticText(r)));
    }
    if (r.last_attempt_unix_s != 0) {
      AppendField(report, "Last-Attempt-Date", Rfc5322Date(r.last_attempt_unix_s));
    }
    if (req.kind == DsnKind::kDelay && r.will_retry_until_unix_s != 0) {
      AppendField(report, "Will-Retry-Until", Rfc5322Date(r.will_retry_until_unix_s));
    }
  }
  return report;
}

// A boundary that occurs nowhere in the content (RFC 2046 §5.1.1). The parts quote remote replies
// and the original headers, and the boundary is guessable (the queue id and the time): a reply
// holding a delimiter line would otherwise end the report early and add parts of the remote
// host's choosing to a message from our MAILER-DAEMON.
std::string Boundary(const DsnRequest& req, std::initializer_list<std::string_view> parts) {
  std::string boundary = absl::StrCat("=_dsn_", Alnum(req.queue_id), "_", req.now_unix_s);
  for (int i = 0; std::any_of(parts.begin(), parts.end(),
                              [&](std::string_view p) { return p.find(boundary) != p.npos; });
       ++i) {
    absl::StrAppend(&boundary, "_", i);
  }
  return boundary;
}

}  // namespace

absl::StatusOr<Dsn> BuildDsn(const DsnRequest& req) {
  RETURN_IF_ERROR(CheckRequest(req));
  const bool failure = req.kind == DsnKind::kFailure;
  Dsn dsn;
  dsn.rcpt_to = req.envelope_sender;
  const std::string host = SevenBit(req.reporting_mta);
  // RET=FULL (RFC 3461 §4.3) returns the whole message with a failure, else its header section.
  const bool full = failure && req.return_full;
  const std::string headers = NormalizedHeaders(
      full ? req.original_message : HeaderSection(req.original_message), &dsn.needs_8bitmime);
  const std::string notification = Notification(req, host);
  const std::string report = DeliveryReport(req, host);
  const std::string boundary = Boundary(req, {notification, report, headers});

  std::string& out = dsn.data;
  out.reserve(2048 + notification.size() + report.size() + headers.size());
  AppendField(out, "Date", Rfc5322Date(req.now_unix_s));
  AppendField(out, "From", absl::StrCat("Mail Delivery System <MAILER-DAEMON@", host, ">"));
  AppendField(out, "To", absl::StrCat("<", SevenBit(req.envelope_sender), ">"));
  AppendField(out, "Subject",
              failure                         ? "Undelivered Mail Returned to Sender"
              : req.kind == DsnKind::kRelayed ? "Successful Mail Relay (no further notice)"
                                              : "Delayed Mail (still being retried)");
  AppendField(out, "Message-ID",
              absl::StrCat("<dsn.", Alnum(req.queue_id), ".", req.now_unix_s, "@", host, ">"));
  AppendField(out, "Auto-Submitted", "auto-replied");  // RFC 3834 §5
  AppendField(out, "MIME-Version", "1.0");
  AppendField(
      out, "Content-Type",
      absl::StrCat("multipart/report; report-type=delivery-status; boundary=\"", boundary, "\""));
  if (dsn.needs_8bitmime) AppendField(out, "Content-Transfer-Encoding", "8bit");
  out += "\r\n";
  out += "This is a MIME-encapsulated message.\r\n\r\n";

  auto append_part = [&](std::string_view description, std::string_view type, std::string_view body,
                         bool eight_bit) {
    absl::StrAppend(&out, "--", boundary, "\r\n");
    AppendField(out, "Content-Description", description);
    AppendField(out, "Content-Type", type);
    if (eight_bit) AppendField(out, "Content-Transfer-Encoding", "8bit");
    out += "\r\n";
    out.append(body.data(), body.size());
    out += "\r\n";
  };
  append_part("Notification", "text/plain; charset=us-ascii", notification, false);
  append_part("Delivery report", "message/delivery-status", report, false);
  // 3. The original header section (RFC 3462 §4), or the whole message (§3).
  if (full) {
    append_part("Undelivered Message", "message/rfc822", headers, dsn.needs_8bitmime);
  } else {
    append_part(failure ? "Undelivered Message Headers" : "Message Headers", "text/rfc822-headers",
                headers, dsn.needs_8bitmime);
  }
  absl::StrAppend(&out, "--", boundary, "--\r\n");
  return dsn;
}

}  // namespace relay::delivery
