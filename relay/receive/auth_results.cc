#include "relay/receive/auth_results.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dkim/header.h"

namespace relay::receive {
namespace {

// RFC 2045 §5.1 tspecials.
bool IsTspecial(char c) {
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=':
      return true;
    default:
      return false;
  }
}

bool IsTokenChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && !IsTspecial(c);
}

// RFC 5322 §3.2.3 atext.
bool IsAtext(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool IsDotAtom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.' ? prev == '.' : !IsAtext(c)) return false;
    prev = c;
  }
  return true;
}

// RFC 8601 §2.2 domain-name: labels of letters, digits and hyphens (A-labels for IDNs).
bool IsDomainName(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || (c == '.' && prev != '.');
    if (!ok) return false;
    prev = c;
  }
  return true;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Drops CR, LF and other control bytes so that a value cannot end the field or add one.
std::string Sanitize(std::string_view s, size_t bytes_max) {
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    if (out.size() == bytes_max) break;
    out.push_back(c);
  }
  return out;
}

// RFC 5322 §3.2.4 quoted-string without CFWS: DQUOTE *(qtext / quoted-pair) DQUOTE.
bool IsQuotedString(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '"') return false;
    if (s[i] == '\\' && ++i + 1 >= s.size()) return false;
  }
  return true;
}

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Lays tokens out on lines that start with a tab, breaking before a token that would pass the
// width limit.
class Folder {
 public:
  Folder(std::string* out, size_t column) : out_(out), column_(column) {}
  void NewLine() {
    out_->append("\r\n\t");
    column_ = 1;
  }
  void Add(std::string_view token) {
    if (column_ > 1) {
      if (column_ + 1 + token.size() > kAuthResultsWidthMax) {
        out_->append("\r\n\t");
        column_ = 1;
      } else {
        out_->push_back(' ');
        ++column_;
      }
    }
    out_->append(token);
    column_ += token.size();
  }
  void Append(std::string_view s) {
    out_->append(s);
    column_ += s.size();
  }

 private:
  std::string* out_;
  size_t column_;
};

std::string Property(std::string_view name, std::string_view value) {
  return absl::StrCat(std::string(name), "=", AuthResultsValue(value));
}

}  // namespace

const char* SpfVerdictName(SpfVerdict v) {
  switch (v) {
    case SpfVerdict::kNone:
      return "none";
    case SpfVerdict::kNeutral:
      return "neutral";
    case SpfVerdict::kPass:
      return "pass";
    case SpfVerdict::kFail:
      return "fail";
    case SpfVerdict::kSoftFail:
      return "softfail";
    case SpfVerdict::kTempError:
      return "temperror";
    case SpfVerdict::kPermError:
      return "permerror";
  }
  return "permerror";
}

const char* DkimVerdictName(DkimVerdict v) {
  switch (v) {
    case DkimVerdict::kNone:
      return "none";
    case DkimVerdict::kPass:
      return "pass";
    case DkimVerdict::kFail:
      return "fail";
    case DkimVerdict::kPolicy:
      return "policy";
    case DkimVerdict::kNeutral:
      return "neutral";
    case DkimVerdict::kTempError:
      return "temperror";
    case DkimVerdict::kPermError:
      return "permerror";
  }
  return "permerror";
}

const char* ArcVerdictName(ArcVerdict v) {
  switch (v) {
    case ArcVerdict::kNone:
      return "none";
    case ArcVerdict::kPass:
      return "pass";
    case ArcVerdict::kFail:
      return "fail";
  }
  return "fail";
}

const char* DmarcVerdictName(DmarcVerdict v) {
  switch (v) {
    case DmarcVerdict::kNone:
      return "none";
    case DmarcVerdict::kPass:
      return "pass";
    case DmarcVerdict::kFail:
      return "fail";
    case DmarcVerdict::kTempError:
      return "temperror";
    case DmarcVerdict::kPermError:
      return "permerror";
  }
  return "permerror";
}

std::string AuthResultsValue(std::string_view raw) {
  std::string value = Sanitize(raw, raw.size());
  if (IsToken(value)) return value;
  // RFC 8601 §2.2 pvalue: [ [ local-part ] "@" ] domain-name, the local part a dot-atom or a
  // quoted-string (RFC 5322 §3.4.1): an address is written as an address, its local part quoted
  // when it has to be, which is also the form SMTP carried it in (RFC 5321 §4.1.2).
  if (size_t at = value.rfind('@'); at != std::string::npos) {
    std::string_view local = std::string_view(value).substr(0, at);
    std::string_view domain = std::string_view(value).substr(at + 1);
    if (IsDomainName(domain)) {
      if (local.empty() || IsDotAtom(local) || IsQuotedString(local)) return value;
      return absl::StrCat(Quote(local), "@", std::string(domain));
    }
  }
  return Quote(value);
}

std::string AuthResultsPayload(const AuthResults& results) {
  std::string out;
  out.reserve(256);
  Folder f(&out, sizeof("Authentication-Results: ") - 1);
  f.Append(AuthResultsValue(results.authserv_id));
  f.Append(";");
  bool any = false;
  auto begin_result = [&](std::string_view method, std::string_view result) {
    if (any) f.Append(";");
    any = true;
    f.NewLine();
    f.Add(absl::StrCat(std::string(method), "=", std::string(result)));
  };
  if (results.spf.has_value()) {
    const SpfAuth& spf = *results.spf;
    begin_result("spf", SpfVerdictName(spf.result));
    if (!spf.mailfrom.empty()) f.Add(Property("smtp.mailfrom", spf.mailfrom));
    if (!spf.helo.empty()) f.Add(Property("smtp.helo", spf.helo));
  }
  if (results.dkim_checked && results.dkim.empty()) begin_result("dkim", "none");
  for (const DkimAuth& d : results.dkim) {
    begin_result("dkim", DkimVerdictName(d.result));
    if (!d.reason.empty() && d.result != DkimVerdict::kPass) {
      f.Add(absl::StrCat("reason=", Quote(Sanitize(d.reason, kAuthResultsReasonBytesMax))));
    }
    if (!d.domain.empty()) f.Add(Property("header.d", d.domain));
    if (!d.selector.empty()) f.Add(Property("header.s", d.selector));
    if (!d.signature_prefix.empty()) {
      f.Add(Property("header.b",
                     std::string_view(d.signature_prefix).substr(0, kSignaturePrefixCharsMax)));
    }
  }
  if (results.dmarc.has_value()) {
    const DmarcAuth& d = *results.dmarc;
    begin_result("dmarc", DmarcVerdictName(d.result));
    if (!d.policy.empty() && d.result == DmarcVerdict::kFail) {
      // A comment (RFC 8601 §2.2 allows CFWS between the result and its properties).
      f.Add(absl::StrCat("(p=", Sanitize(d.policy, kAuthResultsReasonBytesMax)));
      f.Add(absl::StrCat("dis=", Sanitize(d.disposition, kAuthResultsReasonBytesMax), ")"));
    }
    if (!d.header_from.empty()) f.Add(Property("header.from", d.header_from));
  }
  if (results.arc.has_value()) begin_result("arc", ArcVerdictName(*results.arc));
  // RFC 8601 §2.2: "none" when no method was applied.
  if (!any) f.Add("none");
  return out;
}

std::string BuildAuthResultsHeader(const AuthResults& results) {
  return absl::StrCat("Authentication-Results: ", AuthResultsPayload(results), "\r\n");
}

namespace {

// The authserv-id of an Authentication-Results field ("Name: value..." with its folding): the
// first value after the colon, past CFWS (RFC 5322 §3.2.2; comments nest). A quoted-string is
// returned with its quotes and escapes removed.
std::string AuthservId(std::string_view raw) {
  size_t i = raw.find(':');
  if (i == std::string_view::npos) return "";
  ++i;
  int depth = 0;
  for (; i < raw.size(); ++i) {
    char c = raw[i];
    if (depth > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++depth;
      } else if (c == ')') {
        --depth;
      }
    } else if (c == '(') {
      depth = 1;
    } else if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
      break;
    }
  }
  std::string id;
  if (i < raw.size() && raw[i] == '"') {
    for (++i; i < raw.size() && raw[i] != '"'; ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      id.push_back(raw[i]);
    }
    return id;
  }
  for (; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == ';' || c == '(' || c == ' ' || c == '\t' || c == '\r' || c == '\n') break;
    id.push_back(c);
  }
  return id;
}

}  // namespace

bool ClaimsAuthservId(const dkim::HeaderField& field, std::string_view authserv_id) {
  return dkim::HeaderNameEquals(field.name, "Authentication-Results") &&
         absl::EqualsIgnoreCase(AuthservId(field.raw),
                                absl::string_view(authserv_id.data(), authserv_id.size()));
}

std::optional<std::string> WithoutOwnAuthResults(std::string_view message,
                                                 std::string_view authserv_id) {
  size_t end = message.find("\r\n\r\n");
  std::string_view block = end == std::string_view::npos ? message : message.substr(0, end + 2);
  absl::StatusOr<std::vector<dkim::HeaderField>> fields = dkim::ParseHeaderBlock(block);
  if (!fields.ok()) return std::nullopt;
  return WithoutOwnAuthResults(message, *fields, authserv_id);
}

std::optional<std::string> WithoutOwnAuthResults(std::string_view message,
                                                 const std::vector<dkim::HeaderField>& fields,
                                                 std::string_view authserv_id) {
  std::optional<std::string> kept;
  size_t copied_to = 0;  // message bytes before this offset are in `kept` or dropped
  for (const dkim::HeaderField& f : fields) {
    if (!ClaimsAuthservId(f, authserv_id)) continue;
    if (!kept) {
      kept.emplace();
      kept->reserve(message.size());
    }
    size_t at = static_cast<size_t>(f.raw.data() - message.data());
    kept->append(message.substr(copied_to, at - copied_to));
    copied_to = at + f.raw.size();
  }
  if (kept) kept->append(message.substr(copied_to));
  return kept;
}

}  // namespace relay::receive
