#include "relay/smtp/received.h"

#include "absl/strings/str_format.h"
#include "relay/smtp/text.h"

namespace relay::smtp {
namespace {

constexpr size_t kFoldColumn = 78;  // RFC 5322 §2.1.1 SHOULD

// Appends `part` to a header being built, folding (CRLF TAB) before it when the current line
// would pass kFoldColumn.
void AppendFolded(std::string& out, size_t& line_start, std::string_view part) {
  if (out.size() - line_start + 1 + part.size() > kFoldColumn && out.size() > line_start) {
    out.append("\r\n\t");
    line_start = out.size() - 1;
  } else {
    out.push_back(' ');
  }
  out.append(part.data(), part.size());
}

std::string AddressLiteral(std::string_view ip) {
  // RFC 5321 §4.1.3: IPv6 literals carry the "IPv6:" tag.
  if (ip.find(':') != std::string_view::npos) return Concat("[IPv6:", ip, "]");
  return Concat("[", ip, "]");
}

// Comments must not contain unbalanced parentheses or CR/LF: keep only safe printable bytes.
std::string CommentSafe(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c > 32 && c < 127 && c != '(' && c != ')' && c != '\\') out.push_back(c);
  }
  return out;
}

// The EHLO name is the client's; it must not break the header.
std::string TokenSafe(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c > 32 && c != 127 && c != '(' && c != ')' && c != ';') out.push_back(c);
  }
  return out.empty() ? std::string("unknown") : out;
}

}  // namespace

std::string_view ProtocolName(bool esmtp, bool tls, bool authenticated, bool smtputf8) {
  if (smtputf8) {
    if (tls && authenticated) return "UTF8SMTPSA";
    if (tls) return "UTF8SMTPS";
    if (authenticated) return "UTF8SMTPA";
    return "UTF8SMTP";
  }
  if (!esmtp) return "SMTP";
  if (tls && authenticated) return "ESMTPSA";
  if (tls) return "ESMTPS";
  if (authenticated) return "ESMTPA";
  return "ESMTP";
}

std::string FormatRfc5322Date(absl::Time time) {
  static constexpr const char* kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const absl::CivilSecond cs = absl::ToCivilSecond(time, absl::UTCTimeZone());
  const int weekday = static_cast<int>(absl::GetWeekday(cs));  // Monday == 0
  return absl::StrFormat("%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[weekday], cs.day(),
                         kMonths[cs.month() - 1], cs.year(), cs.hour(), cs.minute(), cs.second());
}

std::string BuildReceivedHeader(const ReceivedInfo& info) {
  std::string out = "Received:";
  size_t line_start = 0;
  // From-domain = "FROM" FWS Extended-Domain; Extended-Domain = Domain /
  // ( Domain FWS "(" TCP-info ")" ) (§4.4). The TCP-info holds the rDNS name and the literal.
  const std::string literal = AddressLiteral(info.peer_ip);
  AppendFolded(out, line_start, Concat("from ", TokenSafe(info.ehlo_name)));
  if (info.reverse_dns.empty()) {
    AppendFolded(out, line_start, Concat("(", literal, ")"));
  } else {
    // Two parts, so that the fold may fall inside the comment (FWS is allowed there).
    AppendFolded(out, line_start, Concat("(", CommentSafe(info.reverse_dns)));
    AppendFolded(out, line_start, Concat(literal, ")"));
  }
  AppendFolded(out, line_start, Concat("by ", info.hostname));
  AppendFolded(
      out, line_start,
      Concat("with ", ProtocolName(info.esmtp, info.tls, info.authenticated, info.smtputf8)));
  if (info.tls) {
    // A comment (CFWS is allowed between clauses) with what the TLS negotiation gave.
    std::string tls = Concat("(", CommentSafe(info.tls_version));
    if (!info.tls_cipher.empty()) tls += Concat(" cipher ", CommentSafe(info.tls_cipher));
    tls.push_back(')');
    AppendFolded(out, line_start, tls);
  }
  if (!info.queue_id.empty()) AppendFolded(out, line_start, Concat("id ", info.queue_id));
  if (info.recipients.size() == 1) {
    // One recipient only: naming several would disclose Bcc recipients to each other.
    AppendFolded(out, line_start, Concat("for <", info.recipients[0], ">;"));
  } else {
    out.push_back(';');
  }
  AppendFolded(out, line_start, FormatRfc5322Date(info.time));
  out.append("\r\n");
  return out;
}

HeaderPresence FindHeaders(std::string_view message) {
  HeaderPresence found;
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = message.size();
    const std::string_view line = message.substr(pos, eol - pos);
    if (line.empty()) break;  // end of the header section (RFC 5322 §2.1)
    if (line[0] != ' ' && line[0] != '\t') {
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string_view name = line.substr(0, colon);
        while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) {
          name.remove_suffix(1);  // obs-optional WSP before the colon (RFC 5322 §4.5.8)
        }
        if (EqualsIgnoreCase(name, "Message-ID")) found.message_id = true;
        if (EqualsIgnoreCase(name, "Date")) found.date = true;
      } else {
        break;  // not a header field: the header section is over (a body without separator)
      }
    }
    pos = eol + 2;
  }
  return found;
}

std::string MissingHeaderFields(std::string_view message, std::string_view id_left,
                                std::string_view hostname, absl::Time now) {
  const HeaderPresence found = FindHeaders(message);
  std::string out;
  if (!found.message_id) out += Concat("Message-ID: <", id_left, "@", hostname, ">\r\n");
  if (!found.date) out += Concat("Date: ", FormatRfc5322Date(now), "\r\n");
  return out;
}

}  // namespace relay::smtp
