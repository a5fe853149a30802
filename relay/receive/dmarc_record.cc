#include "relay/receive/dmarc_record.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace relay::receive {
namespace {

// What an error message quotes of a tag from the record (the text is untrusted and logged).
constexpr size_t kQuotedBytesMax = 32;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimWsp(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

bool Is(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.data(), a.size()),
                                absl::string_view(b.data(), b.size()));
}

std::string Quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, kQuotedBytesMax)) {
    out.push_back(absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?');
  }
  if (s.size() > kQuotedBytesMax) out += "...";
  return out + "'";
}

// §6.4: the values are ABNF literals, so case does not matter.
std::optional<DmarcPolicy> ParsePolicy(std::string_view v) {
  if (Is(v, "none")) return DmarcPolicy::kNone;
  if (Is(v, "quarantine")) return DmarcPolicy::kQuarantine;
  if (Is(v, "reject")) return DmarcPolicy::kReject;
  return std::nullopt;
}

std::optional<DmarcAlignment> ParseAlignment(std::string_view v) {
  if (Is(v, "r")) return DmarcAlignment::kRelaxed;
  if (Is(v, "s")) return DmarcAlignment::kStrict;
  return std::nullopt;
}

// §6.4 dmarc-percent: 1*3DIGIT, §6.3: between 0 and 100.
std::optional<int> ParsePct(std::string_view v) {
  if (v.empty() || v.size() > 3) return std::nullopt;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n > 100) return std::nullopt;
  return n;
}

// §6.4 dmarc-uri: a URI (RFC 3986 §3: scheme ":" and more, no white space), optionally followed
// by "!" and a size. One such URI in the comma-separated list is enough (§6.6.3 step 6).
bool HasValidUri(std::string_view list) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string_view uri =
        TrimWsp(list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos));
    size_t colon = uri.find(':');
    bool ok = colon != std::string_view::npos && colon > 0 && colon + 1 < uri.size() &&
              absl::ascii_isalpha(static_cast<unsigned char>(uri[0]));
    for (size_t i = 0; ok && i < colon; ++i) {
      char c = uri[i];
      ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
    }
    for (size_t i = colon + 1; ok && i < uri.size(); ++i) {
      ok = absl::ascii_isgraph(static_cast<unsigned char>(uri[i]));
    }
    if (ok) return true;
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return false;
}

}  // namespace

const char* DmarcPolicyName(DmarcPolicy p) {
  switch (p) {
    case DmarcPolicy::kNone:
      return "none";
    case DmarcPolicy::kQuarantine:
      return "quarantine";
    case DmarcPolicy::kReject:
      return "reject";
  }
  return "none";
}

bool IsDmarcRecord(std::string_view text) {
  text = TrimWsp(text.substr(0, text.find(';')));
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) return false;
  // §6.3: "The value of this tag MUST match precisely"; the tag name is an ABNF literal.
  return Is(TrimWsp(text.substr(0, eq)), "v") && TrimWsp(text.substr(eq + 1)) == "DMARC1";
}

absl::StatusOr<DmarcRecord> ParseDmarcRecord(std::string_view text) {
  if (text.size() > kDmarcRecordBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("record of ", text.size(), " bytes exceeds ", kDmarcRecordBytesMax));
  }
  if (!IsDmarcRecord(text)) return absl::InvalidArgumentError("v=DMARC1 must come first");
  DmarcRecord record;
  // Problems by kind: those with p= or sp= alone can be forgiven for a valid rua= (§6.6.3 step 6).
  std::string p_problem = "no p= tag", sp_problem, problem;
  bool rua_valid = false;
  enum : unsigned { kSeenP = 1, kSeenSp = 2, kSeenAdkim = 4, kSeenAspf = 8, kSeenPct = 16 };
  unsigned seen = 0;
  auto once = [&seen](unsigned bit) {
    bool first = (seen & bit) == 0;
    seen |= bit;
    return first;
  };
  size_t pos = text.find(';');  // past the version tag
  while (pos != std::string_view::npos && pos < text.size()) {
    size_t semi = text.find(';', pos + 1);
    std::string_view spec =
        TrimWsp(text.substr(pos + 1, semi == std::string_view::npos ? text.npos : semi - pos - 1));
    pos = semi;
    if (spec.empty()) continue;  // "v=DMARC1; p=none;" ends with a separator
    size_t eq = spec.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      if (problem.empty()) problem = absl::StrCat("malformed tag ", Quoted(spec));
      continue;
    }
    std::string_view name = TrimWsp(spec.substr(0, eq));
    std::string_view value = TrimWsp(spec.substr(eq + 1));
    if (Is(name, "p") || Is(name, "sp")) {
      const bool sp = Is(name, "sp");
      const char* tag = sp ? "sp=" : "p=";
      std::string& tag_problem = sp ? sp_problem : p_problem;
      std::optional<DmarcPolicy> v = ParsePolicy(value);
      if (!once(sp ? kSeenSp : kSeenP)) {
        tag_problem = absl::StrCat(tag, " given twice");
      } else if (!v) {
        tag_problem = absl::StrCat("invalid ", tag, Quoted(value));
      } else {
        tag_problem.clear();
        if (sp) {
          record.sp = *v;
        } else {
          record.p = *v;
        }
      }
    } else if (Is(name, "adkim") || Is(name, "aspf")) {
      bool dkim = Is(name, "adkim");
      std::optional<DmarcAlignment> v = ParseAlignment(value);
      if (!once(dkim ? kSeenAdkim : kSeenAspf) || !v) {
        if (problem.empty()) problem = absl::StrCat("invalid or repeated ", std::string(name), "=");
      } else {
        (dkim ? record.adkim : record.aspf) = *v;
      }
    } else if (Is(name, "pct")) {
      std::optional<int> v = ParsePct(value);
      if (!once(kSeenPct) || !v) {
        if (problem.empty()) problem = absl::StrCat("invalid or repeated pct=", Quoted(value));
      } else {
        record.pct = *v;
      }
    } else if (Is(name, "rua")) {
      rua_valid = rua_valid || HasValidUri(value);
    } else if (Is(name, "v")) {
      if (problem.empty()) problem = "v= given twice";
    }
    // Any other tag (ruf, fo, rf, ri and future ones) is ignored (§6.3).
  }
  if (!problem.empty()) return absl::InvalidArgumentError(problem);
  if (!p_problem.empty() || !sp_problem.empty()) {
    if (!rua_valid) {
      return absl::InvalidArgumentError(p_problem.empty() ? sp_problem : p_problem);
    }
    record.p = DmarcPolicy::kNone;
    record.sp.reset();
  }
  return record;
}

}  // namespace relay::receive
