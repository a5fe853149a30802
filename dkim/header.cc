#include "dkim/header.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
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

namespace {

// A field name hashed as its lower-case form, a block at a time, without an allocation.
struct LowerCaseName {
  std::string_view name;

  template <typename H>
  friend H AbslHashValue(H state, const LowerCaseName& n) {
    char block[64];
    for (std::string_view rest = n.name; !rest.empty();) {
      const size_t len = std::min(rest.size(), sizeof(block));
      for (size_t i = 0; i < len; ++i) {
        block[i] = absl::ascii_tolower(static_cast<unsigned char>(rest[i]));
      }
      state = H::combine_contiguous(std::move(state), block, len);
      rest.remove_prefix(len);
    }
    return H::combine(std::move(state), n.name.size());
  }
};

}  // namespace

// absl::Hash is seeded per process: a stranger cannot pick names that all fall in one bucket.
size_t HeaderNameHash::operator()(std::string_view name) const {
  return absl::Hash<LowerCaseName>{}(LowerCaseName{name});
}

std::vector<const HeaderField*> SelectHeaders(const std::vector<HeaderField>& fields,
                                              const std::vector<std::string_view>& names) {
  // Per name, the bottom-most field not yet picked, and for each field the next one up with the
  // same name: one pass over the fields and one lookup per name. Looking through every field for
  // every name took seconds for an h= of a stranger's choosing (issue 13).
  constexpr size_t kNone = static_cast<size_t>(-1);
  absl::flat_hash_map<std::string_view, size_t, HeaderNameHash, HeaderNameEq> bottom;
  bottom.reserve(fields.size());
  std::vector<size_t> above(fields.size(), kNone);
  for (size_t i = 0; i < fields.size(); ++i) {
    auto [it, inserted] = bottom.try_emplace(fields[i].name, i);
    if (!inserted) {
      above[i] = it->second;
      it->second = i;
    }
  }
  std::vector<const HeaderField*> out;
  out.reserve(names.size());
  for (std::string_view name : names) {
    auto it = bottom.find(name);
    if (it == bottom.end() || it->second == kNone) {
      out.push_back(nullptr);
      continue;
    }
    out.push_back(&fields[it->second]);
    it->second = above[it->second];
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
