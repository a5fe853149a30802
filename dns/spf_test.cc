// check_host() (RFC 7208) against a real DNS server: unbound on loopback, started by this test,
// serving the zone of RFC 7208 Appendix A (example.com, example.org and their reverse zones)
// plus example.net, where each name holds one case (include, redirect, limits, syntax errors,
// IPv6, explanations).
#include "dns/spf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dns/message.h"
#include "dns/spf_test_zones.h"
#include "dns/testing/unbound_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace dns {
namespace {

using spf_testing::AppendixA;
using spf_testing::SuiteZones;
using spf_testing::ZoneBuilder;
using ::testing::HasSubstr;
using testing::UnboundServer;

// A UDP socket that never answers.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
  }
  ~SilentServer() { close(fd_); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  uint16_t port_;
};

class SpfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto suite = testing::StartUnboundSuite(SuiteZones());
    ASSERT_TRUE(suite.ok()) << suite.status();
    if (!suite->skip_reason.empty()) {
      skip_reason_ = new std::string(suite->skip_reason);
      return;
    }
    server_ = suite->server.release();
    reactor_ = suite->reactor.release();
  }
  static void TearDownTestSuite() {
    delete reactor_;
    reactor_ = nullptr;
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) {
      printf("SKIP: %s\n", skip_reason_->c_str());
      GTEST_SKIP() << *skip_reason_;
    }
    ASSERT_NE(server_, nullptr) << "unbound did not start: see the suite's first failure";
    UseServer(server_->address());
  }
  void TearDown() override {
    evaluator_.reset();
    resolver_.reset();
    for (int i = 0; i < 200 && reactor_ != nullptr && reactor_->retiring() > 0; ++i) {
      reactor_->RunOnce(10);
    }
  }

  void UseServer(const std::string& address, int timeout_ms = 1000, int tries = 2,
                 SpfLimits limits = SpfLimits()) {
    evaluator_.reset();
    resolver_.reset();
    ResolverOptions options;
    options.servers = {address};
    options.timeout_ms = timeout_ms;
    options.tries = tries;
    auto resolver = Resolver::Create(reactor_, options);
    ASSERT_TRUE(resolver.ok()) << resolver.status();
    resolver_ = *std::move(resolver);
    evaluator_ = std::make_unique<SpfEvaluator>(reactor_, resolver_.get(), limits);
  }

  void RunUntil(const bool& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(20);
    ASSERT_TRUE(done) << "no result within 10 s";
  }

  SpfOutcome Check(const std::string& ip, const std::string& domain,
                   const std::string& sender = "") {
    SpfRequest request;
    request.ip = ip;
    request.domain = domain;
    request.sender = sender.empty() ? absl::StrCat("someone@", domain) : sender;
    request.helo = "mx.client.example";
    request.receiver = "mx.receiver.example";
    SpfOutcome out;
    bool done = false;
    int calls = 0;
    QueryHandle h = evaluator_->CheckHost(request, [&](SpfOutcome o) {
      out = std::move(o);
      done = true;
      ++calls;
    });
    EXPECT_FALSE(done) << "the callback ran inside CheckHost";
    RunUntil(done);
    EXPECT_EQ(calls, 1);
    return out;
  }
  SpfResult Result(const std::string& ip, const std::string& domain) {
    return Check(ip, domain).result;
  }

  static std::string* skip_reason_;
  static UnboundServer* server_;
  static relay::io::Reactor* reactor_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<SpfEvaluator> evaluator_;
};

std::string* SpfTest::skip_reason_ = nullptr;
UnboundServer* SpfTest::server_ = nullptr;
relay::io::Reactor* SpfTest::reactor_ = nullptr;

constexpr SpfResult kPass = SpfResult::kPass;
constexpr SpfResult kFail = SpfResult::kFail;

// RFC 7208 Appendix A.1: each record published at example.com, and the result the RFC gives
// for each client address. One unbound per record, since they share the name.
TEST_F(SpfTest, AppendixA1SimpleExamples) {
  struct Case {
    const char* record;
    std::vector<std::pair<const char*, SpfResult>> results;
  } cases[] = {
      {"v=spf1 +all", {{"192.0.2.10", kPass}, {"198.51.100.1", kPass}, {"2001:db8::1", kPass}}},
      {"v=spf1 a -all", {{"192.0.2.10", kPass}, {"192.0.2.11", kFail}, {"192.0.2.65", kFail}}},
      // example.org has no A record: nothing matches.
      {"v=spf1 a:example.org -all", {{"192.0.2.10", kFail}, {"192.0.2.140", kFail}}},
      {"v=spf1 mx -all", {{"192.0.2.129", kPass}, {"192.0.2.130", kPass}, {"192.0.2.10", kFail}}},
      {"v=spf1 mx:example.org -all", {{"192.0.2.140", kPass}, {"192.0.2.129", kFail}}},
      {"v=spf1 mx mx:example.org -all",
       {{"192.0.2.129", kPass},
        {"192.0.2.130", kPass},
        {"192.0.2.140", kPass},
        {"192.0.2.10", kFail}}},
      {"v=spf1 mx/30 mx:example.org/30 -all",
       {{"192.0.2.128", kPass},
        {"192.0.2.131", kPass},
        {"192.0.2.142", kPass},
        {"192.0.2.143", kPass},
        {"192.0.2.132", kFail},
        {"192.0.2.144", kFail}}},
      // amy.example.com resolves back; mail-c.example.org is not in example.com; 10.0.0.4's
      // PTR name does not resolve back to it.
      {"v=spf1 ptr -all", {{"192.0.2.65", kPass}, {"192.0.2.140", kFail}, {"10.0.0.4", kFail}}},
      {"v=spf1 ip4:192.0.2.128/28 -all",
       {{"192.0.2.65", kFail},
        {"192.0.2.129", kPass},
        {"192.0.2.143", kPass},
        {"192.0.2.144", kFail}}},
  };
  for (const Case& c : cases) {
    ZoneBuilder z = AppendixA();
    z.Txt("example.com", c.record);
    auto server = UnboundServer::Start(testing::TempDir(), z.str());
    ASSERT_TRUE(server.ok()) << server.status();
    UseServer((*server)->address());
    for (const auto& [ip, want] : c.results) {
      SpfOutcome o = Check(ip, "example.com");
      EXPECT_EQ(o.result, want) << c.record << " from " << ip << ": " << SpfResultName(o.result)
                                << " " << o.mechanism << " " << o.problem;
      EXPECT_EQ(o.record, c.record);
    }
  }
}

// RFC 7208 A.4: "-include:ip4._spf.%{d} -include:ptr._spf.%{d} +all": only clients inside the
// range whose PTR name is in example.com pass.
TEST_F(SpfTest, AppendixA4MultipleRequirements) {
  SpfOutcome amy = Check("192.0.2.65", "example.com");
  EXPECT_EQ(amy.result, kPass) << amy.problem;
  EXPECT_EQ(amy.mechanism, "+all");
  EXPECT_EQ(amy.dns_terms, 3);  // two includes and the ptr inside the second
  SpfOutcome other = Check("192.0.2.140", "example.com");  // in range, PTR in example.org
  EXPECT_EQ(other.result, kFail);
  EXPECT_EQ(other.mechanism, "-include:ptr._spf.%{d}");
  SpfOutcome outside = Check("10.0.0.4", "example.com");
  EXPECT_EQ(outside.result, kFail);
  EXPECT_EQ(outside.mechanism, "-include:ip4._spf.%{d}");
}

// The DNSBL style of RFC 7208 A.3: exists with %{l1r+} and %{ir}.
TEST_F(SpfTest, ExistsWithMacros) {
  EXPECT_EQ(Check("198.51.100.7", "dnsbl.example.net", "mary@dnsbl.example.net").result, kPass);
  // "l1r+" keeps the part before '+': mary+lists is mary.
  EXPECT_EQ(Check("198.51.100.7", "dnsbl.example.net", "mary+lists@dnsbl.example.net").result,
            kPass);
  SpfOutcome joel = Check("192.168.15.15", "dnsbl.example.net", "joel@dnsbl.example.net");
  EXPECT_EQ(joel.result, kPass);
  EXPECT_EQ(joel.mechanism, "exists:%{ir}.%{l1r+}.remote-users._spf.%{d}");
  EXPECT_EQ(joel.void_lookups, 1);
  EXPECT_EQ(Check("192.168.15.17", "dnsbl.example.net", "joel@dnsbl.example.net").result, kFail);
  // %{p}: the validated PTR name of the client.
  EXPECT_EQ(Result("192.0.2.65", "pmacro.example.net"), kPass);
  EXPECT_EQ(Result("192.0.2.66", "pmacro.example.net"), kFail);
}

TEST_F(SpfTest, Include) {
  SpfOutcome pass = Check("192.0.2.5", "inc-pass.example.net");
  EXPECT_EQ(pass.result, kPass);
  EXPECT_EQ(pass.mechanism, "include:allowed.example.net");
  EXPECT_EQ(pass.dns_terms, 1);
  // The included record fails: no match, and the including record's -all decides.
  SpfOutcome fail = Check("198.51.100.1", "inc-pass.example.net");
  EXPECT_EQ(fail.result, kFail);
  EXPECT_EQ(fail.mechanism, "-all");
  // §5.2: none in the included domain is a permerror.
  SpfOutcome none = Check("192.0.2.5", "inc-none.example.net");
  EXPECT_EQ(none.result, SpfResult::kPermError);
  EXPECT_THAT(none.problem, HasSubstr("norecord.example.net: no SPF record"));
  EXPECT_THAT(none.problem, HasSubstr("include:norecord.example.net"));
  SpfOutcome nx = Check("192.0.2.5", "inc-nx.example.net");
  EXPECT_EQ(nx.result, SpfResult::kPermError);
  EXPECT_THAT(nx.problem, HasSubstr("nx.example.net: no such domain"));
  // A DNS failure below an include is a temperror of the whole check.
  SpfOutcome temp = Check("192.0.2.5", "inc-temp.example.net");
  EXPECT_EQ(temp.result, SpfResult::kTempError) << temp.problem;
  EXPECT_THAT(temp.problem, HasSubstr("x.refused.example.net"));
}

TEST_F(SpfTest, Redirect) {
  SpfOutcome pass = Check("192.0.2.5", "redir.example.net");
  EXPECT_EQ(pass.result, kPass);
  EXPECT_EQ(pass.mechanism, "allowed.example.net: ip4:192.0.2.0/24");
  EXPECT_EQ(Result("198.51.100.1", "redir.example.net"), kFail);
  SpfOutcome none = Check("192.0.2.5", "redir-none.example.net");
  EXPECT_EQ(none.result, SpfResult::kPermError);
  EXPECT_THAT(none.problem, HasSubstr("no SPF record"));
  EXPECT_THAT(none.problem, HasSubstr("redirect=norecord.example.net"));
  // §5.1: a record with "all" ignores its redirect.
  SpfOutcome all = Check("192.0.2.5", "redir-all.example.net");
  EXPECT_EQ(all.result, SpfResult::kNeutral);
  EXPECT_EQ(all.mechanism, "?all");
  EXPECT_EQ(all.dns_terms, 0);
}

TEST_F(SpfTest, Explanation) {
  SpfOutcome fail = Check("198.51.100.1", "expl.example.net");
  EXPECT_EQ(fail.result, kFail);
  EXPECT_EQ(fail.explanation,
            "198.51.100.1 is not one of the designated mail servers of expl.example.net.");
  // §6.2: after a redirect, the target's exp= is used, not the original's.
  SpfOutcome redirected = Check("198.51.100.1", "redir-exp.example.net");
  EXPECT_EQ(redirected.result, kFail);
  EXPECT_EQ(redirected.explanation,
            "198.51.100.1 is not one of the designated mail servers of expl.example.net.");
  // An exp= that does not resolve leaves the fail without explanation.
  SpfOutcome missing = Check("198.51.100.1", "expl-missing.example.net");
  EXPECT_EQ(missing.result, kFail);
  EXPECT_EQ(missing.explanation, "");
  // No explanation on anything but fail.
  EXPECT_EQ(Check("192.0.2.1", "expl.example.net").explanation, "");
}

TEST_F(SpfTest, DnsTermLimit) {
  SpfOutcome ten = Check("192.0.2.5", "limit10.example.net");
  EXPECT_EQ(ten.result, kFail);
  EXPECT_EQ(ten.dns_terms, 10);
  SpfOutcome eleven = Check("192.0.2.5", "limit11.example.net");
  EXPECT_EQ(eleven.result, SpfResult::kPermError);
  EXPECT_THAT(eleven.problem,
              HasSubstr("more than 10 DNS-querying terms at 'include:l11.example.net'"));
  // Terms are counted across levels.
  SpfOutcome nested = Check("192.0.2.5", "nested.example.net");
  EXPECT_EQ(nested.result, SpfResult::kPermError);
  EXPECT_THAT(nested.problem, HasSubstr("more than 10 DNS-querying terms"));
  // The limit is configurable.
  SpfLimits strict;
  strict.dns_terms_max = 3;
  UseServer(server_->address(), 1000, 2, strict);
  EXPECT_THAT(Check("192.0.2.5", "limit10.example.net").problem,
              HasSubstr("more than 3 DNS-querying terms at 'include:l4.example.net'"));
}

TEST_F(SpfTest, VoidLookupLimit) {
  SpfOutcome two = Check("192.0.2.5", "void2.example.net");
  EXPECT_EQ(two.result, kFail);
  EXPECT_EQ(two.void_lookups, 2);
  SpfOutcome three = Check("192.0.2.5", "void3.example.net");
  EXPECT_EQ(three.result, SpfResult::kPermError);
  EXPECT_THAT(three.problem, HasSubstr("void lookup limit (2) exceeded at 'a:nx3.example.net'"));
}

TEST_F(SpfTest, MxNameLimit) {
  SpfOutcome o = Check("192.0.2.5", "manymx.example.net");
  EXPECT_EQ(o.result, SpfResult::kPermError);
  EXPECT_THAT(o.problem, HasSubstr("more than 10 MX names at 'mx'"));
}

TEST_F(SpfTest, RecordSelection) {
  SpfOutcome two = Check("192.0.2.5", "two.example.net");
  EXPECT_EQ(two.result, SpfResult::kPermError);
  EXPECT_EQ(two.problem, "two.example.net: two v=spf1 records");
  // Other TXT records and v=spf10 are not SPF version 1.
  EXPECT_EQ(Result("192.0.2.5", "one.example.net"), kFail);
  // The strings of one TXT record are joined without separators (§3.3).
  EXPECT_EQ(Result("192.0.2.5", "split.example.net"), kPass);
  EXPECT_EQ(Result("198.51.100.1", "split.example.net"), kFail);
  EXPECT_EQ(Check("192.0.2.5", "split.example.net").record, "v=spf1 ip4:192.0.2.0/24 -all");
  // Names, mechanisms and the version are case-insensitive.
  EXPECT_EQ(Result("192.0.2.5", "upper.example.net"), kPass);
  EXPECT_EQ(Result("192.0.2.5", "UPPER.Example.NET"), kPass);
  EXPECT_EQ(Result("198.51.100.1", "upper.example.net"), kFail);
  // No record, no domain, not a domain: none.
  SpfOutcome none = Check("192.0.2.5", "norecord.example.net");
  EXPECT_EQ(none.result, SpfResult::kNone);
  EXPECT_EQ(none.problem, "norecord.example.net: no SPF record");
  EXPECT_EQ(Result("192.0.2.5", "nothere.example.net"), SpfResult::kNone);
  EXPECT_EQ(Result("192.0.2.5", "localhost"), SpfResult::kNone);
  EXPECT_EQ(Result("192.0.2.5", "a..example.net"), SpfResult::kNone);
  EXPECT_EQ(Result("not-an-ip", "example.net"), SpfResult::kPermError);
}

TEST_F(SpfTest, SyntaxErrorsArePermErrors) {
  SpfOutcome bad = Check("192.0.2.1", "bad.example.net");
  EXPECT_EQ(bad.result, SpfResult::kPermError);
  EXPECT_EQ(bad.problem, "bad.example.net: unknown mechanism 'ipv4:192.0.2.1'");
  // §4.6: an error anywhere in the record, even after the matching term.
  SpfOutcome late = Check("192.0.2.1", "late-error.example.net");
  EXPECT_EQ(late.result, SpfResult::kPermError);
  EXPECT_THAT(late.problem, HasSubstr("unknown mechanism 'moo'"));
}

TEST_F(SpfTest, Ipv6) {
  SpfOutcome range = Check("2001:db8:aaaa:5::1", "v6.example.net");
  EXPECT_EQ(range.result, kPass);
  EXPECT_EQ(range.mechanism, "ip6:2001:db8:aaaa::/48");
  SpfOutcome slash64 = Check("2001:db8:bbbb:1::99", "v6.example.net");
  EXPECT_EQ(slash64.result, kPass);
  EXPECT_EQ(slash64.mechanism, "a:host6.example.net//64");
  EXPECT_EQ(Result("2001:db8:bbbb:2::1", "v6.example.net"), kFail);
  // An IPv4 client is compared with A records at /32, an IPv4-mapped client too.
  EXPECT_EQ(Result("192.0.2.77", "v6.example.net"), kPass);
  EXPECT_EQ(Result("::ffff:192.0.2.77", "v6.example.net"), kPass);
  EXPECT_EQ(Result("192.0.2.78", "v6.example.net"), kFail);
  // a/24//64: both lengths at once.
  EXPECT_EQ(Result("192.0.2.1", "dual.example.net"), kPass);
  EXPECT_EQ(Result("192.0.3.1", "dual.example.net"), kFail);
  EXPECT_EQ(Result("2001:db8:bbbb:1:ffff::5", "dual.example.net"), kPass);
  EXPECT_EQ(Result("2001:db8:bbbb:2::5", "dual.example.net"), kFail);
}

TEST_F(SpfTest, HeloIdentity) {
  // §2.3: checking the HELO name, the sender is postmaster@helo.
  SpfRequest request;
  request.ip = "192.0.2.99";
  request.domain = "helo.example.net";
  request.helo = "helo.example.net";
  SpfOutcome out;
  bool done = false;
  QueryHandle h = evaluator_->CheckHost(request, [&](SpfOutcome o) {
    out = std::move(o);
    done = true;
  });
  RunUntil(done);
  EXPECT_EQ(out.result, kPass);
  EXPECT_EQ(out.mechanism, "a");
}

TEST_F(SpfTest, TimeoutIsTempError) {
  SilentServer silent;
  UseServer(silent.address(), 100, 1);
  auto start = std::chrono::steady_clock::now();
  SpfOutcome o = Check("192.0.2.1", "example.com");
  EXPECT_EQ(o.result, SpfResult::kTempError);
  EXPECT_THAT(o.problem, HasSubstr("example.com: DNS error looking up TXT"));
  EXPECT_THAT(o.problem, HasSubstr("timeout"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(SpfTest, WholeEvaluationIsBounded) {
  // c-ares alone would wait 1 + 2 + 4 s; the evaluation's own limit ends it first.
  SilentServer silent;
  SpfLimits limits;
  limits.evaluation_timeout_ms = 300;
  UseServer(silent.address(), 1000, 3, limits);
  auto start = std::chrono::steady_clock::now();
  SpfOutcome o = Check("192.0.2.1", "example.com");
  EXPECT_EQ(o.result, SpfResult::kTempError);
  EXPECT_EQ(o.problem, "example.com: no result within 300 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(SpfTest, CancelledCheckNeverCallsBack) {
  int calls = 0;
  SpfRequest request;
  request.ip = "192.0.2.5";
  request.domain = "limit10.example.net";
  // Cancelled before anything ran.
  QueryHandle early = evaluator_->CheckHost(request, [&](SpfOutcome) { ++calls; });
  early.Cancel();
  // An early result (bad address) is posted; cancelled before the post runs.
  request.ip = "bad";
  QueryHandle posted = evaluator_->CheckHost(request, [&](SpfOutcome) { ++calls; });
  posted.Cancel();
  // The evaluator may go away with checks in flight.
  request.ip = "192.0.2.5";
  bool done = false;
  QueryHandle survivor = evaluator_->CheckHost(request, [&](SpfOutcome o) {
    EXPECT_EQ(o.result, kFail);
    done = true;
  });
  evaluator_.reset();
  RunUntil(done);
  for (int i = 0; i < 20; ++i) reactor_->RunOnce(10);
  EXPECT_EQ(calls, 0);
}

TEST_F(SpfTest, CancelledInTheMiddleNeverCallsBack) {
  // The record comes from the cache, the include's lookup goes to a server that never answers:
  // the check is cancelled while that lookup is in flight, and its timeout reports nothing
  // (without the cancel it would be a temperror).
  SilentServer silent;
  UseServer(silent.address(), 100, 1);
  MessageBuilder txt(1, MessageBuilder::kFlagResponse);
  txt.AddQuestion("mid.example.net", kTypeTxt);
  txt.AddTxt(MessageBuilder::Section::kAnswer, "mid.example.net", 300,
             {"v=spf1 include:l1.example.net -all"});
  auto cached = std::make_shared<CachedAnswer>();
  cached->raw = txt.wire();
  cached->message = *ParseMessage(txt.wire());
  ASSERT_EQ(resolver_->cache().Insert("mid.example.net", kTypeTxt, cached), 300u);
  for (bool cancel : {true, false}) {
    int calls = 0;
    SpfOutcome out;
    SpfRequest request;
    request.ip = "192.0.2.5";
    request.domain = "mid.example.net";
    QueryHandle h = evaluator_->CheckHost(request, [&](SpfOutcome o) {
      out = std::move(o);
      ++calls;
    });
    uint64_t sent = resolver_->queries_sent();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (resolver_->queries_sent() == sent && std::chrono::steady_clock::now() < deadline) {
      reactor_->RunOnce(10);
    }
    ASSERT_EQ(resolver_->queries_sent(), sent + 1);  // the TXT of l1.example.net
    if (cancel) h.Cancel();
    while (resolver_->queries_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
      reactor_->RunOnce(10);
    }
    for (int i = 0; i < 5; ++i) reactor_->RunOnce(10);
    EXPECT_EQ(calls, cancel ? 0 : 1);
    if (!cancel) {
      EXPECT_EQ(out.result, SpfResult::kTempError);
      EXPECT_THAT(out.problem, HasSubstr("l1.example.net"));
    }
  }
}

TEST_F(SpfTest, SourcesReportForCheckDns) {
  auto report = [&](const std::string& domain, std::vector<std::string> ips) {
    SpfDomainReport out;
    bool done = false;
    QueryHandle h =
        CheckSpfSources(evaluator_.get(), domain, std::move(ips), [&](SpfDomainReport r) {
          out = std::move(r);
          done = true;
        });
    RunUntil(done);
    return out;
  };
  SpfDomainReport ok = report("relay-ok.example.net", {"192.0.2.10", "2001:db8::25"});
  EXPECT_TRUE(ok.ok()) << ok.problems.front();
  EXPECT_EQ(ok.record, "v=spf1 ip4:192.0.2.10 ip6:2001:db8::25 -all");
  ASSERT_EQ(ok.sources.size(), 2u);
  EXPECT_TRUE(ok.sources[1].authorised());
  EXPECT_EQ(ok.walk.result, SpfResult::kNeutral);

  // The IPv6 source is missing from the record.
  SpfDomainReport missing = report("relay.example.net", {"192.0.2.10", "2001:db8::25"});
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.problems, ::testing::ElementsAre("2001:db8::25: softfail (matched '~all')"));

  // Every source passes early, but another client would cost 11 lookups.
  SpfDomainReport deep = report("relay-deep.example.net", {"192.0.2.10"});
  EXPECT_TRUE(deep.sources[0].authorised());
  EXPECT_EQ(deep.sources[0].outcome.dns_terms, 0);
  EXPECT_EQ(deep.walk.result, SpfResult::kPermError);
  ASSERT_EQ(deep.problems.size(), 1u);
  EXPECT_THAT(deep.problems[0], HasSubstr("more than 10 DNS-querying terms"));

  SpfDomainReport none = report("norecord.example.net", {"192.0.2.10"});
  EXPECT_THAT(none.problems, ::testing::ElementsAre("norecord.example.net: no SPF record"));

  SpfDomainReport broken = report("bad.example.net", {"192.0.2.1"});
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.problems[0], "permerror: bad.example.net: unknown mechanism 'ipv4:192.0.2.1'");
}

}  // namespace
}  // namespace dns
