// InboundChecks against a DNS server that never answers: the end-of-DATA timeout turns what is
// pending into temperror, the callback never runs inside Finish, and Cancel silences it.
#include "relay/receive/inbound_checks.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dns/testing/unbound_test.h"
#include "gtest/gtest.h"

namespace relay::receive {
namespace {

constexpr int64_t kNow = 1700000000;
constexpr char kSigned[] =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=sel;\r\n"
    "\th=from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n"
    "From: a@example.test\r\n"
    "\r\n"
    "body\r\n";

class InboundChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    io::ReactorOptions ro;
    ro.sq_entries = 64;
    ro.cq_entries = 256;
    auto reactor = io::Reactor::Create(ro);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(*reactor);
    // Every query waits for the resolver's own timeout (10 s), far beyond the checks' timeout.
    dns::ResolverOptions o;
    o.servers = {silent_.address()};
    o.timeout_ms = 10000;
    o.tries = 1;
    resolver_ = dns::Resolver::Create(reactor_.get(), o).value();
    spf_ = std::make_unique<dns::SpfEvaluator>(reactor_.get(), resolver_.get());
    dkim_ = std::make_unique<DkimChecker>(reactor_.get(), resolver_.get());
  }
  void TearDown() override {
    spf_.reset();
    dkim_.reset();
    resolver_.reset();
    for (int i = 0; i < 100 && reactor_->retiring() > 0; ++i) reactor_->RunOnce(10);
    reactor_.reset();
  }

  // Runs the loop until `done` or `ms` passed.
  void RunFor(int64_t ms, const bool* done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!*done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(10);
  }

  // Finish(message) and the loop run until the results are in (or 5 s passed).
  std::optional<InboundResults> FinishAndWait(InboundChecks& checks, std::string_view message) {
    bool done = false;
    std::optional<InboundResults> results;
    checks.Finish(message, kNow, [&](InboundResults r) {
      results = std::move(r);
      done = true;
    });
    EXPECT_FALSE(done) << "called back inside Finish";
    RunFor(5000, &done);
    return results;
  }

  dns::testing::SilentDnsServer silent_;
  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<dns::SpfEvaluator> spf_;
  std::unique_ptr<DkimChecker> dkim_;
};

TEST_F(InboundChecksTest, TimeoutGivesTempError) {
  InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), /*checks_timeout_ms=*/300);
  checks.StartSpf("192.0.2.1", "alice@example.test", "mail.example.test", "mx.local.test");
  bool done = false;
  std::optional<InboundResults> results;
  auto start = std::chrono::steady_clock::now();
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    results = std::move(r);
    done = true;
  });
  EXPECT_FALSE(done) << "called back inside Finish";
  RunFor(5000, &done);
  ASSERT_TRUE(done);
  auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  EXPECT_GE(waited_ms, 250);
  EXPECT_TRUE(results->spf_checked);
  EXPECT_EQ(results->spf.result, dns::SpfResult::kTempError);
  EXPECT_EQ(results->spf_mailfrom, "alice@example.test");
  EXPECT_TRUE(results->dkim_timed_out);
  std::string payload = AuthResultsPayload(ToAuthResults(*results, "mx.local.test", true));
  EXPECT_NE(payload.find("spf=temperror smtp.mailfrom=alice@example.test"), std::string::npos)
      << payload;
  EXPECT_NE(payload.find("dkim=temperror"), std::string::npos) << payload;
  // No ARC verdict when the chain could not be looked at.
  EXPECT_EQ(payload.find("arc="), std::string::npos) << payload;
}

TEST_F(InboundChecksTest, NullSenderChecksTheHeloIdentity) {
  InboundChecks checks(reactor_.get(), spf_.get(), nullptr, 200);
  checks.StartSpf("192.0.2.1", "", "mail.example.test", "mx.local.test");
  bool done = false;
  std::optional<InboundResults> results;
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    results = std::move(r);
    done = true;
  });
  RunFor(5000, &done);
  ASSERT_TRUE(done);
  EXPECT_EQ(results->spf_helo, "mail.example.test");
  EXPECT_EQ(results->spf_mailfrom, "");
  EXPECT_FALSE(results->dkim_checked);
  std::string payload = AuthResultsPayload(ToAuthResults(*results, "mx.local.test", false));
  EXPECT_NE(payload.find("smtp.helo=mail.example.test"), std::string::npos) << payload;
}

TEST_F(InboundChecksTest, NothingToCheckStillCallsBackFromTheLoop) {
  InboundChecks checks(reactor_.get(), nullptr, nullptr, 200);
  checks.StartSpf("192.0.2.1", "alice@example.test", "mail.example.test", "mx.local.test");
  bool done = false;
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    EXPECT_FALSE(r.spf_checked);
    EXPECT_FALSE(r.dkim_checked);
    done = true;
  });
  EXPECT_FALSE(done) << "called back inside Finish";
  RunFor(1000, &done);
  EXPECT_TRUE(done);
}

// RFC 7489 §6.6.3 leaves DNS trouble to the receiver: dmarc=temperror, and accepted.
TEST_F(InboundChecksTest, DmarcWithoutAnswerIsTempErrorAndNotRefused) {
  DmarcChecker dmarc(resolver_.get());
  InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), 300, &dmarc);
  checks.StartSpf("192.0.2.1", "alice@example.test", "mail.example.test", "mx.local.test");
  std::optional<InboundResults> results = FinishAndWait(checks, kSigned);
  ASSERT_TRUE(results.has_value());
  EXPECT_TRUE(results->dmarc_checked);
  EXPECT_EQ(results->dmarc.result, DmarcVerdict::kTempError);
  EXPECT_EQ(results->dmarc.from_domain, "example.test");
  EXPECT_EQ(results->dmarc_ids.spf_domain, "example.test");
  ASSERT_NE(results->message, nullptr);  // the DKIM check's parse, kept past its timeout
  std::string payload = AuthResultsPayload(ToAuthResults(*results, "mx.local.test", true));
  EXPECT_NE(payload.find("dmarc=temperror header.from=example.test"), std::string::npos) << payload;
  EXPECT_EQ(DecideInbound(results->dmarc_ids, &results->dmarc, InboundPolicy()).action,
            InboundAction::kAccept);
}

TEST_F(InboundChecksTest, DmarcNeedsSpfAndDkimAndOneFrom) {
  DmarcChecker dmarc(resolver_.get());
  {
    InboundChecks checks(reactor_.get(), spf_.get(), nullptr, 200, &dmarc);
    std::optional<InboundResults> results = FinishAndWait(checks, kSigned);
    ASSERT_TRUE(results.has_value());
    EXPECT_FALSE(results->dmarc_checked);
  }
  // Two From fields: permerror at once, no lookup to wait for.
  InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), 200, &dmarc);
  std::optional<InboundResults> results =
      FinishAndWait(checks, "From: a@example.test\r\nFrom: b@bank.test\r\n\r\nbody\r\n");
  ASSERT_TRUE(results.has_value());
  EXPECT_EQ(results->dmarc.result, DmarcVerdict::kPermError);
  EXPECT_EQ(results->dmarc_ids.from_problem, "2 From fields");
  EXPECT_EQ(DecideInbound(results->dmarc_ids, &results->dmarc, InboundPolicy()).action,
            InboundAction::kRefuse);
}

TEST_F(InboundChecksTest, CancelSilencesTheCallback) {
  bool done = false;
  {
    InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), 100);
    checks.StartSpf("192.0.2.1", "alice@example.test", "mail.example.test", "mx.local.test");
    checks.Finish(kSigned, kNow, [&](InboundResults) { done = true; });
    EXPECT_TRUE(checks.finishing());
    checks.Cancel();
    EXPECT_FALSE(checks.finishing());
    RunFor(400, &done);
    EXPECT_FALSE(done);
  }
  // Destroyed with the SPF query still out: nothing runs afterwards either.
  RunFor(200, &done);
  EXPECT_FALSE(done);
}

// Work handed to an offload reads the message until it returns: the checks say busy() until
// then, a Cancel() meanwhile silences the callback without cutting the work short, and a timeout
// does not finish the checks under it.
TEST_F(InboundChecksTest, OffloadedWorkKeepsTheChecksBusyUntilItReturns) {
  std::vector<std::pair<std::function<void()>, std::function<void()>>> handed;
  Offload offload = [&](std::function<void()> work, std::function<void()> done) {
    handed.emplace_back(std::move(work), std::move(done));
    return true;
  };
  auto run_handed = [&] {
    auto jobs = std::move(handed);
    handed.clear();
    for (auto& [work, done] : jobs) {
      work();
      done();
    }
  };
  bool done = false;
  {
    InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), /*checks_timeout_ms=*/100,
                         /*dmarc=*/nullptr, offload);
    checks.Finish(kSigned, kNow, [&](InboundResults) { done = true; });
    ASSERT_EQ(handed.size(), 1u);  // the parse and key names
    EXPECT_TRUE(checks.busy());
    RunFor(300, &done);  // past the timeout: the work is still out, nothing finishes
    EXPECT_FALSE(done);
    EXPECT_TRUE(checks.busy());
    checks.Cancel();
    EXPECT_TRUE(checks.busy());
    run_handed();
    EXPECT_FALSE(checks.busy());
    RunFor(300, &done);
    EXPECT_FALSE(done);
  }
  // Without a cancel: the parse comes back, the (silent) key lookup times out.
  InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), 200, /*dmarc=*/nullptr, offload);
  std::optional<InboundResults> results;
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    results = std::move(r);
    done = true;
  });
  run_handed();
  RunFor(3000, &done);
  ASSERT_TRUE(done);
  EXPECT_TRUE(results->dkim_timed_out);
  EXPECT_FALSE(checks.busy());
}

// With an offload, DMARC's From domain comes from the one parse made there: the policy lookup
// starts when it is back, and the parse is kept for the stamping and sealing of the message, even
// when every lookup then times out.
TEST_F(InboundChecksTest, DmarcTakesTheFromDomainFromTheOffloadedParse) {
  std::vector<std::pair<std::function<void()>, std::function<void()>>> handed;
  Offload offload = [&](std::function<void()> work, std::function<void()> done) {
    handed.emplace_back(std::move(work), std::move(done));
    return true;
  };
  DmarcChecker dmarc(resolver_.get());
  InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), 200, &dmarc, offload);
  checks.StartSpf("192.0.2.1", "alice@example.test", "mail.example.test", "mx.local.test");
  bool done = false;
  std::optional<InboundResults> results;
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    results = std::move(r);
    done = true;
  });
  ASSERT_EQ(handed.size(), 1u);  // the parse
  RunFor(300, &done);            // past the timeout: the parse is still out, nothing finishes
  EXPECT_FALSE(done);
  auto [work, back] = std::move(handed[0]);
  handed.clear();
  work();
  back();
  RunFor(3000, &done);
  ASSERT_TRUE(done);
  EXPECT_TRUE(results->dmarc_checked);
  EXPECT_EQ(results->dmarc_ids.from_domain, "example.test");
  EXPECT_EQ(results->dmarc.result, DmarcVerdict::kTempError) << results->dmarc.problem;
  EXPECT_TRUE(results->dkim_timed_out);
  ASSERT_NE(results->message, nullptr);
  EXPECT_EQ(results->message->fields().size(), 2u);
  EXPECT_FALSE(checks.busy());

  // Two From fields, found in the same parse: permerror, no lookup.
  std::optional<InboundResults> two = std::nullopt;
  done = false;
  checks.Finish("From: a@example.test\r\nFrom: b@bank.test\r\n\r\nbody\r\n", kNow,
                [&](InboundResults r) {
                  two = std::move(r);
                  done = true;
                });
  // The parse, then (no signature, no key to wait for) the verification of nothing.
  for (int i = 0; i < 300 && !done; ++i) {
    auto jobs = std::move(handed);
    handed.clear();
    for (auto& [w, b] : jobs) {
      w();
      b();
    }
    reactor_->RunOnce(10);
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(two->dmarc.result, DmarcVerdict::kPermError);
  EXPECT_EQ(two->dmarc_ids.from_problem, "2 From fields");
}

// Refused by the offload before the parse: DMARC has no From domain, and says temperror rather
// than a failure that would refuse the message for good (it is refused for now: 451).
TEST_F(InboundChecksTest, DmarcOfARefusedParseIsTempError) {
  Offload refuse = [](std::function<void()>, std::function<void()>) { return false; };
  DmarcChecker dmarc(resolver_.get());
  InboundChecks checks(reactor_.get(), spf_.get(), dkim_.get(), 200, &dmarc, refuse);
  std::optional<InboundResults> results = FinishAndWait(checks, kSigned);
  ASSERT_TRUE(results.has_value());
  EXPECT_TRUE(results->dkim.overloaded);
  EXPECT_EQ(results->dmarc.result, DmarcVerdict::kTempError);
  EXPECT_EQ(results->message, nullptr);
}

TEST_F(InboundChecksTest, RefusedOffloadIsReportedAsOverloaded) {
  Offload refuse = [](std::function<void()>, std::function<void()>) { return false; };
  InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), 200, /*dmarc=*/nullptr, refuse);
  bool done = false;
  std::optional<InboundResults> results;
  checks.Finish(kSigned, kNow, [&](InboundResults r) {
    results = std::move(r);
    done = true;
  });
  EXPECT_FALSE(done) << "called back inside Finish";
  RunFor(1000, &done);
  ASSERT_TRUE(done);
  EXPECT_TRUE(results->dkim.overloaded);
  EXPECT_FALSE(checks.busy());
}

}  // namespace
}  // namespace relay::receive
