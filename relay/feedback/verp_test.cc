#include "relay/feedback/verp.h"

#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

std::unique_ptr<const Verp> MakeVerp(std::vector<std::string> secrets = {"s3cret"}) {
  VerpOptions o;
  o.secrets = std::move(secrets);
  o.domains = {{"Example.com", "Bounce.Example.com"}, {"other.test", "b.other.test"}};
  auto verp = Verp::Make(std::move(o));
  EXPECT_TRUE(verp.ok()) << verp.status();
  return verp.ok() ? std::move(*verp) : nullptr;
}

TEST(VerpTest, ReturnPathRoundTrips) {
  auto verp = MakeVerp();
  std::optional<std::string> path =
      verp->ReturnPath("news@example.com", "18c3f2a1b2c-1-2a", 3, "User@Gmail.com");
  ASSERT_TRUE(path.has_value());
  EXPECT_TRUE(path->starts_with("bounces+18c3f2a1b2c-1-2a.3.")) << *path;
  EXPECT_TRUE(path->ends_with("@bounce.example.com")) << *path;
  EXPECT_LE(path->find('@'), 64u) << "the local part fits RFC 5321's 64 octets";
  std::optional<VerpToken> token = verp->ParseAddress(*path);
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(token->tenant, "example.com");
  EXPECT_EQ(token->queue_id, "18c3f2a1b2c-1-2a");
  EXPECT_EQ(token->recipient_index, 3u);
  EXPECT_TRUE(verp->Verifies(*token, "user@gmail.com"));  // case does not matter
  EXPECT_FALSE(verp->Verifies(*token, "other@gmail.com"));
}

TEST(VerpTest, CaseSmashedTokenStillParses) {
  auto verp = MakeVerp();
  std::string path = *verp->ReturnPath("a@example.com", "ab-0-1", 0, "x@y.test");
  std::string upper = path;
  for (char& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  std::optional<VerpToken> token = verp->ParseAddress(upper);
  ASSERT_TRUE(token.has_value());
  EXPECT_TRUE(verp->Verifies(*token, "x@y.test"));
}

TEST(VerpTest, TokenBoundToMessageRecipientAndTenant) {
  auto verp = MakeVerp();
  std::string path = *verp->ReturnPath("a@example.com", "ab-0-1", 0, "x@y.test");
  VerpToken token = *verp->ParseAddress(path);
  VerpToken moved = token;
  moved.queue_id = "ab-0-2";
  EXPECT_FALSE(verp->Verifies(moved, "x@y.test"));
  moved = token;
  moved.recipient_index = 1;
  EXPECT_FALSE(verp->Verifies(moved, "x@y.test"));
  moved = token;
  moved.tenant = "other.test";
  EXPECT_FALSE(verp->Verifies(moved, "x@y.test"));
  // The same local part at the other tenant's bounce domain names the other tenant: no match.
  std::string at_other = path.substr(0, path.find('@')) + "@b.other.test";
  std::optional<VerpToken> other = verp->ParseAddress(at_other);
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->tenant, "other.test");
  EXPECT_FALSE(verp->Verifies(*other, "x@y.test"));
}

TEST(VerpTest, RotatedSecretStillVerifies) {
  auto old_verp = MakeVerp({"old"});
  std::string path = *old_verp->ReturnPath("a@example.com", "ab-0-1", 0, "x@y.test");
  auto rotated = MakeVerp({"new", "old"});
  EXPECT_TRUE(rotated->Verifies(*rotated->ParseAddress(path), "x@y.test"));
  auto forgotten = MakeVerp({"new"});
  EXPECT_FALSE(forgotten->Verifies(*forgotten->ParseAddress(path), "x@y.test"));
}

TEST(VerpTest, NoReturnPathWithoutBounceDomainOrForNullSender) {
  auto verp = MakeVerp();
  EXPECT_FALSE(verp->ReturnPath("a@elsewhere.test", "ab-0-1", 0, "x@y.test").has_value());
  EXPECT_FALSE(verp->ReturnPath("", "ab-0-1", 0, "x@y.test").has_value());
  EXPECT_EQ(verp->ForSender("A@EXAMPLE.COM")->bounce_domain, "bounce.example.com");
}

TEST(VerpTest, ParseRefusesWhatIsNoToken) {
  auto verp = MakeVerp();
  for (const char* address : {
           "bounces@bounce.example.com",                         // the feedback-loop address
           "bounces+@bounce.example.com",                        // empty token
           "bounces+ab-0-1.0@bounce.example.com",                // no MAC
           "bounces+ab-0-1.x.aaaaaaaaaaaa@bounce.example.com",   // index not a number
           "bounces+ab-0-1.0.aaaaaaaaaaa@bounce.example.com",    // MAC one short
           "bounces+ab-0-1.0.aaaaaaaaaaa1@bounce.example.com",   // not base32
           "bounces+zz-0-1.0.aaaaaaaaaaaa@bounce.example.com",   // queue id not hex
           "other+ab-0-1.0.aaaaaaaaaaaa@bounce.example.com",     // other local part
           "bounces+ab-0-1.0.aaaaaaaaaaaa@example.com",          // not a bounce domain
           "bounces+ab-0-1.01.aaaaaaaaaaaa@bounce.example.com",  // another spelling of 1
           "bounces+ab-0-1.+1.aaaaaaaaaaaa@bounce.example.com",  // a sign
       }) {
    EXPECT_FALSE(verp->ParseAddress(address).has_value()) << address;
  }
  EXPECT_TRUE(verp->IsFeedbackAddress("Bounces"));
}

TEST(VerpTest, MakeRefusesAmbiguousDomains) {
  VerpOptions o;
  o.secrets = {"s"};
  o.domains = {{"a.test", "b.a.test"}, {"c.test", "B.A.TEST"}};
  EXPECT_FALSE(Verp::Make(o).ok());
  o.domains = {{"a.test", "c.test"}, {"c.test", "b.c.test"}};
  EXPECT_FALSE(Verp::Make(o).ok());
  o.domains = {{"a.test", "b.a.test"}};
  o.secrets = {};
  EXPECT_FALSE(Verp::Make(o).ok());
  o.secrets = {"s"};
  o.local_part = "bad+part";
  EXPECT_FALSE(Verp::Make(o).ok());
  o.local_part = "much-too-long-local-part";  // no room left for the token in 64 octets
  EXPECT_FALSE(Verp::Make(o).ok());
}

TEST(VerpTest, LocalPartStaysWithin64Octets) {
  VerpOptions o;
  o.secrets = {"s"};
  o.local_part = "bounces-1234";
  o.domains = {{"example.com", "b.example.com"}};
  auto verp = std::move(*Verp::Make(o));
  // The longest queue id the spool writes and a large index: no path longer than RFC 5321 allows.
  std::optional<std::string> path =
      verp->ReturnPath("a@example.com", "ffffffffffffff-ff-ffffffffffffffff", 999999, "x@y.test");
  if (path) {
    EXPECT_LE(path->find('@'), 64u);
  }
  path = verp->ReturnPath("a@example.com", "18c3f2a1b2c-1-2a", 12, "x@y.test");
  ASSERT_TRUE(path.has_value());
  EXPECT_LE(path->find('@'), 64u);
}

}  // namespace
}  // namespace relay::feedback
