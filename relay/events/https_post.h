// One HTTP POST to a webhook endpoint, blocking, on the sink's own thread: connect, TLS with the
// endpoint's certificate verified (chain against a CA file, name per RFC 6125), send, read the
// status line. Every step shares one deadline, so an endpoint that trickles bytes cannot hold the
// sink past it, and the response head is bounded (kResponseHeadBytesMax); the body is not read.
// Plain http:// is allowed only to a loopback address.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/base/url.h"

namespace relay::events {

inline constexpr size_t kResponseHeadBytesMax = 16 << 10;

using relay::ParseUrl;  // relay/base/url.h
using relay::Url;

// The status code of an HTTP/1.x response head ("HTTP/1.1 200 OK\r\n..."), -1 when it has none.
int ParseStatusLine(std::string_view head);

class HttpsPoster {
 public:
  // `ca_file`: the PEM bundle the endpoint's chain must lead to.
  static absl::StatusOr<std::unique_ptr<HttpsPoster>> Create(Url url, const std::string& ca_file);
  ~HttpsPoster();

  // POSTs `body` with the extra header lines (each "Name: value") and returns the status code;
  // an error for anything short of a status line (DNS, connect, TLS, timeout, a bad response).
  // `stop` (when given) ends the wait early once it is set: a stopping relay does not wait out
  // the timeout.
  absl::StatusOr<int> Post(std::string_view body, const std::vector<std::string>& headers,
                           int timeout_ms, const std::atomic<bool>* stop = nullptr);
  const Url& url() const { return url_; }

 private:
  HttpsPoster(Url url, SSL_CTX* ctx) : url_(std::move(url)), ctx_(ctx) {}
  const Url url_;
  SSL_CTX* const ctx_;  // null for http://
};

}  // namespace relay::events
