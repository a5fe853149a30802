#include "relay/events/https_post.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "relay/base/sv.h"

namespace relay::events {
namespace {

using Clock = std::chrono::steady_clock;

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string SslError() {
  uint32_t e = ERR_get_error();
  if (e == 0) return "no detail";
  char text[256];
  ERR_error_string_n(e, text, sizeof(text));
  ERR_clear_error();
  return text;
}

// A connection with a deadline: every wait is a poll for what is left of it.
class Connection {
 public:
  Connection(Clock::time_point deadline, const std::atomic<bool>* stop)
      : deadline_(deadline), stop_(stop) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Connect(const Url& url) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = absl::StrCat(url.port);
    if (int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      return absl::UnavailableError(absl::StrCat("resolving ", url.host, ": ", ::gai_strerror(rc)));
    }
    std::string last = "no address";
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS && Wait(fd, POLLOUT)) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err == 0 ? 0 : err;
      } else if (rc != 0 && errno == EINPROGRESS) {
        errno = ETIMEDOUT;
      }
      if (rc == 0) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fd_ = fd;
        break;
      }
      last = std::strerror(errno);
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) {
      return absl::UnavailableError(
          absl::StrCat("connecting to ", url.host, ":", url.port, ": ", last));
    }
    return absl::OkStatus();
  }

  absl::Status Handshake(SSL_CTX* ctx, const Url& url) {
    ssl_ = SSL_new(ctx);
    if (ssl_ == nullptr) return absl::InternalError("SSL_new failed");
    SSL_set_fd(ssl_, fd_);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (IsIpLiteral(url.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, url.host.c_str());
      X509_VERIFY_PARAM_set1_host(param, url.host.data(), url.host.size());
    }
    for (;;) {
      int rc = SSL_connect(ssl_);
      if (rc == 1) return absl::OkStatus();
      if (!WaitFor(SSL_get_error(ssl_, rc))) {
        long verify = SSL_get_verify_result(ssl_);
        std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                                              : (timed_out_ ? "timed out" : SslError());
        return absl::UnavailableError(absl::StrCat("TLS with ", url.host, ": ", why));
      }
    }
  }

  absl::Status WriteAll(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      if (ssl_ != nullptr) {
        int n = SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done));
        if (n > 0) {
          done += static_cast<size_t>(n);
        } else if (!WaitFor(SSL_get_error(ssl_, n))) {
          return absl::UnavailableError(timed_out_ ? "timed out sending" : "sending failed");
        }
        continue;
      }
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!Wait(fd_, POLLOUT)) return absl::UnavailableError("timed out sending");
      } else {
        return absl::UnavailableError(absl::StrCat("sending: ", std::strerror(errno)));
      }
    }
    return absl::OkStatus();
  }

  // Reads until the end of the response head; an error when it does not come in time or bound.
  absl::StatusOr<std::string> ReadHead() {
    std::string head;
    char chunk[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (head.size() >= kResponseHeadBytesMax) {
        return absl::UnavailableError("response head longer than 16 KiB");
      }
      const size_t want = std::min(sizeof(chunk), kResponseHeadBytesMax - head.size());
      if (ssl_ != nullptr) {
        int n = SSL_read(ssl_, chunk, static_cast<int>(want));
        if (n > 0) {
          head.append(chunk, static_cast<size_t>(n));
        } else {
          int err = SSL_get_error(ssl_, n);
          if (err == SSL_ERROR_ZERO_RETURN) break;
          if (!WaitFor(err)) {
            return absl::UnavailableError(timed_out_ ? "timed out waiting for the response"
                                                     : "connection closed before a response");
          }
        }
        continue;
      }
      ssize_t n = ::recv(fd_, chunk, want, 0);
      if (n > 0) {
        head.append(chunk, static_cast<size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno == EAGAIN || errno == EINTR) {
        if (!Wait(fd_, POLLIN)) return absl::UnavailableError("timed out waiting for the response");
      } else {
        return absl::UnavailableError(absl::StrCat("reading: ", std::strerror(errno)));
      }
    }
    return head;
  }

 private:
  // Waits as SSL asks; false for an error that is not a wait, or at the deadline.
  bool WaitFor(int ssl_error) {
    if (ssl_error == SSL_ERROR_WANT_READ) return Wait(fd_, POLLIN);
    if (ssl_error == SSL_ERROR_WANT_WRITE) return Wait(fd_, POLLOUT);
    return false;
  }
  bool Wait(int fd, short events) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0 || (stop_ != nullptr && stop_->load())) {
        timed_out_ = true;
        return false;
      }
      pollfd p{fd, events, 0};
      // In slices, so that a stop is seen within one.
      int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
      if (rc > 0) return true;
      if (rc < 0 && errno != EINTR) return false;
    }
  }

  const Clock::time_point deadline_;
  const std::atomic<bool>* const stop_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool timed_out_ = false;
};

}  // namespace

int ParseStatusLine(std::string_view head) {
  if (!absl::StartsWith(Sv(head), "HTTP/1.") || head.size() < 12 || head[8] != ' ') return -1;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return -1;
    code = code * 10 + (head[i] - '0');
  }
  if (head.size() > 12 && head[12] != ' ' && head[12] != '\r') return -1;
  return code >= 100 ? code : -1;
}

absl::StatusOr<std::unique_ptr<HttpsPoster>> HttpsPoster::Create(Url url,
                                                                 const std::string& ca_file) {
  if (!url.tls) return std::unique_ptr<HttpsPoster>(new HttpsPoster(std::move(url), nullptr));
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    SSL_CTX_free(ctx);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the CA file ", ca_file, ": ", SslError()));
  }
  return std::unique_ptr<HttpsPoster>(new HttpsPoster(std::move(url), ctx));
}

HttpsPoster::~HttpsPoster() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

absl::StatusOr<int> HttpsPoster::Post(std::string_view body,
                                      const std::vector<std::string>& headers, int timeout_ms,
                                      const std::atomic<bool>* stop) {
  Connection c(Clock::now() + std::chrono::milliseconds(timeout_ms), stop);
  if (absl::Status s = c.Connect(url_); !s.ok()) return s;
  if (ctx_ != nullptr) {
    if (absl::Status s = c.Handshake(ctx_, url_); !s.ok()) return s;
  }
  const bool v6 = url_.host.find(':') != std::string::npos;
  std::string request = absl::StrCat(
      "POST ", url_.path, " HTTP/1.1\r\nHost: ", v6 ? "[" : "", url_.host, v6 ? "]" : "", ":",
      url_.port, "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(),
      "\r\nConnection: close\r\n");
  for (const std::string& h : headers) absl::StrAppend(&request, h, "\r\n");
  request += "\r\n";
  if (absl::Status s = c.WriteAll(request); !s.ok()) return s;
  if (absl::Status s = c.WriteAll(body); !s.ok()) return s;
  absl::StatusOr<std::string> head = c.ReadHead();
  if (!head.ok()) return head.status();
  int code = ParseStatusLine(*head);
  if (code < 0) return absl::UnavailableError("the response has no HTTP status line");
  return code;
}

}  // namespace relay::events
