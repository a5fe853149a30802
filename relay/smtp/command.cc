#include "relay/smtp/command.h"

#include <cstring>

#include "relay/smtp/text.h"

namespace relay::smtp {
namespace {

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr VerbName kVerbs[] = {
    {"EHLO", Verb::kEhlo},         {"HELO", Verb::kHelo}, {"MAIL", Verb::kMail},
    {"RCPT", Verb::kRcpt},         {"DATA", Verb::kData}, {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},         {"NOOP", Verb::kNoop}, {"QUIT", Verb::kQuit},
    {"VRFY", Verb::kVrfy},         {"EXPN", Verb::kExpn}, {"HELP", Verb::kHelp},
    {"STARTTLS", Verb::kStartTls}, {"AUTH", Verb::kAuth},
};

bool IsAlpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsLetDig(unsigned char c) { return IsAlpha(c) || IsDigit(c); }
bool IsHex(unsigned char c) { return IsDigit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

// atext of RFC 5322 §3.2.3 (used by RFC 5321 Atom), plus UTF8-non-ascii when allowed (RFC 6531).
bool IsAtext(unsigned char c) {
  if (IsLetDig(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return c >= 0x80;
  }
}

// Local-part = Dot-string / Quoted-string (§4.1.2).
bool IsValidLocalPart(std::string_view local) {
  if (local.empty()) return false;
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      const unsigned char c = local[i];
      if (c == '\\') {
        // quoted-pairSMTP = %d92 %d32-126
        if (i + 2 >= local.size()) return false;
        const unsigned char next = local[++i];
        if (next < 32 || next > 126) return false;
      } else if (c == '"' || (c < 32) || c == 127) {
        return false;  // qtextSMTP = %d32-33 / %d35-91 / %d93-126, UTF8-non-ascii (RFC 6531)
      }
    }
    return true;
  }
  bool atom_start = true;
  for (unsigned char c : local) {
    if (c == '.') {
      if (atom_start) return false;
      atom_start = true;
    } else if (IsAtext(c)) {
      atom_start = false;
    } else {
      return false;
    }
  }
  return !atom_start;
}

// Finds the '@' that separates local part and domain: the last one outside a quoted string.
size_t FindAt(std::string_view mailbox) {
  if (!mailbox.empty() && mailbox.front() == '"') {
    for (size_t i = 1; i < mailbox.size(); ++i) {
      if (mailbox[i] == '\\') {
        ++i;
      } else if (mailbox[i] == '"') {
        return i + 1 < mailbox.size() && mailbox[i + 1] == '@' ? i + 1 : std::string_view::npos;
      }
    }
    return std::string_view::npos;
  }
  return mailbox.find('@');
}

bool IsValidMailbox(std::string_view mailbox) {
  const size_t at = FindAt(mailbox);
  if (at == std::string_view::npos) return false;
  const std::string_view local = mailbox.substr(0, at);
  const std::string_view domain = mailbox.substr(at + 1);
  if (!IsValidLocalPart(local)) return false;
  if (!domain.empty() && domain.front() == '[') return IsValidAddressLiteral(domain);
  return IsValidDomain(domain, /*allow_utf8=*/true);
}

bool IsValidIpv4(std::string_view text) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t digits = 0;
    int value = 0;
    while (i < text.size() && IsDigit(text[i]) && digits < 4) {
      value = value * 10 + (text[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255) return false;
    ++parts;
    if (i == text.size()) break;
    if (text[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool IsValidIpv6(std::string_view text) {
  // IPv6-addr of §4.1.3: full, compressed ("::" once), optionally ending in an IPv4 address.
  if (text.empty() || text.size() > 45) return false;
  int groups = 0;
  bool compressed = false;
  size_t i = 0;
  if ((text.substr(0, 2) == "::")) {
    compressed = true;
    i = 2;
    if (i == text.size()) return true;
  } else if (text[0] == ':') {
    return false;
  }
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && IsHex(text[i]) && i - start < 5) ++i;
    const size_t len = i - start;
    if (i < text.size() && text[i] == '.') {
      // Trailing IPv4 part counts as two groups.
      if (!IsValidIpv4(text.substr(start))) return false;
      groups += 2;
      i = text.size();
      break;
    }
    if (len == 0 || len > 4) return false;
    ++groups;
    if (i == text.size()) break;
    if (text[i] != ':') return false;
    ++i;
    if (i < text.size() && text[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
      if (i == text.size()) break;
    } else if (i == text.size()) {
      return false;  // trailing single ':'
    }
  }
  return compressed ? groups < 8 : groups == 8;
}

// NOTIFY=NEVER or a comma-separated list of SUCCESS, FAILURE and DELAY (RFC 3461 §4.1).
bool ParseNotify(std::string_view value, uint8_t* out) {
  *out = 0;
  while (true) {
    const size_t comma = value.find(',');
    const std::string_view item = value.substr(0, comma);
    uint8_t bit;
    if (EqualsIgnoreCase(item, "NEVER")) {
      bit = kNotifyNever;
    } else if (EqualsIgnoreCase(item, "SUCCESS")) {
      bit = kNotifySuccess;
    } else if (EqualsIgnoreCase(item, "FAILURE")) {
      bit = kNotifyFailure;
    } else if (EqualsIgnoreCase(item, "DELAY")) {
      bit = kNotifyDelay;
    } else {
      return false;
    }
    if ((*out & bit) != 0) return false;
    *out |= bit;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return (*out & kNotifyNever) == 0 || *out == kNotifyNever;  // NEVER stands alone
}

// ORCPT=addr-type;xtext (RFC 3461 §4.2): addr-type an atom, the address printable once decoded.
bool ParseOrcpt(std::string_view value, std::string* out) {
  const size_t semi = value.find(';');
  if (semi == 0 || semi == std::string_view::npos || value.size() > kOrcptBytesMax) return false;
  const std::string_view type = value.substr(0, semi);
  for (unsigned char c : type) {
    if (!IsLetDig(c) && c != '-') return false;
  }
  std::string address;
  if (!DecodeXtext(value.substr(semi + 1), &address) || address.empty()) return false;
  for (unsigned char c : address) {
    if (c < 32 || c == 127) return false;  // UTF-8 stays (RFC 6533 utf-8 addr-type)
  }
  out->assign(type.data(), type.size());
  out->push_back(';');
  out->append(address);
  return true;
}

ArgError ParseRcptParam(std::string_view keyword, std::string_view value, RcptParams* rcpt) {
  if (EqualsIgnoreCase(keyword, "NOTIFY")) {
    if (rcpt->notify != 0) return ArgError::kParamDuplicate;
    return ParseNotify(value, &rcpt->notify) ? ArgError::kNone : ArgError::kParamSyntax;
  }
  if (EqualsIgnoreCase(keyword, "ORCPT")) {
    if (!rcpt->orcpt.empty()) return ArgError::kParamDuplicate;
    return ParseOrcpt(value, &rcpt->orcpt) ? ArgError::kNone : ArgError::kParamSyntax;
  }
  return ArgError::kParamUnknown;
}

ArgError ParseDsnMailParam(std::string_view keyword, std::string_view value, MailParams* mail) {
  if (EqualsIgnoreCase(keyword, "RET")) {
    if (mail->ret != DsnReturn::kUnspecified) return ArgError::kParamDuplicate;
    if (EqualsIgnoreCase(value, "FULL")) {
      mail->ret = DsnReturn::kFull;
    } else if (EqualsIgnoreCase(value, "HDRS")) {
      mail->ret = DsnReturn::kHeaders;
    } else {
      return ArgError::kParamSyntax;
    }
    return ArgError::kNone;
  }
  if (EqualsIgnoreCase(keyword, "ENVID")) {
    if (mail->envid.has_value()) return ArgError::kParamDuplicate;
    std::string decoded;
    if (value.empty() || value.size() > kEnvidBytesMax || !DecodeXtext(value, &decoded)) {
      return ArgError::kParamSyntax;
    }
    for (unsigned char c : decoded) {
      if (c < 32 || c > 126) return ArgError::kParamSyntax;  // §4.4: printable ASCII
    }
    mail->envid = std::move(decoded);
    return ArgError::kNone;
  }
  return ArgError::kParamUnknown;
}

ArgError ParseParams(std::string_view text, MailParams* mail, RcptParams* rcpt) {
  // esmtp-param = esmtp-keyword ["=" esmtp-value], separated by one or more spaces.
  while (!text.empty()) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (text.empty()) break;
    size_t end = text.find(' ');
    std::string_view param = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end);
    const size_t eq = param.find('=');
    const std::string_view keyword = param.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? param.substr(eq + 1) : std::string_view();
    if (keyword.empty() || !IsLetDig(keyword[0])) return ArgError::kParamSyntax;
    for (unsigned char c : keyword) {
      if (!IsLetDig(c) && c != '-') return ArgError::kParamSyntax;
    }
    for (unsigned char c : value) {
      // esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed by RFC 6531 §3.3.
      if (c < 33 || c == '=' || c == 127) return ArgError::kParamSyntax;
    }
    if (rcpt != nullptr) {
      if (ArgError e = ParseRcptParam(keyword, value, rcpt); e != ArgError::kNone) return e;
      continue;
    }
    if (EqualsIgnoreCase(keyword, "SIZE")) {
      if (mail->size_bytes.has_value()) return ArgError::kParamDuplicate;
      if (value.empty() || value.size() > 20) return ArgError::kParamSyntax;
      uint64_t size = 0;
      for (unsigned char c : value) {
        if (!IsDigit(c)) return ArgError::kParamSyntax;
        const uint64_t next = size * 10 + (c - '0');
        if (next / 10 != size) return ArgError::kParamSyntax;  // overflow
        size = next;
      }
      mail->size_bytes = size;
    } else if (EqualsIgnoreCase(keyword, "BODY")) {
      if (mail->body != BodyType::kUnspecified) return ArgError::kParamDuplicate;
      if (EqualsIgnoreCase(value, "7BIT")) {
        mail->body = BodyType::k7Bit;
      } else if (EqualsIgnoreCase(value, "8BITMIME")) {
        mail->body = BodyType::k8BitMime;
      } else {
        return ArgError::kParamUnknown;  // BINARYMIME is not advertised (RFC 3030 §3)
      }
    } else if (EqualsIgnoreCase(keyword, "SMTPUTF8")) {
      if (has_value) return ArgError::kParamSyntax;  // RFC 6531 §3.4: no value
      if (mail->smtputf8) return ArgError::kParamDuplicate;
      mail->smtputf8 = true;
    } else if (EqualsIgnoreCase(keyword, "REQUIRETLS")) {
      if (has_value) return ArgError::kParamSyntax;  // RFC 8689 §4.1: no value
      if (mail->requiretls) return ArgError::kParamDuplicate;
      mail->requiretls = true;
    } else if (EqualsIgnoreCase(keyword, "AUTH")) {
      if (mail->auth.has_value()) return ArgError::kParamDuplicate;
      std::string decoded;
      if (value.empty() || !DecodeXtext(value, &decoded)) return ArgError::kParamSyntax;
      mail->auth = std::move(decoded);
    } else if (EqualsIgnoreCase(keyword, "XCAMPAIGN")) {
      if (mail->campaign.has_value()) return ArgError::kParamDuplicate;
      std::string decoded;
      if (value.empty() || !DecodeXtext(value, &decoded) || !IsValidLabel(decoded)) {
        return ArgError::kParamSyntax;
      }
      mail->campaign = std::move(decoded);
    } else if (ArgError e = ParseDsnMailParam(keyword, value, mail); e != ArgError::kNone) {
      return e;
    }
  }
  return ArgError::kNone;
}

// Splits "<path> params" after the "FROM:"/"TO:" prefix.
ArgError SplitPathAndParams(std::string_view argument, std::string_view prefix,
                            std::string_view* path, std::string_view* params) {
  if (argument.size() < prefix.size() ||
      !EqualsIgnoreCase(argument.substr(0, prefix.size()), prefix)) {
    return ArgError::kSyntax;
  }
  argument.remove_prefix(prefix.size());
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  if (argument.empty() || argument.front() != '<') return ArgError::kSyntax;
  // The path ends at the first '>' outside a quoted local part.
  bool quoted = false;
  size_t end = std::string_view::npos;
  for (size_t i = 1; i < argument.size(); ++i) {
    const char c = argument[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      end = i;
      break;
    }
  }
  if (end == std::string_view::npos) return ArgError::kPathSyntax;
  *path = argument.substr(0, end + 1);
  *params = argument.substr(end + 1);
  if (!params->empty() && params->front() != ' ') return ArgError::kSyntax;
  return ArgError::kNone;
}

}  // namespace

CommandLine ParseCommandLine(std::string_view line) {
  CommandLine result;
  const size_t space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  for (const VerbName& v : kVerbs) {
    if (EqualsIgnoreCase(verb, v.name)) {
      result.verb = v.verb;
      break;
    }
  }
  if (space != std::string_view::npos) {
    std::string_view arg = line.substr(space + 1);
    while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
    while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
    result.argument = arg;
  }
  return result;
}

bool IsValidDomain(std::string_view domain, bool allow_utf8) {
  // sub-domain = Let-dig [Ldh-str] (§4.1.2); U-label per RFC 6531 §3.3.
  if (domain.empty() || domain.size() > kDomainBytesMax) return false;
  size_t label_len = 0;
  unsigned char prev = '.';
  for (unsigned char c : domain) {
    if (c == '.') {
      if (label_len == 0 || prev == '-' || label_len > 63) return false;
      label_len = 0;
    } else if (IsLetDig(c) || (allow_utf8 && c >= 0x80)) {
      ++label_len;
    } else if (c == '-') {
      if (label_len == 0) return false;
      ++label_len;
    } else {
      return false;
    }
    prev = c;
  }
  if (label_len == 0 || prev == '-' || label_len > 63) return false;
  return !allow_utf8 || IsValidUtf8(domain);
}

bool IsValidAddressLiteral(std::string_view literal) {
  if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') return false;
  const std::string_view inner = literal.substr(1, literal.size() - 2);
  if (IsDigit(inner[0])) return IsValidIpv4(inner);
  if (inner.size() > 5 && EqualsIgnoreCase(inner.substr(0, 5), "IPv6:")) {
    return IsValidIpv6(inner.substr(5));
  }
  // General-address-literal = Standardized-tag ":" 1*dcontent (dcontent = %d33-90 / %d94-126).
  const size_t colon = inner.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == inner.size()) return false;
  for (size_t i = 0; i < colon; ++i) {
    if (!IsLetDig(inner[i]) && inner[i] != '-') return false;
  }
  for (size_t i = colon + 1; i < inner.size(); ++i) {
    const unsigned char c = inner[i];
    if (c < 33 || c > 126 || (c >= 91 && c <= 93)) return false;
  }
  return true;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char c = text[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = text[i + k];
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

ArgError ParsePath(std::string_view text, bool allow_null, Path* out) {
  if (text.size() < 2 || text.front() != '<' || text.back() != '>') return ArgError::kPathSyntax;
  if (text.size() > kPathBytesMax + 2) return ArgError::kPathTooLong;
  std::string_view inner = text.substr(1, text.size() - 2);
  if (inner.empty()) {
    if (!allow_null) return ArgError::kNullNotAllowed;
    out->address.clear();
    out->non_ascii = false;
    return ArgError::kNone;
  }
  // A-d-l = At-domain *( "," At-domain ) ":" — accepted and ignored (§4.1.1.3, Appendix C).
  if (inner.front() == '@') {
    const size_t colon = inner.find(':');
    if (colon == std::string_view::npos) return ArgError::kPathSyntax;
    std::string_view adl = inner.substr(0, colon);
    while (!adl.empty()) {
      const size_t comma = adl.find(',');
      const std::string_view at_domain = adl.substr(0, comma);
      if (at_domain.size() < 2 || at_domain.front() != '@' ||
          !IsValidDomain(at_domain.substr(1), /*allow_utf8=*/true)) {
        return ArgError::kPathSyntax;
      }
      adl.remove_prefix(comma == std::string_view::npos ? adl.size() : comma + 1);
      if (comma != std::string_view::npos && adl.empty()) return ArgError::kPathSyntax;
    }
    inner.remove_prefix(colon + 1);
  }
  const size_t at = FindAt(inner);
  if (at != std::string_view::npos && at > kLocalPartBytesMax) return ArgError::kPathTooLong;
  if (!IsValidMailbox(inner)) {
    // "Postmaster" without a domain is a valid RCPT (§4.1.1.3); the caller decides.
    if (!EqualsIgnoreCase(inner, "postmaster")) return ArgError::kPathSyntax;
  }
  bool non_ascii = false;
  for (unsigned char c : inner) non_ascii |= c >= 0x80;
  if (non_ascii && !IsValidUtf8(inner)) return ArgError::kPathSyntax;
  out->address.assign(inner.data(), inner.size());
  out->non_ascii = non_ascii;
  return ArgError::kNone;
}

bool IsValidLabel(std::string_view name) {
  if (name.empty() || name.size() > kLabelBytesMax) return false;
  for (unsigned char c : name) {
    if (!IsLetDig(c) &&
        std::string_view("-_.+@:/ ").find(static_cast<char>(c)) == std::string_view::npos) {
      return false;
    }
  }
  return name.front() != ' ' && name.back() != ' ';
}

ArgError ParseMailArgument(std::string_view argument, MailCommand* out) {
  std::string_view path, params;
  ArgError error = SplitPathAndParams(argument, "FROM:", &path, &params);
  if (error != ArgError::kNone) return error;
  *out = MailCommand();
  error = ParsePath(path, /*allow_null=*/true, &out->path);
  if (error != ArgError::kNone) return error;
  if (EqualsIgnoreCase(out->path.address, "postmaster")) return ArgError::kPathSyntax;
  return ParseParams(params, &out->params, nullptr);
}

ArgError ParseRcptArgument(std::string_view argument, RcptCommand* out) {
  std::string_view path, params;
  ArgError error = SplitPathAndParams(argument, "TO:", &path, &params);
  if (error != ArgError::kNone) return error;
  *out = RcptCommand();
  error = ParsePath(path, /*allow_null=*/false, &out->path);
  if (error != ArgError::kNone) return error;
  return ParseParams(params, nullptr, &out->params);
}

bool ParseBdatArgument(std::string_view argument, uint64_t* chunk_bytes, bool* last) {
  // bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF; chunk-size = 1*DIGIT (RFC 3030 §2).
  const size_t space = argument.find(' ');
  const std::string_view digits = argument.substr(0, space);
  if (digits.empty() || digits.size() > 19) return false;
  uint64_t value = 0;
  for (unsigned char c : digits) {
    if (!IsDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  *last = false;
  if (space != std::string_view::npos) {
    std::string_view rest = argument.substr(space + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (!EqualsIgnoreCase(rest, "LAST")) return false;
    *last = true;
  }
  *chunk_bytes = value;
  return true;
}

bool IsValidHeloArgument(std::string_view argument) {
  if (argument.empty()) return false;
  if (argument.front() == '[') return IsValidAddressLiteral(argument);
  // Be liberal with the name itself (RFC 5321 §4.1.4: no rejection because of a mismatch), but
  // refuse anything that is not a domain-like token.
  std::string_view name = argument;
  if (name.back() == '.') name.remove_suffix(1);
  return IsValidDomain(name, /*allow_utf8=*/true);
}

std::string EncodeXtext(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 33 || c > 126 || c == '+' || c == '=') {
      out.push_back('+');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

bool DecodeXtext(std::string_view text, std::string* out) {
  // xtext = *( xchar / hexchar ), xchar = %d33-42 / %d44-60 / %d62-126, hexchar = "+" 2HEXUPPER.
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = text[i];
    if (c == '+') {
      if (i + 2 >= text.size()) return false;
      const unsigned char h = text[i + 1], l = text[i + 2];
      if (!IsHex(h) || !IsHex(l)) return false;
      auto nibble = [](unsigned char x) { return IsDigit(x) ? x - '0' : (x | 0x20) - 'a' + 10; };
      out->push_back(static_cast<char>(nibble(h) << 4 | nibble(l)));
      i += 2;
    } else if (c < 33 || c > 126 || c == '=') {
      return false;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  return true;
}

}  // namespace relay::smtp
