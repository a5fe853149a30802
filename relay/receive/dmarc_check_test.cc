// DMARC policy discovery (RFC 7489 §6.6.3) against a real DNS server: unbound, started by this
// test on 127.0.0.1 and a free port. The timeout case aims the resolver at a UDP socket that
// never answers.
#include "relay/receive/dmarc_check.h"

#include <memory>
#include <string>

#include "dns/resolver.h"
#include "dns/testing/unbound_test.h"
#include "gtest/gtest.h"

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

class DmarcCheckTest : public dns::testing::UnboundTest {
 protected:
  static void SetUpTestSuite() { StartUnbound(kZones); }

  DmarcDiscovery Discover(const std::string& domain, dns::Resolver* resolver = nullptr) {
    DmarcChecker checker(resolver != nullptr ? resolver : resolver_.get());
    DmarcDiscovery out;
    bool done = false;
    dns::QueryHandle h = checker.Discover(domain, [&](DmarcDiscovery d) {
      out = std::move(d);
      done = true;
    });
    EXPECT_FALSE(done) << "called back inside Discover";
    RunUntil(&done, 10000);
    EXPECT_TRUE(done) << "no result within 10 s";
    return out;
  }
};

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
  dns::testing::SilentDnsServer silent;
  auto resolver = MakeResolver(silent.address(), 200, 1);
  DmarcDiscovery d = Discover("reject.test", resolver.get());
  EXPECT_EQ(d.status, Status::kTempError);
  EXPECT_EQ(d.problem.rfind("_dmarc.reject.test: transient", 0), 0u) << d.problem;

  bool called = false;
  {
    DmarcChecker checker(resolver.get());
    dns::QueryHandle h = checker.Discover("other.test", [&](DmarcDiscovery) { called = true; });
    h.Cancel();
  }
  RunUntil(&called, 800);
  EXPECT_FALSE(called);
  resolver.reset();
}

}  // namespace
}  // namespace relay::receive
