// The resolver against a real DNS server: unbound, started on loopback by this test with the zones
// of dns/testing/unbound_server.cc, answering from local data only.
#include "dns/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dns/reverse_check.h"
#include "dns/testing/unbound_server.h"
#include "gtest/gtest.h"
#include "relay/base/clock.h"
#include "relay/io/reactor.h"

namespace dns {
namespace {

using testing::UnboundServer;

std::vector<std::string> Ips(const std::vector<Candidate>& candidates) {
  std::vector<std::string> out;
  for (const Candidate& c : candidates) out.push_back(c.host + "/" + c.address.IpString());
  return out;
}

class ResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto suite = testing::StartUnboundSuite(testing::TestZones());
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
    resolver_ = MakeResolver({server_->address()}, 1000, 2);
  }

  void TearDown() override {
    resolver_.reset();
    Drain();
  }

  std::unique_ptr<Resolver> MakeResolver(std::vector<std::string> servers, int timeout_ms,
                                         int tries) {
    ResolverOptions options;
    options.servers = std::move(servers);
    options.timeout_ms = timeout_ms;
    options.tries = tries;
    options.cache_clock = &clock_;
    options.random_seed = 7;
    auto resolver = Resolver::Create(reactor_, options);
    EXPECT_TRUE(resolver.ok()) << resolver.status();
    return resolver.ok() ? *std::move(resolver) : nullptr;
  }

  // Runs the reactor until `done` or a 10 s deadline.
  void RunUntil(const bool& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(20);
    ASSERT_TRUE(done) << "no answer within 10 s";
  }
  // Runs the reactor for `ms` milliseconds.
  void RunFor(int ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(10);
  }
  void Drain() {
    for (int i = 0; i < 200 && reactor_ != nullptr && reactor_->retiring() > 0; ++i) {
      reactor_->RunOnce(10);
    }
  }

  MxResult Mx(std::string_view domain, FamilyPreference family) {
    MxResult out;
    bool done = false;
    QueryHandle h = resolver_->ResolveMx(domain, family, [&](MxResult r) {
      out = std::move(r);
      done = true;
    });
    RunUntil(done);
    return out;
  }
  QueryResult RawQuery(std::string_view name, uint16_t type) {
    QueryResult out;
    bool done = false;
    QueryHandle h = resolver_->Query(name, type, [&](QueryResult r) {
      out = std::move(r);
      done = true;
    });
    RunUntil(done);
    return out;
  }

  static std::string* skip_reason_;
  static UnboundServer* server_;
  relay::FakeClock clock_;
  static relay::io::Reactor* reactor_;
  std::unique_ptr<Resolver> resolver_;
};

std::string* ResolverTest::skip_reason_ = nullptr;
UnboundServer* ResolverTest::server_ = nullptr;
relay::io::Reactor* ResolverTest::reactor_ = nullptr;

TEST_F(ResolverTest, MxPreferencesTiesAndFamilies) {
  std::set<std::string> first_hosts;
  for (int i = 0; i < 30; ++i) {
    MxResult r = Mx("MX.test.", FamilyPreference::kIpv4First);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_FALSE(r.implicit_mx);
    ASSERT_EQ(r.hosts.size(), 3u);
    EXPECT_EQ(r.hosts[0].preference, 10);
    EXPECT_EQ(r.hosts[1].preference, 10);
    EXPECT_EQ(r.hosts[2].name, "c.mx.test");
    first_hosts.insert(r.hosts[0].name);
    EXPECT_EQ(r.site, "a.mx.test,b.mx.test,c.mx.test");
    // b has A and AAAA: IPv4 first.
    std::vector<std::string> ips = Ips(r.candidates);
    ASSERT_EQ(ips.size(), 4u);
    EXPECT_EQ(ips[3], "c.mx.test/127.0.0.3");
    bool a_first = r.hosts[0].name == "a.mx.test";
    std::vector<std::string> want =
        a_first ? std::vector<std::string>{"a.mx.test/127.0.0.1", "b.mx.test/127.0.0.2",
                                           "b.mx.test/::1", "c.mx.test/127.0.0.3"}
                : std::vector<std::string>{"b.mx.test/127.0.0.2", "b.mx.test/::1",
                                           "a.mx.test/127.0.0.1", "c.mx.test/127.0.0.3"};
    EXPECT_EQ(ips, want);
  }
  // RFC 5321 §5.1: equal preferences are randomised.
  EXPECT_EQ(first_hosts, (std::set<std::string>{"a.mx.test", "b.mx.test"}));
  // Repeats came from the cache: one MX query and three hosts' A and AAAA went out.
  EXPECT_EQ(resolver_->queries_sent(), 7u);
  EXPECT_EQ(resolver_->cache().hits(), 29u * 7);
}

TEST_F(ResolverTest, TheSameQuestionInFlightIsAskedOnce) {
  // Many messages to one domain at once (a restart with a full queue): one MX question and one A
  // and AAAA per host go out, and every caller gets the full answer.
  constexpr int kCallers = 50;
  int done = 0;
  std::vector<MxResult> results(kCallers);
  std::vector<QueryHandle> handles;
  for (int i = 0; i < kCallers; ++i) {
    handles.push_back(resolver_->ResolveMx("mx.TEST", FamilyPreference::kIpv4First,
                                           [&, i](MxResult r) {
                                             results[i] = std::move(r);
                                             ++done;
                                           }));
  }
  // One of them is cancelled: it never calls back, the others are not disturbed.
  handles[7].Cancel();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < kCallers - 1 && std::chrono::steady_clock::now() < deadline) {
    reactor_->RunOnce(20);
  }
  RunFor(50);
  EXPECT_EQ(done, kCallers - 1);
  for (int i = 0; i < kCallers; ++i) {
    if (i == 7) continue;
    ASSERT_TRUE(results[i].status.ok()) << i << ": " << results[i].status.ToString();
    EXPECT_EQ(results[i].candidates.size(), 4u) << i;
    EXPECT_EQ(results[i].site, "a.mx.test,b.mx.test,c.mx.test");
  }
  EXPECT_EQ(resolver_->queries_sent(), 7u);
  // The MX question joined by 49 callers; the A and AAAA of three hosts by the 48 not cancelled.
  EXPECT_EQ(resolver_->queries_joined(), (kCallers - 1) + (kCallers - 2) * 6u);
  EXPECT_EQ(resolver_->queries_in_flight(), 0u);
}

TEST_F(ResolverTest, Ipv6FirstAndIpv6Only) {
  MxResult r = Mx("mx.test", FamilyPreference::kIpv6Only);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(Ips(r.candidates), std::vector<std::string>{"b.mx.test/::1"});
  ASSERT_EQ(r.hosts.size(), 1u);  // a and c have no AAAA: skipped
  EXPECT_EQ(r.site, "a.mx.test,b.mx.test,c.mx.test");
}

TEST_F(ResolverTest, DomainsOfOneProviderShareTheSite) {
  MxResult a = Mx("mx.test", FamilyPreference::kIpv4Only);
  MxResult b = Mx("other.test", FamilyPreference::kIpv4Only);
  ASSERT_TRUE(a.status.ok());
  ASSERT_TRUE(b.status.ok());
  EXPECT_EQ(a.site, b.site);
}

TEST_F(ResolverTest, NullMxIsPermanent) {
  MxResult r = Mx("nullmx.test", FamilyPreference::kIpv6First);
  EXPECT_TRUE(r.status.permanent()) << r.status.ToString();
  EXPECT_EQ(r.status.reason, Reason::kNullMx);
  EXPECT_TRUE(r.candidates.empty());
}

TEST_F(ResolverTest, NoMxFallsBackToTheDomainsAddresses) {
  MxResult r = Mx("nomx.test", FamilyPreference::kIpv6First);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.implicit_mx);
  EXPECT_EQ(Ips(r.candidates),
            (std::vector<std::string>{"nomx.test/::10", "nomx.test/127.0.0.10"}));
  EXPECT_EQ(r.site, "nomx.test");
}

TEST_F(ResolverTest, NxDomainIsPermanent) {
  MxResult r = Mx("does-not-exist.test", FamilyPreference::kIpv6First);
  EXPECT_TRUE(r.status.permanent()) << r.status.ToString();
  EXPECT_EQ(r.status.reason, Reason::kNxDomain);
}

TEST_F(ResolverTest, MxHostWithOnlyAaaa) {
  MxResult v4 = Mx("v6only.test", FamilyPreference::kIpv4Only);
  EXPECT_TRUE(v4.status.permanent()) << v4.status.ToString();
  EXPECT_EQ(v4.status.reason, Reason::kNoAddresses);
  MxResult any = Mx("v6only.test", FamilyPreference::kIpv4First);
  ASSERT_TRUE(any.status.ok()) << any.status.ToString();
  EXPECT_EQ(Ips(any.candidates), std::vector<std::string>{"v6.mx.test/::1"});
}

TEST_F(ResolverTest, MxHostWithoutAddressesIsSkipped) {
  MxResult r = Mx("deadhost.test", FamilyPreference::kIpv6First);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].name, "a.mx.test");
  EXPECT_EQ(r.site, "a.mx.test,nowhere.mx.test");
}

TEST_F(ResolverTest, RefusedIsTransient) {
  MxResult r = Mx("x.refused.test", FamilyPreference::kIpv6First);
  EXPECT_TRUE(r.status.transient()) << r.status.ToString();
  EXPECT_EQ(r.status.reason, Reason::kRefused) << r.status.ToString();
}

TEST_F(ResolverTest, LongTxtInSeveralStrings) {
  TxtResult out;
  bool done = false;
  QueryHandle h = resolver_->LookupTxt("txt.test", [&](TxtResult r) {
    out = std::move(r);
    done = true;
  });
  RunUntil(done);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.records.size(), 1u);
  ASSERT_EQ(out.records[0].strings.size(), 3u);
  EXPECT_EQ(out.records[0].strings[1], std::string(200, 'b'));
  EXPECT_EQ(out.records[0].joined,
            std::string(200, 'a') + std::string(200, 'b') + std::string(100, 'c'));
}

TEST_F(ResolverTest, TruncatedAnswerIsRetriedOverTcp) {
  TxtResult out;
  bool done = false;
  QueryHandle h = resolver_->LookupTxt("big.test", [&](TxtResult r) {
    out = std::move(r);
    done = true;
  });
  RunUntil(done);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  ASSERT_EQ(out.records.size(), 1u);
  ASSERT_EQ(out.records[0].strings.size(), 8u);
  EXPECT_EQ(out.records[0].joined.size(), 2000u);
  EXPECT_EQ(out.records[0].strings[7], std::string(250, 'h'));
}

TEST_F(ResolverTest, PtrForIpv4AndIpv6) {
  PtrResult v4, v6, bad;
  bool d4 = false, d6 = false, dbad = false;
  QueryHandle h4 = resolver_->LookupPtr("192.0.2.25", [&](PtrResult r) {
    v4 = r;
    d4 = true;
  });
  QueryHandle h6 = resolver_->LookupPtr("2001:db8::25", [&](PtrResult r) {
    v6 = r;
    d6 = true;
  });
  QueryHandle hb = resolver_->LookupPtr("not-an-ip", [&](PtrResult r) {
    bad = r;
    dbad = true;
  });
  EXPECT_FALSE(dbad);  // even an immediate failure is delivered from the loop
  RunUntil(d4);
  RunUntil(d6);
  RunUntil(dbad);
  ASSERT_TRUE(v4.status.ok()) << v4.status.ToString();
  EXPECT_EQ(v4.names, std::vector<std::string>{"mail.test"});
  ASSERT_TRUE(v6.status.ok()) << v6.status.ToString();
  EXPECT_EQ(v6.names, std::vector<std::string>{"mail6.test"});
  EXPECT_EQ(bad.status.reason, Reason::kBadName);
}

TEST_F(ResolverTest, RawQueryAndTtlExpiry) {
  QueryResult first = RawQuery("mx.test", kTypeMx);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_NE(first.answer, nullptr);
  EXPECT_FALSE(first.from_cache);
  EXPECT_GT(first.answer->raw.size(), 12u);
  EXPECT_EQ(AnswersFor(first.answer->message, "mx.test", kTypeMx).size(), 3u);
  EXPECT_EQ(resolver_->queries_sent(), 1u);

  clock_.AdvanceMillis(299'000);  // TTL 300 s
  QueryResult second = RawQuery("mx.test", kTypeMx);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(second.answer, first.answer);
  EXPECT_EQ(resolver_->queries_sent(), 1u);

  clock_.AdvanceMillis(1'000);
  QueryResult third = RawQuery("mx.test", kTypeMx);
  EXPECT_FALSE(third.from_cache);
  EXPECT_EQ(resolver_->queries_sent(), 2u);
  EXPECT_EQ(resolver_->cache().hits(), 1u);
  EXPECT_EQ(resolver_->cache().expirations(), 1u);
}

TEST_F(ResolverTest, NegativeAnswersAreCachedForTheSoaMinimum) {
  QueryResult nx = RawQuery("gone.test", kTypeA);
  EXPECT_TRUE(nx.status.permanent()) << nx.status.ToString();
  EXPECT_EQ(nx.status.reason, Reason::kNxDomain);
  EXPECT_FALSE(nx.from_cache);
  // NODATA: the name exists without AAAA. Ok with no records for Query.
  QueryResult nodata = RawQuery("a.mx.test", kTypeAaaa);
  EXPECT_TRUE(nodata.status.ok()) << nodata.status.ToString();
  ASSERT_NE(nodata.answer, nullptr);
  EXPECT_TRUE(AnswersFor(nodata.answer->message, "a.mx.test", kTypeAaaa).empty());

  clock_.AdvanceMillis(59'000);  // SOA minimum 60 s
  EXPECT_TRUE(RawQuery("gone.test", kTypeA).from_cache);
  EXPECT_TRUE(RawQuery("a.mx.test", kTypeAaaa).from_cache);
  clock_.AdvanceMillis(1'000);
  QueryResult again = RawQuery("gone.test", kTypeA);
  EXPECT_FALSE(again.from_cache);
  EXPECT_EQ(again.status.reason, Reason::kNxDomain);
  EXPECT_EQ(resolver_->queries_sent(), 3u);
}

TEST_F(ResolverTest, CancelledQueriesNeverCallBack) {
  int calls = 0;
  {
    QueryHandle dropped = resolver_->ResolveMx("mx.test", [&](MxResult) { ++calls; });
  }  // destroyed: cancelled
  QueryHandle cancelled = resolver_->LookupTxt("txt.test", [&](TxtResult) { ++calls; });
  cancelled.Cancel();
  EXPECT_GT(resolver_->queries_in_flight(), 0u);
  // The queries still run to their end inside c-ares (and fill the cache).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (resolver_->queries_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    reactor_->RunOnce(20);
  }
  EXPECT_EQ(resolver_->queries_in_flight(), 0u);
  RunFor(50);
  EXPECT_EQ(calls, 0);
  // A cached answer is delivered from a posted task: cancelling before the loop runs wins too.
  bool done = false;
  QueryHandle kept = resolver_->LookupTxt("txt.test", [&](TxtResult r) {
    EXPECT_TRUE(r.status.ok());
    done = true;
  });
  QueryHandle cached = resolver_->LookupTxt("txt.test", [&](TxtResult) { ++calls; });
  cached.Cancel();
  RunUntil(done);
  RunFor(20);
  EXPECT_EQ(calls, 0);
}

// A UDP socket on loopback that receives and never answers.
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
  // The queries received so far.
  std::vector<std::string> Received() {
    std::vector<std::string> out;
    char buf[1500];
    for (ssize_t n; (n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT)) > 0;) out.emplace_back(buf, n);
    return out;
  }

 private:
  int fd_;
  uint16_t port_;
};

TEST_F(ResolverTest, TimeoutIsTransient) {
  SilentServer silent;
  std::unique_ptr<Resolver> resolver = MakeResolver({silent.address()}, 100, 2);
  MxResult out;
  bool done = false;
  auto start = std::chrono::steady_clock::now();
  QueryHandle h = resolver->ResolveMx("mx.test", [&](MxResult r) {
    out = std::move(r);
    done = true;
  });
  RunUntil(done);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(out.status.transient()) << out.status.ToString();
  EXPECT_EQ(out.status.reason, Reason::kTimeout);
  // Two tries of 100 ms then 200 ms (c-ares doubles per round): well under a second.
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::seconds(3));
  EXPECT_EQ(resolver->cache().size(), 0u);  // transient failures are not cached
}

TEST_F(ResolverTest, DestroyingTheResolverWithQueriesInFlightIsClean) {
  SilentServer silent;
  int calls = 0;
  std::vector<QueryHandle> handles;
  {
    std::unique_ptr<Resolver> resolver = MakeResolver({silent.address()}, 5000, 3);
    for (int i = 0; i < 20; ++i) {
      handles.push_back(
          resolver->ResolveMx("d" + std::to_string(i) + ".bench.test", [&](MxResult) { ++calls; }));
    }
    reactor_->RunOnce(0);  // the queries are on the wire, their polls in the ring
    EXPECT_EQ(resolver->queries_in_flight(), 20u);
    EXPECT_GT(resolver->sockets_open(), 0u);
  }
  // The main resolver too, with an answer on its way and a cached answer posted.
  MxResult warm = Mx("mx.test", FamilyPreference::kIpv4Only);
  handles.push_back(resolver_->ResolveMx("mx.test", [&](MxResult) { ++calls; }));
  handles.push_back(resolver_->ResolveMx("other.test", [&](MxResult) { ++calls; }));
  resolver_.reset();
  RunFor(100);
  Drain();
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(reactor_->retiring(), 0u);
  handles.clear();  // handles outliving their resolver are harmless
}

TEST_F(ResolverTest, ForwardConfirmedReverseDns) {
  auto check = [&](std::string_view ip) {
    ReverseCheckResult out;
    bool done = false;
    QueryHandle h = CheckReverse(resolver_.get(), ip, [&](ReverseCheckResult r) {
      out = std::move(r);
      done = true;
    });
    RunUntil(done);
    return out;
  };
  ReverseCheckResult v4 = check("192.0.2.25");
  ASSERT_TRUE(v4.status.ok()) << v4.status.ToString();
  EXPECT_EQ(v4.confirmed_names, std::vector<std::string>{"mail.test"});
  ReverseCheckResult v6 = check("2001:DB8:0::25");
  ASSERT_TRUE(v6.status.ok()) << v6.status.ToString();
  EXPECT_EQ(v6.confirmed_names, std::vector<std::string>{"mail6.test"});
  ReverseCheckResult liar = check("192.0.2.26");
  EXPECT_TRUE(liar.status.permanent()) << liar.status.ToString();
  EXPECT_EQ(liar.ptr_names, std::vector<std::string>{"liar.test"});
  EXPECT_TRUE(liar.confirmed_names.empty());
  // What the PTR name resolves to instead, for the operator tool to show.
  ASSERT_EQ(liar.forward.size(), 1u);
  EXPECT_EQ(liar.forward[0].name, "liar.test");
  EXPECT_EQ(liar.forward[0].addresses, std::vector<std::string>{"192.0.2.99"});
  ReverseCheckResult none = check("192.0.2.77");
  EXPECT_TRUE(none.status.permanent()) << none.status.ToString();
  EXPECT_EQ(none.status.reason, Reason::kNxDomain);
  // Cancelled before anything ran, and cancelled between the PTR answer and the forward ones:
  // neither reports.
  int calls = 0;
  QueryHandle early =
      CheckReverse(resolver_.get(), "192.0.2.25", [&](ReverseCheckResult) { ++calls; });
  early.Cancel();
  // The PTR answer comes from the cache, the forward lookups go to a server that never answers:
  // the check is cancelled while they are in flight, and their timeouts report nothing.
  SilentServer silent;
  std::unique_ptr<Resolver> fresh = MakeResolver({silent.address()}, 100, 1);
  MessageBuilder ptr(1, MessageBuilder::kFlagResponse);
  ptr.AddQuestion("25.2.0.192.in-addr.arpa", kTypePtr);
  ptr.AddName(MessageBuilder::Section::kAnswer, "25.2.0.192.in-addr.arpa", kTypePtr, 300,
              "mail.test");
  auto cached = std::make_shared<CachedAnswer>();
  cached->raw = ptr.wire();
  cached->message = *ParseMessage(ptr.wire());
  ASSERT_EQ(fresh->cache().Insert("25.2.0.192.in-addr.arpa", kTypePtr, cached), 300u);
  QueryHandle late = CheckReverse(fresh.get(), "192.0.2.25", [&](ReverseCheckResult) { ++calls; });
  reactor_->RunOnce(0);
  EXPECT_EQ(fresh->queries_sent(), 2u);  // AAAA and A of mail.test
  EXPECT_EQ(fresh->queries_in_flight(), 2u);
  late.Cancel();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fresh->queries_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    reactor_->RunOnce(10);
  }
  EXPECT_EQ(fresh->timeouts(), 2u);
  RunFor(20);
  EXPECT_EQ(calls, 0);
}

// Every query asks for AD (RFC 6840 §5.7) and carries a random ID: c-ares sends from one port per
// server, so the ID is what an off-path spoofer has to guess.
TEST_F(ResolverTest, QueriesAskForAdWithRandomIds) {
  SilentServer silent;
  std::unique_ptr<Resolver> resolver = MakeResolver({silent.address()}, 5000, 1);
  std::vector<QueryHandle> handles;
  for (int i = 0; i < 32; ++i) {
    handles.push_back(
        resolver->Query("q" + std::to_string(i) + ".test", kTypeTxt, [](QueryResult) {}));
  }
  std::vector<std::string> queries;
  for (int i = 0; i < 100 && queries.size() < 32; ++i) {
    reactor_->RunOnce(10);
    for (std::string& q : silent.Received()) queries.push_back(std::move(q));
  }
  ASSERT_EQ(queries.size(), 32u);
  std::set<uint16_t> ids;
  for (const std::string& q : queries) {
    ASSERT_GE(q.size(), 12u);
    ids.insert(static_cast<uint16_t>(static_cast<uint8_t>(q[0]) << 8 | static_cast<uint8_t>(q[1])));
    EXPECT_NE(q[3] & 0x20, 0) << "AD bit";
    EXPECT_NE(q[2] & 0x01, 0) << "RD bit";
  }
  EXPECT_GE(ids.size(), 28u);  // 32 draws from 65536: a repeat is rare, a sequence is not random
  EXPECT_FALSE(ids.count(0) == 1 && ids.size() == 1);
}

// Answers marked AD count as validated only for a resolver told to trust them; an address family
// that fails does not make the host's validated addresses insecure.
TEST_F(ResolverTest, TrustedAdMakesAnswersSecure) {
  SilentServer silent;  // anything not in the cache times out
  auto answer = [](std::string_view name, uint16_t type, bool ad) {
    MessageBuilder b(
        1, MessageBuilder::kFlagResponse | (ad ? MessageBuilder::kFlagAuthenticatedData : 0));
    b.AddQuestion(name, type);
    if (type == kTypeMx) b.AddMx(MessageBuilder::Section::kAnswer, name, 300, 10, "mx.signed.test");
    if (type == kTypeA) b.AddA(MessageBuilder::Section::kAnswer, name, 300, "192.0.2.7");
    auto cached = std::make_shared<CachedAnswer>();
    cached->raw = b.wire();
    cached->message = *ParseMessage(b.wire());
    EXPECT_TRUE(cached->message.authenticated_data == ad);
    return cached;
  };
  for (const bool trust : {true, false}) {
    SCOPED_TRACE(trust);
    ResolverOptions options;
    options.servers = {silent.address()};
    options.timeout_ms = 100;
    options.tries = 1;
    options.cache_clock = &clock_;
    options.trust_ad = trust;
    std::unique_ptr<Resolver> resolver = *Resolver::Create(reactor_, options);
    resolver->cache().Insert("signed.test", kTypeMx, answer("signed.test", kTypeMx, true));
    resolver->cache().Insert("mx.signed.test", kTypeA, answer("mx.signed.test", kTypeA, true));
    resolver->cache().Insert("unsigned.test", kTypeMx, answer("unsigned.test", kTypeMx, false));
    MxResult out;
    bool done = false;
    // AAAA of mx.signed.test is not cached: it times out, and the A answer still counts.
    QueryHandle h =
        resolver->ResolveMx("signed.test", FamilyPreference::kIpv6First, [&](MxResult r) {
          out = std::move(r);
          done = true;
        });
    RunUntil(done);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.dnssec, trust);
    ASSERT_EQ(out.hosts.size(), 1u);
    EXPECT_EQ(out.hosts[0].dnssec, trust);
    done = false;
    h = resolver->ResolveMx("unsigned.test", FamilyPreference::kIpv4Only, [&](MxResult r) {
      out = std::move(r);
      done = true;
    });
    RunUntil(done);
    EXPECT_FALSE(out.dnssec);  // no AD: never secure
  }
}

TEST_F(ResolverTest, TlsaRecordsAndTheirAbsence) {
  auto tlsa = [&](std::string_view host) {
    TlsaResult out;
    bool done = false;
    QueryHandle h = resolver_->LookupTlsa(host, 25, [&](TlsaResult r) {
      out = std::move(r);
      done = true;
    });
    RunUntil(done);
    return out;
  };
  TlsaResult a = tlsa("A.mx.test.");
  ASSERT_TRUE(a.status.ok()) << a.status.ToString();
  ASSERT_EQ(a.rdatas.size(), 1u);
  EXPECT_EQ(a.rdatas[0].substr(0, 4), std::string("\x03\x01\x01\x01", 4));
  EXPECT_EQ(a.rdatas[0].size(), 3u + 32u);
  EXPECT_FALSE(a.dnssec);  // unbound here does not validate, and the resolver is not trusted
  TlsaResult none = tlsa("b.mx.test");  // NODATA: none, not a failure
  EXPECT_TRUE(none.status.ok()) << none.status.ToString();
  EXPECT_TRUE(none.rdatas.empty());
  TlsaResult nx = tlsa("nonexistent.mx.test");  // NXDOMAIN: none either
  EXPECT_TRUE(nx.status.ok()) << nx.status.ToString();
  EXPECT_TRUE(nx.rdatas.empty());
  // Nothing is validated here, so no MX answer is secure either.
  MxResult mx = Mx("mx.test", FamilyPreference::kIpv4Only);
  EXPECT_FALSE(mx.dnssec);
  for (const MxHost& h : mx.hosts) EXPECT_FALSE(h.dnssec) << h.name;
}

TEST(AdTrustTest, LoopbackServersOrTheTrustAdOption) {
  EXPECT_TRUE(AdTrustedByDefault({"127.0.0.1:5353"}, ""));
  EXPECT_TRUE(AdTrustedByDefault({"[::1]:53", "127.0.0.53"}, ""));
  EXPECT_FALSE(AdTrustedByDefault({"127.0.0.1", "192.0.2.1"}, ""));
  EXPECT_FALSE(AdTrustedByDefault({"[2001:db8::1]:53"}, ""));
  // resolv.conf's loopback stubs may forward an AD bit from anywhere: not by themselves.
  EXPECT_FALSE(AdTrustedByDefault({}, "# local\nnameserver 127.0.0.1\n"));
  EXPECT_FALSE(AdTrustedByDefault({}, "nameserver 127.0.0.53\noptions edns0\n"));
  EXPECT_TRUE(AdTrustedByDefault({}, "nameserver 127.0.0.53\noptions edns0 trust-ad\n"));
  EXPECT_TRUE(AdTrustedByDefault({}, "nameserver 192.0.2.53\noptions edns0 trust-ad\n"));
  // The option speaks for resolv.conf's servers, not for servers configured elsewhere.
  EXPECT_FALSE(AdTrustedByDefault({"192.0.2.1"}, "options trust-ad\n"));
  EXPECT_FALSE(AdTrustedByDefault({}, ""));  // no server at all: nothing to trust
}

TEST_F(ResolverTest, BadServerListIsAnError) {
  ResolverOptions options;
  options.servers = {"not an address"};
  EXPECT_FALSE(Resolver::Create(reactor_, options).ok());
}

}  // namespace
}  // namespace dns
