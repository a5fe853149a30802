// InboundChecks against a DNS server that never answers: the end-of-DATA timeout turns what is
// pending into temperror, the callback never runs inside Finish, and Cancel silences it.
#include "relay/receive/inbound_checks.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
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
    // A bound UDP socket nobody reads: every query waits for the resolver's own timeout (10 s),
    // far beyond the checks' timeout.
    silent_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    ASSERT_EQ(bind(silent_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
    ASSERT_EQ(getsockname(silent_, reinterpret_cast<sockaddr*>(&sin), &len), 0);
    io::ReactorOptions ro;
    ro.sq_entries = 64;
    ro.cq_entries = 256;
    auto reactor = io::Reactor::Create(ro);
    ASSERT_TRUE(reactor.ok()) << reactor.status();
    reactor_ = std::move(*reactor);
    dns::ResolverOptions o;
    o.servers = {absl::StrCat("127.0.0.1:", ntohs(sin.sin_port))};
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
    close(silent_);
  }

  // Runs the loop until `done` or `ms` passed.
  void RunFor(int64_t ms, const bool* done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (!*done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(10);
  }

  int silent_ = -1;
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
    InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), /*checks_timeout_ms=*/100, offload);
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
  InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), 200, offload);
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

TEST_F(InboundChecksTest, RefusedOffloadIsReportedAsOverloaded) {
  Offload refuse = [](std::function<void()>, std::function<void()>) { return false; };
  InboundChecks checks(reactor_.get(), nullptr, dkim_.get(), 200, refuse);
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
