#include "relay/tlspolicy/https_get.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "relay/tls/self_signed.h"

namespace relay::tlspolicy {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(HttpResponseHeadTest, StatusContentTypeAndBody) {
  int code = 0;
  std::string type;
  size_t body = 0;
  const std::string response =
      "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type: Text/Plain; charset=utf-8\r\n\r\nversion";
  ASSERT_TRUE(ParseHttpResponseHead(response, &code, &type, &body));
  EXPECT_EQ(code, 200);
  EXPECT_EQ(type, "text/plain");
  EXPECT_EQ(body, response.find("version"));
  EXPECT_FALSE(ParseHttpResponseHead("HTTP/1.1 200 OK\r\n", &code, &type, &body));  // not whole
  EXPECT_FALSE(ParseHttpResponseHead("SMTP 220 hi\r\n\r\n", &code, &type, &body));
  EXPECT_FALSE(ParseHttpResponseHead("HTTP/1.1 2x0 OK\r\n\r\n", &code, &type, &body));
  ASSERT_TRUE(ParseHttpResponseHead("HTTP/1.0 301 Moved\r\n\r\n", &code, &type, &body));
  EXPECT_EQ(code, 301);
  EXPECT_EQ(type, "");
}

// A TLS server on loopback, in a thread: one connection, answers `response` to whatever comes
// (after the request's blank line), then closes (or, with `hang`, never answers).
class TlsServer {
 public:
  TlsServer(const std::string& cert, const std::string& key, std::string response, bool hang)
      : response_(std::move(response)), hang_(hang) {
    ctx_.reset(SSL_CTX_new(TLS_method()));
    SSL_CTX_use_certificate_chain_file(ctx_.get(), cert.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_.get(), key.c_str(), SSL_FILETYPE_PEM);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 4);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsServer() {
    done_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
    SSL_set_fd(ssl.get(), c);
    if (SSL_accept(ssl.get()) == 1) {
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        int n = SSL_read(ssl.get(), buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      if (hang_) {
        while (!done_) usleep(10000);
      } else {
        SSL_write(ssl.get(), response_.data(), static_cast<int>(response_.size()));
        SSL_shutdown(ssl.get());
      }
    }
    ::close(c);
  }

  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string response_;
  bool hang_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class HttpsGetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = TempDir() + "/mta-sts.crt";
    key_ = TempDir() + "/mta-sts.key";
    ASSERT_TRUE(tls::GenerateSelfSignedCertificate("mta-sts.example.test", cert_, key_).ok());
    auto reactor = io::Reactor::Create({});
    ASSERT_TRUE(reactor.ok());
    reactor_ = std::move(*reactor);
    tls::ClientTlsContext::Options o;
    o.verify_required = true;
    o.ca_file = cert_;
    auto ctx = tls::ClientTlsContext::Create(o);
    ASSERT_TRUE(ctx.ok());
    ctx_ = std::move(*ctx);
  }

  HttpsGetResult Fetch(const std::string& response,
                       const std::string& host = "mta-sts.example.test", HttpsGetLimits limits = {},
                       bool hang = false) {
    TlsServer server(cert_, key_, response, hang);
    auto address = io::SocketAddress::Parse("127.0.0.1", server.port());
    std::optional<HttpsGetResult> result;
    std::unique_ptr<HttpsGet> get =
        HttpsGet::Start(reactor_.get(), ctx_.get(), host, *address, "/.well-known/mta-sts.txt",
                        limits, [&](HttpsGetResult r) { result = std::move(r); });
    for (int i = 0; i < 2000 && !result; ++i) reactor_->RunOnce(10);
    reactor_->RetireWhenIdle(std::move(get));
    for (int i = 0; i < 100 && reactor_->retiring() > 0; ++i) reactor_->RunOnce(10);
    return result.value_or(HttpsGetResult{absl::InternalError("no answer"), 0, "", ""});
  }

  std::string cert_, key_;
  std::unique_ptr<io::Reactor> reactor_;
  std::unique_ptr<tls::ClientTlsContext> ctx_;
};

constexpr char kPolicy[] =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n";

TEST_F(HttpsGetTest, FetchesAVerifiedPolicy) {
  HttpsGetResult r =
      Fetch(std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n") + kPolicy);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, kPolicy);
}

TEST_F(HttpsGetTest, RefusesWhatRfc8461Refuses) {
  HttpsGetResult r = Fetch("HTTP/1.1 301 Moved\r\nLocation: https://elsewhere/\r\n\r\n");
  EXPECT_FALSE(r.status.ok());
  EXPECT_NE(std::string(r.status.message()).find("HTTP status 301"), std::string::npos) << r.status;
  r = Fetch(std::string("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n") + kPolicy);
  EXPECT_NE(std::string(r.status.message()).find("not text/plain"), std::string::npos) << r.status;
  // The certificate names mta-sts.example.test: another name fails the handshake.
  r = Fetch("HTTP/1.1 200 OK\r\n\r\n", "mta-sts.other.test");
  EXPECT_FALSE(r.status.ok());
  EXPECT_NE(std::string(r.status.message()).find("TLS"), std::string::npos) << r.status;
}

TEST_F(HttpsGetTest, ACutBodyIsRefused) {
  HttpsGetResult r = Fetch(
      std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n") +
      kPolicy);
  EXPECT_TRUE(absl::IsDataLoss(r.status)) << r.status;
  r = Fetch(std::string("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ") +
            std::to_string(sizeof(kPolicy) - 1) + "\r\n\r\n" + kPolicy);
  EXPECT_TRUE(r.status.ok()) << r.status;
  int code = 0;
  std::string type;
  size_t body = 0;
  int64_t length = 0;
  ASSERT_TRUE(ParseHttpResponseHead("HTTP/1.1 200 OK\r\ncontent-length:  42 \r\n\r\n", &code, &type,
                                    &body, &length));
  EXPECT_EQ(length, 42);
}

TEST_F(HttpsGetTest, BoundedInBytesAndTime) {
  HttpsGetLimits small;
  small.body_bytes_max = 100;
  HttpsGetResult r =
      Fetch("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + std::string(100000, 'x'),
            "mta-sts.example.test", small);
  EXPECT_TRUE(absl::IsResourceExhausted(r.status)) << r.status;
  HttpsGetLimits quick;
  quick.timeout_ms = 300;
  r = Fetch("", "mta-sts.example.test", quick, /*hang=*/true);
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status)) << r.status;
}

}  // namespace
}  // namespace relay::tlspolicy
