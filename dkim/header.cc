#include "dkim/header.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dkim {
namespace {

inline bool IsWsp(char c) { return c == ' ' || c == '\t'; }
inline bool IsFws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view TrimFws(std::string_view s) {
  while (!s.empty() && IsFws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsFws(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 5322 §3.6.8: ftext is printable US-ASCII except colon.
inline bool IsFieldNameChar(char c) { return c >= 33 && c <= 126 && c != ':'; }

}  // namespace

absl::StatusOr<std::vector<HeaderField>> ParseHeaderBlock(std::string_view block) {
  std::vector<HeaderField> fields;
  if (block.size() > kHeaderBlockBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("header block of ", block.size(), " bytes exceeds ", kHeaderBlockBytesMax));
  }
  size_t pos = 0;
  while (pos < block.size()) {
    size_t start = pos;
    // A field is its first line plus every following line that starts with WSP (folding).
    size_t end = start;
    do {
      size_t lf = block.find('\n', end);
      if (lf == std::string_view::npos) {
        return absl::InvalidArgumentError("header line without CRLF at the end of the header");
      }
      if (lf == end || block[lf - 1] != '\r') {
        return absl::InvalidArgumentError("bare LF in header (line endings must be CRLF)");
      }
      if (block.substr(end, lf - 1 - end).find('\r') != std::string_view::npos) {
        return absl::InvalidArgumentError("bare CR in header");
      }
      end = lf + 1;
    } while (end < block.size() && IsWsp(block[end]));
    std::string_view raw = block.substr(start, end - start);
    if (raw.find('\0') != std::string_view::npos) {
      return absl::InvalidArgumentError("NUL byte in header");
    }
    size_t colon = raw.find(':');
    size_t first_eol = raw.find("\r\n");
    if (colon == std::string_view::npos || colon > first_eol) {
      if (IsWsp(raw[0])) return absl::InvalidArgumentError("header starts with a continuation");
      return absl::InvalidArgumentError("header line without a colon");
    }
    std::string_view name = raw.substr(0, colon);
    while (!name.empty() && IsWsp(name.back())) name.remove_suffix(1);
    if (name.empty()) return absl::InvalidArgumentError("header field with an empty name");
    for (char ch : name) {
      if (!IsFieldNameChar(ch)) return absl::InvalidArgumentError("invalid header field name");
    }
    if (fields.size() == kHeaderFieldCountMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than ", kHeaderFieldCountMax, " header fields"));
    }
    fields.push_back(HeaderField{name, raw});
    pos = end;
  }
  return fields;
}

bool HeaderNameEquals(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.data(), a.size()),
                                absl::string_view(b.data(), b.size()));
}

std::vector<const HeaderField*> SelectHeaders(const std::vector<HeaderField>& fields,
                                              const std::vector<std::string_view>& names) {
  std::vector<const HeaderField*> out;
  out.reserve(names.size());
  std::vector<bool> used(fields.size(), false);
  for (std::string_view name : names) {
    const HeaderField* pick = nullptr;
    for (size_t i = fields.size(); i-- > 0;) {
      if (!used[i] && HeaderNameEquals(fields[i].name, name)) {
        used[i] = true;
        pick = &fields[i];
        break;
      }
    }
    out.push_back(pick);
  }
  return out;
}

absl::StatusOr<std::string> FromAddress(std::string_view raw) {
  size_t colon = raw.find(':');
  std::string_view value = colon == std::string_view::npos ? raw : raw.substr(colon + 1);
  // Drop comments and quoted strings so that '@', '<' and ',' inside them do not count.
  std::string text;
  text.reserve(value.size());
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    char ch = value[i];
    if (ch == '\\' && (quoted || depth > 0)) {
      ++i;
      continue;
    }
    if (quoted) {
      if (ch == '"') quoted = false;
      continue;
    }
    if (ch == '(') {
      ++depth;
      continue;
    }
    if (ch == ')' && depth > 0) {
      --depth;
      continue;
    }
    if (depth > 0) continue;
    if (ch == '"') {
      quoted = true;
      continue;
    }
    text.push_back(ch);
  }
  std::string_view v = text;
  if (v.find(',') != std::string_view::npos) {
    return absl::InvalidArgumentError("From has several mailboxes");
  }
  size_t lt = v.find('<');
  if (lt != std::string_view::npos) {
    size_t gt = v.find('>', lt);
    if (gt == std::string_view::npos) return absl::InvalidArgumentError("From has no closing >");
    v = v.substr(lt + 1, gt - lt - 1);
  }
  std::string address;
  for (char ch : v) {
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') address.push_back(ch);
  }
  return address;
}

absl::StatusOr<std::string> FromDomain(std::string_view raw) {
  absl::StatusOr<std::string> parsed = FromAddress(raw);
  if (!parsed.ok()) return parsed.status();
  const std::string& address = *parsed;
  size_t at = address.rfind('@');
  if (at == std::string::npos) return absl::InvalidArgumentError("From has no domain");
  std::string_view domain = std::string_view(address).substr(at + 1);
  std::string out;
  for (char ch : domain) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(ch)));
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  if (out.empty()) return absl::InvalidArgumentError("From has an empty domain");
  for (char ch : out) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' ||
          static_cast<unsigned char>(ch) >= 0x80)) {
      return absl::InvalidArgumentError("From domain has invalid characters");
    }
  }
  return out;
}

std::string StripBValue(std::string_view field) {
  size_t pos = field.find(':') + 1;
  while (pos < field.size()) {
    size_t semi = field.find(';', pos);
    size_t end = semi == std::string_view::npos ? field.size() : semi;
    std::string_view spec = field.substr(pos, end - pos);
    if (size_t eq = spec.find('=');
        eq != std::string_view::npos && TrimFws(spec.substr(0, eq)) == "b") {
      std::string out(field.substr(0, pos + eq + 1));
      if (semi != std::string_view::npos) {
        out.append(field.substr(semi));
      } else if (field.size() >= 2 && field.substr(field.size() - 2) == "\r\n") {
        out.append("\r\n");
      }
      return out;
    }
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return std::string(field);
}

}  // namespace dkim
