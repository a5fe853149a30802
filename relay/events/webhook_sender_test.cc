#include "relay/events/webhook_sender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "relay/events/https_post.h"

namespace relay::events {
namespace {

TEST(SignBatch, IsHmacSha256OfTimestampDotBody) {
  // python3: hmac.new(b"0123456789abcdef", b"1700000000." + body, hashlib.sha256).hexdigest()
  EXPECT_EQ(SignBatch("0123456789abcdef", 1700000000, "{\"events\":[]}"),
            "1f1c43683e76ee83b09613ab56fa5bdd3ce55f3ee41db00a92e22eea0376899e");
}

TEST(Cursor, RoundTripsAndNamesABadLine) {
  std::vector<Position> cursor = {{3, 100}, {1, 0}, {7, 4096}};
  auto parsed = ParseCursor(FormatCursor(cursor));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, cursor);
  auto bad = ParseCursor("# c\n0 1 2\n1 x 2\n");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("line 3"), std::string::npos);
}

TEST(ParseUrl, TakesHttpsAndLoopbackHttpOnly) {
  auto u = ParseUrl("https://hooks.example.com:8443/relay/events?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/relay/events?x=1");
  auto v6 = ParseUrl("https://[::1]/");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 443);
  EXPECT_TRUE(ParseUrl("http://127.0.0.1:8080/x").ok());
  for (const char* bad : {"http://hooks.example.com/", "ftp://x/", "https:///x", "https://x:0/",
                          "https://x:99999/", "https://user:pw@x/", "https://x/a b",
                          "https://[::1/", "https://x\r\nEvil: 1/", "https://a b/"}) {
    EXPECT_FALSE(ParseUrl(bad).ok()) << bad;
  }
}

TEST(ParseStatusLine, ReadsTheCode) {
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 200 OK\r\n\r\n"), 200);
  EXPECT_EQ(ParseStatusLine("HTTP/1.0 503\r\n"), 503);
  EXPECT_EQ(ParseStatusLine("HTTP/2 200\r\n"), -1);
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 2000 x\r\n"), -1);
  EXPECT_EQ(ParseStatusLine("SMTP 250"), -1);
}

// A plain HTTP endpoint on 127.0.0.1 (loopback http:// is allowed): answers each POST with the
// next status of `statuses` (the last one repeats) and keeps the bodies it answered 2xx.
class Endpoint {
 public:
  explicit Endpoint(std::vector<int> statuses) : statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 16);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Endpoint() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  int posts() const { return posts_; }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string in;
      char buf[4096];
      size_t want = std::string::npos;
      while (want == std::string::npos || in.size() < want) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        size_t end = in.find("\r\n\r\n");
        size_t cl = in.find("Content-Length: ");
        if (want == std::string::npos && end != std::string::npos && cl != std::string::npos) {
          want = end + 4 + std::stoul(in.substr(cl + 16));
        }
      }
      const int status = statuses_[std::min<size_t>(posts_, statuses_.size() - 1)];
      ++posts_;
      if (status / 100 == 2) {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(in.substr(in.find("\r\n\r\n") + 4));
      }
      std::string reply = "HTTP/1.1 " + std::to_string(status) + " x\r\nContent-Length: 0\r\n\r\n";
      ::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }

  const std::vector<int> statuses_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> posts_{0};
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

delivery::DeliveryRecord Event(delivery::DeliveryEvent kind, const char* sender) {
  delivery::DeliveryRecord r;
  r.event = kind;
  r.time_unix_ms = 1700000000000;
  r.queue_id = "q";
  r.sender = sender;
  r.recipient = "r@example.org";
  return r;
}

template <typename Predicate>
bool WaitUntil(Predicate done) {
  for (int i = 0; i < 500 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

TEST(WebhookSender, RetriesUntilAcknowledgedAndSendsOnlyItsTenantsEvents) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/sender";
  std::filesystem::remove_all(dir);
  JournalHead head;
  auto journal = EventJournal::Open({.dir = dir}, &head);
  ASSERT_TRUE(journal.ok());
  JournalSet set{dir, {&head}};
  Endpoint endpoint({503, 500, 200});
  WebhookOptions o;
  o.name = "t";
  o.url = "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/hook";
  o.tenants = {"example.com"};
  o.events = {"delivered", "bounced"};
  o.secret = "0123456789abcdef";
  o.batch_wait_ms = 0;
  o.retry_initial_ms = 10;
  o.retry_ms_max = 20;
  {
    auto sender = WebhookSender::Create(o, &set);
    ASSERT_TRUE(sender.ok()) << sender.status();
    (*sender)->Start();
    (*journal)->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
    (*journal)->Append(Event(delivery::DeliveryEvent::kReceived, "a@example.com"));
    (*journal)->Append(Event(delivery::DeliveryEvent::kBounced, "a@other.example"));
    (*journal)->Append(Event(delivery::DeliveryEvent::kBounced, "b@EXAMPLE.com"));
    (*journal)->WriteAndPublish();
    ASSERT_TRUE(WaitUntil([&] { return (*sender)->stats().events_sent.load() == 2; }));
    EXPECT_EQ((*sender)->stats().failures.load(), 2u);
    EXPECT_EQ((*sender)->stats().batches_sent.load(), 1u);
  }
  std::vector<std::string> bodies = endpoint.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0].rfind("{\"webhook\":\"t\",\"events\":[{\"id\":\"0-1-0\",", 0), 0u)
      << bodies[0];
  EXPECT_NE(bodies[0].find("\"event\":\"bounced\""), std::string::npos);
  EXPECT_EQ(bodies[0].find("other.example"), std::string::npos);
  EXPECT_EQ(bodies[0].find("\"received\""), std::string::npos);

  // The cursor was kept: a new sender over the same journal sends nothing again.
  auto again = WebhookSender::Create(o, &set);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->PersistedCursor(), std::vector<Position>{head.Get()});
}

TEST(WebhookSender, ABatchTooLargeForTheEndpointIsSentInHalves) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/halves";
  std::filesystem::remove_all(dir);
  JournalHead head;
  auto journal = EventJournal::Open({.dir = dir}, &head);
  ASSERT_TRUE(journal.ok());
  JournalSet set{dir, {&head}};
  Endpoint endpoint({413, 200});
  WebhookOptions o;
  o.name = "halves";
  o.url = "http://127.0.0.1:" + std::to_string(endpoint.port()) + "/hook";
  o.tenants = {"*"};
  o.secret = "0123456789abcdef";
  o.batch_events_max = 4;
  o.batch_wait_ms = 0;
  o.retry_initial_ms = 10;
  auto sender = WebhookSender::Create(o, &set);  // its cursor: the head, before the events
  ASSERT_TRUE(sender.ok());
  for (int i = 0; i < 4; ++i) {
    (*journal)->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  }
  (*journal)->WriteAndPublish();
  (*sender)->Start();
  ASSERT_TRUE(WaitUntil([&] { return (*sender)->stats().events_sent.load() == 4; }));
  (*sender)->Stop();
  EXPECT_EQ(endpoint.posts(), 3) << "4 refused, then 2 and 2";
  EXPECT_EQ((*sender)->stats().batches_sent.load(), 2u);
  EXPECT_EQ(endpoint.bodies().size(), 2u);
}

TEST(WebhookSender, ANewWebhookStartsAtTheHeads) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/new";
  std::filesystem::remove_all(dir);
  JournalHead head;
  auto journal = EventJournal::Open({.dir = dir}, &head);
  ASSERT_TRUE(journal.ok());
  (*journal)->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  (*journal)->WriteAndPublish();
  JournalSet set{dir, {&head}};
  WebhookOptions o;
  o.name = "late";
  o.url = "http://127.0.0.1:9/";
  o.tenants = {"*"};
  o.secret = "0123456789abcdef";
  auto sender = WebhookSender::Create(o, &set);
  ASSERT_TRUE(sender.ok());
  EXPECT_EQ((*sender)->PersistedCursor(), std::vector<Position>{head.Get()});
  EXPECT_TRUE(std::filesystem::exists(dir + "/cursor-late"));
}

}  // namespace
}  // namespace relay::events
