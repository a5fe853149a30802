// DKIM and ARC checks of received mail against a real DNS server: unbound, started by this test
// on 127.0.0.1 and a free port, serving the keys of messages signed here by the relay's own
// signer and sealer. The DNS timeout case aims the resolver at a UDP socket that never answers.
#include "relay/receive/dkim_check.h"

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dkim/arc.h"
#include "dkim/key.h"
#include "dkim/signer.h"
#include "dns/resolver.h"
#include "dns/testing/unbound_test.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace relay::receive {
namespace {

constexpr int64_t kNow = 1763800000;

// An unbound local-data line for a TXT record, in strings of at most 255 bytes.
std::string TxtData(const std::string& name, const std::string& record) {
  std::string line = absl::StrCat("  local-data: '", name, " 300 IN TXT");
  for (const std::string& s : dkim::SplitTxtStrings(record)) absl::StrAppend(&line, " \"", s, "\"");
  return line + "'\n";
}

const char kMessage[] =
    "From: Alice <alice@example.test>\r\n"
    "To: bob@fwd.test\r\n"
    "Subject: received\r\n"
    "Date: Sun, 22 Nov 2026 20:22:40 +0000\r\n"
    "Message-ID: <check-1@example.test>\r\n"
    "\r\n"
    "Hello Bob.\r\n";

class DkimCheckTest : public dns::testing::UnboundTest {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new dkim::PrivateKey(
        dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kRsaSha256, 2048).value());
    ed_ = new dkim::PrivateKey(
        dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kEd25519Sha256, 0).value());
    std::string zones = "  local-zone: \"test.\" static\n";
    zones += TxtData("sel._domainkey.example.test.", rsa_->PublicKeyRecord());
    zones += TxtData("ed._domainkey.example.test.", ed_->PublicKeyRecord());
    zones += TxtData("arc._domainkey.fwd.test.", rsa_->PublicKeyRecord());
    // A key record larger than the checker accepts.
    zones += TxtData("big._domainkey.example.test.",
                     rsa_->PublicKeyRecord() + "; n=" + std::string(1200, 'x'));
    StartUnbound(zones);
  }
  static void TearDownTestSuite() {
    UnboundTest::TearDownTestSuite();
    delete rsa_;
    delete ed_;
  }

  static std::string Sign(const std::string& message,
                          std::vector<std::pair<std::string, const dkim::PrivateKey*>> keys) {
    dkim::SignerConfig config;
    for (auto& [selector, key] : keys) {
      dkim::SigningKeyConfig k;
      k.domain = "example.test";
      k.selector = selector;
      k.key_contents = key->ToPem().value();
      config.keys.push_back(k);
    }
    auto signer = dkim::Signer::Create(config).value();
    dkim::SigningSession session = signer->Begin();
    session.Update(message);
    return session.Finish(kNow).value() + message;
  }

  DkimCheckResult Check(const std::string& message, dns::Resolver* resolver = nullptr,
                        DkimCheckOptions options = DkimCheckOptions(), Offload offload = nullptr) {
    DkimChecker checker(reactor_, resolver != nullptr ? resolver : resolver_.get(), options);
    DkimCheckResult out;
    bool done = false;
    dns::QueryHandle h = checker.Check(
        message, kNow,
        [&](DkimCheckResult r) {
          out = std::move(r);
          done = true;
        },
        std::move(offload));
    EXPECT_FALSE(done) << "called back inside Check";
    RunUntil(&done, 10000);
    EXPECT_TRUE(done) << "no result within 10 s";
    return out;
  }

  static dkim::PrivateKey* rsa_;
  static dkim::PrivateKey* ed_;
};

dkim::PrivateKey* DkimCheckTest::rsa_ = nullptr;
dkim::PrivateKey* DkimCheckTest::ed_ = nullptr;

TEST_F(DkimCheckTest, SignedByOurSignerPasses) {
  std::string signed_message = Sign(kMessage, {{"sel", rsa_}, {"ed", ed_}});
  DkimCheckResult r = Check(signed_message);
  ASSERT_EQ(r.dkim.size(), 2u);
  EXPECT_EQ(r.key_lookups, 2u);
  for (const DkimAuth& a : r.dkim) {
    EXPECT_EQ(a.result, DkimVerdict::kPass) << a.reason;
    EXPECT_EQ(a.domain, "example.test");
    EXPECT_EQ(a.signature_prefix.size(), kSignaturePrefixCharsMax);
  }
  EXPECT_EQ(r.dkim[0].selector, "sel");
  EXPECT_EQ(r.dkim[1].selector, "ed");
  // header.b is the start of the signature's own b=.
  size_t b = signed_message.find(" b=") + 3;
  std::string b_value;
  for (size_t i = b; b_value.size() < kSignaturePrefixCharsMax; ++i) {
    if (signed_message[i] != '\r' && signed_message[i] != '\n' && signed_message[i] != ' ') {
      b_value.push_back(signed_message[i]);
    }
  }
  EXPECT_EQ(r.dkim[0].signature_prefix, b_value);
  EXPECT_EQ(r.arc.status, dkim::ArcChainStatus::kNone);
}

TEST_F(DkimCheckTest, ModifiedMessageFails) {
  std::string m = Sign(kMessage, {{"sel", rsa_}});
  m.replace(m.find("Hello Bob."), 10, "Hello Eve.");
  DkimCheckResult r = Check(m);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kFail);
  EXPECT_EQ(r.dkim[0].reason, "body hash mismatch");
  std::string h = Sign(kMessage, {{"sel", rsa_}});
  h.replace(h.find("Subject: received"), 17, "Subject: RECEIVED");
  r = Check(h);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kFail);
}

TEST_F(DkimCheckTest, MissingKeyIsPermError) {
  // RFC 6376 §6.1.2: no key record is a permanent failure of that signature.
  std::string m = Sign(kMessage, {{"nokey", rsa_}});
  DkimCheckResult r = Check(m);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kPermError);
  EXPECT_EQ(r.dkim[0].reason.rfind("no key: ", 0), 0u) << r.dkim[0].reason;
  EXPECT_EQ(r.dkim[0].selector, "nokey");
}

TEST_F(DkimCheckTest, OversizedKeyRecordIsPermError) {
  std::string m = Sign(kMessage, {{"big", rsa_}});
  DkimCheckResult r = Check(m);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kPermError);
  EXPECT_NE(r.dkim[0].reason.find("exceeds 1024"), std::string::npos) << r.dkim[0].reason;
}

TEST_F(DkimCheckTest, DnsTimeoutIsTempError) {
  dns::testing::SilentDnsServer silent;  // every query times out
  auto resolver = MakeResolver(silent.address(), 200, 1);
  DkimCheckResult r = Check(Sign(kMessage, {{"sel", rsa_}}), resolver.get());
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kTempError) << r.dkim[0].reason;
  resolver.reset();
}

TEST_F(DkimCheckTest, UnsignedMessageHasNoResults) {
  DkimCheckResult r = Check(kMessage);
  EXPECT_TRUE(r.dkim.empty());
  EXPECT_EQ(r.key_lookups, 0u);
  AuthResults ar;
  ar.authserv_id = "mx.fwd.test";
  ar.dkim = r.dkim;
  EXPECT_EQ(AuthResultsPayload(ar), "mx.fwd.test;\r\n\tdkim=none");
}

TEST_F(DkimCheckTest, SignatureLimit) {
  std::string m = Sign(kMessage, {{"sel", rsa_}, {"ed", ed_}});
  DkimCheckOptions o;
  o.signatures_max = 1;
  DkimCheckResult r = Check(m, nullptr, o);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kPass);
  EXPECT_EQ(r.key_lookups, 1u);
}

TEST_F(DkimCheckTest, ArcChainOfAForwarderPasses) {
  dkim::ArcSealerConfig c;
  c.domain = "fwd.test";
  c.selector = "arc";
  c.key_contents = rsa_->ToPem().value();
  auto sealer = dkim::ArcSealer::Create(c).value();
  std::string m = Sign(kMessage, {{"sel", rsa_}});
  std::string sealed =
      sealer->Seal(m, "mx.fwd.test; dkim=pass header.d=example.test", dkim::ArcValidation(), kNow)
          .value() +
      m;
  DkimCheckResult r = Check(sealed);
  EXPECT_EQ(r.arc.status, dkim::ArcChainStatus::kPass) << r.arc.reason;
  EXPECT_EQ(ToArcVerdict(r.arc.status), ArcVerdict::kPass);
  ASSERT_EQ(r.dkim.size(), 1u);
  EXPECT_EQ(r.dkim[0].result, DkimVerdict::kPass);
  EXPECT_EQ(r.key_lookups, 2u);
  sealed.replace(sealed.find("Hello Bob."), 10, "Hello Eve.");
  r = Check(sealed);
  EXPECT_EQ(r.arc.status, dkim::ArcChainStatus::kFail);
}

// An offload that runs each work on a thread of its own, as the SigningPool's workers do, and
// posts `done` back to the reactor.
class ThreadOffload {
 public:
  explicit ThreadOffload(io::Reactor* reactor) : reactor_(reactor) {}
  ~ThreadOffload() {
    for (std::thread& t : threads_) t.join();
  }
  Offload Get() {
    return [this](std::function<void()> work, std::function<void()> done) {
      if (refuse_) return false;
      ++jobs_;
      threads_.emplace_back([this, work = std::move(work), done = std::move(done)]() mutable {
        {
          std::lock_guard<std::mutex> lock(mu_);
          work_threads_.push_back(std::this_thread::get_id());
        }
        work();
        reactor_->RunInLoop(std::move(done));
      });
      return true;
    };
  }
  io::Reactor* reactor_;
  bool refuse_ = false;
  int jobs_ = 0;
  std::mutex mu_;
  std::vector<std::thread::id> work_threads_;
  std::vector<std::thread> threads_;
};

TEST_F(DkimCheckTest, OffloadedChecksGiveTheSameResultsOffTheReactorThread) {
  std::string sealed = Sign(kMessage, {{"sel", rsa_}, {"ed", ed_}});
  dkim::ArcSealerConfig c;
  c.domain = "fwd.test";
  c.selector = "arc";
  c.key_contents = rsa_->ToPem().value();
  sealed =
      dkim::ArcSealer::Create(c).value()->Seal(sealed, "mx.fwd.test; arc=none", {}, kNow).value() +
      sealed;
  DkimCheckResult inline_result = Check(sealed);
  ThreadOffload offload(reactor_);
  DkimCheckResult r = Check(sealed, nullptr, DkimCheckOptions(), offload.Get());
  // The parse and key names, then the verification: both on a worker.
  EXPECT_EQ(offload.jobs_, 2);
  for (std::thread::id t : offload.work_threads_) EXPECT_NE(t, std::this_thread::get_id());
  EXPECT_FALSE(r.overloaded);
  ASSERT_EQ(r.dkim.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.dkim[i].result, DkimVerdict::kPass) << i;
    EXPECT_EQ(r.dkim[i].signature_prefix, inline_result.dkim[i].signature_prefix);
  }
  EXPECT_EQ(r.arc.status, dkim::ArcChainStatus::kPass) << r.arc.reason;
  EXPECT_EQ(r.key_lookups, inline_result.key_lookups);
  // The parse travels with the result, for the seal.
  ASSERT_NE(r.message, nullptr);
  EXPECT_EQ(r.message->body(), "Hello Bob.\r\n");
}

TEST_F(DkimCheckTest, RefusedOffloadReportsOverloaded) {
  ThreadOffload offload(reactor_);
  offload.refuse_ = true;
  DkimCheckResult r =
      Check(Sign(kMessage, {{"sel", rsa_}}), nullptr, DkimCheckOptions(), offload.Get());
  EXPECT_TRUE(r.overloaded);
  EXPECT_TRUE(r.dkim.empty());
}

// The parse is handed over before the keys are fetched, with the From domain read from it: inside
// Check without an offload, back on the reactor's thread with one; before the result either way.
TEST_F(DkimCheckTest, ParsedCallbackGivesTheParseAndFromDomainFirst) {
  const std::string m = Sign(kMessage, {{"sel", rsa_}});
  for (bool offloaded : {false, true}) {
    SCOPED_TRACE(offloaded ? "offloaded" : "inline");
    ThreadOffload offload(reactor_);
    DkimChecker checker(reactor_, resolver_.get());
    const std::thread::id test_thread = std::this_thread::get_id();
    std::vector<std::string> order;
    std::optional<DkimParsed> parsed;
    bool done = false;
    dns::QueryHandle h = checker.Check(
        m, kNow,
        [&](DkimCheckResult r) {
          order.push_back("result");
          EXPECT_EQ(r.dkim.at(0).result, DkimVerdict::kPass);
          done = true;
        },
        offloaded ? offload.Get() : nullptr,
        [&](DkimParsed p) {
          EXPECT_EQ(std::this_thread::get_id(), test_thread);
          order.push_back("parsed");
          parsed = std::move(p);
        });
    EXPECT_EQ(parsed.has_value(), !offloaded) << "handed over inside Check only without offload";
    RunUntil(&done, 10000);
    ASSERT_TRUE(done);
    EXPECT_EQ(order, (std::vector<std::string>{"parsed", "result"}));
    ASSERT_TRUE(parsed.has_value());
    ASSERT_NE(parsed->message, nullptr);
    EXPECT_EQ(parsed->message->body(), "Hello Bob.\r\n");
    ASSERT_TRUE(parsed->from_domain.ok()) << parsed->from_domain.status();
    EXPECT_EQ(*parsed->from_domain, "example.test");
  }
  // A header that does not parse: no message, and the reason DMARC gives for it.
  DkimChecker checker(reactor_, resolver_.get());
  std::optional<DkimParsed> parsed;
  bool done = false;
  dns::QueryHandle h = checker.Check(
      "no colon here\r\n\r\nbody\r\n", kNow, [&](DkimCheckResult) { done = true; }, nullptr,
      [&](DkimParsed p) { parsed = std::move(p); });
  RunUntil(&done, 10000);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->message, nullptr);
  EXPECT_EQ(parsed->from_domain.status().message(), "the header does not parse");
}

TEST_F(DkimCheckTest, CancelledCheckNeverCallsBack) {
  std::string m = Sign(kMessage, {{"sel", rsa_}});
  DkimChecker checker(reactor_, resolver_.get());
  int calls = 0;
  {
    dns::QueryHandle h = checker.Check(m, kNow, [&](DkimCheckResult) { ++calls; });
  }
  dns::QueryHandle h2 = checker.Check(kMessage, kNow, [&](DkimCheckResult) { ++calls; });
  h2.Cancel();
  // Long enough for the answers to arrive from unbound.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(10);
  EXPECT_EQ(calls, 0);
  // The check after them still works.
  EXPECT_EQ(Check(m).dkim.at(0).result, DkimVerdict::kPass);
}

}  // namespace
}  // namespace relay::receive
