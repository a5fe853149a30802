#include "relay/receive/recipient_policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::receive {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using smtp::RcptDecision;

constexpr int64_t kNow = 1700000000;
constexpr int64_t kDay = 86400;

class RecipientPolicyTest : public ::testing::Test {
 protected:
  RecipientPolicyTest() {
    auto aliases = Aliases::Build(
        {AliasesFile{"local.test", "aliases/local.test",
                     "postmaster: owner@gmail.example\n*: catchall@gmail.example\n"},
         AliasesFile{"strict.test", "aliases/strict.test", "bob: bob@elsewhere.example\n"}},
        {});
    EXPECT_TRUE(aliases.ok()) << aliases.status();
    SrsConfig c;
    c.domain = "local.test";
    c.secrets = {"s3cret"};
    auto srs = Srs::Create(c);
    EXPECT_TRUE(srs.ok()) << srs.status();
    srs_ = std::shared_ptr<const Srs>(std::move(*srs));
    policy_ = std::make_unique<RecipientPolicy>(
        std::make_shared<const Aliases>(std::move(*aliases)), srs_);
  }

  std::shared_ptr<const Srs> srs_;
  std::unique_ptr<RecipientPolicy> policy_;
};

TEST_F(RecipientPolicyTest, NamedAliasWinsOverCatchAll) {
  RecipientRoute r = policy_->Route("Postmaster@LOCAL.test", false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kAccept);
  EXPECT_EQ(r.kind, RecipientKind::kAlias);
  EXPECT_EQ(r.domain, "local.test");
  EXPECT_THAT(r.targets, ElementsAre("owner@gmail.example"));
  r = policy_->Route("anything@local.test", false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kAccept);
  EXPECT_THAT(r.targets, ElementsAre("catchall@gmail.example"));
}

TEST_F(RecipientPolicyTest, UnknownUserWithoutCatchAll) {
  EXPECT_EQ(policy_->Route("bob@strict.test", false, kNow).decision, RcptDecision::kAccept);
  RecipientRoute r = policy_->Route("alice@strict.test", false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kUnknownUser);
  // Even an authenticated client cannot reach a user a local domain does not have.
  EXPECT_EQ(policy_->Route("alice@strict.test", true, kNow).decision, RcptDecision::kUnknownUser);
}

TEST_F(RecipientPolicyTest, OtherDomainsOnlyWithAuth) {
  RecipientRoute r = policy_->Route("someone@example.org", false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kRelayDenied);
  r = policy_->Route("someone@example.org", true, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kAccept);
  EXPECT_EQ(r.kind, RecipientKind::kRelay);
  EXPECT_THAT(r.targets, ElementsAre("someone@example.org"));
}

TEST_F(RecipientPolicyTest, SrsAddressReturnsToTheOriginalSender) {
  std::string srs = srs_->Forward("alice@sender.example", kNow).value();
  RecipientRoute r = policy_->Route(srs, false, kNow + kDay);
  EXPECT_EQ(r.decision, RcptDecision::kAccept);
  EXPECT_EQ(r.kind, RecipientKind::kSrsReturn);
  EXPECT_THAT(r.targets, ElementsAre("alice@sender.example"));
  // Some MTAs lower-case the local part; the hash is compared without case.
  std::string lower = srs;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(policy_->Route(lower, false, kNow).decision, RcptDecision::kAccept);
}

TEST_F(RecipientPolicyTest, BadOrExpiredSrsIsUnknownUserNotCatchAll) {
  std::string srs = srs_->Forward("alice@sender.example", kNow).value();
  std::string tampered = srs;
  tampered[5] = tampered[5] == 'A' ? 'B' : 'A';  // inside the hash
  RecipientRoute r = policy_->Route(tampered, false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kUnknownUser);
  EXPECT_FALSE(r.why.empty());
  r = policy_->Route(srs, false, kNow + 40 * kDay);
  EXPECT_EQ(r.decision, RcptDecision::kUnknownUser);
  EXPECT_EQ(policy_->Route("SRS0=garbage@local.test", false, kNow).decision,
            RcptDecision::kUnknownUser);
}

TEST_F(RecipientPolicyTest, WithoutSrsAnSrsLookingAddressIsAnAlias) {
  auto aliases = Aliases::Build(
      {AliasesFile{"local.test", "a", "*: catchall@gmail.example\n"}}, {});
  ASSERT_TRUE(aliases.ok());
  RecipientPolicy policy(std::make_shared<const Aliases>(std::move(*aliases)), nullptr);
  RecipientRoute r = policy.Route("SRS0=x=y=z=w@local.test", false, kNow);
  EXPECT_EQ(r.kind, RecipientKind::kAlias);
  EXPECT_THAT(r.targets, ElementsAre("catchall@gmail.example"));
}

TEST(RecipientPolicyFeedbackTest, BounceDomainTakesReturnPathsOnly) {
  feedback::VerpOptions o;
  o.secrets = {"s3cret"};
  o.domains = {{"example.com", "bounce.example.com"}};
  auto verp = feedback::Verp::Make(o);
  ASSERT_TRUE(verp.ok()) << verp.status();
  std::shared_ptr<const feedback::Verp> shared(std::move(*verp));
  auto aliases = Aliases::Build({}, {});
  ASSERT_TRUE(aliases.ok());
  RecipientPolicy policy(std::make_shared<const Aliases>(std::move(*aliases)), nullptr, shared);
  std::string path = *shared->ReturnPath("news@example.com", "ab-0-1", 0, "x@y.test");
  RecipientRoute r = policy.Route(path, false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kAccept);
  EXPECT_EQ(r.kind, RecipientKind::kFeedback);
  EXPECT_EQ(r.domain, "bounce.example.com");
  EXPECT_TRUE(r.targets.empty()) << "a report is read, never forwarded";
  EXPECT_EQ(policy.Route("Bounces@bounce.example.com", false, kNow).kind, RecipientKind::kFeedback);
  r = policy.Route("postmaster@bounce.example.com", false, kNow);
  EXPECT_EQ(r.decision, RcptDecision::kUnknownUser);
  EXPECT_EQ(policy.Route("bounces+junk@bounce.example.com", true, kNow).decision,
            RcptDecision::kUnknownUser);
}

}  // namespace
}  // namespace relay::receive
