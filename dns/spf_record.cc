#include "dns/spf_record.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dns::spf {
namespace {

constexpr std::string_view kVersion = "v=spf1";
// A DIGIT transformer larger than any name has labels just keeps everything.
constexpr int kTransformerDigitsMax = 128;
constexpr size_t kLabelBytesMax = 63;

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(Absl(s)); }

absl::Status Invalid(std::string_view what, std::string_view term) {
  return absl::InvalidArgumentError(absl::StrCat(Absl(what), " '", Absl(term), "'"));
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }

// RFC 7208 §7.1: macro-literal = %x21-24 / %x26-7E.
bool IsMacroLiteral(char c) { return c >= 0x21 && c <= 0x7e && c != '%'; }
bool IsDelimiter(char c) { return std::strchr(".-+,/_=", c) != nullptr && c != '\0'; }

// One piece of a macro-string.
struct Token {
  enum Kind { kLiteral, kExpand, kPercent, kSpace, kEncodedSpace } kind = kLiteral;
  std::string literal;  // kLiteral
  char letter = 0;      // kExpand, as written (upper case asks for URL escaping)
  int digits = 0;       // 0: all parts
  bool reverse = false;
  std::string delimiters;
};

// Splits a macro-string into tokens (§7.1), rejecting what the grammar does not allow.
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view s, bool explanation) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (c != '%') {
      if (!IsMacroLiteral(c) && !(explanation && c == ' ')) {
        return absl::InvalidArgumentError(absl::StrCat("invalid character 0x",
                                                       absl::Hex(static_cast<unsigned char>(c)),
                                                       " in '", Absl(s), "'"));
      }
      if (out.empty() || out.back().kind != Token::kLiteral) out.push_back(Token{});
      out.back().literal.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= s.size()) return Invalid("macro string ends with a lone '%' in", s);
    char n = s[i + 1];
    Token t;
    if (n == '%') {
      t.kind = Token::kPercent;
      i += 2;
    } else if (n == '_') {
      t.kind = Token::kSpace;
      i += 2;
    } else if (n == '-') {
      t.kind = Token::kEncodedSpace;
      i += 2;
    } else if (n == '{') {
      size_t close = s.find('}', i + 2);
      if (close == std::string_view::npos) return Invalid("unterminated macro in", s);
      std::string_view body = s.substr(i + 2, close - i - 2);
      if (body.empty()) return Invalid("empty macro in", s);
      t.kind = Token::kExpand;
      t.letter = body[0];
      if (std::strchr("slodiphcrtvSLODIPHCRTV", t.letter) == nullptr) {
        return Invalid("unknown macro letter in", s.substr(i, close - i + 1));
      }
      char lower = absl::ascii_tolower(t.letter);
      if (!explanation && (lower == 'c' || lower == 'r' || lower == 't')) {
        // §7.3: c, r and t are only allowed in "exp" text.
        return Invalid("macro only allowed in explanations:", s.substr(i, close - i + 1));
      }
      size_t j = 1;
      bool have_digits = false;
      int digits = 0;
      while (j < body.size() && IsDigit(body[j])) {
        have_digits = true;
        digits = std::min(digits * 10 + (body[j] - '0'), kTransformerDigitsMax + 1);
        ++j;
      }
      if (have_digits && digits == 0) {
        return Invalid("zero DIGIT transformer in", s.substr(i, close - i + 1));  // §7.3
      }
      t.digits = std::min(digits, kTransformerDigitsMax);
      if (j < body.size() && (body[j] == 'r' || body[j] == 'R')) {
        t.reverse = true;
        ++j;
      }
      for (; j < body.size(); ++j) {
        if (!IsDelimiter(body[j])) return Invalid("invalid macro", s.substr(i, close - i + 1));
        t.delimiters.push_back(body[j]);
      }
      i = close + 1;
    } else {
      return Invalid("invalid macro", s.substr(i, 2));
    }
    out.push_back(std::move(t));
  }
  return out;
}

// RFC 3986 unreserved characters stay; everything else is %XX (§7.3, upper-case letters).
void AppendUrlEscaped(std::string_view s, std::string* out) {
  static constexpr char kHexUpper[] = "0123456789ABCDEF";
  for (char c : s) {
    if (IsAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out->push_back('%');
      out->push_back(kHexUpper[u >> 4]);
      out->push_back(kHexUpper[u & 0xf]);
    }
  }
}

// The value a macro letter stands for: a view of the context, or of `scratch` for the values
// made here (i, v, t). No copy: a record of many macros of a long sender costs its output only.
std::string_view MacroValue(char letter, const MacroContext& c, std::string* scratch) {
  switch (absl::ascii_tolower(letter)) {
    case 's':
      return c.sender;
    case 'l':
      return c.local_part;
    case 'o':
      return c.sender_domain;
    case 'd':
      return c.domain;
    case 'i':
      *scratch = DottedIp(c.address, c.ipv6);
      return *scratch;
    case 'p':
      return c.validated_name;
    case 'h':
      return c.helo;
    case 'v':
      return c.ipv6 ? "ip6" : "in-addr";
    case 'c':
      return c.ip;
    case 'r':
      return c.receiver;
    case 't':
      *scratch = absl::StrCat(c.timestamp_s);
      return *scratch;
  }
  return "";
}

// §7.3: split on the delimiters, optionally reverse, keep the rightmost `digits` parts, join
// with dots; appended to `out`, URL-escaped when `escape`. Only the parts kept are visited (from
// the end, or from the start when reversed), so the work is that of what is appended.
void AppendTransformed(std::string_view value, const Token& t, bool escape, std::string* out) {
  auto append = [&](std::string_view piece) {
    if (escape) {
      AppendUrlEscaped(piece, out);
    } else {
      out->append(piece.data(), piece.size());
    }
  };
  if (t.delimiters.empty() && !t.reverse && t.digits == 0) {  // the common case
    append(value);
    return;
  }
  const std::string_view delimiters =
      t.delimiters.empty() ? std::string_view(".") : std::string_view(t.delimiters);
  const bool all = t.digits == 0;
  const size_t keep = all ? 0 : static_cast<size_t>(t.digits);
  if (!t.reverse) {
    // The last `keep` parts, in order: find where they start, then copy with '.' joins.
    size_t start = 0;
    if (!all) {
      size_t found = 0;
      for (size_t i = value.size(); i > 0; --i) {
        if (delimiters.find(value[i - 1]) != std::string_view::npos && ++found == keep) {
          start = i;
          break;
        }
      }
    }
    size_t from = start;
    for (size_t i = start; i <= value.size(); ++i) {
      if (i == value.size() || delimiters.find(value[i]) != std::string_view::npos) {
        if (from > start) append(".");
        append(value.substr(from, i - from));
        from = i + 1;
      }
    }
    return;
  }
  // Reversed: the last `keep` parts of the reversed list are the first `keep` parts of the value,
  // last first. Find where they end, then walk them backwards.
  size_t end = value.size();
  if (!all) {
    size_t found = 0;
    for (size_t i = 0; i < value.size(); ++i) {
      if (delimiters.find(value[i]) != std::string_view::npos && ++found == keep) {
        end = i;
        break;
      }
    }
  }
  size_t to = end;
  bool first = true;
  for (size_t i = end + 1; i-- > 0;) {
    if (i == 0 || delimiters.find(value[i - 1]) != std::string_view::npos) {
      if (!first) append(".");
      first = false;
      append(value.substr(i, to - i));
      if (i == 0) break;
      to = i - 1;
    }
  }
}

// §4.8: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool IsTopLabel(std::string_view label) {
  if (label.empty()) return false;
  bool alpha = false;
  bool hyphen = false;
  for (char c : label) {
    if (c == '-') {
      hyphen = true;
    } else if (IsAlpha(c)) {
      alpha = true;
    } else if (!IsDigit(c)) {
      return false;
    }
  }
  if (hyphen) return IsAlnum(label.front()) && IsAlnum(label.back());
  return alpha;
}

// §4.8: domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) /
// macro-expand.
absl::Status ValidateDomainSpec(std::string_view spec, std::string_view term) {
  if (spec.empty()) return Invalid("empty domain-spec in", term);
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(spec, false);
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokens.status().message(), " in '", Absl(term), "'"));
  }
  if (tokens->back().kind != Token::kLiteral) return absl::OkStatus();
  std::string_view tail = tokens->back().literal;
  if (absl::EndsWith(Absl(tail), ".")) tail.remove_suffix(1);
  size_t dot = tail.rfind('.');
  if (dot == std::string_view::npos) {
    // The last literal has no dot: valid only if a macro precedes it and the whole literal is
    // a toplabel after a '.' inside the previous literal — which cannot be, so it is invalid.
    return Invalid("domain-spec does not end in '.' toplabel or a macro in", term);
  }
  if (!IsTopLabel(tail.substr(dot + 1))) return Invalid("invalid top label in", term);
  return absl::OkStatus();
}

// "/digits" with no leading zero, at most `max`.
bool ParseCidr(std::string_view digits, int max, int* out) {
  if (digits.empty() || digits.size() > 3) return false;
  if (digits.size() > 1 && digits[0] == '0') return false;
  int v = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// Strips a trailing "/N" from `s` when it is there; false on a malformed length.
bool StripCidr(std::string_view* s, std::string_view marker, int max, int* out, bool* seen) {
  size_t slash = s->rfind(marker);
  if (slash == std::string_view::npos) return true;
  std::string_view digits = s->substr(slash + marker.size());
  if (digits.find('/') != std::string_view::npos) return true;  // not a trailing length
  if (marker == "/" && slash > 0 && (*s)[slash - 1] == '/') return true;
  *seen = true;
  if (!ParseCidr(digits, max, out)) return false;
  *s = s->substr(0, slash);
  return true;
}

absl::Status ParseDirective(std::string_view term, Record* record) {
  Mechanism m;
  m.text = std::string(term);
  std::string_view rest = term;
  if (!rest.empty() && std::strchr("+-~?", rest[0]) != nullptr) {
    m.qualifier = static_cast<Qualifier>(rest[0]);
    rest.remove_prefix(1);
  }
  size_t end = rest.find_first_of(":/");
  std::string name = Lower(rest.substr(0, end));
  std::string_view args = end == std::string_view::npos ? "" : rest.substr(end);
  if (name == "all") {
    m.kind = MechanismKind::kAll;
  } else if (name == "include") {
    m.kind = MechanismKind::kInclude;
  } else if (name == "a") {
    m.kind = MechanismKind::kA;
  } else if (name == "mx") {
    m.kind = MechanismKind::kMx;
  } else if (name == "ptr") {
    m.kind = MechanismKind::kPtr;
  } else if (name == "ip4") {
    m.kind = MechanismKind::kIp4;
  } else if (name == "ip6") {
    m.kind = MechanismKind::kIp6;
  } else if (name == "exists") {
    m.kind = MechanismKind::kExists;
  } else {
    return Invalid("unknown mechanism", term);
  }
  switch (m.kind) {
    case MechanismKind::kAll:
      if (!args.empty()) return Invalid("'all' takes no argument:", term);
      record->has_all = true;
      break;
    case MechanismKind::kInclude:
    case MechanismKind::kExists:
      if (args.size() < 2 || args[0] != ':') return Invalid("missing domain in", term);
      m.domain_spec = std::string(args.substr(1));
      break;
    case MechanismKind::kPtr:
      if (!args.empty()) {
        if (args.size() < 2 || args[0] != ':') return Invalid("invalid argument in", term);
        m.domain_spec = std::string(args.substr(1));
      }
      break;
    case MechanismKind::kA:
    case MechanismKind::kMx: {
      // dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] (§5.6), read from the
      // right since a domain-spec may itself hold '/'.
      bool seen6 = false, seen4 = false;
      if (!StripCidr(&args, "//", 128, &m.cidr6_bits, &seen6)) {
        return Invalid("invalid IPv6 prefix length in", term);
      }
      if (!StripCidr(&args, "/", 32, &m.cidr4_bits, &seen4)) {
        return Invalid("invalid IPv4 prefix length in", term);
      }
      if (!args.empty()) {
        if (args.size() < 2 || args[0] != ':') return Invalid("invalid argument in", term);
        m.domain_spec = std::string(args.substr(1));
      }
      break;
    }
    case MechanismKind::kIp4:
    case MechanismKind::kIp6: {
      bool v6 = m.kind == MechanismKind::kIp6;
      if (args.size() < 2 || args[0] != ':') return Invalid("missing network in", term);
      std::string_view net = args.substr(1);
      size_t slash = net.find('/');
      if (slash != std::string_view::npos) {
        int* bits = v6 ? &m.cidr6_bits : &m.cidr4_bits;
        if (!ParseCidr(net.substr(slash + 1), v6 ? 128 : 32, bits)) {
          return Invalid("invalid prefix length in", term);
        }
        net = net.substr(0, slash);
      }
      std::string text(net);
      unsigned char buf[16] = {};
      if (inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), buf) != 1) {
        return Invalid(v6 ? "invalid ip6 network in" : "invalid ip4 network in", term);
      }
      std::memcpy(m.network.data(), buf, v6 ? 16 : 4);
      break;
    }
  }
  if (!m.domain_spec.empty()) {
    absl::Status s = ValidateDomainSpec(m.domain_spec, term);
    if (!s.ok()) return s;
  }
  record->mechanisms.push_back(std::move(m));
  return absl::OkStatus();
}

}  // namespace

const char* MechanismName(MechanismKind kind) {
  switch (kind) {
    case MechanismKind::kAll:
      return "all";
    case MechanismKind::kInclude:
      return "include";
    case MechanismKind::kA:
      return "a";
    case MechanismKind::kMx:
      return "mx";
    case MechanismKind::kPtr:
      return "ptr";
    case MechanismKind::kIp4:
      return "ip4";
    case MechanismKind::kIp6:
      return "ip6";
    case MechanismKind::kExists:
      return "exists";
  }
  return "?";
}

bool Mechanism::QueriesDns() const {
  return kind == MechanismKind::kInclude || kind == MechanismKind::kA ||
         kind == MechanismKind::kMx || kind == MechanismKind::kPtr ||
         kind == MechanismKind::kExists;
}

bool IsSpfRecord(std::string_view txt) {
  if (txt.size() < kVersion.size()) return false;
  if (!absl::EqualsIgnoreCase(Absl(txt.substr(0, kVersion.size())), Absl(kVersion))) return false;
  return txt.size() == kVersion.size() || txt[kVersion.size()] == ' ';
}

absl::StatusOr<Record> ParseRecord(std::string_view txt) {
  if (!IsSpfRecord(txt)) return absl::InvalidArgumentError("not a v=spf1 record");
  Record record;
  std::vector<absl::string_view> terms =
      absl::StrSplit(Absl(txt.substr(kVersion.size())), ' ', absl::SkipEmpty());
  for (absl::string_view t : terms) {
    std::string_view term(t.data(), t.size());
    // §4.6.1: a modifier is name "=" macro-string, name = ALPHA *( ALPHA / DIGIT / "-" / "_" /
    // "." ); anything else is a directive.
    size_t eq = term.find('=');
    size_t first_sep = term.find_first_of(":/");
    bool is_modifier = eq != std::string_view::npos && eq > 0 && eq < first_sep &&
                       IsAlpha(term[0]) && std::all_of(term.begin(), term.begin() + eq, [](char c) {
                         return IsAlnum(c) || c == '-' || c == '_' || c == '.';
                       });
    if (!is_modifier) {
      absl::Status s = ParseDirective(term, &record);
      if (!s.ok()) return s;
      continue;
    }
    std::string name = Lower(term.substr(0, eq));
    std::string_view value = term.substr(eq + 1);
    if (name == "redirect" || name == "exp") {
      std::optional<std::string>& slot = name == "redirect" ? record.redirect : record.explanation;
      // §6: these two may appear at most once each.
      if (slot.has_value()) return Invalid(absl::StrCat("second ", name, "= modifier"), term);
      absl::Status s = ValidateDomainSpec(value, term);
      if (!s.ok()) return s;
      slot = std::string(value);
    } else {
      // §6: unknown modifiers are ignored, but must still be valid macro strings.
      absl::StatusOr<std::vector<Token>> tokens = Tokenize(value, false);
      if (!tokens.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(tokens.status().message(), " in '", Absl(term), "'"));
      }
    }
  }
  return record;
}

bool UsesPtrMacro(std::string_view macro_string) {
  return absl::StrContains(absl::AsciiStrToLower(Absl(macro_string)), "%{p");
}

std::string DottedIp(const std::array<uint8_t, 16>& address, bool ipv6) {
  if (!ipv6) return absl::StrCat(address[0], ".", address[1], ".", address[2], ".", address[3]);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i > 0) out.push_back('.');
    out.push_back(kHex[address[i] >> 4]);
    out.push_back('.');
    out.push_back(kHex[address[i] & 0xf]);
  }
  return out;
}

namespace {

// Which part of a long expansion is kept: the start (an explanation, cut at its limit) or the end
// (a domain-spec, whose labels go from the left). The whole of it can be as long as the record
// times the longest value (a client chooses the sender), so it is never held.
enum class Keep { kHead, kTail };

void AppendToken(const Token& t, const MacroContext& context, std::string* scratch,
                 std::string* out) {
  switch (t.kind) {
    case Token::kLiteral:
      out->append(t.literal);
      break;
    case Token::kPercent:
      out->push_back('%');
      break;
    case Token::kSpace:
      out->push_back(' ');
      break;
    case Token::kEncodedSpace:
      out->append("%20");
      break;
    case Token::kExpand:
      AppendTransformed(MacroValue(t.letter, context, scratch), t, absl::ascii_isupper(t.letter),
                        out);
      break;
  }
}

// Expands tokens from the kept end only until bytes_max bytes are there: the start of an
// explanation from the first token, the end of a name from the last one backwards. The work is
// the tokens visited and what they append, at most bytes_max and one token's worth.
absl::StatusOr<std::string> Expand(std::string_view macro_string, const MacroContext& context,
                                   bool explanation, Keep keep, size_t bytes_max) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(macro_string, explanation);
  if (!tokens.ok()) return tokens.status();
  std::string scratch;
  std::string out;
  if (keep == Keep::kHead) {
    for (const Token& t : *tokens) {
      AppendToken(t, context, &scratch, &out);
      if (out.size() >= bytes_max) {
        out.resize(bytes_max);
        break;
      }
    }
    return out;
  }
  std::vector<std::string> pieces;  // last token first
  size_t bytes = 0;
  for (auto t = tokens->rbegin(); t != tokens->rend() && bytes < bytes_max; ++t) {
    std::string piece;
    AppendToken(*t, context, &scratch, &piece);
    bytes += piece.size();
    if (!piece.empty()) pieces.push_back(std::move(piece));
  }
  for (auto p = pieces.rbegin(); p != pieces.rend(); ++p) out += *p;
  if (out.size() > bytes_max) out.erase(0, out.size() - bytes_max);
  return out;
}

}  // namespace

absl::StatusOr<std::string> ExpandMacros(std::string_view macro_string, const MacroContext& context,
                                         bool explanation, size_t bytes_max) {
  return Expand(macro_string, context, explanation, Keep::kHead, bytes_max);
}

absl::StatusOr<std::string> ExpandDomainSpec(std::string_view domain_spec,
                                             const MacroContext& context, size_t bytes_max) {
  // A final dot, then bytes_max bytes after the dot that ends the labels removed (§7.3): the
  // name is decided by the last bytes_max + 2 bytes of the expansion.
  absl::StatusOr<std::string> expanded =
      Expand(domain_spec, context, false, Keep::kTail, bytes_max + 2);
  if (!expanded.ok()) return expanded.status();
  std::string name = *std::move(expanded);
  if (absl::EndsWith(name, ".")) name.pop_back();
  // §7.3: when the result exceeds 253 bytes, labels are removed from the left. Found first,
  // then erased at once: erasing them one by one moved the rest of a long expansion each time.
  size_t start = 0;
  while (name.size() - start > bytes_max) {
    const size_t dot = name.find('.', start);
    if (dot == std::string::npos) {
      start = name.size();
      break;
    }
    start = dot + 1;
  }
  name.erase(0, start);
  if (name.empty()) return Invalid("empty name from", domain_spec);
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.size() > kLabelBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", name, "' from '", Absl(domain_spec), "' is not a valid domain name"));
    }
  }
  return name;
}

bool IsValidDomain(std::string_view domain) {
  if (absl::EndsWith(Absl(domain), ".")) domain.remove_suffix(1);
  if (domain.empty() || domain.size() > 253) return false;
  int labels = 0;
  for (absl::string_view label : absl::StrSplit(Absl(domain), '.')) {
    if (label.empty() || label.size() > kLabelBytesMax) return false;
    ++labels;
  }
  return labels >= 2;
}

bool ParseIp(std::string_view text, std::array<uint8_t, 16>* address, bool* ipv6) {
  std::string s(text);
  unsigned char buf[16] = {};
  address->fill(0);
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    std::memcpy(address->data(), buf, 4);
    *ipv6 = false;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(buf, kMapped, sizeof(kMapped)) == 0) {
    // §5: an IPv4-mapped IPv6 client is an IPv4 client.
    std::memcpy(address->data(), buf + 12, 4);
    *ipv6 = false;
    return true;
  }
  std::memcpy(address->data(), buf, 16);
  *ipv6 = true;
  return true;
}

bool PrefixMatches(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a.data(), b.data(), static_cast<size_t>(full)) != 0) return false;
  int rem = bits % 8;
  if (rem == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace dns::spf
