// DMARC policy discovery (RFC 7489 §6.6.3) against a real DNS server: unbound, started by this
// test on 127.0.0.1 and a free port. The timeout case aims the resolver at a UDP socket that
// never answers.
#include "relay/receive/dmarc_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "dns/resolver.h"
#include "dns/testing/unbound_server.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace relay::receive {
namespace {

using Status = DmarcDiscovery::Status;

const char kZones[] = R"(  local-zone: "test." static
  local-data: '_dmarc.reject.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; pct=50"'
  local-data: '_dmarc.reject.test. 300 IN TXT "some other text"'
  local-data: '_dmarc.own.reject.test. 300 IN TXT "v=DMARC1; p=none"'
  local-data: '_dmarc.spf.reject.test. 300 IN TXT "v=spf1 -all"'
  local-data: '_dmarc.split.test. 300 IN TXT "v=DMARC1; " "p=quarantine"'
  local-data: '_dmarc.two.test. 300 IN TXT "v=DMARC1; p=reject"'
  local-data: '_dmarc.two.test. 300 IN TXT "v=DMARC1; p=none"'
  local-data: '_dmarc.bad.test. 300 IN TXT "v=DMARC1; p=reject; pct=200"'
  local-data: 'nodmarc.test. 300 IN A 192.0.2.1'
)";

class DmarcCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto suite = dns::testing::StartUnboundSuite(kZones);
    ASSERT_TRUE(suite.ok()) << suite.status();
    if (!suite->skip_reason.empty()) {
      skip_ = new std::string(suite->skip_reason);
      return;
    }
    server_ = suite->server.release();
    reactor_ = suite->reactor.release();
  }
  static void TearDownTestSuite() {
    delete reactor_;
    delete server_;
  }

  void SetUp() override {
    if (skip_ != nullptr) {
      printf("SKIP: %s\n", skip_->c_str());
      GTEST_SKIP() << *skip_;
    }
    ASSERT_NE(server_, nullptr) << "unbound did not start: see the suite's first failure";
    resolver_ = MakeResolver(server_->address());
  }
  void TearDown() override {
    resolver_.reset();
    for (int i = 0; i < 100 && reactor_ != nullptr && reactor_->retiring() > 0; ++i) {
      reactor_->RunOnce(10);
    }
  }

  std::unique_ptr<dns::Resolver> MakeResolver(const std::string& server, int timeout_ms = 1000,
                                              int tries = 2) {
    dns::ResolverOptions o;
    o.servers = {server};
    o.timeout_ms = timeout_ms;
    o.tries = tries;
    return dns::Resolver::Create(reactor_, o).value();
  }

  DmarcDiscovery Discover(const std::string& domain, dns::Resolver* resolver = nullptr) {
    DmarcChecker checker(resolver != nullptr ? resolver : resolver_.get());
    DmarcDiscovery out;
    bool done = false;
    dns::QueryHandle h = checker.Discover(domain, [&](DmarcDiscovery d) {
      out = std::move(d);
      done = true;
    });
    EXPECT_FALSE(done) << "called back inside Discover";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(20);
    EXPECT_TRUE(done) << "no result within 10 s";
    return out;
  }

  static std::string* skip_;
  static dns::testing::UnboundServer* server_;
  static io::Reactor* reactor_;
  std::unique_ptr<dns::Resolver> resolver_;
};

std::string* DmarcCheckTest::skip_ = nullptr;
dns::testing::UnboundServer* DmarcCheckTest::server_ = nullptr;
io::Reactor* DmarcCheckTest::reactor_ = nullptr;

TEST_F(DmarcCheckTest, TheFromDomainsOwnRecord) {
  // The other TXT record at the name is not DMARC's and is ignored (§6.6.3 step 2).
  DmarcDiscovery d = Discover("reject.test");
  ASSERT_EQ(d.status, Status::kFound) << d.problem;
  EXPECT_EQ(d.domain, "reject.test");
  EXPECT_FALSE(d.organizational);
  EXPECT_EQ(d.record.p, DmarcPolicy::kReject);
  EXPECT_EQ(d.record.pct, 50);
  // A record of several strings is read joined.
  d = Discover("split.test");
  ASSERT_EQ(d.status, Status::kFound) << d.problem;
  EXPECT_EQ(d.record.p, DmarcPolicy::kQuarantine);
  // A subdomain with a record of its own.
  d = Discover("own.reject.test");
  ASSERT_EQ(d.status, Status::kFound);
  EXPECT_EQ(d.domain, "own.reject.test");
  EXPECT_FALSE(d.organizational);
  EXPECT_EQ(d.record.p, DmarcPolicy::kNone);
}

TEST_F(DmarcCheckTest, SubdomainsFallBackToTheOrganizationalDomain) {
  // NXDOMAIN at _dmarc.mail.reject.test, then _dmarc.reject.test (§6.6.3 step 3).
  DmarcDiscovery d = Discover("a.mail.reject.test");
  ASSERT_EQ(d.status, Status::kFound) << d.problem;
  EXPECT_EQ(d.domain, "reject.test");
  EXPECT_TRUE(d.organizational);
  ASSERT_TRUE(d.record.sp.has_value());
  EXPECT_EQ(*d.record.sp, DmarcPolicy::kQuarantine);
  // A TXT record that is not DMARC's at the subdomain: the same fallback.
  d = Discover("spf.reject.test");
  ASSERT_EQ(d.status, Status::kFound) << d.problem;
  EXPECT_EQ(d.domain, "reject.test");
  EXPECT_TRUE(d.organizational);
}

TEST_F(DmarcCheckTest, NothingPublished) {
  EXPECT_EQ(Discover("nodmarc.test").status, Status::kNone);
  EXPECT_EQ(Discover("sub.nodmarc.test").status, Status::kNone);
  EXPECT_EQ(Discover("nonexistent.test").status, Status::kNone);
}

TEST_F(DmarcCheckTest, BrokenRecordsArePermErrors) {
  DmarcDiscovery d = Discover("two.test");
  EXPECT_EQ(d.status, Status::kPermError);
  EXPECT_EQ(d.problem, "_dmarc.two.test: 2 DMARC records");
  d = Discover("bad.test");
  EXPECT_EQ(d.status, Status::kPermError);
  EXPECT_EQ(d.problem, "_dmarc.bad.test: invalid or repeated pct='200'");
  // Through the organizational domain as well.
  EXPECT_EQ(Discover("www.two.test").status, Status::kPermError);
}

TEST_F(DmarcCheckTest, NoAnswerIsTempErrorAndCancelSilences) {
  int silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sin);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  ASSERT_EQ(getsockname(silent, reinterpret_cast<sockaddr*>(&sin), &len), 0);
  auto resolver = MakeResolver(absl::StrCat("127.0.0.1:", ntohs(sin.sin_port)), 200, 1);
  DmarcDiscovery d = Discover("reject.test", resolver.get());
  EXPECT_EQ(d.status, Status::kTempError);
  EXPECT_EQ(d.problem.rfind("_dmarc.reject.test: transient", 0), 0u) << d.problem;

  bool called = false;
  {
    DmarcChecker checker(resolver.get());
    dns::QueryHandle h = checker.Discover("other.test", [&](DmarcDiscovery) { called = true; });
    h.Cancel();
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  while (std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(20);
  EXPECT_FALSE(called);
  close(silent);
  resolver.reset();
}

}  // namespace
}  // namespace relay::receive
