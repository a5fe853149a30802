#include "relay/server/server_policies.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/receive/aliases.h"
#include "relay/receive/srs.h"

namespace relay::server {
namespace {

using smtp::RcptDecision;

// Users may send as their own domain only; no credential is ever checked here.
class FakeAuthenticator final : public Authenticator {
 public:
  void Check(const smtp::CredentialCheck&, std::string_view, io::Reactor*, Done) override {}
  bool MaySendAs(std::string_view user, std::string_view address) override {
    return address.size() > user.size() && address.substr(address.size() - user.size()) == user;
  }
  bool IsBlocked(std::string_view) override { return false; }
};

std::shared_ptr<const receive::ReceiveState> StateWith(const std::string& aliases_text) {
  auto aliases = receive::Aliases::Build(
      {receive::AliasesFile{"local.test", "aliases/local.test", aliases_text}}, {});
  EXPECT_TRUE(aliases.ok()) << aliases.status();
  receive::SrsConfig c;
  c.domain = "local.test";
  c.secrets = {"s3cret-s3cret-s3cret-s3cret-s3cret"};
  auto srs = receive::Srs::Create(c);
  EXPECT_TRUE(srs.ok()) << srs.status();
  auto state = std::make_shared<receive::ReceiveState>();
  state->policy = std::make_shared<const receive::RecipientPolicy>(
      std::make_shared<const receive::Aliases>(std::move(*aliases)),
      std::shared_ptr<const receive::Srs>(std::move(*srs)));
  return state;
}

TEST(SubmissionPolicy, AnyRecipientAndTheAuthenticatorSaysWhoMaySendAs) {
  FakeAuthenticator auth;
  SubmissionPolicy policy(&auth, nullptr);
  policy.OnMailFrom("app@example.com");
  EXPECT_EQ(policy.CheckRecipient("anyone@anywhere.example"), RcptDecision::kAccept);
  EXPECT_TRUE(policy.MaySendAs("example.com", "app@example.com"));
  EXPECT_FALSE(policy.MaySendAs("example.com", "app@other.example"));
}

// The sending domain's list refuses its suppressed recipients with the reason; another sending
// domain, and the null sender, are not concerned.
// A suppression list in its own file holding gone@gmail.test for example.com, for `reason`.
std::unique_ptr<feedback::SuppressionList> ListWithGone(const std::string& name,
                                                        feedback::SuppressionReason reason) {
  feedback::SuppressionListOptions o;
  o.path = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  o.map_bytes_max = 1 << 22;
  auto list = feedback::SuppressionList::Open(o);
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return nullptr;
  feedback::SuppressionEntry e;
  e.tenant = "example.com";
  e.address = "gone@gmail.test";
  e.reason = reason;
  e.category = reason == feedback::SuppressionReason::kBounce ? "bad-mailbox" : "";
  e.time_unix_ms = 1765065600000;  // 2025-12-07
  e.queue_id = "00a1b2\r\n";       // stored as spaces: never a line end in a reply
  EXPECT_TRUE((*list)->Add(e).ok());
  return std::move(*list);
}

TEST(SubmissionPolicy, SuppressedRecipientsOfTheSendingDomainAreRefused) {
  auto list = ListWithGone("policy-suppression.mdb", feedback::SuppressionReason::kBounce);
  ASSERT_NE(list, nullptr);
  FakeAuthenticator auth;
  SubmissionPolicy policy(&auth, list.get());
  policy.OnMailFrom("App@Example.COM");
  EXPECT_EQ(policy.CheckRecipient("Gone@gmail.test"), RcptDecision::kSuppressed);
  EXPECT_EQ(policy.RefusalText(),
            "gone@gmail.test is on the suppression list of example.com: bad-mailbox bounce on "
            "2025-12-07 (message 00a1b2  )");
  EXPECT_EQ(policy.CheckRecipient("other@gmail.test"), RcptDecision::kAccept);
  policy.OnMailFrom("app@other.example");
  EXPECT_EQ(policy.CheckRecipient("gone@gmail.test"), RcptDecision::kAccept);
  policy.OnMailFrom("");
  EXPECT_EQ(policy.CheckRecipient("gone@gmail.test"), RcptDecision::kAccept);
}

TEST(SubmissionPolicy, AcceptingSuppressedRecipientsListsThemForTheDriver) {
  auto list = ListWithGone("policy-accept.mdb", feedback::SuppressionReason::kUnsubscribe);
  ASSERT_NE(list, nullptr);
  FakeAuthenticator auth;
  SubmissionPolicy policy(&auth, list.get(), /*accept_suppressed=*/true);
  policy.OnMailFrom("app@example.com");
  EXPECT_EQ(policy.CheckRecipient("Gone@gmail.test"), RcptDecision::kAccept);
  EXPECT_EQ(policy.CheckRecipient("other@gmail.test"), RcptDecision::kAccept);
  ASSERT_EQ(policy.suppressed().size(), 1u);
  EXPECT_EQ(policy.suppressed()[0].address, "Gone@gmail.test");  // as the client wrote it
  EXPECT_EQ(policy.suppressed()[0].reason, feedback::SuppressionReason::kUnsubscribe);
  policy.OnMailFrom("app@example.com");  // a new transaction
  EXPECT_TRUE(policy.suppressed().empty());
}

class ReceivePolicyTest : public ::testing::Test {
 protected:
  ReceivePolicyTest() : holder_(StateWith("postmaster: boss@named.example\n")) {
    ReceivePolicy::Hooks hooks;
    hooks.authenticated = [this] { return authenticated_; };
    hooks.on_mail_from = [this](std::string_view a) { mail_from_.emplace_back(a); };
    policy_ = std::make_unique<ReceivePolicy>(&auth_, &holder_, "192.0.2.7", std::move(hooks));
  }
  FakeAuthenticator auth_;
  receive::ReceiveStateHolder holder_;
  bool authenticated_ = false;
  std::vector<std::string> mail_from_;
  std::unique_ptr<ReceivePolicy> policy_;
};

TEST_F(ReceivePolicyTest, RoutesLocalRecipientsAndRefusesTheRest) {
  policy_->OnMailFrom("alice@sender.example");
  EXPECT_EQ(mail_from_, std::vector<std::string>{"alice@sender.example"});
  EXPECT_EQ(policy_->CheckRecipient("postmaster@local.test"), RcptDecision::kAccept);
  const receive::RecipientRoute* route = policy_->RouteOf("postmaster@local.test");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->targets, std::vector<std::string>{"boss@named.example"});
  EXPECT_EQ(route->domain, "local.test");
  // No catch-all: an unknown user is refused, and has no route.
  EXPECT_EQ(policy_->CheckRecipient("nobody@local.test"), RcptDecision::kUnknownUser);
  EXPECT_EQ(policy_->RouteOf("nobody@local.test"), nullptr);
  // Another domain is relaying: only for an authenticated client.
  EXPECT_EQ(policy_->CheckRecipient("x@elsewhere.example"), RcptDecision::kRelayDenied);
  authenticated_ = true;
  EXPECT_EQ(policy_->CheckRecipient("x@elsewhere.example"), RcptDecision::kAccept);
  EXPECT_NE(policy_->RouteOf("x@elsewhere.example"), nullptr);
}

// The aliases of a transaction are those of its MAIL FROM: a reload in the middle does not change
// them; the next transaction sees the new set and none of the old routes.
TEST_F(ReceivePolicyTest, ATransactionKeepsTheStateOfItsMailFrom) {
  policy_->OnMailFrom("alice@sender.example");
  const receive::ReceiveState* first = policy_->state();
  holder_.Set(StateWith("postmaster: other@named.example\n*: all@named.example\n"));
  EXPECT_EQ(policy_->CheckRecipient("anything@local.test"), RcptDecision::kUnknownUser);
  EXPECT_EQ(policy_->CheckRecipient("postmaster@local.test"), RcptDecision::kAccept);
  EXPECT_EQ(policy_->RouteOf("postmaster@local.test")->targets,
            std::vector<std::string>{"boss@named.example"});
  EXPECT_EQ(policy_->state(), first);

  policy_->OnMailFrom("alice@sender.example");
  EXPECT_NE(policy_->state(), first);
  EXPECT_EQ(policy_->RouteOf("postmaster@local.test"), nullptr);
  EXPECT_EQ(policy_->CheckRecipient("anything@local.test"), RcptDecision::kAccept);
  EXPECT_EQ(policy_->RouteOf("anything@local.test")->targets,
            std::vector<std::string>{"all@named.example"});
}

// Every target once, in the order of the recipients; an alias's target remembers the address the
// sender used, a relayed one does not; the first local domain addressed seals.
TEST(ReceivePolicyPlan, TargetsOnceWithTheAddressTheSenderUsed) {
  FakeAuthenticator auth;
  receive::ReceiveStateHolder holder(
      StateWith("a: one@named.example, two@named.example\nb: two@named.example\n"));
  ReceivePolicy::Hooks hooks;
  hooks.authenticated = [] { return true; };
  ReceivePolicy policy(&auth, &holder, "192.0.2.7", std::move(hooks));
  policy.OnMailFrom("alice@sender.example");
  for (const char* rcpt : {"b@local.test", "relayed@elsewhere.example", "a@local.test"}) {
    ASSERT_EQ(policy.CheckRecipient(rcpt), RcptDecision::kAccept) << rcpt;
  }
  ForwardPlan plan = policy.Plan({"b@local.test", "relayed@elsewhere.example", "a@local.test"});
  EXPECT_EQ(plan.targets,
            (std::vector<std::string>{"two@named.example", "relayed@elsewhere.example",
                                      "one@named.example"}));
  EXPECT_EQ(plan.originals, (std::vector<std::string>{"b@local.test", "", "a@local.test"}));
  EXPECT_TRUE(plan.forwarding);
  EXPECT_EQ(plan.local_domain, "local.test");

  // Relaying only: nothing is forwarded, no SRS, no seal.
  policy.OnMailFrom("alice@sender.example");
  ASSERT_EQ(policy.CheckRecipient("x@elsewhere.example"), RcptDecision::kAccept);
  ForwardPlan relayed = policy.Plan({"x@elsewhere.example"});
  EXPECT_FALSE(relayed.forwarding);
  EXPECT_EQ(relayed.local_domain, "");
  EXPECT_EQ(relayed.originals, std::vector<std::string>{""});
}

}  // namespace
}  // namespace relay::server
