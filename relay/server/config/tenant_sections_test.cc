#include "relay/server/config/tenant_sections.h"

#include <string>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

absl::StatusOr<TenantSettings> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relayd.toml"));
  return ParseTenants(Section("relayd.toml", "", doc));
}

TEST(Tenants, NoneByDefault) {
  auto s = Parse("");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->tenants().empty());
  EXPECT_EQ(s->Find("app@example.com", "example.com"), nullptr);
  EXPECT_EQ(s->campaign_header, "X-Relay-Campaign");
  EXPECT_EQ(s->priority_header, "X-Relay-Priority");
}

TEST(Tenants, UserFirstThenSendingDomain) {
  auto s = Parse(
      "[[tenants]]\nname = \"Shop\"\nusers = [\"news@Shop.Example\", \"app\"]\n"
      "priority = \"bulk\"\nweight = 3\n"
      "[[tenants]]\nname = \"billing\"\ndomains = [\"Billing.Example\", \"shop.example\"]\n"
      "[campaigns]\nheader = \"X-Campaign-Id\"\npriority_header = \"X-Class\"\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->tenants().size(), 2u);
  const Tenant* shop = s->Find("news@shop.example", "shop.example");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->name, "shop");
  EXPECT_EQ(shop->priority, queue::Priority::kBulk);
  EXPECT_EQ(shop->weight, 3u);
  EXPECT_EQ(s->Find("app", "elsewhere.example"), shop);
  // A user of no tenant: its sending domain decides.
  const Tenant* billing = s->Find("other@shop.example", "shop.example");
  ASSERT_NE(billing, nullptr);
  EXPECT_EQ(billing->name, "billing");
  EXPECT_EQ(billing->priority, queue::Priority::kNormal);
  EXPECT_EQ(s->Find("", "billing.example"), billing);
  EXPECT_EQ(s->Find("stranger", "nowhere.example"), nullptr);
  EXPECT_EQ(s->Named("billing"), billing);
  EXPECT_EQ(s->Named("nobody"), nullptr);
  EXPECT_EQ(s->campaign_header, "X-Campaign-Id");
  EXPECT_EQ(s->priority_header, "X-Class");
}

TEST(Tenants, RefusesAmbiguityAndNonsense) {
  for (const char* text : {
           "[[tenants]]\nusers = [\"a\"]\n",                     // no name
           "[[tenants]]\nname = \"a\"\n",                        // nobody in it
           "[[tenants]]\nname = \"a b\\n\"\nusers = [\"a\"]\n",  // control character
           "[[tenants]]\nname = \"a\"\nusers = [\"u\"]\npriority = \"high\"\n",
           "[[tenants]]\nname = \"a\"\nusers = [\"u\"]\nweight = 0\n",
           "[[tenants]]\nname = \"a\"\nusers = [\"u\"]\n[[tenants]]\nname = \"A\"\nusers = "
           "[\"v\"]\n",
           "[[tenants]]\nname = \"a\"\nusers = [\"u\"]\n[[tenants]]\nname = \"b\"\nusers = "
           "[\"u\"]\n",
           "[[tenants]]\nname = \"a\"\ndomains = [\"x.test\"]\n[[tenants]]\nname = \"b\"\n"
           "domains = [\"X.test\"]\n",
           "[campaigns]\nheader = \"X Campaign\"\n",
           "[campaigns]\nheader = \"X-A\"\npriority_header = \"x-a\"\n",
           "[campaigns]\nlist = \"x\"\n",
           // A dot reads as a sending domain; none and other are metrics labels.
           "[[tenants]]\nname = \"shop.example\"\nusers = [\"u\"]\n",
           "[[tenants]]\nname = \"none\"\nusers = [\"u\"]\n",
           "[[tenants]]\nname = \"Other\"\nusers = [\"u\"]\n",
           "[[tenants]]\nname = \"a\"\nusers = [\"u\"]\npriority = \"normal\"\n"
           "priority_max = \"bulk\"\n",
       }) {
    auto s = Parse(text);
    EXPECT_FALSE(s.ok()) << text;
  }
  auto s = Parse("[[tenants]]\nname = \"a\"\nusers = [\"u\"]\n[[tenants]]\nname = \"b\"\n"
                 "users = [\"u\"]\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("user \"u\" belongs to another tenant"), std::string::npos)
      << s.status();
}

// A message may ask for a class up to its tenant's priority_max (by default its priority); mail
// of no named tenant up to normal.
TEST(Tenants, AMessageCannotLiftItselfAboveItsTenant) {
  auto s = Parse(
      "[[tenants]]\nname = \"news\"\nusers = [\"news\"]\npriority = \"bulk\"\n"
      "[[tenants]]\nname = \"shop\"\nusers = [\"shop\"]\npriority_max = \"transactional\"\n");
  ASSERT_TRUE(s.ok()) << s.status();
  const Tenant* news = s->Named("news");
  const Tenant* shop = s->Named("shop");
  ASSERT_NE(news, nullptr);
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(news->priority_max, queue::Priority::kBulk);
  EXPECT_EQ(AllowedPriority(news, queue::Priority::kTransactional), queue::Priority::kBulk);
  EXPECT_EQ(shop->priority, queue::Priority::kNormal);
  EXPECT_EQ(AllowedPriority(shop, queue::Priority::kTransactional),
            queue::Priority::kTransactional);
  EXPECT_EQ(AllowedPriority(shop, queue::Priority::kBulk), queue::Priority::kBulk);
  EXPECT_EQ(AllowedPriority(nullptr, queue::Priority::kTransactional), queue::Priority::kNormal);
  EXPECT_EQ(AllowedPriority(nullptr, queue::Priority::kBulk), queue::Priority::kBulk);
}

TEST(Tenants, NamesAndPriorities) {
  EXPECT_TRUE(IsValidName("spring-2027/a"));
  EXPECT_TRUE(IsValidName("news letter"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(" lead"));
  EXPECT_FALSE(IsValidName("tab\there"));
  EXPECT_FALSE(IsValidName("quote\""));
  EXPECT_FALSE(IsValidName(std::string(kNameBytesMax + 1, 'a')));
  EXPECT_EQ(PriorityNamed(" Bulk "), queue::Priority::kBulk);
  EXPECT_EQ(PriorityNamed("transactional"), queue::Priority::kTransactional);
  EXPECT_EQ(PriorityNamed("normal"), queue::Priority::kNormal);
  EXPECT_EQ(PriorityNamed("urgent"), std::nullopt);
}

}  // namespace
}  // namespace relay::server::config
