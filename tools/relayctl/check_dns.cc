#include "tools/relayctl/check_dns.h"

#include <openssl/sha.h>

#include <initializer_list>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "dkim/key.h"
#include "dns/message.h"
#include "dns/resolver.h"
#include "dns/reverse_check.h"
#include "dns/spf.h"
#include "dns/spf_record.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
// Longer than c-ares' own tries (timeout doubling per round over the servers) take to give up.
constexpr int kLookupWaitMs = 30000;
// Bytes of a key's SHA-256 shown as its fingerprint (16 hex digits): enough to tell two keys
// apart at a glance, where the base64 of two RSA-2048 keys shares its first ~40 characters.
constexpr size_t kFingerprintBytes = 8;
constexpr char kNone[] = "(none)";

// The problems, in the README table's order; ProblemId indexes kProblems.
enum ProblemId : int {
  kMxNone,
  kMxNoDomain,
  kMxNull,
  kMxElsewhere,
  kMxNoAddress,
  kMxLookup,
  kHostMissing,
  kHostLookup,
  kTxtLookup,
  kSpfNone,
  kSpfMany,
  kSpfPermError,
  kSpfTempError,
  kSpfTimeout,
  kSpfPlusAll,
  kSpfNeutralAll,
  kSpfAuthNotAuthorised,
  kSpfAuthSkip,
  kDkimNone,
  kDkimMany,
  kDkimInvalid,
  kDkimMismatch,
  kDkimTesting,
  kDmarcNone,
  kDmarcMany,
  kDmarcInvalid,
  kDmarcNotAligned,
  kPtrNone,
  kPtrElsewhere,
  kPtrLookup,
  kPtrForwardLookup,
  kEhloDiffers,
  kEhloSkip,
  kDnsNoAnswer,
  kDnsUnusable,
  kProblemCount,
};

struct Problem {
  ProblemId id;
  ProblemText text;
};

constexpr ProblemKind kFail = ProblemKind::kFail;
constexpr ProblemKind kWarn = ProblemKind::kWarn;
constexpr ProblemKind kSkip = ProblemKind::kSkip;
constexpr ProblemKind kError = ProblemKind::kError;

// Each text says what was found next to what was expected where the line's published and
// expected fields do not already say it all.
constexpr Problem kProblems[] = {
    {kMxNone, {"mx", kFail, "no MX record (mail to {DOMAIN} falls back to its A/AAAA records)"}},
    {kMxNoDomain, {"mx", kFail, "no MX record ({DOMAIN} does not exist)"}},
    {kMxNull, {"mx", kFail, "null MX: {DOMAIN} accepts no mail, so receivers refuse mail from it"}},
    {kMxElsewhere, {"mx", kWarn, "the MX points at {FOUND}, not at {HOST}"}},
    {kMxNoAddress, {"mx", kFail, "no MX host has an A/AAAA record ({FOUND})"}},
    {kMxLookup, {"mx", kFail, "MX lookup failed: {ERROR}"}},
    {kHostMissing, {"host", kFail, "{HOST} has no A/AAAA record for {IP}"}},
    {kHostLookup, {"host", kFail, "address lookup failed: {ERROR}"}},
    {kTxtLookup, {"spf, dkim, dmarc", kFail, "TXT lookup failed: {ERROR}"}},
    {kSpfNone, {"spf", kFail, "no SPF record (no TXT record at {DOMAIN} starts with v=spf1)"}},
    {kSpfMany, {"spf", kFail, "more than one SPF record: SPF fails for every message (permerror)"}},
    {kSpfPermError, {"spf", kFail, "permerror: {DETAIL}"}},
    {kSpfTempError, {"spf", kFail, "temperror: {DETAIL}"}},
    {kSpfTimeout, {"spf", kFail, "no SPF result within {SECONDS} s"}},
    {kSpfPlusAll, {"spf", kFail, "+all lets every host on the internet pass SPF for {DOMAIN}"}},
    {kSpfNeutralAll,
     {"spf", kWarn, "?all gives hosts outside the record neutral, as if {DOMAIN} had no SPF"}},
    {kSpfAuthNotAuthorised,
     {"spf-auth", kFail, "{IP} is not authorised by the SPF record of {DOMAIN}: {RESULT}"}},
    {kSpfAuthSkip, {"spf-auth", kSkip, "no usable SPF record to evaluate (see spf)"}},
    {kDkimNone,
     {"dkim", kFail, "no DKIM key record at {NAME}: receivers cannot verify selector {SELECTOR}"}},
    {kDkimMany, {"dkim", kFail, "more than one key record: verifiers pick one at random"}},
    {kDkimInvalid, {"dkim", kFail, "invalid key record: {DETAIL}"}},
    {kDkimMismatch,
     {"dkim", kFail,
      "the published {FOUND} is not the {EXPECTED} of {PATH}: signatures will fail"}},
    {kDkimTesting,
     {"dkim", kFail, "the record has t=y (testing): receivers treat failures as unsigned"}},
    {kDmarcNone,
     {"dmarc", kFail,
      "no DMARC record at {NAME}: Gmail requires one of bulk senders, and no reports come back"}},
    {kDmarcMany, {"dmarc", kFail, "more than one DMARC record: receivers ignore them all"}},
    {kDmarcInvalid, {"dmarc", kFail, "invalid DMARC record: {DETAIL}"}},
    {kDmarcNotAligned, {"dmarc", kFail, "not aligned: no [[dkim.key]] signs with d={DOMAIN}"}},
    {kPtrNone, {"ptr", kFail, "no PTR record for {IP} (at {NAME})"}},
    {kPtrElsewhere,
     {"ptr", kFail, "PTR name {NAME} does not resolve back to {IP}: it resolves to {FOUND}"}},
    {kPtrLookup, {"ptr", kFail, "PTR lookup failed: {ERROR}"}},
    {kPtrForwardLookup, {"ptr", kFail, "address lookup of the PTR name {NAME} failed: {ERROR}"}},
    {kEhloDiffers, {"ehlo", kFail, "EHLO name {EHLO_NAME} differs from the PTR name {NAME}"}},
    {kEhloSkip, {"ehlo", kSkip, "no forward-confirmed PTR name to compare with (see ptr)"}},
    {kDnsNoAnswer, {"dns", kError, "no answer from {SERVER} ({ERROR}): nothing was checked"}},
    {kDnsUnusable, {"dns", kError, "cannot use {SERVER}: {ERROR}"}},
};

constexpr bool ProblemsInIdOrder() {
  if (std::size(kProblems) != kProblemCount) return false;
  for (size_t i = 0; i < std::size(kProblems); ++i) {
    if (kProblems[i].id != static_cast<int>(i)) return false;
  }
  return true;
}
static_assert(ProblemsInIdOrder(), "kProblems must list every ProblemId once, in order");

const std::vector<ProblemText>& ProblemTable() {
  static const auto* table = [] {
    auto* t = new std::vector<ProblemText>;
    for (const Problem& p : kProblems) t->push_back(p.text);
    return t;
  }();
  return *table;
}

using Values = std::initializer_list<std::pair<absl::string_view, absl::string_view>>;

// The text of problem `id` with its placeholders filled: {{"{HOST}", "mail.example.com"}}.
std::string Say(ProblemId id, Values values) {
  return absl::StrReplaceAll(kProblems[id].text.text, values);
}

// A reactor and a resolver for one run; every lookup is awaited before the next starts.
class Session {
 public:
  absl::Status Open(const std::vector<std::string>& servers) {
    relay::io::ReactorOptions reactor_options;
    reactor_options.sq_entries = 64;
    reactor_options.cq_entries = 256;
    auto r = relay::io::Reactor::Create(reactor_options);
    if (!r.ok()) return r.status();
    reactor_ = *std::move(r);
    dns::ResolverOptions options;
    options.servers = servers;
    auto res = dns::Resolver::Create(reactor_.get(), options);
    if (!res.ok()) return res.status();
    resolver_ = *std::move(res);
    return absl::OkStatus();
  }
  ~Session() {
    resolver_.reset();
    for (int i = 0; i < 100 && reactor_ != nullptr && reactor_->retiring() > 0; ++i) {
      reactor_->RunOnce(10);
    }
  }

  dns::Resolver* resolver() { return resolver_.get(); }
  relay::io::Reactor* reactor() { return reactor_.get(); }

  // Runs the reactor until `done` or the wait runs out.
  void RunUntil(const bool& done) {
    int64_t deadline = reactor_->NowMs() + kLookupWaitMs;
    while (!done && reactor_->NowMs() < deadline) reactor_->RunOnce(100);
  }

  // Starts a lookup with `start(callback)` and runs the reactor until its result is in. A result
  // that never came is a transient timeout.
  template <typename Result, typename Start>
  Result Await(Start start) {
    Result result;
    bool done = false;
    dns::QueryHandle handle = start([&](Result r) {
      result = std::move(r);
      done = true;
    });
    RunUntil(done);
    if (!done) result.status = dns::DnsStatus::Transient(dns::Reason::kTimeout, "no answer");
    return result;
  }

 private:
  std::unique_ptr<relay::io::Reactor> reactor_;
  std::unique_ptr<dns::Resolver> resolver_;
};

std::string StripSpace(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) out += c;
  }
  return out;
}

// "sha256:" and the start of the SHA-256 of the decoded key (for RSA the DER
// SubjectPublicKeyInfo, so `openssl pkey -pubout -outform DER | sha256sum` agrees).
std::string KeyFingerprint(absl::string_view p_base64) {
  std::string der;
  if (!absl::Base64Unescape(StripSpace(p_base64), &der)) return "(p= is not base64)";
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(der.data()), der.size(), digest);
  return absl::StrCat("sha256:", absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<const char*>(digest), kFingerprintBytes)));
}

// A DKIM key record as "rsa key sha256:0123456789abcdef" (k= defaults to rsa, RFC 6376 §3.6.1);
// the record itself when it does not parse.
std::string DescribeKeyRecord(std::string_view record) {
  auto tags = dkim::ParseTagList(record);
  if (!tags.ok()) return std::string(record);
  std::string k = "rsa";
  std::string p;
  bool has_p = false;
  for (const auto& [name, value] : *tags) {
    if (name == "k") k = absl::AsciiStrToLower(std::string(value));
    if (name == "p") {
      p = StripSpace(std::string(value));
      has_p = true;
    }
  }
  if (!has_p) return std::string(record);
  if (p.empty()) return absl::StrCat(k, " key revoked (empty p=)");
  return absl::StrCat(k, " key ", KeyFingerprint(p));
}

// Several records of one kind, each quoted: `2 records: "v=DMARC1; p=none", "v=DMARC1; ..."`.
std::string ListRecords(const std::vector<std::string>& records) {
  std::vector<std::string> quoted;
  for (const std::string& r : records) quoted.push_back(absl::StrCat("\"", r, "\""));
  return absl::StrCat(records.size(), " records: ", absl::StrJoin(quoted, ", "));
}

// Records of `txt` whose text starts with `version` ("v=spf1", "v=DMARC1"), case-insensitively.
std::vector<std::string> RecordsStartingWith(const dns::TxtResult& txt, absl::string_view version) {
  std::vector<std::string> out;
  for (const dns::TxtRecord& r : txt.records) {
    absl::string_view j = r.joined;
    if (absl::StartsWithIgnoreCase(j, version) &&
        (j.size() == version.size() || j[version.size()] == ' ' || j[version.size()] == ';')) {
      out.push_back(r.joined);
    }
  }
  return out;
}

// NXDOMAIN and NODATA mean "nothing published"; anything else is a lookup problem.
bool Absent(const dns::DnsStatus& s) {
  return s.permanent() && (s.reason == dns::Reason::kNxDomain || s.reason == dns::Reason::kNoData);
}

// No reply that says anything about any name: the server is down, unreachable or refuses us.
bool NoAnswer(const dns::DnsStatus& s) {
  return s.transient() && (s.reason == dns::Reason::kTimeout || s.reason == dns::Reason::kNetwork ||
                           s.reason == dns::Reason::kRefused);
}

// "the DNS server 127.0.0.1:53", "the DNS servers a, b", "the DNS servers of /etc/resolv.conf".
std::string DescribeServers(const std::vector<std::string>& servers) {
  if (servers.empty()) return "the DNS servers of /etc/resolv.conf";
  return absl::StrCat(servers.size() == 1 ? "the DNS server " : "the DNS servers ",
                      absl::StrJoin(servers, ", "));
}

// The organisational domain by the common rule of thumb (the last two labels). RFC 7489 §3.2
// uses the Public Suffix List; this is only used to say where an inherited record came from.
// Empty when `domain` is itself two labels long.
std::string ParentOf(absl::string_view domain) {
  std::vector<absl::string_view> labels = absl::StrSplit(domain, '.');
  if (labels.size() <= 2) return "";
  return absl::StrCat(labels[labels.size() - 2], ".", labels.back());
}

class Checker {
 public:
  Checker(const ExpectedDns& e, Session* session) : e_(e), session_(session) {}

  // The lines, or the one error that stopped the run before any check (the first query got no
  // answer at all, so every other would fail the same way, each after its own timeout).
  absl::StatusOr<std::vector<CheckLine>> Run(const std::vector<std::string>& servers) {
    dns::QueryResult mx = session_->Await<dns::QueryResult>([&](auto cb) {
      return session_->resolver()->Query(e_.domain, dns::kTypeMx, std::move(cb));
    });
    if (NoAnswer(mx.status)) {
      return absl::UnavailableError(Say(
          kDnsNoAnswer, {{"{SERVER}", DescribeServers(servers)}, {"{ERROR}", mx.status.message}}));
    }
    CheckMx(mx);
    CheckHost();
    CheckSpf();
    for (const DkimRecord& d : e_.dkim) CheckDkim(d);
    CheckDmarc();
    for (const SourceRecord& s : e_.sources) CheckSource(s);
    return std::move(lines_);
  }

 private:
  void Ok(std::string check, std::string subject, std::string published, std::string expected) {
    CheckLine l;
    l.state = CheckState::kOk;
    l.check = std::move(check);
    l.subject = std::move(subject);
    l.published = published.empty() ? kNone : std::move(published);
    l.expected = std::move(expected);
    lines_.push_back(std::move(l));
  }

  // A line in the state kProblems gives `id`, with its text filled from `values`.
  void Report(std::string check, std::string subject, std::string published, std::string expected,
              ProblemId id, Values values) {
    Ok(std::move(check), std::move(subject), std::move(published), std::move(expected));
    CheckLine& l = lines_.back();
    switch (kProblems[id].text.kind) {
      case ProblemKind::kWarn:
        l.state = CheckState::kWarn;
        break;
      case ProblemKind::kSkip:
        l.state = CheckState::kSkip;
        break;
      default:
        l.state = CheckState::kFail;
    }
    l.problem = Say(id, values);
  }

  dns::TxtResult Txt(const std::string& name) {
    return session_->Await<dns::TxtResult>(
        [&](auto cb) { return session_->resolver()->LookupTxt(name, std::move(cb)); });
  }

  // The MX records as published (not the delivery candidates ResolveMx gives): a host without
  // an address or a null MX is shown, not skipped. RFC 5321 §5.1: without MX records mail goes to
  // the domain's own address (implicit MX), which is rarely what the operator meant.
  void CheckMx(const dns::QueryResult& q) {
    std::string expected = absl::StrCat(kMxPreference, " ", e_.hostname);
    const std::string& d = e_.domain;
    if (q.status.permanent() && q.status.reason == dns::Reason::kNxDomain) {
      Report("mx", d, "", expected, kMxNoDomain, {{"{DOMAIN}", d}});
      return;
    }
    if (!q.status.ok() || q.answer == nullptr) {
      Report("mx", d, "", expected, kMxLookup, {{"{ERROR}", q.status.ToString()}});
      return;
    }
    std::vector<std::string> published;
    std::vector<std::string> hosts;
    bool points_here = false;
    bool null_mx = false;
    for (const dns::ResourceRecord* rr :
         dns::AnswersFor(q.answer->message, dns::CanonicalName(d), dns::kTypeMx)) {
      published.push_back(absl::StrCat(rr->preference, " ", rr->target));
      // RFC 7505 §3: the exchange "." is the null MX.
      if (rr->target == "." || rr->target.empty()) {
        null_mx = true;
        continue;
      }
      hosts.push_back(rr->target);
      points_here |= SameName(rr->target, e_.hostname);
    }
    std::string shown = absl::StrJoin(published, ", ");
    if (published.empty()) {
      Report("mx", d, "", expected, kMxNone, {{"{DOMAIN}", d}});
      return;
    }
    if (hosts.empty() && null_mx) {
      // RFC 7505 §4.2: a receiver may refuse mail whose sender domain has a null MX.
      Report("mx", d, shown, expected, kMxNull, {{"{DOMAIN}", d}});
      return;
    }
    bool any_address = false;
    for (const std::string& h : hosts) {
      dns::AddressResult a = session_->Await<dns::AddressResult>([&](auto cb) {
        return session_->resolver()->ResolveAddresses(h, dns::FamilyPreference::kIpv4First,
                                                      std::move(cb));
      });
      any_address |= !a.addresses.empty();
    }
    if (!any_address) {
      Report("mx", d, shown, expected, kMxNoAddress, {{"{FOUND}", absl::StrJoin(hosts, ", ")}});
    } else if (!points_here) {
      Report("mx", d, shown, expected, kMxElsewhere,
             {{"{FOUND}", absl::StrJoin(hosts, ", ")}, {"{HOST}", e_.hostname}});
    } else {
      Ok("mx", d, shown, expected);
    }
  }

  void CheckHost() {
    if (e_.hostname_ips.empty()) return;
    dns::AddressResult r = session_->Await<dns::AddressResult>([&](auto cb) {
      return session_->resolver()->ResolveAddresses(e_.hostname, dns::FamilyPreference::kIpv4First,
                                                    std::move(cb));
    });
    std::vector<std::string> published;
    for (const relay::io::SocketAddress& a : r.addresses) published.push_back(a.IpString());
    std::vector<std::string> missing;
    for (const std::string& ip : e_.hostname_ips) {
      if (std::find(published.begin(), published.end(), ip) == published.end()) {
        missing.push_back(ip);
      }
    }
    std::string shown = absl::StrJoin(published, " ");
    std::string expected = absl::StrJoin(e_.hostname_ips, " ");
    if (!r.status.ok() && !Absent(r.status)) {
      Report("host", e_.hostname, shown, expected, kHostLookup, {{"{ERROR}", r.status.ToString()}});
    } else if (!missing.empty()) {
      Report("host", e_.hostname, shown, expected, kHostMissing,
             {{"{HOST}", e_.hostname}, {"{IP}", absl::StrJoin(missing, ", ")}});
    } else {
      Ok("host", e_.hostname, shown, expected);
    }
  }

  // RFC 7208: one valid record, within the lookup limits of §4.6.4 whatever address asks, not
  // giving pass (+all) or neutral (?all) to everyone else, and check_host() giving pass for
  // every source address.
  void CheckSpf() {
    const std::string& d = e_.domain;
    std::vector<std::string> ips;
    for (const SourceRecord& s : e_.sources) ips.push_back(s.ip);
    // The TXT records as published, to show every v=spf1 record when there are several (the
    // evaluator keeps none then).
    dns::TxtResult txt = Txt(d);
    std::vector<std::string> spf_records = RecordsStartingWith(txt, "v=spf1");
    dns::SpfEvaluator evaluator(session_->reactor(), session_->resolver());
    dns::SpfDomainReport report;
    bool done = false;
    dns::QueryHandle handle = dns::CheckSpfSources(&evaluator, d, ips, [&](dns::SpfDomainReport r) {
      report = std::move(r);
      done = true;
    });
    session_->RunUntil(done);
    std::string expected =
        absl::StrCat("v=spf1 ", absl::StrJoin(e_.spf_terms, " "), " ... ~all or -all, at most ",
                     evaluator.limits().dns_terms_max, " DNS-querying terms");
    if (!done) {
      Report("spf", d, "", expected, kSpfTimeout,
             {{"{SECONDS}", absl::StrCat(kLookupWaitMs / 1000)}});
      return;
    }
    const dns::SpfOutcome& walk = report.walk;
    std::string published =
        report.record.empty()
            ? ""
            : absl::StrCat(report.record, " (", walk.dns_terms, " DNS-querying terms)");
    bool usable = !report.record.empty() && walk.result != dns::SpfResult::kPermError &&
                  walk.result != dns::SpfResult::kTempError;
    if (spf_records.size() > 1) {
      Report("spf", d, ListRecords(spf_records), expected, kSpfMany, {});
    } else if (!txt.status.ok() && !Absent(txt.status)) {
      Report("spf", d, "", expected, kTxtLookup, {{"{ERROR}", txt.status.ToString()}});
    } else if (report.record.empty() && walk.result == dns::SpfResult::kNone) {
      Report("spf", d, "", expected, kSpfNone, {{"{DOMAIN}", d}});
    } else if (!usable) {
      Report("spf", d, published, expected,
             walk.result == dns::SpfResult::kTempError ? kSpfTempError : kSpfPermError,
             {{"{DETAIL}", walk.problem}});
    } else {
      switch (AllQualifier(report.record)) {
        case dns::spf::Qualifier::kPass:
          Report("spf", d, published, expected, kSpfPlusAll, {{"{DOMAIN}", d}});
          break;
        case dns::spf::Qualifier::kNeutral:
          Report("spf", d, published, expected, kSpfNeutralAll, {{"{DOMAIN}", d}});
          break;
        default:
          Ok("spf", d, published, expected);
      }
    }
    for (const dns::SpfSourceCheck& c : report.sources) {
      const dns::SpfOutcome& o = c.outcome;
      std::string result = dns::SpfResultName(o.result);
      if (!o.mechanism.empty()) absl::StrAppend(&result, " (matched ", o.mechanism, ")");
      if (!o.problem.empty()) absl::StrAppend(&result, " (", o.problem, ")");
      if (!usable || spf_records.size() > 1) {
        Report("spf-auth", c.ip, result, "pass", kSpfAuthSkip, {});
      } else if (!c.authorised()) {
        Report("spf-auth", c.ip, result, "pass", kSpfAuthNotAuthorised,
               {{"{IP}", c.ip}, {"{DOMAIN}", d}, {"{RESULT}", result}});
      } else {
        Ok("spf-auth", c.ip, result, "pass");
      }
    }
  }

  // The qualifier of the record's own "all" (the first, evaluation stops there, RFC 7208 §5.1);
  // a bare "all" is "+all". kFail when there is none (then redirect= or the default neutral of
  // §4.7 decides, which the walk has already judged).
  static dns::spf::Qualifier AllQualifier(const std::string& record) {
    absl::StatusOr<dns::spf::Record> parsed = dns::spf::ParseRecord(record);
    if (!parsed.ok()) return dns::spf::Qualifier::kFail;
    for (const dns::spf::Mechanism& m : parsed->mechanisms) {
      if (m.kind == dns::spf::MechanismKind::kAll) return m.qualifier;
    }
    return dns::spf::Qualifier::kFail;
  }

  void CheckDkim(const DkimRecord& d) {
    dns::TxtResult txt = Txt(d.owner);
    std::vector<std::string> records = RecordsStartingWith(txt, "v=DKIM1");
    // RFC 6376 §3.6.1: v= is recommended, not required; take a record with p= when none has v=.
    if (records.empty()) {
      for (const dns::TxtRecord& r : txt.records) {
        if (absl::StrContains(r.joined, "p=")) records.push_back(r.joined);
      }
    }
    std::string expected_key = DescribeKeyRecord(d.record);
    std::string expected = absl::StrCat(expected_key, " (", d.key_path, ")");
    if (!txt.status.ok() && !Absent(txt.status)) {
      Report("dkim", d.owner, "", expected, kTxtLookup, {{"{ERROR}", txt.status.ToString()}});
      return;
    }
    if (records.empty()) {
      Report("dkim", d.owner, "", expected, kDkimNone,
             {{"{NAME}", d.owner}, {"{SELECTOR}", d.selector}});
      return;
    }
    if (records.size() > 1) {
      std::vector<std::string> keys;
      for (const std::string& r : records) keys.push_back(DescribeKeyRecord(r));
      Report("dkim", d.owner, ListRecords(keys), expected, kDkimMany, {});
      return;
    }
    absl::StatusOr<dkim::PublicKey> parsed = dkim::PublicKey::FromRecord(records[0]);
    std::string published = DescribeKeyRecord(records[0]);
    if (!parsed.ok()) {
      Report("dkim", d.owner, records[0], expected, kDkimInvalid,
             {{"{DETAIL}", parsed.status().message()}});
    } else if (published != expected_key) {
      Report("dkim", d.owner, published, expected, kDkimMismatch,
             {{"{FOUND}", published}, {"{EXPECTED}", expected_key}, {"{PATH}", d.key_path}});
    } else if (parsed->testing()) {
      Report("dkim", d.owner, published, expected, kDkimTesting, {});
    } else {
      Ok("dkim", d.owner, published, expected);
    }
  }

  void CheckDmarc() {
    std::string owner = absl::StrCat("_dmarc.", e_.domain);
    std::string expected = absl::StrCat(e_.dmarc, " (or a stricter p=)");
    dns::TxtResult txt = Txt(owner);
    if (!txt.status.ok() && !Absent(txt.status)) {
      Report("dmarc", owner, "", expected, kTxtLookup, {{"{ERROR}", txt.status.ToString()}});
      return;
    }
    std::vector<std::string> records = RecordsStartingWith(txt, "v=DMARC1");
    std::string policy_domain = e_.domain;
    // RFC 7489 §6.6.3: without a record at the From domain, the organisational domain's applies.
    std::string parent = ParentOf(e_.domain);
    if (records.empty() && !parent.empty()) {
      dns::TxtResult org = Txt(absl::StrCat("_dmarc.", parent));
      records = RecordsStartingWith(org, "v=DMARC1");
      if (!records.empty()) policy_domain = parent;
    }
    if (records.empty()) {
      Report("dmarc", owner, "", expected, kDmarcNone, {{"{NAME}", owner}});
      return;
    }
    if (records.size() > 1) {
      // RFC 7489 §6.6.3: several records mean no DMARC processing at all.
      Report("dmarc", owner, ListRecords(records), expected, kDmarcMany, {});
      return;
    }
    const std::string& record = records[0];
    std::string published = record;
    if (policy_domain != e_.domain) {
      published = absl::StrCat(record, " (inherited from _dmarc.", policy_domain, ")");
    }
    auto tags = dkim::ParseTagList(record);
    if (!tags.ok()) {
      Report("dmarc", owner, published, expected, kDmarcInvalid,
             {{"{DETAIL}", tags.status().message()}});
      return;
    }
    std::string p, adkim = "r", rua;
    bool v_first = !tags->empty() && (*tags)[0].first == "v" && (*tags)[0].second == "DMARC1";
    for (const auto& [name, value] : *tags) {
      if (name == "p") p = absl::AsciiStrToLower(std::string(value));
      if (name == "adkim") adkim = absl::AsciiStrToLower(std::string(value));
      if (name == "rua") rua = std::string(value);
    }
    std::string invalid;
    if (!v_first) {
      invalid = "v=DMARC1 must come first (RFC 7489 §6.4)";
    } else if (p != "none" && p != "quarantine" && p != "reject") {
      invalid = absl::StrCat("p=", p, " is not none, quarantine or reject (RFC 7489 §6.3)");
    } else if (adkim != "r" && adkim != "s") {
      invalid = absl::StrCat("adkim=", adkim, " is not r or s");
    } else if (!rua.empty() && !absl::StartsWithIgnoreCase(rua, "mailto:")) {
      invalid = absl::StrCat("rua=", rua, " is not mailto: URIs");
    }
    if (!invalid.empty()) {
      Report("dmarc", owner, published, expected, kDmarcInvalid, {{"{DETAIL}", invalid}});
    } else if (e_.dkim.empty()) {
      // RFC 7489 §3.1.1: DKIM passes DMARC only with d= aligned to the From domain; the relay
      // signs with d= the [[dkim.key]] domain, so a mail domain without a key never aligns.
      Report("dmarc", owner, published, expected, kDmarcNotAligned, {{"{DOMAIN}", e_.domain}});
    } else {
      Ok("dmarc", owner, published, expected);
    }
  }

  void CheckSource(const SourceRecord& s) {
    dns::ReverseCheckResult r = session_->Await<dns::ReverseCheckResult>(
        [&](auto cb) { return dns::CheckReverse(session_->resolver(), s.ip, std::move(cb)); });
    std::string published = absl::StrJoin(r.ptr_names, " ");
    std::string confirmed;
    for (const std::string& n : r.ptr_names) {
      for (const std::string& c : r.confirmed_names) {
        if (SameName(n, c) && confirmed.empty()) confirmed = n;
      }
    }
    std::string expected = absl::StrCat(s.ehlo_name, " (resolving back to ", s.ip, ")");
    if (r.ptr_names.empty()) {
      if (r.status.transient()) {
        Report("ptr", s.ip, "", expected, kPtrLookup, {{"{ERROR}", r.status.ToString()}});
      } else {
        Report("ptr", s.ip, "", expected, kPtrNone, {{"{IP}", s.ip}, {"{NAME}", s.ptr_owner}});
      }
    } else if (confirmed.empty()) {
      ReportUnconfirmed(s, r, published, expected);
    } else {
      Ok("ptr", s.ip, published, expected);
    }
    if (confirmed.empty()) {
      Report("ehlo", s.ip, "", s.ehlo_name, kEhloSkip, {});
      return;
    }
    if (SameName(confirmed, s.ehlo_name)) {
      Ok("ehlo", s.ip, confirmed, s.ehlo_name);
    } else {
      Report("ehlo", s.ip, confirmed, s.ehlo_name, kEhloDiffers,
             {{"{EHLO_NAME}", s.ehlo_name}, {"{NAME}", confirmed}});
    }
  }

  // PTR names that do not lead back to the address: what they lead to instead.
  void ReportUnconfirmed(const SourceRecord& s, const dns::ReverseCheckResult& r,
                         const std::string& published, const std::string& expected) {
    std::vector<std::string> found;
    for (const dns::ForwardAnswer& f : r.forward) {
      if (f.status.transient()) {
        Report("ptr", s.ip, published, expected, kPtrForwardLookup,
               {{"{NAME}", f.name}, {"{ERROR}", f.status.ToString()}});
        return;
      }
      std::string to = f.addresses.empty() ? "no address" : absl::StrJoin(f.addresses, " ");
      found.push_back(r.forward.size() == 1 ? to : absl::StrCat(f.name, ": ", to));
    }
    Report("ptr", s.ip, published, expected, kPtrElsewhere,
           {{"{NAME}", published}, {"{IP}", s.ip}, {"{FOUND}", absl::StrJoin(found, "; ")}});
  }

  const ExpectedDns& e_;
  Session* session_;
  std::vector<CheckLine> lines_;
};

}  // namespace

const char* ProblemKindName(ProblemKind kind) {
  switch (kind) {
    case ProblemKind::kWarn:
      return "WARN";
    case ProblemKind::kFail:
      return "FAIL";
    case ProblemKind::kSkip:
      return "SKIP";
    case ProblemKind::kError:
      return "error";
  }
  return "?";
}

std::span<const ProblemText> ProblemTexts() { return ProblemTable(); }

std::string FormatCheckLine(const CheckLine& l) {
  const char* state = l.state == CheckState::kOk     ? "OK"
                      : l.state == CheckState::kWarn ? "WARN"
                      : l.state == CheckState::kFail ? "FAIL"
                                                     : "SKIP";
  std::string out = absl::StrFormat("%-4s %-8s %s | published: %s | expected: %s", state, l.check,
                                    l.subject, l.published, l.expected);
  if (!l.problem.empty()) absl::StrAppend(&out, " | problem: ", l.problem);
  return out;
}

absl::StatusOr<std::vector<CheckLine>> CheckDns(const ExpectedDns& expected,
                                                const std::vector<std::string>& dns_servers) {
  Session session;
  absl::Status s = session.Open(dns_servers);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        Say(kDnsUnusable, {{"{SERVER}", DescribeServers(dns_servers)}, {"{ERROR}", s.message()}}));
  }
  return Checker(expected, &session).Run(dns_servers);
}

int CheckDnsCommand(int argc, char** argv, FILE* out) {
  std::string config_path = absl::StrCat(kDefaultConfigDir, "/relayd.toml");
  std::vector<std::string> domains;
  std::vector<std::string> servers;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--domain" && i + 1 < argc) {
      domains.push_back(argv[++i]);
    } else if (a == "--dns-server" && i + 1 < argc) {
      servers.push_back(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: relayctl check-dns [--config PATH] [--domain D ...] "
                   "[--dns-server HOST:PORT ...]\n");
      return kExitUsage;
    }
  }
  absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "relayctl check-dns: %s\n",
                 std::string(config.status().message()).c_str());
    return kExitUsage;
  }
  if (servers.empty()) servers = config->delivery.dns_servers;
  if (domains.empty()) domains = MailDomains(*config);
  if (domains.empty()) {
    std::fprintf(stderr, "relayctl check-dns: %s has no [[dkim.key]]: give --domain\n",
                 config_path.c_str());
    return kExitUsage;
  }
  int counts[4] = {};  // by CheckState
  for (const std::string& domain : domains) {
    absl::StatusOr<ExpectedDns> e = ExpectedRecords(*config, domain);
    if (!e.ok()) {
      std::fprintf(stderr, "relayctl check-dns: %s\n", std::string(e.status().message()).c_str());
      return kExitUsage;
    }
    absl::StatusOr<std::vector<CheckLine>> lines = CheckDns(*e, servers);
    if (!lines.ok()) {
      std::fflush(out);
      std::fprintf(stderr, "relayctl check-dns: %s\n",
                   std::string(lines.status().message()).c_str());
      return kExitUsage;
    }
    for (const CheckLine& l : *lines) {
      std::fprintf(out, "%s\n", FormatCheckLine(l).c_str());
      ++counts[static_cast<int>(l.state)];
    }
  }
  int ok = counts[static_cast<int>(CheckState::kOk)];
  int warn = counts[static_cast<int>(CheckState::kWarn)];
  int fail = counts[static_cast<int>(CheckState::kFail)];
  int skip = counts[static_cast<int>(CheckState::kSkip)];
  std::fprintf(out, "%d checks: %d OK, %d WARN, %d FAIL, %d SKIP\n", ok + warn + fail + skip, ok,
               warn, fail, skip);
  return fail + skip == 0 ? kExitOk : kExitFailed;
}

}  // namespace relay::relayctl
