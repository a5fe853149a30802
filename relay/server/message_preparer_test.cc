#include "relay/server/message_preparer.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace relay::server {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);
constexpr char kMessage[] = "From: app@example.com\r\nTo: r@example.org\r\nSubject: hi\r\n\r\nbody\r\n";

// RFC 8463 Appendix A.2's Ed25519 seed, under two selectors: deterministic signatures.
std::unique_ptr<dkim::Signer> MakeSigner() {
  dkim::SignerConfig config;
  for (const char* selector : {"one", "two"}) {
    dkim::SigningKeyConfig key;
    key.domain = "example.com";
    key.selector = selector;
    key.key_contents = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    config.keys.push_back(key);
  }
  auto signer = dkim::Signer::Create(config);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return std::move(*signer);
}

std::string SignInline(const dkim::Signer& signer, const std::string& missing) {
  dkim::SigningSession session = signer.Begin();
  session.Update(missing);
  session.Update(kMessage);
  auto fields = session.Finish(absl::ToUnixSeconds(kNow));
  return fields.ok() ? *fields : "";
}

class MessagePreparerTest : public ::testing::Test {
 protected:
  MessagePreparerTest() {
    auto reactor = io::Reactor::Create({});
    EXPECT_TRUE(reactor.ok());
    reactor_ = std::move(*reactor);
    signer_ = MakeSigner();
  }
  // Prepares and returns the result, running the reactor until it arrives; `inline_done` says
  // whether it came inside Prepare.
  absl::StatusOr<PreparedMessage> Prepare(MessagePreparer& p, std::string_view message,
                                          bool* inline_done = nullptr) {
    std::optional<absl::StatusOr<PreparedMessage>> result;
    p.Prepare(message, "", "QID", kNow, "",
              [&](absl::StatusOr<PreparedMessage> r) { result = std::move(r); });
    if (inline_done != nullptr) *inline_done = result.has_value();
    for (int i = 0; i < 3000 && !result; ++i) reactor_->RunOnce(10);
    EXPECT_TRUE(result.has_value());
    return result ? std::move(*result) : absl::InternalError("no result");
  }
  std::unique_ptr<io::Reactor> reactor_;
  std::shared_ptr<const dkim::Signer> signer_;
};

TEST_F(MessagePreparerTest, UnsignedAddsWhatIsMissingAtOnce) {
  MessagePreparer p(nullptr, nullptr, reactor_.get(), "relay.test");
  bool at_once = false;
  auto r = Prepare(p, kMessage, &at_once);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(at_once);
  EXPECT_TRUE(absl::StrContains(r->missing, "Message-ID: <QID@relay.test>\r\n")) << r->missing;
  EXPECT_TRUE(absl::StrContains(r->missing, "Date: ")) << r->missing;
  EXPECT_EQ(r->signatures, "");
  EXPECT_TRUE(r->algorithms.empty());
  // A message that has both gets nothing.
  auto full = Prepare(p, "From: a@example.com\r\nMessage-ID: <x@y>\r\nDate: Tue, 14 Nov 2023 "
                         "22:13:20 +0000\r\n\r\nbody\r\n");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->missing, "");
}

TEST_F(MessagePreparerTest, InlineSignsWhatIsMissingAndTheMessage) {
  MessagePreparer p(signer_, nullptr, reactor_.get(), "relay.test");
  bool at_once = false;
  auto r = Prepare(p, kMessage, &at_once);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(at_once);
  EXPECT_TRUE(absl::StrContains(r->missing, "Message-ID: <QID@relay.test>\r\n"));
  EXPECT_EQ(r->signatures, SignInline(*signer_, r->missing));
  EXPECT_EQ(r->algorithms, (std::vector<dkim::KeyAlgorithm>{dkim::KeyAlgorithm::kEd25519Sha256,
                                                            dkim::KeyAlgorithm::kEd25519Sha256}));
  EXPECT_GE(r->signing_ns, 0);
}

// On the pool the result comes later, on the reactor; each Message-ID gets a sequence number
// (appends follow the order results come back in, so the queue id alone could repeat).
TEST_F(MessagePreparerTest, PoolSignsLaterWithUniqueMessageIds) {
  auto pool = SigningPool::Create(2);
  ASSERT_TRUE(pool.ok());
  MessagePreparer p(signer_, pool->get(), reactor_.get(), "relay.test");
  bool at_once = true;
  auto first = Prepare(p, kMessage, &at_once);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(at_once);
  auto second = Prepare(p, kMessage);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(absl::StrContains(first->missing, "Message-ID: <QID.1@relay.test>\r\n"));
  EXPECT_TRUE(absl::StrContains(second->missing, "Message-ID: <QID.2@relay.test>\r\n"));
  EXPECT_EQ(first->signatures, SignInline(*signer_, first->missing));
  EXPECT_EQ(first->algorithms.size(), 2u);
}

TEST_F(MessagePreparerTest, AMessageThatCannotBeSignedIsAnError) {
  auto pool = SigningPool::Create(1);
  ASSERT_TRUE(pool.ok());
  for (SigningPool* on : {static_cast<SigningPool*>(nullptr), pool->get()}) {
    MessagePreparer p(signer_, on, reactor_.get(), "relay.test");
    auto r = Prepare(p, "From: a@example.com\r\nFrom: b@example.com\r\n\r\nbody\r\n");
    EXPECT_FALSE(r.ok()) << (on == nullptr ? "inline" : "pool");
  }
}

}  // namespace
}  // namespace relay::server
