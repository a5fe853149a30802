// A minimal HTTP/1.1 server: GET /metrics (Prometheus text format 0.0.4) and GET /healthz for
// the metrics endpoint, and, with a request handler of its own and TLS, small endpoints that
// strangers reach, such as one-click unsubscribe (RFC 8058).
//
// It runs on a thread of its own with its own io_uring reactor, not on a shard: rendering a
// scrape walks every series of every shard (thousands of lines with many sources and rules) and
// the health check touches the file system; neither may delay a shard's SMTP sessions, and a
// slow or hostile client must not hold a shard's buffers. The shards are never asked anything by
// the metrics handlers: they read the metrics' atomic cells and the shards' published health.
//
// One request per connection (the response says "Connection: close"), head and body together
// bounded by kRequestBytesMax, the whole exchange (TLS handshake included) by kRequestTimeoutMs;
// at most kConnectionsMax connections at once (more are closed at accept). A body is read only
// with a Content-Length (411 for chunked). Route() serves GET and HEAD only; 404 for an unknown
// path, 405 for another method, 400 for what does not parse, 413 and 431 for oversized requests.
//
// Start() and Stop() from one controlling thread; the handlers run on the server's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "relay/io/socket.h"
#include "relay/tls/tls_context.h"

namespace relay::metrics {

// True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104.
bool IsLoopback(const io::SocketAddress& address);

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string allow;  // the Allow header of a 405
};

// One request, as a handler sees it.
struct HttpRequest {
  std::string method;
  std::string target;
  std::string content_type;  // "" when none
  std::string body;
};

// What the endpoint serves.
struct HttpHandlers {
  std::function<std::string()> metrics;  // the exposition text
  // The empty string when healthy, else the reason (served with 503).
  std::function<std::string()> health;
  // When set, every request goes to it instead (Route is not used).
  std::function<HttpResponse(const HttpRequest&)> request;
};

// The response to one request (no I/O; tests call it directly).
HttpResponse Route(std::string_view method, std::string_view target, const HttpHandlers& h);

// Whether `buffer` holds the blank line that ends a request head, knowing that its first
// `searched_bytes` were searched before without finding one: only what came since (and the three
// bytes before it) is looked at, so a head that arrives a byte at a time costs linear time.
bool RequestHeadEnded(std::string_view buffer, size_t searched_bytes);

// Parses the request head in `buffer`. Returns false while the head is incomplete; once it is
// complete, true with `method` and `target` set, or with `error` set (the status to answer).
bool ParseRequestHead(std::string_view buffer, std::string* method, std::string* target,
                      int* error);

// Parses the whole request in `buffer`: the head, then the body its Content-Length announces
// (RFC 9112 §6.2). Returns false while either is incomplete; once complete, true with `request`
// set, or with `error` set: 400 (malformed, or two different lengths), 411 (chunked), 413 (a
// length that does not fit `bytes_max` with the head). Linear in `buffer`.
bool ParseRequest(std::string_view buffer, size_t bytes_max, HttpRequest* request, int* error);

// The whole response as bytes on the wire (for HEAD, without the body).
std::string SerializeResponse(const HttpResponse& response, bool head_only);

class HttpServer {
 public:
  static constexpr size_t kRequestBytesMax = 8192;
  static constexpr int64_t kRequestTimeoutMs = 5000;
  static constexpr size_t kConnectionsMax = 32;

  // Binds `listen` ("127.0.0.1:9587", port 0 picks one) and starts the thread.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           HttpHandlers handlers);
  // The same over TLS with the certificate `tls` holds (it outlives the server; a reload takes
  // effect for new connections); `name` tags the thread's log lines.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           HttpHandlers handlers,
                                                           const tls::ServerTlsContextHolder* tls,
                                                           std::string name);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  // Closes the listener and every connection and joins the thread. Idempotent.
  void Stop();

 private:
  class Loop;
  HttpServer() = default;

  uint16_t port_ = 0;
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace relay::metrics
