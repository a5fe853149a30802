// One HTTPS GET on a shard's ring (io_uring), for an MTA-STS policy (RFC 8461 §3.3): connect,
// TLS with the server's certificate verified for the host name (the context must require it),
// "GET path HTTP/1.0" (so the body is never chunked), then the response read to the server's
// close. Bounded in time (one deadline for every step) and in bytes (the head and the body each
// have a limit; more is an error, not a cut). No redirect is followed (§3.3). The result names
// what went wrong: the connect, the certificate, the status, the Content-Type, the size.
//
// Shard thread only. The owner keeps the object until `done` has run, then hands it to
// Reactor::RetireWhenIdle (operations may still be completing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/io/timer_wheel.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"

namespace relay::tlspolicy {

struct HttpsGetLimits {
  size_t head_bytes_max = 16 << 10;
  size_t body_bytes_max = 64 << 10;
  int64_t timeout_ms = 30000;  // the whole fetch
};

struct HttpsGetResult {
  absl::Status status;  // ok: a 200 with a body within the limits
  int code = 0;         // the HTTP status, 0 when none came
  std::string content_type;
  std::string body;
};

// The status code, Content-Type (lower case, parameters dropped), Content-Length (-1 when none
// or not a number) and where the body starts of a response; false when its head is not complete
// or not HTTP/1.x.
bool ParseHttpResponseHead(std::string_view response, int* code, std::string* content_type,
                           size_t* body_start, int64_t* content_length = nullptr);

class HttpsGet : public io::IoObject {
 public:
  using Done = std::function<void(HttpsGetResult)>;
  // Starts the fetch of https://`host``path` from `address` (its port set, 443 usually).
  // `context` must outlive the fetch. `done` runs exactly once, on the reactor's thread, never
  // from within Start.
  static std::unique_ptr<HttpsGet> Start(io::Reactor* reactor, tls::ClientTlsContext* context,
                                         std::string host, io::SocketAddress address,
                                         std::string path, HttpsGetLimits limits, Done done);
  // A POST of `body` as `content_type` instead (a TLS report, RFC 8460 §5.3): any 2xx answer is
  // a success; the answer's body is not looked at.
  static std::unique_ptr<HttpsGet> StartPost(io::Reactor* reactor, tls::ClientTlsContext* context,
                                             std::string host, io::SocketAddress address,
                                             std::string path, std::string content_type,
                                             std::string body, HttpsGetLimits limits, Done done);
  ~HttpsGet() override;
  bool Idle() const override;
  // Abandons the fetch: `done` will not run, the operations in flight are cancelled (hand the
  // object to RetireWhenIdle after this).
  void Cancel();

 private:
  HttpsGet(io::Reactor* reactor, tls::ClientTlsContext* context, std::string host,
           io::SocketAddress address, std::string path, HttpsGetLimits limits, Done done);
  void Begin();
  void OnConnected(int result);
  void OnRecv(int result);
  void OnSent(int result);
  void Flush();  // sends the TLS bytes waiting, if no send is in flight
  void Finish(absl::Status status);
  // The server closed (`close_notify`: with a TLS close_notify, not only a TCP close): the
  // response is whole if it said so, or its Content-Length is met.
  void Complete(bool close_notify);

  io::Reactor* const reactor_;
  tls::ClientTlsContext* const context_;
  const std::string host_;
  io::SocketAddress address_;
  const std::string path_;
  const HttpsGetLimits limits_;
  Done done_;
  bool post_ = false;
  std::string post_type_;
  std::string post_body_;
  int fd_ = -1;
  bool finished_ = false;
  bool begun_ = false;  // Begin ran (the task Start posts holds a pointer to this object until)
  bool request_sent_ = false;
  std::unique_ptr<tls::TlsStream> tls_;
  std::string response_;  // plaintext received
  std::string sending_;   // ciphertext in flight
  char buffer_[16 << 10];
  io::Completion connect_;
  io::Completion recv_;
  io::Completion send_;
  io::Timer deadline_;
};

}  // namespace relay::tlspolicy
