#include "relay/feedback/unsubscribe.h"

#include "gtest/gtest.h"

namespace relay::feedback {
namespace {

std::shared_ptr<const Verp> MakeVerp() {
  VerpOptions o;
  o.secrets = {"s3cret"};
  o.domains = {{"example.com", "bounce.example.com"}};
  return std::shared_ptr<const Verp>(std::move(*Verp::Make(o)));
}

std::unique_ptr<const Unsubscribe> Make(std::vector<std::string> secrets = {"s3cret"}) {
  UnsubscribeOptions o;
  o.secrets = std::move(secrets);
  o.base_url = "https://unsub.example.com";
  auto u = Unsubscribe::Make(o, MakeVerp());
  EXPECT_TRUE(u.ok()) << u.status();
  return u.ok() ? std::move(*u) : nullptr;
}

TEST(UnsubscribeTest, UrlRoundTrips) {
  auto u = Make();
  std::string url = u->Url("Example.com", "Reader+tag@Gmail.com");
  ASSERT_TRUE(url.starts_with("https://unsub.example.com/u/example.com/")) << url;
  std::optional<Unsubscription> s = u->FromPath(url.substr(url.find("/u/")));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->tenant, "example.com");
  EXPECT_EQ(s->address, "reader+tag@gmail.com");
}

TEST(UnsubscribeTest, TamperedPathsRefused) {
  auto u = Make();
  std::string path = u->Url("example.com", "a@b.test");
  path = path.substr(path.find("/u/"));
  std::string other_tenant = path;
  other_tenant.replace(3, 11, "example.org");
  EXPECT_FALSE(u->FromPath(other_tenant).has_value());
  std::string other_address =
      "/u/example.com/" + Base64Url("c@b.test") + path.substr(path.rfind('/'));
  EXPECT_FALSE(u->FromPath(other_address).has_value());
  for (const char* bad :
       {"/u/", "/u/example.com", "/u/example.com/YQ/", "/metrics",
        "/u/example.com/!!/aaaaaaaaaaaaaaaa", "/u/exa mple/YQ/aaaaaaaaaaaaaaaa"}) {
    EXPECT_FALSE(u->FromPath(bad).has_value()) << bad;
  }
  EXPECT_FALSE(Make({"other"})->FromPath(path).has_value()) << "another secret";
  EXPECT_TRUE(Make({"other", "s3cret"})->FromPath(path).has_value()) << "rotated secret";
}

TEST(UnsubscribeTest, HeaderFieldsWithMailtoAtTheBounceDomain) {
  auto u = Make();
  std::string fields = u->HeaderFields("example.com", "a@b.test");
  EXPECT_TRUE(fields.starts_with("List-Unsubscribe: <https://unsub.example.com/u/example.com/"));
  EXPECT_NE(fields.find(",\r\n <mailto:unsubscribe+"), std::string::npos) << fields;
  EXPECT_NE(fields.find("@bounce.example.com?subject=unsubscribe>\r\n"), std::string::npos);
  EXPECT_TRUE(fields.ends_with("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
  const size_t at = fields.find("mailto:") + 7;
  std::string mailto = fields.substr(at, fields.find('?', at) - at);
  std::optional<UnsubscribeToken> token = u->ParseMailto(mailto);
  ASSERT_TRUE(token.has_value()) << mailto;
  EXPECT_EQ(token->tenant, "example.com");
  EXPECT_TRUE(u->Verifies(*token, "A@B.test"));
  EXPECT_FALSE(u->Verifies(*token, "c@b.test"));
  // No bounce domain: only the HTTPS link.
  fields = u->HeaderFields("other.test", "a@b.test");
  EXPECT_EQ(fields.find("mailto:"), std::string::npos);
}

TEST(UnsubscribeTest, MakeWantsAnHttpsOrigin) {
  UnsubscribeOptions o;
  o.secrets = {"s"};
  for (const char* url : {"http://x.test", "https://", "https://x.test/path", "x.test"}) {
    o.base_url = url;
    EXPECT_FALSE(Unsubscribe::Make(o, nullptr).ok()) << url;
  }
  o.base_url = "https://x.test:8443";
  EXPECT_TRUE(Unsubscribe::Make(o, nullptr).ok());
}

TEST(UnsubscribeTest, Base64UrlRoundTrips) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "a@b.test", std::string("\xff\xfe\x00", 3)}) {
    std::optional<std::string> back = FromBase64Url(Base64Url(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(FromBase64Url("a").has_value());
  EXPECT_FALSE(FromBase64Url("ab+c").has_value());
}

}  // namespace
}  // namespace relay::feedback
