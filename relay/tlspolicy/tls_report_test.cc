#include "relay/tlspolicy/tls_report.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace relay::tlspolicy {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kMidnight = 19675 * kDay;  // 2023-11-14T00:00:00Z
constexpr int64_t kNoon = kMidnight + kDay / 2;

TEST(TlsReportNamesTest, AreRfc8460s) {
  EXPECT_EQ(TlsFailureName(TlsFailure::kStarttlsNotSupported), "starttls-not-supported");
  EXPECT_EQ(TlsFailureName(TlsFailure::kCertificateHostMismatch), "certificate-host-mismatch");
  EXPECT_EQ(TlsFailureName(TlsFailure::kCertificateExpired), "certificate-expired");
  EXPECT_EQ(TlsFailureName(TlsFailure::kCertificateNotTrusted), "certificate-not-trusted");
  EXPECT_EQ(TlsFailureName(TlsFailure::kValidationFailure), "validation-failure");
  EXPECT_EQ(TlsFailureName(TlsFailure::kTlsaInvalid), "tlsa-invalid");
  EXPECT_EQ(TlsFailureName(TlsFailure::kDnssecInvalid), "dnssec-invalid");
  EXPECT_EQ(TlsFailureName(TlsFailure::kStsPolicyFetchError), "sts-policy-fetch-error");
  EXPECT_EQ(TlsFailureName(TlsFailure::kStsPolicyInvalid), "sts-policy-invalid");
  EXPECT_EQ(TlsFailureName(TlsFailure::kStsWebpkiInvalid), "sts-webpki-invalid");
  EXPECT_EQ(ReportPolicyTypeName(ReportPolicyType::kSts), "sts");
  EXPECT_EQ(ReportPolicyTypeName(ReportPolicyType::kTlsa), "tlsa");
  EXPECT_EQ(ReportPolicyTypeName(ReportPolicyType::kNoPolicyFound), "no-policy-found");
}

// --- The TXT record ---

TEST(TlsRptRecordTest, ParsesTheRfcExamples) {
  absl::StatusOr<TlsRptRecord> r = ParseTlsRptRecord("v=TLSRPTv1;rua=mailto:reports@example.com");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rua, std::vector<std::string>{"mailto:reports@example.com"});
  r = ParseTlsRptRecord("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rua, std::vector<std::string>{"https://reporting.example.com/v1/tlsrpt"});
}

TEST(TlsRptRecordTest, SchemesAreCaseInsensitiveAndKeptAsGiven) {
  absl::StatusOr<TlsRptRecord> r = ParseTlsRptRecord("v=TLSRPTv1; rua=MAILTO:Tls@Example.COM");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rua, std::vector<std::string>{"MAILTO:Tls@Example.COM"});
  r = ParseTlsRptRecord("v=TLSRPTv1;rua=HttpS://r.example/v1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rua, std::vector<std::string>{"HttpS://r.example/v1"});
}

TEST(TlsRptRecordTest, SeveralUrisOtherSchemesSkippedExtensionsIgnored) {
  absl::StatusOr<TlsRptRecord> r = ParseTlsRptRecord(
      " v=TLSRPTv1 ;\text=1; rua=mailto:a@example.com , ftp://x.example/ ,\t"
      "https://r.example/v1,mailto:,mailto:b@example.com ; other = thing ;");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rua, (std::vector<std::string>{"mailto:a@example.com", "https://r.example/v1",
                                              "mailto:b@example.com"}));
}

TEST(TlsRptRecordTest, KeepsAtMostRuaMax) {
  std::string txt = "v=TLSRPTv1; rua=";
  for (size_t i = 0; i < kTlsRptRuaMax + 3; ++i) {
    absl::StrAppend(&txt, i > 0 ? "," : "", "mailto:r", i, "@example.com");
  }
  absl::StatusOr<TlsRptRecord> r = ParseTlsRptRecord(txt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->rua.size(), kTlsRptRuaMax);
  EXPECT_EQ(r->rua.back(), absl::StrCat("mailto:r", kTlsRptRuaMax - 1, "@example.com"));
}

TEST(TlsRptRecordTest, ErrorsNameTheProblem) {
  absl::StatusOr<TlsRptRecord> r = ParseTlsRptRecord("rua=mailto:a@example.com");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("v=TLSRPTv1"), std::string::npos) << r.status();
  EXPECT_FALSE(ParseTlsRptRecord("v=TLSRPTv10; rua=mailto:a@example.com").ok());
  EXPECT_FALSE(ParseTlsRptRecord("v=tlsrptv1; rua=mailto:a@example.com").ok());
  EXPECT_FALSE(ParseTlsRptRecord("").ok());

  r = ParseTlsRptRecord("v=TLSRPTv1; ext=1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no rua"), std::string::npos) << r.status();
  r = ParseTlsRptRecord("v=TLSRPTv1; rua=ftp://x.example/,gopher://y.example/");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("mailto: or https:"), std::string::npos) << r.status();

  std::string long_record = "v=TLSRPTv1; rua=mailto:a@example.com; ext=";
  long_record.resize(kTlsRptRecordBytesMax + 1, 'x');
  r = ParseTlsRptRecord(long_record);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("longer than 4096"), std::string::npos) << r.status();
  long_record.resize(kTlsRptRecordBytesMax);
  EXPECT_TRUE(ParseTlsRptRecord(long_record).ok());
}

// --- The ledger ---

TlsSession Success(std::string domain) {
  TlsSession s;
  s.policy_domain = std::move(domain);
  s.policy_strings = {"version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"};
  s.mx_hosts = {"mx.example.com"};
  return s;
}

TlsSession Failure(std::string domain, TlsFailure failure, std::string receiving_ip) {
  TlsSession s = Success(std::move(domain));
  s.success = false;
  s.failure = failure;
  s.sending_ip = "192.0.2.1";
  s.receiving_mx = "mx.example.com";
  s.receiving_ip = std::move(receiving_ip);
  return s;
}

TEST(TlsReportLedgerTest, CountsSessionsAndFailureDetails) {
  TlsReportLedger ledger({}, kDay);
  ledger.Record(Success("example.com"), kNoon);
  TlsSession other_policy = Success("example.com");
  other_policy.policy_strings = {"version: STSv1", "mode: testing"};
  ledger.Record(other_policy, kNoon + 1);  // the first session's policy stays
  ledger.Record(Failure("example.com", TlsFailure::kCertificateExpired, "198.51.100.7"), kNoon);
  ledger.Record(Failure("example.com", TlsFailure::kCertificateExpired, "198.51.100.7"), kNoon);
  ledger.Record(Failure("example.com", TlsFailure::kCertificateExpired, "198.51.100.8"), kNoon);
  ledger.Record(Failure("example.com", TlsFailure::kStarttlsNotSupported, "198.51.100.7"), kNoon);
  ledger.Record(Success("example.net"), kNoon);
  EXPECT_EQ(ledger.domains(), 2u);

  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + kDay);
  ASSERT_EQ(due.size(), 2u);
  const DomainReport& r = due[0];
  EXPECT_EQ(r.policy_domain, "example.com");
  EXPECT_EQ(r.policy_type, ReportPolicyType::kSts);
  EXPECT_EQ(r.policy_strings.size(), 4u);
  EXPECT_EQ(r.policy_strings[1], "mode: enforce");
  EXPECT_EQ(r.mx_hosts, std::vector<std::string>{"mx.example.com"});
  EXPECT_EQ(r.successes, 2u);
  EXPECT_EQ(r.failures, 4u);
  ASSERT_EQ(r.details.size(), 3u);
  EXPECT_EQ(r.details[0].failure, TlsFailure::kCertificateExpired);
  EXPECT_EQ(r.details[0].receiving_ip, "198.51.100.7");
  EXPECT_EQ(r.details[0].count, 2u);
  EXPECT_EQ(r.details[1].receiving_ip, "198.51.100.8");
  EXPECT_EQ(r.details[1].count, 1u);
  EXPECT_EQ(r.details[2].failure, TlsFailure::kStarttlsNotSupported);
  EXPECT_EQ(r.window_start_unix_s, kMidnight);
  EXPECT_EQ(r.window_end_unix_s, kMidnight + kDay);
  EXPECT_EQ(due[1].policy_domain, "example.net");
  EXPECT_EQ(due[1].successes, 1u);
  EXPECT_EQ(ledger.domains(), 0u);
}

TEST(TlsReportLedgerTest, BoundedInDomainsDetailsAndPolicyStrings) {
  TlsReportLedger ledger({.domains_max = 2, .failure_details_max = 2, .policy_strings_max = 3},
                         kDay);
  for (int i = 0; i < 4; ++i) ledger.Record(Success(absl::StrCat("d", i, ".example")), kNoon);
  EXPECT_EQ(ledger.domains(), 2u);
  for (int i = 0; i < 5; ++i) {
    ledger.Record(Failure("d0.example", TlsFailure::kValidationFailure, absl::StrCat("10.0.0.", i)),
                  kNoon);
  }
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + kDay);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].policy_domain, "d0.example");
  EXPECT_EQ(due[1].policy_domain, "d1.example");
  EXPECT_EQ(due[0].failures, 5u);  // every failure is counted
  EXPECT_EQ(due[0].details.size(), 2u);
  EXPECT_EQ(due[0].policy_strings.size(), 3u);
  // A new window has room again.
  ledger.Record(Success("d3.example"), kNoon + kDay);
  EXPECT_EQ(ledger.domains(), 1u);
}

TEST(TlsReportLedgerTest, WindowsAreAlignedToTheEpoch) {
  TlsReportLedger ledger({}, 3600);
  ledger.Record(Success("example.com"), kMidnight + 3 * 3600 + 1799);
  EXPECT_TRUE(ledger.TakeDue(kMidnight + 4 * 3600 - 1).empty());
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + 4 * 3600);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].window_start_unix_s, kMidnight + 3 * 3600);
  EXPECT_EQ(due[0].window_end_unix_s, kMidnight + 4 * 3600);
  EXPECT_EQ(ledger.window_s(), 3600);
}

TEST(TlsReportLedgerTest, TakeDueIsOrderedAndRemoves) {
  TlsReportLedger ledger({}, kDay);
  ledger.Record(Success("b.example"), kNoon);
  ledger.Record(Success("a.example"), kNoon);
  ledger.Record(Success("c.example"), kNoon + kDay);
  ledger.Record(Success("a.example"), kNoon + kDay);
  ledger.Record(Success("z.example"), kNoon + 2 * kDay);  // not due
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + 2 * kDay);
  ASSERT_EQ(due.size(), 4u);
  EXPECT_EQ(due[0].policy_domain, "a.example");
  EXPECT_EQ(due[0].window_start_unix_s, kMidnight);
  EXPECT_EQ(due[1].policy_domain, "b.example");
  EXPECT_EQ(due[2].policy_domain, "a.example");
  EXPECT_EQ(due[2].window_start_unix_s, kMidnight + kDay);
  EXPECT_EQ(due[3].policy_domain, "c.example");
  EXPECT_TRUE(ledger.TakeDue(kMidnight + 2 * kDay).empty());  // taken out
  EXPECT_EQ(ledger.domains(), 1u);
  due = ledger.TakeDue(kMidnight + 3 * kDay);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].policy_domain, "z.example");
}

TEST(TlsReportLedgerTest, AnOlderWindowsSessionCountsInTheCurrentOne) {
  TlsReportLedger ledger({}, kDay);
  ledger.Record(Success("example.com"), kNoon + kDay);
  ledger.Record(Success("example.com"), kNoon);  // a clock stepped back a day
  ledger.Record(Success("example.net"), kNoon);
  EXPECT_EQ(ledger.domains(), 2u);
  EXPECT_TRUE(ledger.TakeDue(kMidnight + kDay).empty());
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + 2 * kDay);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].successes, 2u);
  EXPECT_EQ(due[0].window_start_unix_s, kMidnight + kDay);
  EXPECT_EQ(due[1].window_start_unix_s, kMidnight + kDay);
}

TEST(TlsReportLedgerTest, IgnoresWhatItCannotCount) {
  TlsReportLedger ledger({}, kDay);
  ledger.Record(Success(""), kNoon);
  ledger.Record(Success("example.com"), -1);
  ledger.Record(Success("example.com"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ledger.domains(), 0u);
  EXPECT_TRUE(ledger.TakeDue(std::numeric_limits<int64_t>::max()).empty());
}

TEST(TlsReportLedgerTest, TwoThreadsRecording) {
  TlsReportLedger ledger({}, kDay);
  constexpr int kSessions = 20000;
  const auto work = [&](int thread) {
    for (int i = 0; i < kSessions; ++i) {
      if (i % 4 == 0) {
        ledger.Record(Failure(absl::StrCat("d", i % 7, ".example"), TlsFailure::kTlsaInvalid,
                              absl::StrCat("10.0.", thread, ".", i % 3)),
                      kNoon);
      } else {
        ledger.Record(Success(absl::StrCat("d", i % 7, ".example")), kNoon);
      }
      if (i % 1000 == 0) (void)ledger.Format();
    }
  };
  std::thread a(work, 0);
  std::thread b(work, 1);
  a.join();
  b.join();
  uint64_t successes = 0, failures = 0, detail_counts = 0;
  for (const DomainReport& r : ledger.TakeDue(kMidnight + kDay)) {
    successes += r.successes;
    failures += r.failures;
    for (const TlsFailureDetail& d : r.details) detail_counts += d.count;
  }
  EXPECT_EQ(successes, 2u * kSessions * 3 / 4);
  EXPECT_EQ(failures, 2u * kSessions / 4);
  EXPECT_EQ(detail_counts, failures);
}

// --- The file ---

TEST(TlsReportFileTest, FormatsTheDocumentedLines) {
  TlsReportLedger ledger({}, kDay);
  TlsSession s = Failure("example.com", TlsFailure::kCertificateExpired, "198.51.100.7");
  s.policy_strings = {"version: STSv1"};
  s.additional = "expired";
  ledger.Record(s, kNoon);
  ledger.Record(Success("example.com"), kNoon);
  const std::string file = ledger.Format();
  EXPECT_EQ(file.substr(0, file.find('\n') + 1).rfind("# relayd's TLS report counts: ", 0), 0u);
  EXPECT_EQ(file.substr(file.find('\n') + 1),
            absl::StrCat("D\t", kMidnight,
                         "\texample.com\tsts\t1\t1\n"
                         "P\tversion: STSv1\n"
                         "M\tmx.example.com\n"
                         "F\tcertificate-expired\t192.0.2.1\tmx.example.com\t198.51.100.7\t"
                         "expired\t1\n"));
}

TEST(TlsReportFileTest, RoundTripsWithEscapedCharacters) {
  TlsReportLedger ledger({}, kDay);
  TlsSession s = Failure("odd\tdomain\\x\n", TlsFailure::kDnssecInvalid, "");
  s.policy_type = ReportPolicyType::kTlsa;
  s.policy_strings = {"3 1 1 AB\tCD", "", "back\\slash\\t", "new\nline"};
  s.mx_hosts = {"", "\\"};
  s.additional = "a\tb\nc\\d";
  ledger.Record(s, kNoon);
  ledger.Record(s, kNoon);
  ledger.Record(Success("plain.example"), kNoon + kDay);
  const std::string file = ledger.Format();
  // The heading, then odd's D, P, M and F lines, then plain.example's D, P and M lines: no text
  // broke a line.
  EXPECT_EQ(std::count(file.begin(), file.end(), '\n'), 1 + (1 + 4 + 2 + 1) + (1 + 4 + 1));

  TlsReportLedger check({}, kDay);
  const absl::Status loaded = check.Load(file);
  ASSERT_TRUE(loaded.ok()) << loaded;
  EXPECT_EQ(check.Format(), file);
  EXPECT_EQ(check.domains(), 1u);  // the newest window, from the file
  std::vector<DomainReport> due = check.TakeDue(kMidnight + kDay);
  ASSERT_EQ(due.size(), 1u);
  const DomainReport& r = due[0];
  EXPECT_EQ(r.policy_domain, "odd\tdomain\\x\n");
  EXPECT_EQ(r.policy_type, ReportPolicyType::kTlsa);
  EXPECT_EQ(r.policy_strings, s.policy_strings);
  EXPECT_EQ(r.mx_hosts, s.mx_hosts);
  EXPECT_EQ(r.failures, 2u);
  ASSERT_EQ(r.details.size(), 1u);
  EXPECT_EQ(r.details[0].failure, TlsFailure::kDnssecInvalid);
  EXPECT_EQ(r.details[0].additional, "a\tb\nc\\d");
  EXPECT_EQ(r.details[0].receiving_ip, "");
  EXPECT_EQ(r.details[0].count, 2u);
}

TEST(TlsReportFileTest, LoadAddsToWhatTheLedgerHolds) {
  TlsReportLedger before({}, kDay);
  before.Record(Failure("example.com", TlsFailure::kTlsaInvalid, "198.51.100.7"), kNoon);
  const std::string file = before.Format();
  TlsReportLedger ledger({}, kDay);
  TlsSession s = Failure("example.com", TlsFailure::kTlsaInvalid, "198.51.100.7");
  s.policy_strings = {"kept"};
  ledger.Record(s, kNoon);
  ledger.Record(Success("example.com"), kNoon);
  ASSERT_TRUE(ledger.Load(file).ok());
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + kDay);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].successes, 1u);
  EXPECT_EQ(due[0].failures, 2u);
  ASSERT_EQ(due[0].details.size(), 1u);
  EXPECT_EQ(due[0].details[0].count, 2u);
  EXPECT_EQ(due[0].policy_strings, std::vector<std::string>{"kept"});
}

TEST(TlsReportFileTest, MalformedLinesAreNamedAndWhatCameBeforeIsKept) {
  const std::string good = "# heading\nD\t86400\ta.example\tsts\t1\t0\n";
  const struct {
    std::string line;
    std::string error;
  } cases[] = {
      {"X\tsomething", "line 3: unknown line"},
      {"D\t86400\tb.example\tsts\t1", "line 3: a D line has 6 fields"},
      {"D\t86400\tb.example\tsts\t1\t0\textra", "line 3: a D line has 6 fields"},
      {"D\t-1\tb.example\tsts\t1\t0", "line 3: the window start is not a number"},
      {"D\t99999999999999999999\tb.example\tsts\t1\t0", "line 3: the window start"},
      {"D\t9223372036854775807\tb.example\tsts\t1\t0", "line 3: the window start is out of range"},
      {"D\t86400\t\tsts\t1\t0", "line 3: the domain"},
      {"D\t86400\tb\\x\tsts\t1\t0", "line 3: the domain"},
      {"D\t86400\tb.example\tdane\t1\t0", "line 3: unknown policy type"},
      {"D\t86400\tb.example\tsts\t18446744073709551616\t0", "line 3: a count is not a number"},
      {"D\t86400\tb.example\tsts\t1\t+1", "line 3: a count is not a number"},
      {"P\tx\ty", "line 3: a P or M line has 2 fields"},
      {"P\ttrailing\\", "line 3: bad escape"},
      {"F\tcertificate-expired\t\t\t\t\t1", ""},  // fine: empty text fields
      {"F\tcertificate-expired\t\t\t\t1", "line 3: an F line has 7 fields"},
      {"F\tbad-result\t\t\t\t\t1", "line 3: unknown result type"},
      {"F\tcertificate-expired\t\t\t\t\tx", "line 3: the count is not a number"},
  };
  for (const auto& c : cases) {
    TlsReportLedger ledger({}, kDay);
    const absl::Status s = ledger.Load(good + c.line + "\nD\t86400\tc.example\tsts\t1\t0\n");
    if (c.error.empty()) {
      EXPECT_TRUE(s.ok()) << c.line << ": " << s;
      continue;
    }
    EXPECT_FALSE(s.ok()) << c.line;
    EXPECT_EQ(std::string(s.message()).rfind(c.error, 0), 0u) << c.line << ": " << s;
    const std::vector<DomainReport> kept = ledger.TakeDue(3 * kDay);
    ASSERT_EQ(kept.size(), 1u) << c.line;
    EXPECT_EQ(kept[0].policy_domain, "a.example");
  }
  TlsReportLedger ledger({}, kDay);
  const absl::Status s = ledger.Load("P\tstray\n");
  EXPECT_EQ(s.message(), "line 1: a P or M line before any D line");
}

TEST(TlsReportFileTest, LoadRespectsTheLimits) {
  std::string file = "# heading\n";
  for (int d = 0; d < 5; ++d) {
    absl::StrAppend(&file, "D\t", kMidnight, "\td", d, ".example\tsts\t1\t1\n");
    for (int p = 0; p < 5; ++p) absl::StrAppend(&file, "P\tline ", p, "\nM\tmx", p, "\n");
    for (int f = 0; f < 5; ++f) {
      absl::StrAppend(&file, "F\ttlsa-invalid\t10.0.0.", f, "\tmx\t\t\t1\n");
    }
  }
  // Another window has room of its own; a window start not aligned is aligned.
  absl::StrAppend(&file, "D\t", kMidnight + kDay + 5, "\tlater.example\tsts\t0\t0\n");
  TlsReportLedger ledger({.domains_max = 3, .failure_details_max = 2, .policy_strings_max = 4},
                         kDay);
  ASSERT_TRUE(ledger.Load(file).ok());
  EXPECT_EQ(ledger.domains(), 1u);  // the newest window: later.example's
  std::vector<DomainReport> due = ledger.TakeDue(kMidnight + 2 * kDay);
  ASSERT_EQ(due.size(), 4u);
  for (int d = 0; d < 3; ++d) {
    EXPECT_EQ(due[d].policy_domain, absl::StrCat("d", d, ".example"));
    EXPECT_EQ(due[d].policy_strings.size(), 4u);
    EXPECT_EQ(due[d].mx_hosts.size(), 4u);
    EXPECT_EQ(due[d].details.size(), 2u);
  }
  EXPECT_EQ(due[3].policy_domain, "later.example");
  EXPECT_EQ(due[3].window_start_unix_s, kMidnight + kDay);
}

TEST(TlsReportFileTest, CountsSaturate) {
  const std::string file =
      "D\t0\ta.example\tsts\t18446744073709551615\t0\nD\t0\ta.example\tsts\t5\t0\n";
  TlsReportLedger ledger({}, kDay);
  ASSERT_TRUE(ledger.Load(file).ok());
  std::vector<DomainReport> due = ledger.TakeDue(kDay);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].successes, std::numeric_limits<uint64_t>::max());
}

// --- The report ---

std::vector<DomainReport> SampleReports() {
  DomainReport r;
  r.policy_domain = "company-y.example";
  r.policy_type = ReportPolicyType::kSts;
  r.policy_strings = {"version: STSv1", "mode: testing", "mx: *.mail.company-y.example",
                      "max_age: 86400"};
  r.mx_hosts = {"*.mail.company-y.example"};
  r.successes = 5326;
  r.failures = 303;
  r.window_start_unix_s = kMidnight;
  r.window_end_unix_s = kMidnight + kDay;
  TlsFailureDetail d;
  d.failure = TlsFailure::kCertificateExpired;
  d.sending_ip = "2001:db8:abcd:0012::1";
  d.receiving_mx = "mx1.mail.company-y.example";
  d.count = 100;
  r.details.push_back(d);
  d.failure = TlsFailure::kStarttlsNotSupported;
  d.sending_ip = "2001:db8:abcd:0013::1";
  d.receiving_mx = "mx2.mail.company-y.example";
  d.receiving_ip = "203.0.113.56";
  d.additional = "said \"no\"\n\x01";
  d.count = 200;
  r.details.push_back(d);
  DomainReport bare;
  bare.policy_domain = "bare.example";
  bare.policy_type = ReportPolicyType::kNoPolicyFound;
  bare.successes = 1;
  bare.window_start_unix_s = kMidnight;
  bare.window_end_unix_s = kMidnight + kDay;
  return {r, bare};
}

const char kExpectedJson[] =
    R"({"organization-name":"Company-X","date-range":{"start-datetime":"2023-11-14T00:00:00Z",)"
    R"("end-datetime":"2023-11-14T23:59:59Z"},"contact-info":"sts-reporting@company-x.example",)"
    R"("report-id":"5065427c-23d3-47ca-b6e0-946ea0e8c4be","policies":[{"policy":{)"
    R"("policy-type":"sts","policy-string":["version: STSv1","mode: testing",)"
    R"("mx: *.mail.company-y.example","max_age: 86400"],"policy-domain":"company-y.example",)"
    R"("mx-host":["*.mail.company-y.example"]},"summary":{"total-successful-session-count":5326,)"
    R"("total-failure-session-count":303},"failure-details":[{"result-type":"certificate-expired",)"
    R"("sending-mta-ip":"2001:db8:abcd:0012::1","receiving-mx-hostname":)"
    R"("mx1.mail.company-y.example","failed-session-count":100},{"result-type":)"
    R"("starttls-not-supported","sending-mta-ip":"2001:db8:abcd:0013::1",)"
    R"("receiving-mx-hostname":"mx2.mail.company-y.example","receiving-ip":"203.0.113.56",)"
    R"("failed-session-count":200,"failure-reason-code":"said \"no\"\n\u0001"}]},)"
    R"({"policy":{"policy-type":"no-policy-found","policy-domain":"bare.example"},"summary":{)"
    R"("total-successful-session-count":1,"total-failure-session-count":0},)"
    R"("failure-details":[]}]})";

TEST(TlsReportJsonTest, IsRfc8460sStructure) {
  EXPECT_EQ(BuildReportJson(SampleReports(), "Company-X", "sts-reporting@company-x.example",
                            "5065427c-23d3-47ca-b6e0-946ea0e8c4be"),
            kExpectedJson);
}

TEST(TlsReportJsonTest, EscapesTextAndReplacesBrokenUtf8) {
  const std::string json = BuildReportJson({}, "\xc3\xa9t\xc3\xa9 \xff\\", "", "");
  EXPECT_NE(json.find(R"("organization-name":"été \ufffd\\")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("policies":[])"), std::string::npos) << json;
}

TEST(TlsReportJsonTest, PythonsJsonModuleReadsIt) {
  constexpr char kPython[] = "/usr/bin/python3";
  if (access(kPython, X_OK) != 0) {
    printf("SKIP: no %s (Debian package python3)\n", kPython);
    GTEST_SKIP();
  }
  const std::string path = absl::StrCat(testing::TempDir(), "/report.json");
  std::vector<DomainReport> reports = SampleReports();
  reports[0].policy_domain = "\xc3\xa9\xff\t";
  {
    std::ofstream out(path, std::ios::binary);
    out << BuildReportJson(reports, "Company-X", "c", "id");
  }
  const std::string cmd = absl::StrCat(
      kPython, " -c 'import json,sys; r=json.load(open(sys.argv[1],encoding=\"utf-8\")); ",
      "assert r[\"policies\"][0][\"summary\"][\"total-failure-session-count\"]==303; ",
      "assert r[\"policies\"][0][\"policy\"][\"policy-domain\"]==\"\\u00e9\\ufffd\\t\"' ", path);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::string Gunzip(std::string_view gz) {
  z_stream zs = {};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buffer[4096];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - zs.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  EXPECT_EQ(zs.avail_in, 0u);
  inflateEnd(&zs);
  return out;
}

TEST(TlsReportGzipTest, RoundTrips) {
  EXPECT_EQ(Gunzip(Gzip("")), "");
  const std::string json = kExpectedJson;
  const std::string gz = Gzip(json);
  ASSERT_GE(gz.size(), 18u);
  EXPECT_EQ(gz.substr(0, 3), "\x1f\x8b\x08");  // RFC 1952 §2.3.1: gzip, deflate
  EXPECT_EQ(Gunzip(gz), json);
  std::string big;
  for (int i = 0; big.size() < 1 << 20; ++i) absl::StrAppend(&big, i, " ", i * 7919 % 1000, "\n");
  EXPECT_EQ(Gunzip(Gzip(big)), big);
}

TEST(TlsReportGzipTest, GzipReadsIt) {
  if (access("/bin/gzip", X_OK) != 0) {
    printf("SKIP: no /bin/gzip (Debian package gzip)\n");
    GTEST_SKIP();
  }
  const std::string dir = testing::TempDir();
  const std::string gz_path = absl::StrCat(dir, "/report.json.gz");
  const std::string out_path = absl::StrCat(dir, "/report.json");
  {
    std::ofstream out(gz_path, std::ios::binary);
    out << Gzip(kExpectedJson);
  }
  const std::string cmd = absl::StrCat("/bin/gzip -dc ", gz_path, " > ", out_path);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(out_path, std::ios::binary);
  std::stringstream read;
  read << in.rdbuf();
  EXPECT_EQ(read.str(), kExpectedJson);
}

// The header fields of `message`, folded ones unfolded.
std::vector<std::string> Headers(const std::string& message) {
  std::vector<std::string> headers;
  const std::string head = message.substr(0, message.find("\r\n\r\n"));
  size_t pos = 0;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string::npos) eol = head.size();
    const std::string line = head.substr(pos, eol - pos);
    if (!line.empty() && line[0] == ' ' && !headers.empty()) {
      headers.back() += line;
    } else {
      headers.push_back(line);
    }
    pos = eol + 2;
  }
  return headers;
}

TEST(TlsReportMessageTest, IsAMultipartReportWithTheGzip) {
  const std::string gz = Gzip(kExpectedJson);
  const std::string m =
      BuildReportMessage("tlsrpt@mail.sender.example", "tls-reports@company-y.example",
                         "company-y.example", "mail.sender.example", "5065427c-23d3", kMidnight,
                         kMidnight + kDay, kMidnight + kDay + 3661, gz);
  // CRLF only.
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\n') {
      ASSERT_TRUE(i > 0 && m[i - 1] == '\r') << "bare LF at " << i;
    }
    if (m[i] == '\r') {
      ASSERT_TRUE(i + 1 < m.size() && m[i + 1] == '\n') << "bare CR at " << i;
    }
  }
  const std::vector<std::string> headers = Headers(m);
  const auto has = [&](const std::string& h) {
    return std::find(headers.begin(), headers.end(), h) != headers.end();
  };
  EXPECT_TRUE(has("From: tlsrpt@mail.sender.example"));
  EXPECT_TRUE(has("To: tls-reports@company-y.example"));
  EXPECT_TRUE(has("Date: Wed, 15 Nov 2023 01:01:01 +0000"));
  EXPECT_TRUE(
      has("Subject: Report Domain: company-y.example Submitter: mail.sender.example "
          "Report-ID: <5065427c-23d3>"));
  EXPECT_TRUE(has("Message-ID: <5065427c-23d3@mail.sender.example>"));
  EXPECT_TRUE(has("TLS-Report-Domain: company-y.example"));
  EXPECT_TRUE(has("TLS-Report-Submitter: mail.sender.example"));
  EXPECT_TRUE(has("MIME-Version: 1.0"));
  const std::string boundary = absl::StrCat("=_tlsrpt_", kMidnight + kDay + 3661, "_", gz.size());
  EXPECT_TRUE(has(absl::StrCat(
      "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"", boundary, "\"")));
  EXPECT_NE(m.find("Content-Type: text/plain; charset=\"us-ascii\"\r\n"), std::string::npos);
  EXPECT_NE(m.find("\r\n\r\nThis is an aggregate TLS report from mail.sender.example\r\n"),
            std::string::npos);
  const std::string part_head = absl::StrCat(
      "--", boundary,
      "\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
      "Content-Disposition: attachment;\r\n filename=\"mail.sender.example!company-y.example!",
      kMidnight, "!", kMidnight + kDay, ".json.gz\"\r\n\r\n");
  const size_t part = m.find(part_head);
  ASSERT_NE(part, std::string::npos) << m;
  const size_t body = part + part_head.size();
  const std::string closing = absl::StrCat("\r\n\r\n--", boundary, "--\r\n");
  ASSERT_EQ(m.substr(m.size() - closing.size()), closing);
  const std::string lines = m.substr(body, m.size() - closing.size() - body);
  std::string base64;
  size_t pos = 0;
  while (pos < lines.size()) {
    size_t eol = lines.find("\r\n", pos);
    if (eol == std::string::npos) eol = lines.size();
    EXPECT_LE(eol - pos, 76u);
    base64 += lines.substr(pos, eol - pos);
    pos = eol + 2;
  }
  std::string decoded;
  ASSERT_TRUE(absl::Base64Unescape(base64, &decoded));
  EXPECT_EQ(decoded, gz);
  EXPECT_EQ(Gunzip(decoded), kExpectedJson);
}

TEST(TlsReportMessageTest, NoHeaderInjection) {
  const std::string m = BuildReportMessage("a@b", "x@y\r\nBcc: victim@example", "d\nX-Evil: 1", "s",
                                           "id@x>", 0, kDay, kDay, Gzip("{}"));
  EXPECT_EQ(m.find("\r\nBcc:"), std::string::npos);
  EXPECT_EQ(m.find("\r\nX-Evil:"), std::string::npos);
  EXPECT_NE(m.find("To: x@y??Bcc: victim@example\r\n"), std::string::npos);
  EXPECT_NE(m.find("Message-ID: <id_x_@s>\r\n"), std::string::npos);
}

TEST(TlsReportTest, MailtoAddressIsAPlainAddressOrNothing) {
  EXPECT_EQ(MailtoAddress("mailto:tlsrpt@example.com"), "tlsrpt@example.com");
  EXPECT_EQ(MailtoAddress("MAILTO:a.b+c@r.example.net?subject=x"), "a.b+c@r.example.net");
  EXPECT_EQ(MailtoAddress("mailto:a%2Bb@example.com"), "a+b@example.com");
  // Anything that could end an SMTP command line or an address is refused.
  EXPECT_EQ(MailtoAddress("mailto:x@a>\r\nDATA"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:x@a%3E%0D%0ADATA"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:x@a%0"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@b@c.example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:@c.example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@-c.example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a@c..example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a b@c.example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:a,b@c.example"), std::nullopt);
  EXPECT_EQ(MailtoAddress("https://c.example/"), std::nullopt);
  EXPECT_EQ(MailtoAddress("mailto:"), std::nullopt);
}

}  // namespace
}  // namespace relay::tlspolicy
