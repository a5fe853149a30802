#include "relay/tlspolicy/mta_sts.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "relay/base/lines.h"
#include "relay/base/sv.h"

namespace relay::tlspolicy {
namespace {

constexpr size_t kNameBytesMax = 255;  // a domain name (RFC 1035 §2.3.4)
constexpr size_t kIdBytesMax = 32;     // §3.1
constexpr size_t kCacheLineBytesMax = kStsMxMax * (kNameBytesMax + 1) + 512;

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && (IsWsp(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// A domain name as a policy or the cache may hold it: letters, digits, '-', '.', and a leading
// "*." for a pattern; no empty label.
bool ValidName(std::string_view name, bool pattern) {
  if (pattern && absl::StartsWith(Sv(name), "*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > kNameBytesMax || name.front() == '.' || name.back() == '.') {
    return false;
  }
  char previous = 0;
  for (char c : name) {
    if (!(IsAlnum(c) || c == '-' || c == '.')) return false;
    if (c == '.' && previous == '.') return false;
    previous = c;
  }
  return true;
}

bool ParseMode(std::string_view text, StsMode* mode) {
  if (text == "enforce") {
    *mode = StsMode::kEnforce;
  } else if (text == "testing") {
    *mode = StsMode::kTesting;
  } else if (text == "none") {
    *mode = StsMode::kNone;
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string_view StsModeName(StsMode mode) {
  switch (mode) {
    case StsMode::kNone:
      return "none";
    case StsMode::kTesting:
      return "testing";
    case StsMode::kEnforce:
      return "enforce";
  }
  return "?";
}

absl::StatusOr<StsPolicy> ParseStsPolicy(std::string_view text) {
  if (text.size() > kStsPolicyBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("the policy is longer than ", kStsPolicyBytesMax, " bytes"));
  }
  StsPolicy policy;
  bool version = false, mode = false, max_age = false;
  size_t pos = 0;
  size_t line_number = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = Trim(text.substr(pos, eol - pos));
    pos = eol + 1;
    ++line_number;
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, " of the policy is not \"name: value\""));
    }
    const std::string_view name = Trim(line.substr(0, colon));
    const std::string_view value = Trim(line.substr(colon + 1));
    if (name == "version") {
      if (version) continue;
      if (value != "STSv1") {
        return absl::InvalidArgumentError("the policy's version is not STSv1");
      }
      version = true;
    } else if (name == "mode") {
      if (mode) continue;
      if (!ParseMode(value, &policy.mode)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the policy's mode is not enforce, testing or none (line ", line_number, ")"));
      }
      mode = true;
    } else if (name == "max_age") {
      if (max_age) continue;
      // 1*10 DIGIT (§3.2); more than the maximum counts as the maximum.
      uint64_t seconds = 0;
      if (value.empty() || value.size() > 10 ||
          value.find_first_not_of("0123456789") != std::string_view::npos ||
          !absl::SimpleAtoi(Sv(value), &seconds)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the policy's max_age is not a number of seconds (line ", line_number, ")"));
      }
      policy.max_age_s = static_cast<int64_t>(std::min<uint64_t>(seconds, kStsMaxAgeMax));
      max_age = true;
    } else if (name == "mx") {
      std::string pattern = absl::AsciiStrToLower(Sv(value));
      if (!pattern.empty() && pattern.back() == '.') pattern.pop_back();
      if (!ValidName(pattern, /*pattern=*/true)) {
        return absl::InvalidArgumentError(
            absl::StrCat("the policy's mx on line ", line_number, " is not a host name"));
      }
      if (policy.mx.size() >= kStsMxMax) {
        return absl::InvalidArgumentError(
            absl::StrCat("the policy has more than ", kStsMxMax, " mx lines"));
      }
      policy.mx.push_back(std::move(pattern));
    }
    // Any other field is an extension: ignored (§3.2).
  }
  if (!version) return absl::InvalidArgumentError("the policy has no version: STSv1");
  if (!mode) return absl::InvalidArgumentError("the policy has no mode");
  if (!max_age) return absl::InvalidArgumentError("the policy has no max_age");
  if (policy.mx.empty() && policy.mode != StsMode::kNone) {
    return absl::InvalidArgumentError("the policy names no mx");
  }
  return policy;
}

absl::StatusOr<std::string> ParseStsRecord(const std::vector<std::string>& txt) {
  const std::string* record = nullptr;
  size_t records = 0;
  for (const std::string& r : txt) {
    // "v=STSv1" then a delimiter or the end (§3.1; whitespace before ';' is allowed too).
    if (!absl::StartsWith(r, "v=STSv1")) continue;
    const std::string_view rest = std::string_view(r).substr(7);
    if (!rest.empty() && !IsWsp(rest[0]) && rest[0] != ';') continue;
    ++records;
    record = &r;
  }
  if (records == 0) return absl::NotFoundError("no v=STSv1 record");
  if (records > 1) {
    return absl::InvalidArgumentError(absl::StrCat(records, " v=STSv1 records, not one"));
  }
  std::string id;
  bool first = true;
  for (absl::string_view field : absl::StrSplit(Sv(*record), ';')) {
    const std::string_view f = Trim(std::string_view(field.data(), field.size()));
    if (first) {  // v=STSv1
      first = false;
      if (f != "v=STSv1") return absl::InvalidArgumentError("the record does not start v=STSv1");
      continue;
    }
    if (f.empty()) continue;  // a trailing ';'
    const size_t eq = f.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == f.size()) {
      return absl::InvalidArgumentError("a field of the record is not name=value");
    }
    if (f.substr(0, eq) == "id" && id.empty()) {
      const std::string_view value = f.substr(eq + 1);
      if (value.size() > kIdBytesMax ||
          !std::all_of(value.begin(), value.end(), [](char c) { return IsAlnum(c); })) {
        return absl::InvalidArgumentError("the record's id is not 1 to 32 letters and digits");
      }
      id = std::string(value);
    }
  }
  if (id.empty()) return absl::InvalidArgumentError("the record has no id");
  return id;
}

bool StsPatternMatches(std::string_view pattern, std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (absl::StartsWith(Sv(pattern), "*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.net"
    if (host.size() <= suffix.size()) return false;
    const std::string_view tail = host.substr(host.size() - suffix.size());
    const std::string_view label = host.substr(0, host.size() - suffix.size());
    return absl::EqualsIgnoreCase(Sv(tail), Sv(suffix)) && !label.empty() &&
           label.find('.') == std::string_view::npos;
  }
  return absl::EqualsIgnoreCase(Sv(pattern), Sv(host));
}

bool StsMxAllowed(const StsPolicy& policy, std::string_view host) {
  return std::any_of(policy.mx.begin(), policy.mx.end(),
                     [host](const std::string& p) { return StsPatternMatches(p, host); });
}

std::string FormatStsCacheFile(const std::vector<StsCacheEntry>& entries) {
  std::string out =
      "# relayd's MTA-STS policies: domain, policy id, fetched (Unix seconds), mode, max_age, "
      "mx patterns\n";
  for (const StsCacheEntry& e : entries) {
    if (!ValidName(e.domain, false) || e.id.size() > kIdBytesMax ||
        !std::all_of(e.id.begin(), e.id.end(), [](char c) { return IsAlnum(c); })) {
      continue;
    }
    absl::StrAppend(&out, e.domain, "\t", e.id, "\t", e.fetched_unix_s, "\t",
                    Sv(StsModeName(e.policy.mode)), "\t", e.policy.max_age_s, "\t",
                    absl::StrJoin(e.policy.mx, ","), "\n");
  }
  return out;
}

std::vector<StsCacheEntry> ParseStsCacheFile(std::string_view text, size_t max) {
  std::vector<StsCacheEntry> out;
  if (max == 0) return out;
  ForEachLine(text, [&](std::string_view line) {
    if (line.empty() || line[0] == '#' || line.size() > kCacheLineBytesMax) return true;
    const std::vector<absl::string_view> f = absl::StrSplit(Sv(line), '\t');
    if (f.size() != 6) return true;
    StsCacheEntry e;
    e.domain = std::string(f[0]);
    e.id = std::string(f[1]);
    std::vector<std::string> mx;
    if (!f[5].empty()) mx = absl::StrSplit(f[5], ',');
    bool ok = ValidName(e.domain, false) && !e.id.empty() && e.id.size() <= kIdBytesMax &&
              std::all_of(e.id.begin(), e.id.end(), [](char c) { return IsAlnum(c); }) &&
              f[2].size() <= 12 && absl::SimpleAtoi(f[2], &e.fetched_unix_s) &&
              e.fetched_unix_s >= 0 &&
              ParseMode(std::string_view(f[3].data(), f[3].size()), &e.policy.mode) &&
              f[4].size() <= 10 && absl::SimpleAtoi(f[4], &e.policy.max_age_s) &&
              e.policy.max_age_s >= 0 && e.policy.max_age_s <= kStsMaxAgeMax &&
              mx.size() <= kStsMxMax && (!mx.empty() || e.policy.mode == StsMode::kNone);
    for (size_t i = 0; ok && i < mx.size(); ++i) {
      ok = ValidName(mx[i], /*pattern=*/true) && absl::AsciiStrToLower(mx[i]) == mx[i];
    }
    if (!ok) return true;
    e.policy.mx = std::move(mx);
    out.push_back(std::move(e));
    return out.size() < max;
  });
  return out;
}

std::vector<std::string> StsPolicyLines(const StsPolicy& policy) {
  std::vector<std::string> lines = {"version: STSv1",
                                    absl::StrCat("mode: ", Sv(StsModeName(policy.mode)))};
  for (const std::string& mx : policy.mx) lines.push_back(absl::StrCat("mx: ", mx));
  lines.push_back(absl::StrCat("max_age: ", policy.max_age_s));
  return lines;
}

}  // namespace relay::tlspolicy
