#include "relay/server/unsubscribe_endpoint.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace relay::server {
namespace {

class UnsubscribeEndpointTest : public ::testing::Test {
 protected:
  UnsubscribeEndpointTest() {
    feedback::UnsubscribeOptions o;
    o.secrets = {"s3cret"};
    o.base_url = "https://u.example.com";
    links_ = std::move(*feedback::Unsubscribe::Make(o, nullptr));
    feedback::SuppressionListOptions l;
    l.path = std::string(std::getenv("TEST_TMPDIR")) + "/" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".mdb";
    list_ = std::move(*feedback::SuppressionList::Open(l));
    endpoint_.links = links_.get();
    endpoint_.suppression = list_.get();
    endpoint_.unsubscribed = [this](const feedback::Unsubscription& who) {
      events_.push_back(who.address);
    };
    std::string url = links_->Url("example.com", "reader@example.org");
    path_ = url.substr(url.find("/u/"));
  }

  metrics::HttpResponse Serve(std::string method, std::string target, std::string body = "") {
    metrics::HttpRequest r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.body = std::move(body);
    return ServeUnsubscribe(r, endpoint_, 1700000000000);
  }

  std::unique_ptr<const feedback::Unsubscribe> links_;
  std::unique_ptr<feedback::SuppressionList> list_;
  UnsubscribeEndpoint endpoint_;
  std::vector<std::string> events_;
  std::string path_;
};

TEST_F(UnsubscribeEndpointTest, GetShowsAPageAndChangesNothing) {
  metrics::HttpResponse r = Serve("GET", path_);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("<form method=\"post\""), std::string::npos);
  EXPECT_NE(r.body.find("reader@example.org"), std::string::npos);
  EXPECT_FALSE(list_->Find("example.com", "reader@example.org")->has_value());
  EXPECT_TRUE(events_.empty());
}

TEST_F(UnsubscribeEndpointTest, OneClickPostSuppressesOnce) {
  EXPECT_EQ(Serve("POST", path_, "List-Unsubscribe=One-Click").status, 200);
  auto entry = list_->Find("example.com", "reader@example.org");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->reason, feedback::SuppressionReason::kUnsubscribe);
  EXPECT_EQ(Serve("POST", path_, "List-Unsubscribe=One-Click").status, 200);
  EXPECT_EQ(events_.size(), 1u) << "a second POST records no second event";
}

TEST_F(UnsubscribeEndpointTest, RefusesWhatIsNotAOneClick) {
  EXPECT_EQ(Serve("POST", path_, "").status, 400);
  EXPECT_EQ(Serve("POST", path_ + "x", "List-Unsubscribe=One-Click").status, 404);
  EXPECT_EQ(Serve("DELETE", path_).status, 405);
  EXPECT_EQ(Serve("GET", "/metrics").status, 404);
  EXPECT_TRUE(events_.empty());
  EXPECT_FALSE(list_->Find("example.com", "reader@example.org")->has_value());
}

}  // namespace
}  // namespace relay::server
