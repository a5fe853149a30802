#include "relay/metrics/http_server.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "gtest/gtest.h"

namespace relay::metrics {
namespace {

HttpHandlers Handlers(std::atomic<bool>* healthy) {
  HttpHandlers h;
  h.metrics = [] { return std::string("# TYPE relay_x counter\nrelay_x 1\n"); };
  h.health = [healthy] {
    return healthy->load() ? std::string() : std::string("shard 1 stalled for 12 s");
  };
  return h;
}

TEST(RouteTest, PathsAndMethods) {
  std::atomic<bool> healthy{true};
  HttpHandlers h = Handlers(&healthy);
  HttpResponse r = Route("GET", "/metrics", h);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, "# TYPE relay_x counter\nrelay_x 1\n");
  EXPECT_EQ(Route("GET", "/metrics?name[]=x", h).status, 200);
  EXPECT_EQ(Route("HEAD", "/metrics", h).status, 200);
  EXPECT_EQ(Route("GET", "/healthz", h).body, "ok\n");
  healthy = false;
  r = Route("GET", "/healthz", h);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "shard 1 stalled for 12 s\n");
  EXPECT_EQ(Route("GET", "/", h).status, 404);
  EXPECT_EQ(Route("GET", "/metricsx", h).status, 404);
  r = Route("POST", "/metrics", h);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, HEAD");
  EXPECT_EQ(Route("DELETE", "/nothing", h).status, 404);
}

TEST(ParseTest, RequestHead) {
  std::string method, target;
  int error = -1;
  EXPECT_FALSE(ParseRequestHead("GET /metrics HTTP/1.1\r\nHost: x\r\n", &method, &target, &error));
  EXPECT_TRUE(
      ParseRequestHead("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &method, &target, &error));
  EXPECT_EQ(error, 0);
  EXPECT_EQ(method, "GET");
  EXPECT_EQ(target, "/metrics");
  EXPECT_TRUE(ParseRequestHead("HEAD /healthz HTTP/1.0\n\n", &method, &target, &error));
  EXPECT_EQ(error, 0);
  EXPECT_EQ(method, "HEAD");
  EXPECT_TRUE(ParseRequestHead("GET metrics HTTP/1.1\r\n\r\n", &method, &target, &error));
  EXPECT_EQ(error, 400);
  EXPECT_TRUE(ParseRequestHead("GET /metrics\r\n\r\n", &method, &target, &error));
  EXPECT_EQ(error, 400);
  EXPECT_TRUE(ParseRequestHead("GET /metrics SMTP/1.0\r\n\r\n", &method, &target, &error));
  EXPECT_EQ(error, 400);
  // A bare CR or another control character in the request line (RFC 9112 §2.2).
  EXPECT_TRUE(ParseRequestHead("HEAD /healthz\r HTTP/1.0\n\n", &method, &target, &error));
  EXPECT_EQ(error, 400);
  EXPECT_TRUE(ParseRequestHead("GET /metrics\x01 HTTP/1.1\r\n\r\n", &method, &target, &error));
  EXPECT_EQ(error, 400);
}

TEST(ParseTest, RequestWithBody) {
  HttpRequest r;
  int error = -1;
  const std::string head =
      "POST /u/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n"
      "Content-Length: 26\r\n\r\n";
  EXPECT_FALSE(ParseRequest(head + "List-Unsub", 8192, &r, &error)) << "the body is due";
  ASSERT_TRUE(ParseRequest(head + "List-Unsubscribe=One-Click", 8192, &r, &error));
  EXPECT_EQ(error, 0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/u/x");
  EXPECT_EQ(r.content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(r.body, "List-Unsubscribe=One-Click");
  // No length: no body.
  ASSERT_TRUE(ParseRequest("GET / HTTP/1.1\n\n", 8192, &r, &error));
  EXPECT_EQ(error, 0);
  EXPECT_EQ(r.body, "");
  struct Case {
    const char* request;
    int error;
  };
  for (const Case& c : {Case{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
                        Case{"POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413},
                        Case{"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
                        Case{"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                             400}}) {
    error = -1;
    ASSERT_TRUE(ParseRequest(c.request, 8192, &r, &error)) << c.request;
    EXPECT_EQ(error, c.error) << c.request;
  }
}

TEST(LoopbackTest, Addresses) {
  auto is = [](const char* text) { return IsLoopback(*io::SocketAddress::Parse(text)); };
  EXPECT_TRUE(is("127.0.0.1:9587"));
  EXPECT_TRUE(is("127.3.4.5:1"));
  EXPECT_TRUE(is("[::1]:9587"));
  EXPECT_TRUE(is("[::ffff:127.0.0.1]:9587"));
  EXPECT_FALSE(is("0.0.0.0:9587"));
  EXPECT_FALSE(is("192.0.2.1:9587"));
  EXPECT_FALSE(is("[::]:9587"));
  EXPECT_FALSE(is("[2001:db8::1]:9587"));
}

// One request over a real socket; returns everything the server sent before closing.
std::string Exchange(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) break;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST(HttpServerTest, ServesOverTheNetwork) {
  std::atomic<bool> healthy{true};
  auto server = HttpServer::Start("127.0.0.1:0", Handlers(&healthy));
  ASSERT_TRUE(server.ok()) << server.status();
  uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);

  std::string r = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            std::string::npos);
  EXPECT_NE(r.find("Content-Length: 33\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\n# TYPE relay_x counter\nrelay_x 1\n"), std::string::npos);

  // The request in pieces.
  r = Exchange(port, "GET /hea");
  EXPECT_EQ(r.rfind("HTTP/1.1 408", 0), 0u) << r;  // never completed: timed out
  r = Exchange(port, "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\n\r\nok\n"), std::string::npos);
  healthy = false;
  r = Exchange(port, "GET /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("shard 1 stalled"), std::string::npos);

  r = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(r.find("relay_x"), std::string::npos);  // no body for HEAD

  EXPECT_EQ(Exchange(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 Not Found", 0), 0u);
  r = Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(Exchange(port, "garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(HttpServer::kRequestBytesMax, 'a');
  EXPECT_EQ(Exchange(port, big).rfind("HTTP/1.1 431", 0), 0u);

  (*server)->Stop();
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), "connect failed");
}

TEST(HttpServerTest, StopsWithAnIdleConnectionOpen) {
  std::atomic<bool> healthy{true};
  auto server = HttpServer::Start("127.0.0.1:0", Handlers(&healthy));
  ASSERT_TRUE(server.ok()) << server.status();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((*server)->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  usleep(50000);    // accepted and waiting for the request
  server->reset();  // Stop() closes it and joins
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);
  ::close(fd);
}

TEST(HttpServerTest, PortInUseIsAnError) {
  std::atomic<bool> healthy{true};
  auto first = HttpServer::Start("127.0.0.1:0", Handlers(&healthy));
  ASSERT_TRUE(first.ok());
  auto second =
      HttpServer::Start("127.0.0.1:" + std::to_string((*first)->port()), Handlers(&healthy));
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace relay::metrics
