#include "relay/delivery/queue_selector.h"

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

queue::MessageInfo Message() {
  queue::MessageInfo m;
  m.sender = "News@Shop.Example";
  m.attributes.campaign = "spring";
  m.recipients.resize(3);
  m.recipients[0].address = "a@gmail.com";
  m.recipients[1].address = "b@yahoo.com";
  m.recipients[2].address = "c@GMAIL.com";
  m.recipients[2].status = queue::RecipientStatus::kDelivered;
  return m;
}

TEST(QueueSelectorTest, ParsesEveryFieldOnce) {
  auto s = ParseQueueSelector({"--tenant", "Shop", "--domain", "Gmail.com", "--campaign", "spring",
                               "--sender", "@shop.example"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tenant, "shop");
  EXPECT_EQ(s->domain, "gmail.com");
  EXPECT_EQ(s->Describe(), "tenant shop, campaign spring, sender @shop.example, domain gmail.com");
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{},
                                             {"--tenant"},
                                             {"--tenant", ""},
                                             {"--mx", "google"},
                                             {"--tenant", "a", "--tenant", "b"}}) {
    EXPECT_FALSE(ParseQueueSelector(bad).ok()) << bad.size();
  }
}

TEST(QueueSelectorTest, SiteSelectsTheDomainsTheRelaySentThere) {
  const queue::MessageInfo m = Message();
  auto s = ParseQueueSelector({"--site", "Google"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->Describe(), "site google");
  EXPECT_FALSE(s->MatchesRecipient(m, 0));  // no memory of MX answers: nothing
  s->at_site = [](std::string_view domain, std::string_view site) {
    return domain == "gmail.com" && site == "google";
  };
  EXPECT_TRUE(s->MatchesRecipient(m, 0));
  EXPECT_FALSE(s->MatchesRecipient(m, 1));  // yahoo.com
  EXPECT_FALSE(s->MatchesRecipient(m, 2));  // GMAIL.com, but delivered
  s->domain = "yahoo.com";                  // both must hold
  EXPECT_FALSE(s->MatchesRecipient(m, 0));
}

TEST(QueueSelectorTest, MessageAndRecipientConditions) {
  const queue::MessageInfo m = Message();
  QueueSelector s;
  s.tenant = "shop.example";  // no named tenant: the sending domain
  EXPECT_TRUE(s.MatchesMessage(m));
  s.tenant = "other";
  EXPECT_FALSE(s.MatchesMessage(m));
  s = QueueSelector{};
  s.sender = "@SHOP.example";
  EXPECT_TRUE(s.MatchesMessage(m));
  s.sender = "news@shop.example";
  EXPECT_TRUE(s.MatchesMessage(m));
  s.sender = "other@shop.example";
  EXPECT_FALSE(s.MatchesMessage(m));
  s = QueueSelector{};
  s.campaign = "Spring";
  EXPECT_FALSE(s.MatchesMessage(m)) << "campaigns are exact";
  s = QueueSelector{};
  s.domain = "gmail.com";
  EXPECT_TRUE(s.MatchesMessage(m));
  EXPECT_TRUE(s.MatchesRecipient(m, 0));
  EXPECT_FALSE(s.MatchesRecipient(m, 1)) << "another domain";
  EXPECT_FALSE(s.MatchesRecipient(m, 2)) << "delivered already";
}

}  // namespace
}  // namespace relay::delivery
