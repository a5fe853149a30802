// SMTP TLS reporting (RFC 8460): what the delivery engine saw of each destination's TLS policy,
// counted per policy domain over a reporting window, and the aggregate report it owes each
// domain that asks for one in its `_smtp._tls` TXT record.
//
// - ParseTlsRptRecord: the TXT record (§3), hostile DNS input, linear.
// - TlsReportLedger: the counts, shared by every shard's engine (one absl::Mutex), bounded in
//   domains and in failure details per domain; persisted across restarts as a small text file
//   (TlsReportLedger::Format / Load, hostile on-disk input, linear).
// - BuildReportJson, Gzip, BuildReportMessage: the report (§4, JSON), compressed (§5.3,
//   application/tlsrpt+gzip), and the mail that carries it (§5.3, multipart/report).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace relay::tlspolicy {

// The result types of RFC 8460 §4.3 that a sender can observe.
enum class TlsFailure : uint8_t {
  kStarttlsNotSupported,     // "starttls-not-supported"
  kCertificateHostMismatch,  // "certificate-host-mismatch"
  kCertificateExpired,       // "certificate-expired"
  kCertificateNotTrusted,    // "certificate-not-trusted"
  kValidationFailure,        // "validation-failure"
  kTlsaInvalid,              // "tlsa-invalid"
  kDnssecInvalid,            // "dnssec-invalid"
  kStsPolicyFetchError,      // "sts-policy-fetch-error"
  kStsPolicyInvalid,         // "sts-policy-invalid"
  kStsWebpkiInvalid,         // "sts-webpki-invalid"
};
inline constexpr int kTlsFailureCount = 10;
std::string_view TlsFailureName(TlsFailure failure);

enum class ReportPolicyType : uint8_t { kSts, kTlsa, kNoPolicyFound };
std::string_view ReportPolicyTypeName(ReportPolicyType type);  // "sts", "tlsa", "no-policy-found"

// A `_smtp._tls.<domain>` TXT record (RFC 8460 §3): "v=TLSRPTv1; rua=<uri>[,<uri>...]" with
// mailto: and https: URIs, in the order given. Other URI schemes are skipped; an extension field
// is ignored. An error names the problem (no version, no usable rua).
struct TlsRptRecord {
  std::vector<std::string> rua;  // "mailto:tlsrpt@example.com", "https://r.example/v1"
};
inline constexpr size_t kTlsRptRuaMax = 8;             // URIs kept at most
inline constexpr size_t kTlsRptRecordBytesMax = 4096;  // longer records are refused
absl::StatusOr<TlsRptRecord> ParseTlsRptRecord(std::string_view txt);

// The address of a "mailto:" rua (RFC 6068: percent-decoded, a query after '?' dropped), only
// when it is a plain address an SMTP envelope can carry: local@domain, one '@', no control
// characters, spaces, quotes, angle brackets, backslashes or commas, the domain made of LDH
// labels. nullopt otherwise: DNS text never reaches a command line as it is.
std::optional<std::string> MailtoAddress(std::string_view uri);

// One SMTP session as the engine saw it, against one destination's policy.
struct TlsSession {
  std::string policy_domain;  // lower case
  ReportPolicyType policy_type = ReportPolicyType::kSts;
  // The policy as RFC 8460 §4.4 wants it: for STS the policy's lines ("version: STSv1",
  // "mode: enforce", "mx: ...", "max_age: ..."); for TLSA each record in presentation form
  // ("3 1 1 AB12..."). Kept from the first session of the window.
  std::vector<std::string> policy_strings;
  std::vector<std::string> mx_hosts;  // STS: the policy's mx patterns
  bool success = true;
  // When !success: the result type and where it happened.
  TlsFailure failure = TlsFailure::kValidationFailure;
  std::string sending_ip;
  std::string receiving_mx;
  std::string receiving_ip;
  std::string additional;  // "failure-reason-code": a short reason (RFC 8460 §4.4)
};

// One domain's aggregate over a window.
struct TlsFailureDetail {
  TlsFailure failure = TlsFailure::kValidationFailure;
  std::string sending_ip;
  std::string receiving_mx;
  std::string receiving_ip;
  std::string additional;
  uint64_t count = 0;
};
struct DomainReport {
  std::string policy_domain;
  ReportPolicyType policy_type = ReportPolicyType::kSts;
  std::vector<std::string> policy_strings;
  std::vector<std::string> mx_hosts;
  uint64_t successes = 0;
  uint64_t failures = 0;  // every failed session, those past failure_details_max included
  // Distinct (failure, sending ip, mx, receiving ip, additional) with their counts, at most
  // failure_details_max of them (the first seen).
  std::vector<TlsFailureDetail> details;
  int64_t window_start_unix_s = 0;
  int64_t window_end_unix_s = 0;  // exclusive
};

struct TlsReportLimits {
  size_t domains_max = 10000;        // policy domains counted per window; more are not counted
  size_t failure_details_max = 100;  // distinct failure details per domain
  size_t policy_strings_max = 64;    // lines kept of a domain's policy, and of its mx patterns
};

// Windows are aligned to multiples of `window_s` since the Unix epoch (86400: UTC days, as
// RFC 8460 §4.1 asks), so every node and every restart agrees on them.
class TlsReportLedger {
 public:
  TlsReportLedger(TlsReportLimits limits, int64_t window_s);
  TlsReportLedger(const TlsReportLedger&) = delete;
  TlsReportLedger& operator=(const TlsReportLedger&) = delete;

  // Counts `session` in the window that contains `now_unix_s`. A session of an earlier window
  // than the current one is counted in the current one.
  void Record(const TlsSession& session, int64_t now_unix_s);
  // The domains of every window that ended by `now_unix_s` (its end <= now), taken out of the
  // ledger. Each DomainReport carries its window.
  std::vector<DomainReport> TakeDue(int64_t now_unix_s);
  size_t domains() const;  // counted in the current window
  int64_t window_s() const { return window_s_; }

  // The ledger as a file (one line per domain and per failure detail; tab-separated fields with
  // tabs, newlines and backslashes escaped) and back. Load adds to what the ledger holds (a
  // restart within the window goes on counting); its domains count against domains_max. An error
  // names the line that is wrong; lines before it are kept.
  std::string Format() const;
  absl::Status Load(std::string_view file);

 private:
  const TlsReportLimits limits_;
  const int64_t window_s_;
  mutable absl::Mutex mu_;
  // By (window start, domain).
  absl::flat_hash_map<std::string, DomainReport> reports_ ABSL_GUARDED_BY(mu_);
  // Domains held per window start, for domains_max (a window that holds none is absent).
  absl::flat_hash_map<int64_t, size_t> window_domains_ ABSL_GUARDED_BY(mu_);
  // The newest window seen (by Record or Load): the current one. -1: none yet.
  int64_t newest_window_start_ ABSL_GUARDED_BY(mu_) = -1;
};

// The JSON report of RFC 8460 §4.4 for `domains` (one policy each) of one window:
// organization-name, date-range (RFC 3339, end inclusive: the last second of the window),
// contact-info, report-id, policies with summary and failure-details.
std::string BuildReportJson(const std::vector<DomainReport>& domains, std::string_view organization,
                            std::string_view contact, std::string_view report_id);

// `data` compressed as gzip (RFC 1952), for application/tlsrpt+gzip.
std::string Gzip(std::string_view data);

// The mail that carries a report (RFC 8460 §5.3): From `from`, To `to` (the rua's address),
// Subject "Report Domain: <domain> Submitter: <submitter> Report-ID: <<report_id>>", a
// TLS-Report-Domain and TLS-Report-Submitter field, Date, Message-ID, and a multipart/report
// (report-type="tlsrpt") with a short text part and the gzip as application/tlsrpt+gzip, base64,
// named "<submitter>!<domain>!<start>!<end>.json.gz" (start and end in Unix seconds). CRLF line
// ends.
std::string BuildReportMessage(std::string_view from, std::string_view to,
                               std::string_view policy_domain, std::string_view submitter,
                               std::string_view report_id, int64_t window_start_unix_s,
                               int64_t window_end_unix_s, int64_t now_unix_s,
                               std::string_view gzipped_json);

}  // namespace relay::tlspolicy
