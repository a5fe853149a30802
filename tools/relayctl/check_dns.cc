#include "tools/relayctl/check_dns.h"

#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "dkim/key.h"
#include "dns/resolver.h"
#include "dns/reverse_check.h"
#include "dns/spf.h"
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
// Base64 keys are cut to this many characters on a check line.
constexpr size_t kKeyShownChars = 24;
constexpr char kNone[] = "(none)";

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

  // Starts a lookup with `start(callback)` and runs the reactor until its result is in. A result
  // that never came is a transient timeout.
  // Runs the reactor until `done` or the wait runs out.
  void RunUntil(const bool& done) {
    int64_t deadline = reactor_->NowMs() + kLookupWaitMs;
    while (!done && reactor_->NowMs() < deadline) reactor_->RunOnce(100);
  }

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

std::string Shorten(absl::string_view key) {
  if (key.size() <= kKeyShownChars) return std::string(key);
  return absl::StrCat(key.substr(0, kKeyShownChars), "...");
}

std::string StripSpace(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) out += c;
  }
  return out;
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

  std::vector<CheckLine> Run() {
    CheckMx();
    CheckHost();
    CheckSpf();
    for (const DkimRecord& d : e_.dkim) CheckDkim(d);
    CheckDmarc();
    for (const SourceRecord& s : e_.sources) CheckSource(s);
    return std::move(lines_);
  }

 private:
  void Add(std::string check, std::string subject, std::string published, std::string expected,
           std::string problem, CheckState state = CheckState::kOk) {
    CheckLine l;
    l.state = problem.empty() ? state : CheckState::kFail;
    l.check = std::move(check);
    l.subject = std::move(subject);
    l.published = published.empty() ? kNone : std::move(published);
    l.expected = std::move(expected);
    l.problem = std::move(problem);
    lines_.push_back(std::move(l));
  }

  dns::TxtResult Txt(const std::string& name) {
    return session_->Await<dns::TxtResult>(
        [&](auto cb) { return session_->resolver()->LookupTxt(name, std::move(cb)); });
  }

  // RFC 5321 §5.1: without MX records mail goes to the domain's own address (implicit MX), which
  // is rarely what the operator meant.
  void CheckMx() {
    dns::MxResult mx = session_->Await<dns::MxResult>([&](auto cb) {
      return session_->resolver()->ResolveMx(e_.domain, dns::FamilyPreference::kIpv4First,
                                             std::move(cb));
    });
    std::string expected = absl::StrCat(kMxPreference, " ", e_.hostname);
    if (!mx.status.ok()) {
      std::string problem =
          mx.status.reason == dns::Reason::kNoAddresses
              ? absl::StrCat("the MX host has no address (", mx.status.message, ")")
              : absl::StrCat("MX lookup failed: ", mx.status.ToString());
      if (mx.status.reason == dns::Reason::kNxDomain) {
        problem = absl::StrCat("no MX record: ", e_.domain, " does not exist");
      }
      Add("mx", e_.domain, "", expected, problem);
      return;
    }
    std::vector<std::string> published;
    bool points_here = false;
    for (const dns::MxHost& h : mx.hosts) {
      published.push_back(absl::StrCat(h.preference, " ", h.name));
      points_here |= SameName(h.name, e_.hostname);
    }
    if (mx.implicit_mx) {
      Add("mx", e_.domain, "", expected,
          absl::StrCat("no MX record (mail to ", e_.domain, " would go to its A/AAAA)"));
    } else if (!points_here) {
      Add("mx", e_.domain, absl::StrJoin(published, ", "), expected,
          absl::StrCat("the MX does not point at ", e_.hostname));
    } else {
      Add("mx", e_.domain, absl::StrJoin(published, ", "), expected, "");
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
    std::string problem;
    if (!r.status.ok() && !Absent(r.status)) {
      problem = absl::StrCat("address lookup failed: ", r.status.ToString());
    } else if (!missing.empty()) {
      problem =
          absl::StrCat(e_.hostname, " has no A/AAAA record for ", absl::StrJoin(missing, ", "));
    }
    Add("host", e_.hostname, absl::StrJoin(published, " "), absl::StrJoin(e_.hostname_ips, " "),
        problem);
  }

  // RFC 7208: one valid record, within the lookup limits of §4.6.4 whatever address asks, and
  // check_host() giving pass for every source address.
  void CheckSpf() {
    std::vector<std::string> ips;
    for (const SourceRecord& s : e_.sources) ips.push_back(s.ip);
    dns::SpfEvaluator evaluator(session_->reactor(), session_->resolver());
    dns::SpfDomainReport report;
    bool done = false;
    dns::QueryHandle handle =
        dns::CheckSpfSources(&evaluator, e_.domain, ips, [&](dns::SpfDomainReport r) {
          report = std::move(r);
          done = true;
        });
    session_->RunUntil(done);
    std::string expected =
        absl::StrCat("v=spf1 ", absl::StrJoin(e_.spf_terms, " "), " ..., at most ",
                     evaluator.limits().dns_terms_max, " DNS-querying terms");
    if (!done) {
      Add("spf", e_.domain, "", expected, "SPF check timed out");
      return;
    }
    std::string published =
        report.record.empty()
            ? ""
            : absl::StrCat(report.record, " (", report.walk.dns_terms, " DNS-querying terms)");
    bool usable = !report.record.empty() && report.walk.result != dns::SpfResult::kPermError &&
                  report.walk.result != dns::SpfResult::kTempError;
    if (report.record.empty()) {
      Add("spf", e_.domain, "", expected,
          report.walk.problem.empty() ? "no SPF record (no TXT record starting with v=spf1)"
                                      : absl::StrCat("no SPF record: ", report.walk.problem));
    } else if (!usable) {
      Add("spf", e_.domain, published, expected,
          absl::StrCat(dns::SpfResultName(report.walk.result), ": ", report.walk.problem));
    } else {
      Add("spf", e_.domain, published, expected, "");
    }
    for (const dns::SpfSourceCheck& c : report.sources) {
      const dns::SpfOutcome& o = c.outcome;
      std::string result = dns::SpfResultName(o.result);
      if (!o.mechanism.empty()) absl::StrAppend(&result, " (matched ", o.mechanism, ")");
      if (!o.problem.empty()) absl::StrAppend(&result, " (", o.problem, ")");
      if (!usable) {
        Add("spf-auth", c.ip, result, "pass", "", CheckState::kSkip);
        lines_.back().problem = "no usable SPF record to evaluate (see spf)";
      } else {
        Add("spf-auth", c.ip, result, "pass",
            c.authorised() ? ""
                           : absl::StrCat(c.ip, " is not authorised by the SPF record of ",
                                          e_.domain, ": ", result));
      }
    }
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
    std::string expected = absl::StrCat("p=", Shorten(d.public_key_base64), " (", d.key_path, ")");
    if (!txt.status.ok() && !Absent(txt.status)) {
      Add("dkim", d.owner, "", expected,
          absl::StrCat("TXT lookup failed: ", txt.status.ToString()));
      return;
    }
    if (records.empty()) {
      Add("dkim", d.owner, "", expected,
          absl::StrCat("no DKIM key record at ", d.owner, ": receivers cannot verify selector ",
                       d.selector));
      return;
    }
    if (records.size() > 1) {
      Add("dkim", d.owner, absl::StrJoin(records, " | "), expected,
          "more than one key record: verifiers pick one at random");
      return;
    }
    absl::StatusOr<dkim::PublicKey> parsed = dkim::PublicKey::FromRecord(records[0]);
    std::string published_p;
    auto tags = dkim::ParseTagList(records[0]);
    if (tags.ok()) {
      for (const auto& [name, value] : *tags) {
        if (name == "p") published_p = StripSpace(std::string(value));
      }
    }
    std::string published = absl::StrCat("p=", Shorten(published_p));
    if (!parsed.ok()) {
      Add("dkim", d.owner, published, expected,
          absl::StrCat("invalid key record: ", parsed.status().message()));
    } else if (published_p != d.public_key_base64) {
      Add("dkim", d.owner, published, expected,
          absl::StrCat("the published key does not match the private key ", d.key_path,
                       ": signatures will fail"));
    } else if (parsed->testing()) {
      Add("dkim", d.owner, published, expected,
          "the record has t=y (testing): receivers treat failures as unsigned");
    } else {
      Add("dkim", d.owner, published, expected, "");
    }
  }

  void CheckDmarc() {
    std::string owner = absl::StrCat("_dmarc.", e_.domain);
    std::string expected = absl::StrCat(e_.dmarc, " (or a stricter p=)");
    dns::TxtResult txt = Txt(owner);
    if (!txt.status.ok() && !Absent(txt.status)) {
      Add("dmarc", owner, "", expected, absl::StrCat("TXT lookup failed: ", txt.status.ToString()));
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
      Add("dmarc", owner, "", expected,
          absl::StrCat("no DMARC record at ", owner,
                       ": Gmail requires one of bulk senders, and no reports come back"));
      return;
    }
    if (records.size() > 1) {
      // RFC 7489 §6.6.3: several records mean no DMARC processing at all.
      Add("dmarc", owner, absl::StrJoin(records, " | "), expected,
          "more than one DMARC record: receivers ignore them all");
      return;
    }
    const std::string& record = records[0];
    auto tags = dkim::ParseTagList(record);
    if (!tags.ok()) {
      Add("dmarc", owner, record, expected,
          absl::StrCat("invalid DMARC record: ", tags.status().message()));
      return;
    }
    std::string p, adkim = "r", rua;
    bool v_first = !tags->empty() && (*tags)[0].first == "v" && (*tags)[0].second == "DMARC1";
    for (const auto& [name, value] : *tags) {
      if (name == "p") p = absl::AsciiStrToLower(std::string(value));
      if (name == "adkim") adkim = absl::AsciiStrToLower(std::string(value));
      if (name == "rua") rua = std::string(value);
    }
    std::string problem;
    if (!v_first) {
      problem = "invalid DMARC record: v=DMARC1 must come first (RFC 7489 §6.4)";
    } else if (p != "none" && p != "quarantine" && p != "reject") {
      problem = "invalid DMARC record: p= must be none, quarantine or reject (RFC 7489 §6.3)";
    } else if (adkim != "r" && adkim != "s") {
      problem = "invalid DMARC record: adkim= must be r or s";
    } else if (!rua.empty() && !absl::StartsWithIgnoreCase(rua, "mailto:")) {
      problem = "invalid DMARC record: rua= must be mailto: URIs";
    } else if (e_.dkim.empty()) {
      // RFC 7489 §3.1.1: DKIM passes DMARC only with d= aligned to the From domain; the relay
      // signs with d= the [[dkim.key]] domain, so a mail domain without a key never aligns.
      problem = absl::StrCat("not aligned: no [[dkim.key]] signs with d=", e_.domain);
    }
    std::string published = record;
    if (policy_domain != e_.domain) {
      published = absl::StrCat(record, " (inherited from _dmarc.", policy_domain, ")");
    }
    Add("dmarc", owner, published, expected, problem);
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
    std::string problem;
    if (r.ptr_names.empty()) {
      problem = r.status.transient()
                    ? absl::StrCat("PTR lookup failed: ", r.status.ToString())
                    : absl::StrCat("no PTR record for ", s.ip, " (at ", s.ptr_owner, ")");
    } else if (confirmed.empty()) {
      problem = r.status.transient()
                    ? absl::StrCat("forward lookup failed: ", r.status.ToString())
                    : absl::StrCat("PTR name ", published, " does not resolve back to ", s.ip);
    }
    Add("ptr", s.ip, published, absl::StrCat(s.ehlo_name, " (resolving back to ", s.ip, ")"),
        problem);
    if (confirmed.empty()) {
      Add("ehlo", s.ip, "", s.ehlo_name, "", CheckState::kSkip);
      lines_.back().problem = "no forward-confirmed PTR name to compare with (see ptr)";
      return;
    }
    Add("ehlo", s.ip, confirmed, s.ehlo_name,
        SameName(confirmed, s.ehlo_name)
            ? ""
            : absl::StrCat("EHLO name ", s.ehlo_name, " differs from the PTR name ", confirmed));
  }

  const ExpectedDns& e_;
  Session* session_;
  std::vector<CheckLine> lines_;
};

}  // namespace

std::string FormatCheckLine(const CheckLine& l) {
  const char* state = l.state == CheckState::kOk     ? "OK"
                      : l.state == CheckState::kFail ? "FAIL"
                                                     : "SKIP";
  std::string out = absl::StrFormat("%-4s %-8s %s | published: %s | expected: %s", state, l.check,
                                    l.subject, l.published, l.expected);
  if (!l.problem.empty()) absl::StrAppend(&out, " | problem: ", l.problem);
  return out;
}

std::vector<CheckLine> CheckDns(const ExpectedDns& expected,
                                const std::vector<std::string>& dns_servers) {
  Session session;
  absl::Status s = session.Open(dns_servers);
  if (!s.ok()) {
    CheckLine l;
    l.state = CheckState::kFail;
    l.check = "resolver";
    l.subject = absl::StrJoin(dns_servers, " ");
    l.published = kNone;
    l.problem = std::string(s.message());
    return {l};
  }
  return Checker(expected, &session).Run();
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
  int failed = 0;
  int total = 0;
  for (const std::string& domain : domains) {
    absl::StatusOr<ExpectedDns> e = ExpectedRecords(*config, domain);
    if (!e.ok()) {
      std::fprintf(stderr, "relayctl check-dns: %s\n", std::string(e.status().message()).c_str());
      return kExitUsage;
    }
    for (const CheckLine& l : CheckDns(*e, servers)) {
      std::fprintf(out, "%s\n", FormatCheckLine(l).c_str());
      ++total;
      if (l.state != CheckState::kOk) ++failed;
    }
  }
  std::fprintf(out, "%d checks, %d not OK\n", total, failed);
  return failed == 0 ? kExitOk : kExitFailed;
}

}  // namespace relay::relayctl
