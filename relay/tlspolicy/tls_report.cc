#include "relay/tlspolicy/tls_report.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "relay/base/check.h"
#include "relay/base/json.h"
#include "relay/base/lines.h"
#include "relay/base/sv.h"

namespace relay::tlspolicy {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr uint64_t kUint64Max = std::numeric_limits<uint64_t>::max();

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimWsp(std::string_view s) {
  while (!s.empty() && IsWsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsWsp(s.back())) s.remove_suffix(1);
  return s;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return a > kUint64Max - b ? kUint64Max : a + b; }

// --- The TXT record (RFC 8460 §3) ---

// The rua value: URIs separated by commas, with optional whitespace around them (§3:
// tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)).
void AddRuaUris(std::string_view value, std::vector<std::string>* rua) {
  size_t pos = 0;
  while (pos <= value.size() && rua->size() < kTlsRptRuaMax) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view uri = TrimWsp(value.substr(pos, comma - pos));
    // §3: mailto: (RFC 6068) and https: (RFC 2818); a scheme is case-insensitive (RFC 3986 §3.1).
    for (std::string_view scheme : {std::string_view("mailto:"), std::string_view("https:")}) {
      if (uri.size() > scheme.size() && absl::StartsWithIgnoreCase(Sv(uri), Sv(scheme))) {
        rua->emplace_back(uri);
        break;
      }
    }
    pos = comma + 1;
  }
}

// --- The ledger's file ---

constexpr std::string_view kLedgerHeading =
    "# relayd's TLS report counts: D window-start domain policy-type successes failures, then "
    "that domain's P policy-string, M mx-host and F result-type sending-ip receiving-mx "
    "receiving-ip additional count lines; tab-separated, \\t \\n \\\\ escaped\n";

void AppendEscaped(std::string* out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\\':
        out->append("\\\\");
        break;
      default:
        out->push_back(c);
    }
  }
}

// False on a backslash that is not one of the three escapes.
bool Unescape(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out->push_back(in[i]);
      continue;
    }
    if (++i == in.size()) return false;
    switch (in[i]) {
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case '\\':
        out->push_back('\\');
        break;
      default:
        return false;
    }
  }
  return true;
}

// Unsigned decimal, at least one digit, no sign, overflow-checked.
bool ParseUnsigned(std::string_view s, uint64_t* value) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (kUint64Max - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *value = v;
  return true;
}

constexpr size_t kLedgerFieldsMax = 7;  // an F line's
using LedgerFields = std::array<std::string_view, kLedgerFieldsMax>;

// Splits `line` at its tabs. Returns the number of fields, kLedgerFieldsMax + 1 when there are
// more (the rest are not looked at).
size_t SplitTabs(std::string_view line, LedgerFields* fields) {
  size_t n = 0;
  size_t pos = 0;
  while (true) {
    if (n == kLedgerFieldsMax) return n + 1;
    size_t tab = line.find('\t', pos);
    if (tab == std::string_view::npos) tab = line.size();
    (*fields)[n++] = line.substr(pos, tab - pos);
    if (tab == line.size()) return n;
    pos = tab + 1;
  }
}

bool ParsePolicyType(std::string_view name, ReportPolicyType* type) {
  for (ReportPolicyType t :
       {ReportPolicyType::kSts, ReportPolicyType::kTlsa, ReportPolicyType::kNoPolicyFound}) {
    if (ReportPolicyTypeName(t) == name) {
      *type = t;
      return true;
    }
  }
  return false;
}

bool ParseFailure(std::string_view name, TlsFailure* failure) {
  for (int i = 0; i < kTlsFailureCount; ++i) {
    if (TlsFailureName(static_cast<TlsFailure>(i)) == name) {
      *failure = static_cast<TlsFailure>(i);
      return true;
    }
  }
  return false;
}

std::string ReportKey(int64_t window_start, std::string_view domain) {
  return absl::StrCat(window_start, " ", Sv(domain));  // the start has no space: unambiguous
}

// Adds `count` to the detail that matches, or appends a new one while fewer than `details_max`.
// A linear search: at most failure_details_max (100) short comparisons per failed session.
void AddDetail(DomainReport* report, TlsFailure failure, std::string_view sending_ip,
               std::string_view receiving_mx, std::string_view receiving_ip,
               std::string_view additional, uint64_t count, size_t details_max) {
  for (TlsFailureDetail& d : report->details) {
    if (d.failure == failure && d.sending_ip == sending_ip && d.receiving_mx == receiving_mx &&
        d.receiving_ip == receiving_ip && d.additional == additional) {
      d.count = SaturatingAdd(d.count, count);
      return;
    }
  }
  if (report->details.size() >= details_max) return;
  TlsFailureDetail& d = report->details.emplace_back();
  d.failure = failure;
  d.sending_ip = std::string(sending_ip);
  d.receiving_mx = std::string(receiving_mx);
  d.receiving_ip = std::string(receiving_ip);
  d.additional = std::string(additional);
  d.count = count;
}

// --- The report ---

// A JSON string (RFC 8259 §7): relay/base/json.h.
void AppendJsonString(std::string* out, std::string_view s) { relay::AppendJsonString(*out, s); }

void AppendJsonStringArray(std::string* out, const std::vector<std::string>& items) {
  out->push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, items[i]);
  }
  out->push_back(']');
}

// ,"key":"value" when value is not empty: the optional fields of §4.4 are left out rather than
// sent empty.
void AppendOptionalString(std::string* out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  absl::StrAppend(out, ",\"", Sv(key), "\":");
  AppendJsonString(out, value);
}

absl::CivilSecond Utc(int64_t unix_s) {
  return absl::ToCivilSecond(absl::FromUnixSeconds(unix_s), absl::UTCTimeZone());
}

// RFC 3339 date-time, as §4.4's date-range asks: "2016-04-01T00:00:00Z".
std::string Rfc3339(int64_t unix_s) {
  const absl::CivilSecond t = Utc(unix_s);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02dZ", t.year(), t.month(), t.day(), t.hour(),
                         t.minute(), t.second());
}

// RFC 5322 §3.3 date-time in UTC: "Fri, 09 May 2017 16:54:30 +0000". The names are written here
// rather than taken from strftime, whose %a and %b follow the locale.
std::string Rfc5322Date(int64_t unix_s) {
  static constexpr const char* kWeekdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const absl::CivilSecond t = Utc(unix_s);
  // absl::Weekday counts from Monday.
  const int weekday = static_cast<int>(absl::GetWeekday(absl::CivilDay(t)));
  return absl::StrFormat("%s, %02d %s %04d %02d:%02d:%02d +0000", kWeekdays[weekday], t.day(),
                         kMonths[t.month() - 1], t.year(), t.hour(), t.minute(), t.second());
}

// Text from the caller or from DNS (the rua's address, the policy domain) put in a header or in
// the us-ascii text part: anything but printable ASCII becomes '?', so that no CR or LF can start
// a header of its own.
std::string HeaderText(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) c = '?';
  }
  return out;
}

// One side of a msg-id (RFC 5322 §3.6.4, dot-atom-text): other characters become '_'.
std::string MsgIdPart(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    const bool atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != std::string_view::npos;
    if (!atext) c = '_';
  }
  if (out.empty()) out.push_back('_');
  return out;
}

// Inside the quoted filename: no quote or backslash.
std::string FilenamePart(std::string_view s) {
  std::string out = HeaderText(s);
  for (char& c : out) {
    if (c == '"' || c == '\\') c = '_';
  }
  return out;
}

}  // namespace

std::string_view TlsFailureName(TlsFailure failure) {
  switch (failure) {
    case TlsFailure::kStarttlsNotSupported:
      return "starttls-not-supported";
    case TlsFailure::kCertificateHostMismatch:
      return "certificate-host-mismatch";
    case TlsFailure::kCertificateExpired:
      return "certificate-expired";
    case TlsFailure::kCertificateNotTrusted:
      return "certificate-not-trusted";
    case TlsFailure::kValidationFailure:
      return "validation-failure";
    case TlsFailure::kTlsaInvalid:
      return "tlsa-invalid";
    case TlsFailure::kDnssecInvalid:
      return "dnssec-invalid";
    case TlsFailure::kStsPolicyFetchError:
      return "sts-policy-fetch-error";
    case TlsFailure::kStsPolicyInvalid:
      return "sts-policy-invalid";
    case TlsFailure::kStsWebpkiInvalid:
      return "sts-webpki-invalid";
  }
  return "validation-failure";
}

std::string_view ReportPolicyTypeName(ReportPolicyType type) {
  switch (type) {
    case ReportPolicyType::kSts:
      return "sts";
    case ReportPolicyType::kTlsa:
      return "tlsa";
    case ReportPolicyType::kNoPolicyFound:
      return "no-policy-found";
  }
  return "no-policy-found";
}

absl::StatusOr<TlsRptRecord> ParseTlsRptRecord(std::string_view txt) {
  if (txt.size() > kTlsRptRecordBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("the record is longer than ", kTlsRptRecordBytesMax, " bytes"));
  }
  TlsRptRecord record;
  bool first = true;
  bool rua_seen = false;
  size_t pos = 0;
  // §3: fields separated by ';' with optional whitespace around them, the version first.
  while (pos <= txt.size()) {
    size_t semicolon = txt.find(';', pos);
    if (semicolon == std::string_view::npos) semicolon = txt.size();
    const std::string_view field = TrimWsp(txt.substr(pos, semicolon - pos));
    pos = semicolon + 1;
    if (first) {
      first = false;
      if (field != "v=TLSRPTv1") {
        return absl::InvalidArgumentError("the record does not start with v=TLSRPTv1");
      }
      continue;
    }
    const size_t eq = field.find('=');
    // An extension field, or a field that is not name=value: ignored (§3: tlsrpt-extension).
    if (eq == std::string_view::npos || TrimWsp(field.substr(0, eq)) != "rua") continue;
    rua_seen = true;
    AddRuaUris(field.substr(eq + 1), &record.rua);
  }
  if (!rua_seen) return absl::InvalidArgumentError("the record has no rua field");
  if (record.rua.empty()) {
    return absl::InvalidArgumentError("the record's rua has no mailto: or https: URI");
  }
  return record;
}

TlsReportLedger::TlsReportLedger(TlsReportLimits limits, int64_t window_s)
    : limits_(limits), window_s_(std::max<int64_t>(window_s, 1)) {}

void TlsReportLedger::Record(const TlsSession& session, int64_t now_unix_s) {
  // A clock before 1970 or at the end of time is broken: nothing to count a window by.
  if (session.policy_domain.empty() || now_unix_s < 0 || now_unix_s > kInt64Max - window_s_) {
    return;
  }
  int64_t start = now_unix_s / window_s_ * window_s_;
  std::string key = ReportKey(start, session.policy_domain);  // made outside the lock
  absl::MutexLock lock(&mu_);
  // A session that ended after one that saw a newer window (a clock stepped back, a session timed
  // across the window's end) goes in the newest: a window once begun is never reopened.
  if (start < newest_window_start_) {
    start = newest_window_start_;
    key = ReportKey(start, session.policy_domain);
  }
  newest_window_start_ = start;
  auto it = reports_.find(key);
  if (it == reports_.end()) {
    auto held = window_domains_.find(start);
    if ((held == window_domains_.end() ? 0 : held->second) >= limits_.domains_max) return;
    ++window_domains_[start];
    DomainReport report;
    report.policy_domain = session.policy_domain;
    report.policy_type = session.policy_type;
    // The policy as the window's first session saw it (§4.4 reports one policy per domain).
    const size_t strings = std::min(session.policy_strings.size(), limits_.policy_strings_max);
    report.policy_strings.assign(session.policy_strings.begin(),
                                 session.policy_strings.begin() + strings);
    const size_t mx = std::min(session.mx_hosts.size(), limits_.policy_strings_max);
    report.mx_hosts.assign(session.mx_hosts.begin(), session.mx_hosts.begin() + mx);
    report.window_start_unix_s = start;
    report.window_end_unix_s = start + window_s_;
    it = reports_.emplace(std::move(key), std::move(report)).first;
  }
  DomainReport& report = it->second;
  if (session.success) {
    report.successes = SaturatingAdd(report.successes, 1);
    return;
  }
  report.failures = SaturatingAdd(report.failures, 1);
  AddDetail(&report, session.failure, session.sending_ip, session.receiving_mx,
            session.receiving_ip, session.additional, 1, limits_.failure_details_max);
}

std::vector<DomainReport> TlsReportLedger::TakeDue(int64_t now_unix_s) {
  std::vector<DomainReport> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = reports_.begin(); it != reports_.end();) {
      if (it->second.window_end_unix_s > now_unix_s) {
        ++it;
        continue;
      }
      auto held = window_domains_.find(it->second.window_start_unix_s);
      if (held != window_domains_.end() && --held->second == 0) window_domains_.erase(held);
      due.push_back(std::move(it->second));
      reports_.erase(it++);
    }
  }
  std::sort(due.begin(), due.end(), [](const DomainReport& a, const DomainReport& b) {
    return std::tie(a.window_start_unix_s, a.policy_domain) <
           std::tie(b.window_start_unix_s, b.policy_domain);
  });
  return due;
}

size_t TlsReportLedger::domains() const {
  absl::ReaderMutexLock lock(&mu_);
  auto held = window_domains_.find(newest_window_start_);
  return held == window_domains_.end() ? 0 : held->second;
}

// The file, e.g. (tabs shown as →):
//   # relayd's TLS report counts: ...
//   D→1700006400→example.com→sts→12→2
//   P→version: STSv1
//   P→mode: enforce
//   M→mx.example.com
//   F→certificate-expired→192.0.2.1→mx.example.com→198.51.100.7→expired\tsince May→2
// Sorted by (window start, domain), so that the same counts always make the same file.
std::string TlsReportLedger::Format() const {
  std::string out(kLedgerHeading);
  absl::ReaderMutexLock lock(&mu_);
  std::vector<const DomainReport*> sorted;
  sorted.reserve(reports_.size());
  for (const auto& [key, report] : reports_) sorted.push_back(&report);
  std::sort(sorted.begin(), sorted.end(), [](const DomainReport* a, const DomainReport* b) {
    return std::tie(a->window_start_unix_s, a->policy_domain) <
           std::tie(b->window_start_unix_s, b->policy_domain);
  });
  for (const DomainReport* r : sorted) {
    absl::StrAppend(&out, "D\t", r->window_start_unix_s, "\t");
    AppendEscaped(&out, r->policy_domain);
    absl::StrAppend(&out, "\t", Sv(ReportPolicyTypeName(r->policy_type)), "\t", r->successes, "\t",
                    r->failures, "\n");
    for (const std::string& s : r->policy_strings) {
      out.append("P\t");
      AppendEscaped(&out, s);
      out.push_back('\n');
    }
    for (const std::string& mx : r->mx_hosts) {
      out.append("M\t");
      AppendEscaped(&out, mx);
      out.push_back('\n');
    }
    for (const TlsFailureDetail& d : r->details) {
      absl::StrAppend(&out, "F\t", Sv(TlsFailureName(d.failure)), "\t");
      for (const std::string* text :
           {&d.sending_ip, &d.receiving_mx, &d.receiving_ip, &d.additional}) {
        AppendEscaped(&out, *text);
        out.push_back('\t');
      }
      absl::StrAppend(&out, d.count, "\n");
    }
  }
  return out;
}

absl::Status TlsReportLedger::Load(std::string_view file) {
  absl::MutexLock lock(&mu_);
  absl::Status status;
  size_t line_number = 0;
  bool domain_seen = false;  // a D line came before
  // That D line's entry, null when it was over domains_max. A pointer into reports_, which only
  // the next D line may grow (and which then sets it again).
  DomainReport* current = nullptr;
  bool current_is_new = false;  // made by that D line: its P and M lines are its policy
  LedgerFields fields;
  std::string text[4];  // the unescaped text fields of one line
  // One line: an error's text, or empty.
  const auto load_line = [&](std::string_view line) -> std::string_view {
    const size_t n = SplitTabs(line, &fields);
    const std::string_view kind = fields[0];
    if (kind == "D") {
      if (n != 6) return "a D line has 6 fields";
      uint64_t start = 0, successes = 0, failures = 0;
      ReportPolicyType type;
      if (!ParseUnsigned(fields[1], &start)) return "the window start is not a number";
      if (start > static_cast<uint64_t>(kInt64Max - window_s_)) {
        return "the window start is out of range";
      }
      if (!Unescape(fields[2], &text[0]) || text[0].empty()) return "the domain is not valid";
      if (!ParsePolicyType(fields[3], &type)) return "unknown policy type";
      if (!ParseUnsigned(fields[4], &successes) || !ParseUnsigned(fields[5], &failures)) {
        return "a count is not a number";
      }
      domain_seen = true;
      // Aligned to this ledger's windows, which may have changed since the file was written.
      const int64_t window = static_cast<int64_t>(start) / window_s_ * window_s_;
      std::string key = ReportKey(window, text[0]);
      auto it = reports_.find(key);
      current_is_new = it == reports_.end();
      if (current_is_new) {
        auto held = window_domains_.find(window);
        if ((held == window_domains_.end() ? 0 : held->second) >= limits_.domains_max) {
          current = nullptr;  // dropped with its P, M and F lines
          return {};
        }
        ++window_domains_[window];
        DomainReport report;
        report.policy_domain = std::move(text[0]);
        report.policy_type = type;
        report.window_start_unix_s = window;
        report.window_end_unix_s = window + window_s_;
        it = reports_.emplace(std::move(key), std::move(report)).first;
      }
      current = &it->second;
      current->successes = SaturatingAdd(current->successes, successes);
      current->failures = SaturatingAdd(current->failures, failures);
      newest_window_start_ = std::max(newest_window_start_, window);
      return {};
    }
    if (kind == "P" || kind == "M") {
      if (n != 2) return "a P or M line has 2 fields";
      if (!domain_seen) return "a P or M line before any D line";
      if (!Unescape(fields[1], &text[0])) return "bad escape";
      if (current == nullptr || !current_is_new) return {};
      std::vector<std::string>& list = kind == "P" ? current->policy_strings : current->mx_hosts;
      if (list.size() < limits_.policy_strings_max) list.push_back(std::move(text[0]));
      return {};
    }
    if (kind == "F") {
      if (n != 7) return "an F line has 7 fields";
      if (!domain_seen) return "an F line before any D line";
      TlsFailure failure;
      uint64_t count = 0;
      if (!ParseFailure(fields[1], &failure)) return "unknown result type";
      for (size_t i = 0; i < 4; ++i) {
        if (!Unescape(fields[2 + i], &text[i])) return "bad escape";
      }
      if (!ParseUnsigned(fields[6], &count)) return "the count is not a number";
      if (current == nullptr) return {};
      AddDetail(current, failure, text[0], text[1], text[2], text[3], count,
                limits_.failure_details_max);
      return {};
    }
    return "unknown line (not D, P, M or F)";
  };
  ForEachLine(file, [&](std::string_view line) {
    ++line_number;
    if (line.empty() || line[0] == '#') return true;
    const std::string_view error = load_line(line);
    if (error.empty()) return true;
    status = absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", Sv(error)));
    return false;
  });
  return status;
}

std::string BuildReportJson(const std::vector<DomainReport>& domains, std::string_view organization,
                            std::string_view contact, std::string_view report_id) {
  const int64_t start = domains.empty() ? 0 : domains[0].window_start_unix_s;
  const int64_t end = domains.empty() ? 1 : domains[0].window_end_unix_s;
  std::string out = "{\"organization-name\":";
  AppendJsonString(&out, organization);
  // §4.4: the end is inclusive, the last second of the window.
  absl::StrAppend(&out, ",\"date-range\":{\"start-datetime\":\"", Rfc3339(start),
                  "\",\"end-datetime\":\"", Rfc3339(std::max(start, end - 1)),
                  "\"},\"contact-info\":");
  AppendJsonString(&out, contact);
  out.append(",\"report-id\":");
  AppendJsonString(&out, report_id);
  out.append(",\"policies\":[");
  for (size_t i = 0; i < domains.size(); ++i) {
    const DomainReport& r = domains[i];
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, "{\"policy\":{\"policy-type\":\"",
                    Sv(ReportPolicyTypeName(r.policy_type)), "\"");
    if (!r.policy_strings.empty()) {
      out.append(",\"policy-string\":");
      AppendJsonStringArray(&out, r.policy_strings);
    }
    out.append(",\"policy-domain\":");
    AppendJsonString(&out, r.policy_domain);
    if (!r.mx_hosts.empty()) {
      out.append(",\"mx-host\":");
      AppendJsonStringArray(&out, r.mx_hosts);
    }
    absl::StrAppend(&out, "},\"summary\":{\"total-successful-session-count\":", r.successes,
                    ",\"total-failure-session-count\":", r.failures, "},\"failure-details\":[");
    for (size_t k = 0; k < r.details.size(); ++k) {
      const TlsFailureDetail& d = r.details[k];
      if (k > 0) out.push_back(',');
      absl::StrAppend(&out, "{\"result-type\":\"", Sv(TlsFailureName(d.failure)), "\"");
      AppendOptionalString(&out, "sending-mta-ip", d.sending_ip);
      AppendOptionalString(&out, "receiving-mx-hostname", d.receiving_mx);
      AppendOptionalString(&out, "receiving-ip", d.receiving_ip);
      absl::StrAppend(&out, ",\"failed-session-count\":", d.count);
      AppendOptionalString(&out, "failure-reason-code", d.additional);
      out.push_back('}');
    }
    out.append("]}");
  }
  out.append("]}");
  return out;
}

std::string Gzip(std::string_view data) {
  // zlib counts in uInt: the input and the output are handed over in pieces of at most 1 GiB.
  constexpr size_t kPieceBytesMax = size_t{1} << 30;
  z_stream zs = {};
  // windowBits 15 + 16: a gzip header and trailer (RFC 1952) around the deflate stream.
  CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, data.size()), '\0');
  size_t in_pos = 0;
  size_t out_pos = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out_pos == out.size()) out.resize(out.size() * 2 + 64);
    const size_t in_piece = std::min(data.size() - in_pos, kPieceBytesMax);
    const size_t out_piece = std::min(out.size() - out_pos, kPieceBytesMax);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_piece);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_piece);
    rc = deflate(&zs, in_pos + in_piece == data.size() ? Z_FINISH : Z_NO_FLUSH);
    CHECK(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR);
    in_pos += in_piece - zs.avail_in;
    out_pos += out_piece - zs.avail_out;
  }
  deflateEnd(&zs);
  out.resize(out_pos);
  return out;
}

std::string BuildReportMessage(std::string_view from, std::string_view to,
                               std::string_view policy_domain, std::string_view submitter,
                               std::string_view report_id, int64_t window_start_unix_s,
                               int64_t window_end_unix_s, int64_t now_unix_s,
                               std::string_view gzipped_json) {
  const std::string domain = HeaderText(policy_domain);
  const std::string sender = HeaderText(submitter);
  const std::string id = HeaderText(report_id);
  const std::string text_part =
      absl::StrCat("This is an aggregate TLS report from ", sender, "\r\n");
  const std::string filename =
      absl::StrCat(FilenamePart(submitter), "!", FilenamePart(policy_domain), "!",
                   window_start_unix_s, "!", window_end_unix_s, ".json.gz");
  // The base64 lines cannot hold '_'; the only other text between the boundaries is the text
  // part and the filename, which the boundary is made not to occur in.
  std::string boundary = absl::StrCat("=_tlsrpt_", now_unix_s, "_", gzipped_json.size());
  while (absl::StrContains(text_part, boundary) || absl::StrContains(filename, boundary)) {
    boundary.push_back('_');
  }

  std::string m;
  // RFC 8460 §5.3, with the Subject folded as in its example.
  absl::StrAppend(&m, "From: ", HeaderText(from), "\r\nTo: ", HeaderText(to),
                  "\r\nDate: ", Rfc5322Date(now_unix_s), "\r\nSubject: Report Domain: ", domain,
                  "\r\n Submitter: ", sender, "\r\n Report-ID: <", id, ">\r\n");
  absl::StrAppend(&m, "Message-ID: <", MsgIdPart(report_id), "@", MsgIdPart(submitter), ">\r\n");
  absl::StrAppend(&m, "TLS-Report-Domain: ", domain, "\r\nTLS-Report-Submitter: ", sender,
                  "\r\nMIME-Version: 1.0\r\n");
  // RFC 6522 §3: multipart/report, the report-type naming the machine-readable part.
  absl::StrAppend(&m, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"",
                  boundary, "\"\r\n\r\nThis is a multipart message in MIME format.\r\n\r\n");
  absl::StrAppend(&m, "--", boundary,
                  "\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n"
                  "Content-Transfer-Encoding: 7bit\r\n\r\n",
                  text_part, "\r\n");
  absl::StrAppend(&m, "--", boundary,
                  "\r\nContent-Type: application/tlsrpt+gzip\r\n"
                  "Content-Transfer-Encoding: base64\r\n"
                  "Content-Disposition: attachment;\r\n filename=\"",
                  filename, "\"\r\n\r\n");
  // RFC 2045 §6.8: lines of at most 76 characters.
  const std::string base64 = absl::Base64Escape(Sv(gzipped_json));
  for (size_t pos = 0; pos < base64.size(); pos += 76) {
    m.append(base64, pos, 76);
    m.append("\r\n");
  }
  absl::StrAppend(&m, "\r\n--", boundary, "--\r\n");
  return m;
}

std::optional<std::string> MailtoAddress(std::string_view uri) {
  constexpr std::string_view kScheme = "mailto:";
  if (uri.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(Sv(uri.substr(0, kScheme.size())), Sv(kScheme))) {
    return std::nullopt;
  }
  std::string_view rest = uri.substr(kScheme.size());
  rest = rest.substr(0, rest.find('?'));
  if (rest.empty() || rest.size() > 254) return std::nullopt;  // RFC 5321 §4.5.3.1.3
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string address;
  for (size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (c == '%') {
      if (i + 2 >= rest.size()) return std::nullopt;
      const int hi = hex(rest[i + 1]), lo = hex(rest[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 127 || c == '<' || c == '>' || c == '"' || c == '\\' || c == ',' ||
        c == '(' || c == ')' || c == '[' || c == ']' || c == ';' || c == ':') {
      return std::nullopt;
    }
    address.push_back(c);
  }
  const size_t at = address.find('@');
  if (at == 0 || at == std::string::npos || address.find('@', at + 1) != std::string::npos) {
    return std::nullopt;
  }
  const std::string_view domain = std::string_view(address).substr(at + 1);
  if (domain.empty() || domain.size() > 253) return std::nullopt;
  size_t label = 0;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      if (label == 0 || label > 63 || domain[i - 1] == '-' || domain[i - label] == '-') {
        return std::nullopt;
      }
      label = 0;
      continue;
    }
    const char c = domain[i];
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return std::nullopt;
    ++label;
  }
  return address;
}

}  // namespace relay::tlspolicy
