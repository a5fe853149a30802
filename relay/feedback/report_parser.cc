#include "relay/feedback/report_parser.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace relay::feedback {
namespace {

using Text = std::string_view;
constexpr size_t kNpos = Text::npos;

// Header fields kept per block (a message's header, a part's, one DSN block); more are ignored.
constexpr size_t kFieldsMax = 256;
// RFC 2046 §5.1.1 allows 70 characters; a longer one is not a boundary we will look for.
constexpr size_t kBoundaryBytesMax = 200;
// Content-Type and Content-Transfer-Encoding values read (parameters past this are ignored).
constexpr size_t kContentTypeBytesMax = 4096;
// Address lengths accepted as candidates: RFC 5321 §4.5.3.1 says 64 and 255; VERP local parts
// and sloppy MTAs go past 64.
constexpr size_t kLocalBytesMax = 256;
constexpr size_t kDomainBytesMax = 255;
// Lines after a bounce text's recipient line searched for its reply (Gmail puts a paragraph or
// two between them).
constexpr int kBounceLinesMax = 16;
// The start of a bounce's text searched for the markers that say it is one.
constexpr size_t kMarkerBytesMax = 64 * 1024;
// The returned message (message/rfc822, text/rfc822-headers) is read for its header only, so only
// its start is decoded: real headers stay well under this, and a longer one loses its tail.
constexpr size_t kReturnedHeaderBytesMax = 64 * 1024;

// Bytes and lines.

bool IsWsp(char c) { return c == ' ' || c == '\t'; }
// RFC 5322's white space and line ends; not absl::ascii_isspace, which also takes '\v' and '\f'.
bool IsSpace(char c) { return IsWsp(c) || c == '\r' || c == '\n'; }

// Debian's abseil keeps its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0).
absl::string_view Absl(Text s) { return {s.data(), s.size()}; }
Text Std(absl::string_view s) { return {s.data(), s.size()}; }
Text Strip(Text s) { return Std(absl::StripAsciiWhitespace(Absl(s))); }

// `needle` is one of this file's short lower-case constants, so the naive search is linear in
// `haystack` (times the needle's length). (This abseil has no StrContainsIgnoreCase.)
bool ContainsIgnoreCase(Text haystack, Text needle) {
  if (needle.empty()) return true;
  if (haystack.size() < needle.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (absl::ascii_tolower(haystack[i]) != needle[0]) continue;
    if (absl::EqualsIgnoreCase(Absl(haystack.substr(i, needle.size())), Absl(needle))) return true;
  }
  return false;
}

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence: a continuation byte at the
// cut belongs to a character that started before it, which goes too.
void CutUtf8(std::string* s, size_t max) {
  if (s->size() <= max) return;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>((*s)[end]) & 0xC0) == 0x80) --end;
  s->resize(end);
}

// The line at *pos without its ending (CRLF or a bare LF, both seen in the wild); *pos moves past
// the ending.
bool NextLine(Text text, size_t* pos, Text* line) {
  if (*pos >= text.size()) return false;
  size_t end = text.find('\n', *pos);
  const size_t next = end == kNpos ? text.size() : end + 1;
  if (end == kNpos) end = text.size();
  size_t stop = end;
  if (stop > *pos && text[stop - 1] == '\r') --stop;
  *line = text.substr(*pos, stop - *pos);
  *pos = next;
  return true;
}

// RFC 5322 §2.2.3: unfolding removes the line breaks before whitespace; the runs of whitespace
// left (and the indentation of continuation lines) become one space, which is what a log line
// and a classifier want. Reads only as much of `raw` as it takes to fill `max` bytes.
std::string Unfold(Text raw, size_t max) {
  std::string out;
  bool space = false;
  for (char c : raw) {
    if (IsSpace(c)) {
      space = true;
      continue;
    }
    if (out.size() > max) break;
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  CutUtf8(&out, max);
  return out;
}

// "<a@b>" -> "a@b"; "Name <a@b>" -> "a@b"; anything else trimmed.
Text StripAngle(Text s) {
  s = Strip(s);
  const size_t open = s.find('<');
  if (open == kNpos) return s;
  const size_t close = s.find('>', open + 1);
  return Strip(s.substr(open + 1, close == kNpos ? kNpos : close - open - 1));
}

// RFC 3464 §2.1.2's "type; value" fields (address-type, mta-name-type, diagnostic-type) -> value.
// A "type" with spaces in it is text that happens to hold a ';', not a type.
Text StripType(Text s) {
  s = Strip(s);
  const size_t semi = s.find(';');
  if (semi == kNpos || semi > 64) return s;
  for (char c : s.substr(0, semi)) {
    if (IsSpace(c)) return s;
  }
  return Strip(s.substr(semi + 1));
}

// Header fields (RFC 5322 §2.2, also the blocks of RFC 3464 §2.1 and RFC 5965 §3.1).

struct Field {
  Text name;
  Text value;  // raw: from after the colon to the end of its last continuation line
};

using Fields = std::vector<Field>;

// RFC 5322 §3.6.8: printable ASCII but the colon (excluded by the caller's split).
bool IsFieldName(Text name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c < 33 || c > 126) return false;
  }
  return true;
}

// Reads one block of fields at *pos up to the blank line that ends it (consumed). A line that is
// neither a field nor a continuation ends the block when `garbage_ends` (a message whose header
// has no blank line after it: the body starts there), and is skipped otherwise (a stray line in
// a DSN block, where the caller loops: then at least one line is consumed when there is one).
Fields ReadFields(Text text, size_t* pos, bool garbage_ends) {
  Fields fields;
  bool continues = false;  // a continuation line belongs to the last field kept
  size_t p = *pos;
  while (p < text.size()) {
    const size_t line_start = p;
    Text line;
    NextLine(text, &p, &line);
    if (absl::StripAsciiWhitespace(Absl(line)).empty()) break;
    if (IsWsp(line[0])) {
      if (continues) {
        Field& last = fields.back();
        const size_t start = static_cast<size_t>(last.value.data() - text.data());
        last.value = text.substr(start, line_start + line.size() - start);
      }
      continue;
    }
    const size_t colon = line.find(':');
    Text name = colon == kNpos ? Text() : line.substr(0, colon);
    while (!name.empty() && IsWsp(name.back())) name.remove_suffix(1);  // RFC 5322 §4.5
    if (!IsFieldName(name)) {
      if (garbage_ends) {
        p = line_start;
        break;
      }
      continues = false;
      continue;
    }
    if (fields.size() >= kFieldsMax) {
      continues = false;
      continue;
    }
    fields.push_back({name, line.substr(colon + 1)});
    continues = true;
  }
  *pos = p;
  return fields;
}

const Field* Find(const Fields& fields, Text name) {
  for (const Field& f : fields) {
    if (absl::EqualsIgnoreCase(Absl(f.name), Absl(name))) return &f;
  }
  return nullptr;
}

// MIME (RFC 2045, RFC 2046).

struct ContentType {
  std::string type;  // lower-case "type/subtype", "" when absent or not of that form
  std::string boundary;
  std::string report_type;  // RFC 6522 §3
};

ContentType ParseContentType(Text raw) {
  ContentType ct;
  const std::string value = Unfold(raw, kContentTypeBytesMax);
  Text v = value;
  size_t semi = v.find(';');
  Text type = Strip(v.substr(0, semi));
  if (type.find('/') != kNpos) ct.type = absl::AsciiStrToLower(Absl(type));
  // Parameters: name=value or name="quoted \"value\"" (RFC 2045 §5.1), separated by ';'.
  size_t i = semi == kNpos ? v.size() : semi + 1;
  while (i < v.size()) {
    while (i < v.size() && (IsSpace(v[i]) || v[i] == ';')) ++i;
    const size_t name_start = i;
    while (i < v.size() && v[i] != '=' && v[i] != ';') ++i;
    const Text name = Strip(v.substr(name_start, i - name_start));
    if (i >= v.size() || v[i] != '=') continue;
    ++i;
    while (i < v.size() && IsWsp(v[i])) ++i;
    std::string param;
    if (i < v.size() && v[i] == '"') {
      for (++i; i < v.size() && v[i] != '"'; ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) ++i;
        param += v[i];
      }
      if (i < v.size()) ++i;  // the closing quote
    } else {
      const size_t start = i;
      while (i < v.size() && v[i] != ';' && !IsSpace(v[i])) ++i;
      param = std::string(v.substr(start, i - start));
    }
    if (absl::EqualsIgnoreCase(Absl(name), "boundary")) {
      if (param.size() <= kBoundaryBytesMax) ct.boundary = std::move(param);
    } else if (absl::EqualsIgnoreCase(Absl(name), "report-type")) {
      ct.report_type = absl::AsciiStrToLower(param);
    }
  }
  return ct;
}

struct Part {
  std::string type;      // lower-case; text/plain when not given (RFC 2045 §5.2)
  std::string encoding;  // lower-case Content-Transfer-Encoding
  Fields fields;
  Text body;
};

// RFC 2046 §5.1.1: "--" boundary, then "--" for the close delimiter, or only transport padding.
bool IsDelimiter(Text line, Text boundary, bool* close) {
  if (line.size() < 2 + boundary.size() || line[0] != '-' || line[1] != '-' ||
      line.substr(2, boundary.size()) != boundary) {
    return false;
  }
  Text rest = line.substr(2 + boundary.size());
  if (rest.size() >= 2 && rest[0] == '-' && rest[1] == '-') {
    *close = true;
    return true;
  }
  *close = false;
  return absl::StripAsciiWhitespace(Absl(rest)).empty();
}

// Walks the MIME tree and keeps its leaves in order. Each level of nesting reads its body once
// to find its delimiters, so the work is the message's size times the depth reached, which
// depth_max bounds.
class Walker {
 public:
  explicit Walker(const ReportLimits& limits) : limits_(limits) {}

  void Walk(Text entity, int depth, bool in_digest) {
    if (parts_seen_ >= limits_.parts_max) return;
    ++parts_seen_;
    Part part;
    size_t pos = 0;
    if (depth == 0 && entity.substr(0, 5) == "From ") {  // an mbox separator line
      Text line;
      NextLine(entity, &pos, &line);
    }
    part.fields = ReadFields(entity, &pos, true);
    part.body = entity.substr(pos);
    const Field* ct_field = Find(part.fields, "Content-Type");
    ContentType ct = ct_field == nullptr ? ContentType() : ParseContentType(ct_field->value);
    // RFC 2046 §5.1.5: a digest's parts are messages by default.
    if (ct.type.empty()) ct.type = in_digest ? "message/rfc822" : "text/plain";
    if (const Field* cte = Find(part.fields, "Content-Transfer-Encoding")) {
      part.encoding = absl::AsciiStrToLower(Unfold(cte->value, 64));
    }
    if (depth == 0) {
      top_fields_ = part.fields;
      top_report_type_ = ct.report_type;
    }
    if (ct.type.compare(0, 10, "multipart/") == 0) {
      if (!ct.boundary.empty() && depth < limits_.depth_max &&
          Split(part.body, ct.boundary, depth + 1, ct.type == "multipart/digest")) {
        return;
      }
      // No boundary, too deep, or no delimiter line: the body is read as text, which is what a
      // reader without MIME would see (a damaged bounce still has its text).
      ct.type = "text/plain";
    }
    part.type = std::move(ct.type);
    leaves_.push_back(std::move(part));
  }

  const std::vector<Part>& leaves() const { return leaves_; }
  const Fields& top_fields() const { return top_fields_; }
  const std::string& top_report_type() const { return top_report_type_; }

 private:
  // Walks the parts between delimiter lines; false when there is none. A part without its close
  // delimiter (a truncated message) runs to the end of the body.
  bool Split(Text body, Text boundary, int depth, bool digest) {
    size_t pos = 0;
    size_t part_start = kNpos;
    bool any = false;
    while (pos < body.size()) {
      const size_t line_start = pos;
      Text line;
      NextLine(body, &pos, &line);
      bool close = false;
      if (!IsDelimiter(line, boundary, &close)) continue;
      any = true;
      if (part_start != kNpos) {
        // RFC 2046 §5.1.1: the line break before a delimiter belongs to the delimiter.
        size_t end = line_start;
        if (end > part_start && body[end - 1] == '\n') --end;
        if (end > part_start && body[end - 1] == '\r') --end;
        Walk(body.substr(part_start, end - part_start), depth, digest);
      }
      if (close || parts_seen_ >= limits_.parts_max) return true;  // the epilogue is not read
      part_start = pos;
    }
    if (part_start != kNpos && part_start < body.size()) {
      Walk(body.substr(part_start), depth, digest);
    }
    return any;
  }

  const ReportLimits& limits_;
  size_t parts_seen_ = 0;
  std::vector<Part> leaves_;
  Fields top_fields_;
  std::string top_report_type_;
};

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (absl::ascii_isdigit(c)) return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// RFC 2045 §6.8: characters outside the alphabet (line breaks) are skipped; '=' ends the data.
void DecodeBase64(Text in, size_t max, std::string* out) {
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    if (out->size() >= max || c == '=') break;
    const int v = Base64Value(c);
    if (v < 0) continue;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out->push_back(static_cast<char>(bits >> 16));
      out->push_back(static_cast<char>(bits >> 8));
      out->push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out->push_back(static_cast<char>(bits >> 4));
  if (count == 3) {
    out->push_back(static_cast<char>(bits >> 10));
    out->push_back(static_cast<char>(bits >> 2));
  }
  if (out->size() > max) out->resize(max);
}

int HexValue(char c) {
  if (absl::ascii_isdigit(c)) return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// RFC 2045 §6.7: =XX octets and soft line breaks ("=" at the end of a line); an '=' that is
// neither is kept as it is (rule 1's robustness advice).
void DecodeQuotedPrintable(Text in, size_t max, std::string* out) {
  for (size_t i = 0; i < in.size() && out->size() < max; ++i) {
    if (in[i] != '=') {
      out->push_back(in[i]);
      continue;
    }
    size_t j = i + 1;
    while (j < in.size() && IsWsp(in[j])) ++j;  // transport padding before a soft break
    if (j < in.size() && (in[j] == '\n' || in[j] == '\r')) {
      if (in[j] == '\r' && j + 1 < in.size() && in[j + 1] == '\n') ++j;
      i = j;
      continue;
    }
    if (j == in.size()) break;
    if (i + 2 < in.size() && HexValue(in[i + 1]) >= 0 && HexValue(in[i + 2]) >= 0) {
      out->push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
      continue;
    }
    out->push_back('=');
  }
}

// The part's body with its transfer encoding undone, at most `max` bytes; `storage` holds the
// decoded bytes when there are any.
Text BodyText(const Part& part, size_t max, std::string* storage) {
  storage->clear();
  if (part.encoding == "base64") {
    DecodeBase64(part.body, max, storage);
    return *storage;
  }
  if (part.encoding == "quoted-printable") {
    DecodeQuotedPrintable(part.body, max, storage);
    return *storage;
  }
  return part.body.substr(0, max);
}

// Addresses.

// RFC 5322 §3.2.3 atext and '.', plus bytes of UTF-8 (RFC 6531).
bool IsLocalChar(char c) {
  return absl::ascii_isalnum(c) || static_cast<unsigned char>(c) >= 0x80 ||
         Text("!#$%&'*+-/=?^_`{|}~.").find(c) != kNpos;
}

bool IsDomainChar(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || static_cast<unsigned char>(c) >= 0x80;
}

// The next local@domain token at or after *pos, with a dot in its domain; *pos moves past it.
// Linear over all calls on one text: the domain ends at the next '@' (not a domain byte), and the
// local part is not looked for before *pos, so no byte is scanned by more than one '@' each way.
bool NextAddress(Text text, size_t* pos, Text* address) {
  while (*pos < text.size()) {
    const size_t at = text.find('@', *pos);
    if (at == kNpos) {
      *pos = text.size();
      return false;
    }
    size_t begin = at;
    while (begin > *pos && IsLocalChar(text[begin - 1])) --begin;
    while (begin < at && text[begin] == '.') ++begin;
    size_t end = at + 1;
    while (end < text.size() && IsDomainChar(text[end])) ++end;
    *pos = end > at + 1 ? end : at + 1;
    while (end > at + 1 && (text[end - 1] == '.' || text[end - 1] == '-')) --end;
    const Text local = text.substr(begin, at - begin);
    const Text domain = text.substr(at + 1, end - at - 1);
    if (local.empty() || local.size() > kLocalBytesMax || domain.size() > kDomainBytesMax) {
      continue;
    }
    const size_t dot = domain.find('.');
    if (dot == kNpos || dot == 0 || domain.front() == '-') continue;
    *address = text.substr(begin, end - begin);
    return true;
  }
  return false;
}

// The addresses a report names: the most specific (the recipients' own fields) and the others
// seen, each deduplicated and bounded; merged in that order at the end.
class Candidates {
 public:
  Candidates(size_t max, size_t address_bytes_max)
      : max_(max), address_bytes_max_(address_bytes_max) {}

  void AddSpecific(Text text) { Add(&specific_, text); }
  void AddSeen(Text text) { Add(&seen_, text); }

  std::vector<std::string> Merge() && {
    std::vector<std::string> out = std::move(specific_);
    for (std::string& a : seen_) {
      if (out.size() >= max_) break;
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
    }
    return out;
  }

 private:
  void Add(std::vector<std::string>* list, Text text) {
    size_t pos = 0;
    Text address;
    while (list->size() < max_ && NextAddress(text, &pos, &address)) {
      // An address cut to the field limit would name no one: left out.
      if (address.size() > address_bytes_max_) continue;
      // Compared in place: a text that repeats one address allocates nothing per repeat.
      if (std::none_of(list->begin(), list->end(), [&](const std::string& a) {
            return absl::EqualsIgnoreCase(a, Absl(address));
          })) {
        list->push_back(absl::AsciiStrToLower(Absl(address)));
      }
    }
  }

  size_t max_;
  size_t address_bytes_max_;
  std::vector<std::string> specific_;
  std::vector<std::string> seen_;
};

// Reply codes (RFC 5321 §4.2, RFC 3463).

// A reply code at `i`: [245][0-5][0-9], standing alone or followed by ' ' or '-' (a multi-line
// reply, RFC 5321 §4.2.1).
bool IsCodeAt(Text s, size_t i) {
  if (i + 3 > s.size()) return false;
  const char a = s[i], b = s[i + 1], c = s[i + 2];
  if ((a != '2' && a != '4' && a != '5') || b < '0' || b > '5' || !absl::ascii_isdigit(c))
    return false;
  if (i > 0) {
    const char p = s[i - 1];
    if (absl::ascii_isalnum(p) || p == '.' || p == '-' || p == '_' || p == '/' || p == '=' ||
        p == '#') {
      return false;
    }
  }
  return i + 3 == s.size() || s[i + 3] == ' ' || s[i + 3] == '-' || s[i + 3] == '\t';
}

// The length of an enhanced status code at `i` (class 2, 4 or 5; subject and detail of one to
// three digits, RFC 3463 §2), 0 when there is none. Not part of a longer dotted number (an IP).
size_t EnhancedAt(Text s, size_t i) {
  if (i + 5 > s.size() || (s[i] != '2' && s[i] != '4' && s[i] != '5') || s[i + 1] != '.') {
    return 0;
  }
  if (i > 0 && (absl::ascii_isalnum(s[i - 1]) || s[i - 1] == '.')) return 0;
  size_t j = i + 2;
  for (int part = 0; part < 2; ++part) {
    const size_t start = j;
    while (j < s.size() && absl::ascii_isdigit(s[j]) && j - start < 4) ++j;
    if (j == start || j - start > 3) return 0;
    if (part == 0) {
      if (j >= s.size() || s[j] != '.') return 0;
      ++j;
    }
  }
  if (j < s.size() && (absl::ascii_isalnum(s[j]) ||
                       (s[j] == '.' && j + 1 < s.size() && absl::ascii_isdigit(s[j + 1])))) {
    return 0;
  }
  return j - i;
}

struct ReplyCode {
  int code = 0;
  std::string enhanced;
  size_t begin = kNpos;  // where the code (or the enhanced code alone) starts
};

// The reply a text reports: a code at its start, else the first code followed by an enhanced
// code, else the first code, else the first enhanced code alone (qmail's "(#5.1.1)"). A few
// passes over `s`, each linear.
ReplyCode FindReplyCode(Text s) {
  ReplyCode r;
  auto take = [&](size_t i) {
    r.code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
    r.begin = i;
    size_t j = i + 3;
    if (j < s.size() && (s[j] == ' ' || s[j] == '-' || s[j] == '\t')) ++j;
    if (const size_t n = EnhancedAt(s, j)) r.enhanced = std::string(s.substr(j, n));
  };
  size_t first = 0;
  while (first < s.size() && IsSpace(s[first])) ++first;
  if (IsCodeAt(s, first)) {
    take(first);
    return r;
  }
  for (size_t i = 0; i + 3 < s.size(); ++i) {
    if (IsCodeAt(s, i) && EnhancedAt(s, i + 4) > 0) {
      take(i);
      return r;
    }
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsCodeAt(s, i)) {
      take(i);
      return r;
    }
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (const size_t n = EnhancedAt(s, i)) {
      r.enhanced = std::string(s.substr(i, n));
      r.begin = i;
      return r;
    }
  }
  return r;
}

// A multi-line reply unfolded into one line repeats its code at each line's start ("550-5.1.1
// The email account ... 550-5.1.1 double-checking ..."); the repeats after the first are dropped.
std::string DropRepeatedCodes(Text text, const ReplyCode& reply, size_t max) {
  std::string out;
  if (reply.code == 0) {
    out = std::string(text.substr(0, max + 1));
  } else {
    const std::string code = std::to_string(reply.code);
    const std::string dash = code + "-" + reply.enhanced + (reply.enhanced.empty() ? "" : " ");
    const std::string space = reply.enhanced.empty() ? "" : code + " " + reply.enhanced + " ";
    for (size_t i = 0; i < text.size() && out.size() <= max;) {
      if (i > reply.begin + 3 && text[i - 1] == ' ') {
        const Text rest = text.substr(i);
        if (rest.compare(0, dash.size(), dash) == 0) {
          i += dash.size();
          continue;
        }
        if (!space.empty() && rest.compare(0, space.size(), space) == 0) {
          i += space.size();
          continue;
        }
      }
      out += text[i++];
    }
  }
  CutUtf8(&out, max);
  return out;
}

// The report parts.

bool IsDeliveryStatusType(Text type) {
  return type == "message/delivery-status" || type == "text/delivery-status" ||
         type == "message/global-delivery-status";  // RFC 6533 §6.2
}

bool IsReturnedMessageType(Text type) {
  return type == "message/rfc822" || type == "text/rfc822-headers" || type == "message/global" ||
         type == "message/global-headers" || type == "message/rfc822-headers";
}

void SetDiagnostic(Text raw, const ReportLimits& limits, ReportedRecipient* r) {
  // Room for the repeated codes that are dropped; the result is cut to the limit.
  const size_t max = limits.field_bytes_max;
  const std::string unfolded = Unfold(raw, max > SIZE_MAX / 4 ? max : max * 2 + 64);
  const Text text = StripType(unfolded);
  const ReplyCode reply = FindReplyCode(text);
  r->code = reply.code;
  r->enhanced = reply.enhanced;
  r->diagnostic = DropRepeatedCodes(text, reply, limits.field_bytes_max);
}

std::string AddressValue(Text raw, const ReportLimits& limits) {
  const std::string unfolded = Unfold(raw, limits.field_bytes_max);
  std::string out(StripAngle(StripType(unfolded)));
  CutUtf8(&out, limits.field_bytes_max);
  return out;
}

// The value up to its first space, comment or parameter: "failed", "5.1.1 (permanent)".
std::string FirstToken(Text raw, size_t max) {
  std::string value = Unfold(raw, max);
  value.resize(std::min(value.size(), value.find_first_of(" \t(;")));
  return value;
}

// RFC 3464 §2.1: per-message fields, a blank line, then per-recipient blocks separated by blank
// lines. A block without Final-Recipient after the first (some MTAs split oddly) still counts
// when it has an Action or Status; a block that runs several recipients together without blank
// lines is split at each Final-Recipient.
void ParseDeliveryStatus(Text body, const ReportLimits& limits, ParsedReport* report) {
  size_t pos = 0;
  bool first_block = true;
  while (pos < body.size() && report->recipients.size() < limits.recipients_max) {
    const Fields fields = ReadFields(body, &pos, false);
    if (fields.empty()) continue;
    const bool has_recipient =
        Find(fields, "Final-Recipient") != nullptr || Find(fields, "Original-Recipient") != nullptr;
    const bool per_recipient =
        has_recipient ||
        (!first_block && (Find(fields, "Action") != nullptr || Find(fields, "Status") != nullptr));
    first_block = false;
    if (!per_recipient) continue;
    ReportedRecipient r;
    bool has_final = false;
    bool has_any = false;
    auto flush = [&]() {
      if (has_any && report->recipients.size() < limits.recipients_max) {
        if (r.enhanced.empty()) r.enhanced = r.status;
        report->recipients.push_back(std::move(r));
      }
      r = ReportedRecipient();
      has_final = false;
      has_any = false;
    };
    for (const Field& f : fields) {
      const absl::string_view name = Absl(f.name);
      if (absl::EqualsIgnoreCase(name, "Final-Recipient")) {
        if (has_final) flush();
        r.final_recipient = AddressValue(f.value, limits);
        has_final = has_any = true;
      } else if (absl::EqualsIgnoreCase(name, "Original-Recipient")) {
        r.original_recipient = AddressValue(f.value, limits);
        has_any = true;
      } else if (absl::EqualsIgnoreCase(name, "Action")) {
        r.action = absl::AsciiStrToLower(FirstToken(f.value, limits.field_bytes_max));
        has_any = true;
      } else if (absl::EqualsIgnoreCase(name, "Status")) {
        r.status = FirstToken(f.value, limits.field_bytes_max);
        has_any = true;
      } else if (absl::EqualsIgnoreCase(name, "Remote-MTA")) {
        const std::string v = Unfold(f.value, limits.field_bytes_max);
        r.remote_mta = std::string(StripType(v));
      } else if (absl::EqualsIgnoreCase(name, "Diagnostic-Code")) {
        SetDiagnostic(f.value, limits, &r);
        has_any = true;
      }
    }
    flush();
  }
}

// RFC 5965 §3.1 (required: Feedback-Type, User-Agent, Version) and §3.2 (optional). Only
// Feedback-Type is insisted on: it is what the caller acts on. False without it.
bool ParseFeedbackReport(Text body, const ReportLimits& limits, ParsedReport* report,
                         Candidates* candidates) {
  size_t pos = 0;
  bool has_type = false;
  const size_t max = limits.field_bytes_max;
  while (pos < body.size()) {
    const Fields fields = ReadFields(body, &pos, false);
    for (const Field& f : fields) {
      const absl::string_view name = Absl(f.name);
      if (absl::EqualsIgnoreCase(name, "Feedback-Type") && !has_type) {
        report->feedback_type = absl::AsciiStrToLower(FirstToken(f.value, max));
        has_type = !report->feedback_type.empty();
      } else if (absl::EqualsIgnoreCase(name, "User-Agent") && report->user_agent.empty()) {
        report->user_agent = Unfold(f.value, max);
      } else if (absl::EqualsIgnoreCase(name, "Original-Mail-From") &&
                 report->original_mail_from.empty()) {
        report->original_mail_from = AddressValue(f.value, limits);
      } else if (absl::EqualsIgnoreCase(name, "Original-Rcpt-To")) {
        if (report->original_rcpt_to.empty()) {
          report->original_rcpt_to = AddressValue(f.value, limits);
        }
        candidates->AddSpecific(f.value);
      } else if (absl::EqualsIgnoreCase(name, "Source-IP") && report->source_ip.empty()) {
        report->source_ip = Unfold(f.value, max);
      } else if ((absl::EqualsIgnoreCase(name, "Arrival-Date") ||
                  absl::EqualsIgnoreCase(name, "Received-Date")) &&  // draft-era name
                 report->arrival_date.empty()) {
        report->arrival_date = Unfold(f.value, max);
      } else if (absl::EqualsIgnoreCase(name, "Reported-Domain") &&
                 report->reported_domain.empty()) {
        report->reported_domain = Unfold(f.value, max);
      }
    }
  }
  if (!has_type) report->feedback_type.clear();
  return has_type;
}

// The returned message's header (or a text/rfc822-headers part): its Message-ID and Return-Path,
// and the addresses of To, Cc and Return-Path as candidates.
void ReadReturnedHeaders(Text text, const ReportLimits& limits, ParsedReport* report,
                         Candidates* candidates) {
  size_t pos = 0;
  Text line;
  for (size_t p = 0; NextLine(text, &p, &line) && absl::StripAsciiWhitespace(Absl(line)).empty();)
    pos = p;
  const Fields fields = ReadFields(text, &pos, true);
  if (const Field* f = Find(fields, "Message-ID")) {
    const std::string v = Unfold(f->value, limits.field_bytes_max);
    report->original_message_id = std::string(StripAngle(v));
  }
  if (const Field* f = Find(fields, "Return-Path")) {
    const std::string v = Unfold(f->value, limits.field_bytes_max);
    report->original_return_path = std::string(StripAngle(v));
  }
  for (const char* name : {"To", "Cc", "Return-Path"}) {
    for (const Field& f : fields) {
      if (absl::EqualsIgnoreCase(Absl(f.name), name)) candidates->AddSeen(f.value);
    }
  }
}

// Bounce texts.

// Who sends bounces (RFC 5321 §4.5.5: the null reverse-path; the names MTAs sign them with).
bool IsDaemonName(Text s) {
  return ContainsIgnoreCase(s, "mailer-daemon") || ContainsIgnoreCase(s, "postmaster") ||
         ContainsIgnoreCase(s, "mail delivery");
}

bool IsNullSender(Text sender) {
  const Text s = Strip(sender);
  return s.empty() || s == "<>";
}

constexpr const char* kBounceSubjects[] = {
    "undeliver",  // Undeliverable:, Undelivered Mail Returned to Sender
    "delivery status notification",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "could not be delivered",
    "nondeliverable",
    "non remis",
    "unzustellbar",
    "mail delivery subsystem",
};

constexpr const char* kBounceMarkers[] = {
    "this is the qmail-send program",
    "created automatically by mail delivery software",  // Exim
    "a message that you sent could not be delivered",   // Exim
    "the mail system",                                  // Postfix
    "could not be delivered to one or more",
    "delivery to the following recipient",      // Gmail
    "delivery has failed to these recipients",  // Exchange
    "transcript of session follows",            // Sendmail
    "i'm afraid i wasn't able to deliver",      // Yahoo
    "permanent fatal errors",
    "your message could not be delivered",
    "message could not be delivered",
};

// The lines after which a bounce text quotes the message it returns.
constexpr const char* kCopyMarkers[] = {
    "below this line is a copy of the message",  // qmail
    "this is a copy of the message",             // Exim
    "this is a copy of the body of the message",
    "original message follows",
    "unsent message follows",
    "returned message follows",
    "undelivered message follows",
    "original message headers",
};

bool IsCopyMarker(Text line) {
  const Text t = Strip(line);
  if (t.size() > 200) return false;
  for (const char* m : kCopyMarkers) {
    if (ContainsIgnoreCase(t, m)) return true;
  }
  return false;
}

// A line that names a recipient: it starts with an address, bare or in <>, followed by nothing,
// ':' (qmail, Postfix), "..." (Sendmail) or a parenthesis.
bool IsRecipientLine(Text trimmed, Text* address, Text* rest) {
  size_t i = 0;
  const bool angle = !trimmed.empty() && trimmed[0] == '<';
  if (angle) ++i;
  const size_t start = i;
  while (i < trimmed.size() && IsLocalChar(trimmed[i])) ++i;
  if (i == start || i >= trimmed.size() || trimmed[i] != '@') return false;
  ++i;
  const size_t domain_start = i;
  while (i < trimmed.size() && IsDomainChar(trimmed[i])) ++i;
  Text domain = trimmed.substr(domain_start, i - domain_start);
  while (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.find('.') == kNpos || i - start > kLocalBytesMax + kDomainBytesMax) return false;
  *address = trimmed.substr(start, domain_start + domain.size() - start);
  if (angle) {
    if (i >= trimmed.size() || trimmed[i] != '>') return false;
    ++i;
  }
  Text r = Strip(trimmed.substr(i));
  if (!r.empty() && r[0] != ':' && r.substr(0, 3) != "..." && r[0] != '(' &&
      r.substr(0, 8) != "<mailto:") {
    return false;
  }
  if (!r.empty() && r[0] == ':') r.remove_prefix(1);
  *rest = Strip(r);
  return true;
}

// The first reply in `text`, if there is one, becomes r's; false when there is none.
bool TakeBounceReply(Text text, const ReportLimits& limits, ReportedRecipient* r) {
  const ReplyCode reply = FindReplyCode(text);
  if (reply.code == 0 && reply.enhanced.empty()) return false;
  r->code = reply.code;
  r->enhanced = reply.enhanced;
  r->status = reply.enhanced;
  r->diagnostic = std::string(text.substr(0, limits.field_bytes_max + 1));
  CutUtf8(&r->diagnostic, limits.field_bytes_max);
  return true;
}

// Where ScanBounceText is: the recipient whose reply it is reading or looking for.
struct BounceScan {
  int current = -1;         // index in report->recipients, -1 when none
  int lines_since = 0;      // lines read since the current recipient's line
  bool continuing = false;  // the current recipient's reply may go on over indented lines
  size_t block_indent = 0;  // of the current recipient's line
};

// A line naming `address` (`rest` is what follows it): the recipient becomes the current one,
// added when it is new, and takes the reply on the line when there is one.
void StartRecipient(Text address, Text rest, size_t indent, const ReportLimits& limits,
                    ParsedReport* report, BounceScan* scan) {
  scan->current = -1;
  scan->lines_since = 0;
  scan->block_indent = indent;
  // A recipient named again (a summary, then the details) gets its reply from either place.
  bool named = false;
  for (size_t i = 0; i < report->recipients.size() && !named; ++i) {
    if (absl::EqualsIgnoreCase(report->recipients[i].final_recipient, Absl(address))) {
      named = true;
      if (report->recipients[i].code == 0) scan->current = static_cast<int>(i);
    }
  }
  if (!named && report->recipients.size() < limits.recipients_max) {
    ReportedRecipient r;
    r.final_recipient = std::string(address.substr(0, limits.field_bytes_max + 1));
    CutUtf8(&r.final_recipient, limits.field_bytes_max);
    r.action = "failed";
    report->recipients.push_back(std::move(r));
    scan->current = static_cast<int>(report->recipients.size()) - 1;
  }
  if (scan->current >= 0 && TakeBounceReply(rest, limits, &report->recipients[scan->current])) {
    scan->continuing = true;
  }
}

// One recipient per line that names one, with the first reply found on that line or on the
// lines after it (until the next recipient or kBounceLinesMax lines); the reply's indented
// continuation lines are joined to it. Every address in the text is a candidate. The returned
// message the text may quote after a marker line gives its header. One pass over the lines.
// Returns where the quoted copy starts, kNpos when there is none.
size_t ScanBounceText(Text text, const ReportLimits& limits, ParsedReport* report,
                      Candidates* candidates) {
  BounceScan scan;
  size_t pos = 0;
  Text line;
  while (NextLine(text, &pos, &line)) {
    if (IsCopyMarker(line)) return pos;
    candidates->AddSeen(line);
    const Text trimmed = Strip(line);
    size_t indent = 0;
    while (indent < line.size() && IsWsp(line[indent])) ++indent;
    // A reply folded over more lines is indented deeper than its recipient's line (Postfix
    // indents by four under an address at the margin; Exim's next address comes back to two).
    if (scan.continuing) {
      if (indent > scan.block_indent && !trimmed.empty()) {
        ReportedRecipient& r = report->recipients[scan.current];
        if (r.diagnostic.size() < limits.field_bytes_max) {
          r.diagnostic += ' ';
          r.diagnostic.append(trimmed.substr(0, limits.field_bytes_max + 1));
          CutUtf8(&r.diagnostic, limits.field_bytes_max);
        }
        continue;
      }
      scan.continuing = false;
      scan.current = -1;
    }
    Text address, rest;
    if (IsRecipientLine(trimmed, &address, &rest)) {
      StartRecipient(address, rest, indent, limits, report, &scan);
      continue;
    }
    if (scan.current < 0) continue;
    if (++scan.lines_since > kBounceLinesMax) {
      scan.current = -1;
      continue;
    }
    if (TakeBounceReply(trimmed, limits, &report->recipients[scan.current])) {
      scan.continuing = true;
    }
  }
  return kNpos;
}

constexpr struct {
  const char* phrase;  // lower-case
  bool prefix;         // at the start of the subject only
  const char* why;
} kAutoReplySubjects[] = {
    {"out of office", false, "subject: Out of Office"},
    {"automatic reply", false, "subject: Automatic reply"},
    {"auto:", true, "subject: Auto:"},
    {"autoreply", false, "subject: Autoreply"},
    {"auto-reply", false, "subject: Auto-Reply"},
    {"auto reply", false, "subject: Auto Reply"},
    {"abwesenheitsnotiz", false, "subject: Abwesenheitsnotiz"},
    {"automatische antwort", false, "subject: Automatische Antwort"},
    {"r\xc3\xa9ponse automatique", false, "subject: Reponse automatique"},
    {"respuesta autom\xc3\xa1tica", false, "subject: Respuesta automatica"},
    {"risposta automatica", false, "subject: Risposta automatica"},
    {"automatisch antwoord", false, "subject: Automatisch antwoord"},
    {"autosvar", false, "subject: Autosvar"},
    {"on vacation", false, "subject: on vacation"},
};

// RFC 3834 §5 and the headers auto-responders used before it. An empty reason: not an
// auto-reply.
std::string AutoReplyReason(const Fields& top, size_t max) {
  if (const Field* f = Find(top, "Auto-Submitted")) {
    if (absl::AsciiStrToLower(FirstToken(f->value, 64)) == "auto-replied")
      return "Auto-Submitted: auto-replied";
  }
  if (const Field* f = Find(top, "X-Autoreply")) {
    if (absl::AsciiStrToLower(FirstToken(f->value, 64)) != "no") return "X-Autoreply";
  }
  if (Find(top, "X-Autorespond") != nullptr) return "X-Autorespond";
  if (const Field* f = Find(top, "Precedence")) {
    if (absl::AsciiStrToLower(FirstToken(f->value, 64)) == "auto_reply")
      return "Precedence: auto_reply";
  }
  if (const Field* f = Find(top, "X-Autogenerated")) {
    if (absl::AsciiStrToLower(FirstToken(f->value, 64)) == "reply") return "X-Autogenerated: Reply";
  }
  if (const Field* f = Find(top, "Subject")) {
    const std::string subject =
        absl::AsciiStrToLower(Unfold(f->value, std::min<size_t>(max, 1000)));
    for (const auto& s : kAutoReplySubjects) {
      if (s.prefix ? Text(subject).substr(0, std::char_traits<char>::length(s.phrase)) == s.phrase
                   : ContainsIgnoreCase(subject, s.phrase)) {
        return s.why;
      }
    }
  }
  return "";
}

void CutAll(ParsedReport* report, size_t max) {
  for (std::string* s : {&report->feedback_type, &report->user_agent, &report->original_mail_from,
                         &report->original_rcpt_to, &report->source_ip, &report->arrival_date,
                         &report->reported_domain, &report->original_message_id,
                         &report->original_return_path, &report->why}) {
    CutUtf8(s, max);
  }
  for (ReportedRecipient& r : report->recipients) {
    for (std::string* s : {&r.final_recipient, &r.original_recipient, &r.action, &r.status,
                           &r.enhanced, &r.diagnostic, &r.remote_mta}) {
      CutUtf8(s, max);
    }
  }
}

// a + b * c without wrapping: limits may be set to "no limit" (SIZE_MAX).
size_t SaturatingMulAdd(size_t a, size_t b, size_t c) {
  if (c != 0 && b > (SIZE_MAX - a) / c) return SIZE_MAX;
  return a + b * c;
}

// The leaves that decide what a message is: the first of each report part, and the text parts.
struct ReportParts {
  const Part* dsn = nullptr;
  const Part* arf = nullptr;
  const Part* returned = nullptr;
  std::vector<const Part*> texts;  // text/plain, in order
};

ReportParts ClassifyParts(const std::vector<Part>& leaves) {
  ReportParts parts;
  for (const Part& part : leaves) {
    if (parts.dsn == nullptr && IsDeliveryStatusType(part.type)) parts.dsn = &part;
    if (parts.arf == nullptr && part.type == "message/feedback-report") parts.arf = &part;
    if (parts.returned == nullptr && IsReturnedMessageType(part.type)) parts.returned = &part;
    if (part.type == "text/plain") parts.texts.push_back(&part);
  }
  return parts;
}

// A feedback report (kComplaint), else a delivery-status part with recipient blocks (kDsn);
// the kind stays kUnknown when neither is there or readable.
void ReadStructuredReport(const ReportParts& parts, const ReportLimits& limits,
                          ParsedReport* report, Candidates* candidates, std::string* storage) {
  // Report parts are small; a decoded one is bounded by what a report can reasonably hold.
  const size_t report_bytes_max = SaturatingMulAdd(
      64 * 1024, limits.recipients_max, SaturatingMulAdd(1024, limits.field_bytes_max, 8));
  if (parts.arf != nullptr && ParseFeedbackReport(BodyText(*parts.arf, report_bytes_max, storage),
                                                  limits, report, candidates)) {
    report->kind = ReportKind::kComplaint;
    candidates->AddSeen(report->original_mail_from);
  } else if (parts.dsn != nullptr) {
    *report = ParsedReport();  // what a feedback-report part without its type may have left
    *candidates = Candidates(limits.addresses_max, limits.field_bytes_max);
    ParseDeliveryStatus(BodyText(*parts.dsn, report_bytes_max, storage), limits, report);
    if (!report->recipients.empty()) report->kind = ReportKind::kDsn;
  }
  if (report->kind == ReportKind::kDsn) {
    for (const ReportedRecipient& r : report->recipients) {
      candidates->AddSpecific(r.final_recipient);
      candidates->AddSpecific(r.original_recipient);
    }
    for (const ReportedRecipient& r : report->recipients) candidates->AddSeen(r.diagnostic);
  }
}

// What a message without a usable report part says of itself.
struct BounceSigns {
  bool daemon = false;  // sent by a mailer-daemon: the null sender or one of their names
  bool marked = false;  // says it is a bounce: report type, subject or a marker in its text
};

BounceSigns ReadBounceSigns(const Walker& walker, const ReportParts& parts, Text envelope_sender,
                            const ReportLimits& limits, std::string* storage) {
  BounceSigns signs;
  const Fields& top = walker.top_fields();
  const Field* from = Find(top, "From");
  const Field* subject = Find(top, "Subject");
  // A multipart/report whose delivery-status part is damaged is still a bounce, whoever sent it.
  signs.marked = parts.dsn != nullptr || walker.top_report_type() == "delivery-status";
  signs.daemon = signs.marked || IsNullSender(envelope_sender) || IsDaemonName(envelope_sender) ||
                 (from != nullptr && IsDaemonName(Unfold(from->value, 1000)));
  if (!signs.marked && subject != nullptr) {
    const std::string s = Unfold(subject->value, 1000);
    for (const char* m : kBounceSubjects) signs.marked = signs.marked || ContainsIgnoreCase(s, m);
  }
  if (!signs.marked && signs.daemon) {
    size_t marker_budget = std::min(kMarkerBytesMax, limits.text_bytes_max);
    for (const Part* part : parts.texts) {
      if (signs.marked || marker_budget == 0) break;
      const Text text = BodyText(*part, marker_budget, storage);
      marker_budget -= text.size();
      for (const char* m : kBounceMarkers) {
        signs.marked = signs.marked || ContainsIgnoreCase(text, m);
      }
    }
  }
  return signs;
}

// Not a bounce: an auto-reply, or kUnknown with the reason.
void SetNotBounce(const Fields& top, const ReportParts& parts, bool marked,
                  const ReportLimits& limits, ParsedReport* report) {
  report->why = AutoReplyReason(top, limits.field_bytes_max);
  if (!report->why.empty()) {
    report->kind = ReportKind::kAutoReply;
  } else if (parts.dsn != nullptr) {
    report->why = "delivery-status part without recipient blocks";
  } else if (parts.arf != nullptr) {
    report->why = "feedback-report part without Feedback-Type";
  } else if (marked) {
    report->why = "bounce subject from a sender that is not a mailer-daemon";
  } else {
    report->why = "no report part";
  }
}

// A bounce text: the recipients its text parts name (text_bytes_max of them in all), and the
// header of the copy it quotes when there is no returned-message part.
void ReadBounceTexts(const ReportParts& parts, const ReportLimits& limits, ParsedReport* report,
                     Candidates* candidates, std::string* storage) {
  report->kind = ReportKind::kBounceText;
  size_t budget = limits.text_bytes_max;
  for (const Part* part : parts.texts) {
    if (budget == 0) break;
    const Text text = BodyText(*part, budget, storage);
    budget -= text.size();
    const size_t copy = ScanBounceText(text, limits, report, candidates);
    if (copy != kNpos) {
      // The copy quoted inline (qmail, Exim) when there is no returned-message part.
      if (parts.returned == nullptr) {
        ReadReturnedHeaders(text.substr(copy), limits, report, candidates);
      }
      break;
    }
  }
  for (const ReportedRecipient& r : report->recipients) {
    candidates->AddSpecific(r.final_recipient);
  }
}

}  // namespace

std::string_view ReportKindName(ReportKind kind) {
  switch (kind) {
    case ReportKind::kUnknown:
      return "unknown";
    case ReportKind::kDsn:
      return "dsn";
    case ReportKind::kBounceText:
      return "bounce-text";
    case ReportKind::kComplaint:
      return "complaint";
    case ReportKind::kAutoReply:
      return "auto-reply";
  }
  return "unknown";
}

ParsedReport ParseReport(std::string_view message, std::string_view envelope_sender,
                         const ReportLimits& limits) {
  Walker walker(limits);
  walker.Walk(message, 0, false);
  const ReportParts parts = ClassifyParts(walker.leaves());
  ParsedReport report;
  Candidates candidates(limits.addresses_max, limits.field_bytes_max);
  std::string storage;  // the part being read, decoded
  ReadStructuredReport(parts, limits, &report, &candidates, &storage);
  if (report.kind == ReportKind::kUnknown) {
    report = ParsedReport();
    candidates = Candidates(limits.addresses_max, limits.field_bytes_max);
    const BounceSigns signs = ReadBounceSigns(walker, parts, envelope_sender, limits, &storage);
    if (!signs.daemon || !signs.marked) {
      SetNotBounce(walker.top_fields(), parts, signs.marked, limits, &report);
      CutAll(&report, limits.field_bytes_max);
      return report;
    }
    ReadBounceTexts(parts, limits, &report, &candidates, &storage);
  }
  if (parts.returned != nullptr) {
    ReadReturnedHeaders(BodyText(*parts.returned, kReturnedHeaderBytesMax, &storage), limits,
                        &report, &candidates);
  }
  report.candidate_addresses = std::move(candidates).Merge();
  CutAll(&report, limits.field_bytes_max);
  return report;
}

}  // namespace relay::feedback
