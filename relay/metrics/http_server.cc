#include "relay/metrics/http_server.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/io/reactor.h"
#include "relay/tls/tls_stream.h"

namespace relay::metrics {
namespace {

// A small ring: a handful of connections at a time, each with at most one operation in flight
// per direction.
constexpr unsigned kRingEntries = 64;
constexpr unsigned kCompletionEntries = 256;
constexpr int kListenBacklog = 64;
constexpr size_t kReceiveChunkBytes = 2048;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
  }
  return "Error";
}

}  // namespace

bool IsLoopback(const io::SocketAddress& address) {
  if (address.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&address.storage);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (address.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

HttpResponse Route(std::string_view method, std::string_view target, const HttpHandlers& h) {
  std::string_view path = target.substr(0, target.find('?'));
  HttpResponse r;
  bool known = path == "/metrics" || path == "/healthz";
  if (!known) {
    r.status = 404;
    r.body = "not found\n";
    return r;
  }
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    r.allow = "GET, HEAD";
    r.body = "method not allowed\n";
    return r;
  }
  if (path == "/metrics") {
    // The content type that announces text format 0.0.4 to Prometheus.
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = h.metrics ? h.metrics() : std::string();
    return r;
  }
  std::string problem = h.health ? h.health() : std::string();
  if (problem.empty()) {
    r.body = "ok\n";
  } else {
    r.status = 503;
    r.body = problem + "\n";
  }
  return r;
}

bool RequestHeadEnded(std::string_view buffer, size_t searched_bytes) {
  // RFC 9112 §2.2: a recipient may take a bare LF as a line end.
  const size_t from = searched_bytes >= 3 ? searched_bytes - 3 : 0;
  return buffer.find("\r\n\r\n", from) != std::string_view::npos ||
         buffer.find("\n\n", from) != std::string_view::npos;
}

bool ParseRequestHead(std::string_view buffer, std::string* method, std::string* target,
                      int* error) {
  *error = 0;
  // RFC 9112 §2.2: a recipient may take a bare LF as a line end.
  size_t end = buffer.find("\r\n\r\n");
  size_t lf_end = buffer.find("\n\n");
  if (end == std::string_view::npos && lf_end == std::string_view::npos) return false;
  size_t line_end = buffer.find('\n');
  std::string_view line = buffer.substr(0, line_end);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // RFC 9112 §2.2: a bare CR in the line makes it invalid; no part of it may hold a control
  // character (RFC 9110 §5.6.2 tokens, RFC 3986 targets).
  for (unsigned char c : line) {
    if (c < 0x20 || c == 0x7f) {
      *error = 400;
      return true;
    }
  }
  // RFC 9112 §3: method SP request-target SP HTTP-version, exactly two spaces (nothing is
  // collected per space: a line of spaces costs no memory).
  const size_t first = line.find(' ');
  const size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
  if (second == std::string_view::npos || line.find(' ', second + 1) != std::string_view::npos) {
    *error = 400;
    return true;
  }
  const std::string_view parts[3] = {
      line.substr(0, first), line.substr(first + 1, second - first - 1), line.substr(second + 1)};
  if (parts[0].empty() || parts[1].empty() || parts[1][0] != '/' ||
      parts[2].substr(0, 7) != "HTTP/1.") {
    *error = 400;
    return true;
  }
  method->assign(parts[0].data(), parts[0].size());
  target->assign(parts[1].data(), parts[1].size());
  return true;
}

bool ParseRequest(std::string_view buffer, size_t bytes_max, HttpRequest* request, int* error) {
  if (!ParseRequestHead(buffer, &request->method, &request->target, error)) return false;
  if (*error != 0) return true;
  // The head's end, whichever line ending it used.
  const size_t crlf = buffer.find("\r\n\r\n");
  const size_t lf = buffer.find("\n\n");
  const size_t head_end =
      crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf) ? crlf + 4
                                                                                    : lf + 2;
  std::string_view head = buffer.substr(0, head_end);
  int64_t length = -1;
  size_t pos = head.find('\n') + 1;  // after the request line
  while (pos < head.size()) {
    size_t eol = head.find('\n', pos);
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const absl::string_view name(line.data(), colon);
    const absl::string_view value = absl::StripAsciiWhitespace(
        absl::string_view(line.data() + colon + 1, line.size() - colon - 1));
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      int64_t n = 0;
      // RFC 9112 §6.3: a length that is not a number, or two that differ, is an error.
      if (!absl::SimpleAtoi(value, &n) || n < 0 || (length >= 0 && n != length)) {
        *error = 400;
        return true;
      }
      length = n;
    } else if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      *error = 411;
      return true;
    } else if (absl::EqualsIgnoreCase(name, "content-type")) {
      request->content_type = std::string(value.substr(0, 256));
    }
  }
  if (length < 0) length = 0;
  if (static_cast<uint64_t>(length) > bytes_max - std::min(bytes_max, head.size())) {
    *error = 413;
    return true;
  }
  if (buffer.size() - head.size() < static_cast<size_t>(length)) return false;
  request->body = std::string(buffer.substr(head.size(), static_cast<size_t>(length)));
  return true;
}

std::string SerializeResponse(const HttpResponse& r, bool head_only) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", r.status, " ", Reason(r.status),
                   "\r\nContent-Type: ", r.content_type, "\r\nContent-Length: ", r.body.size(),
                   "\r\nCache-Control: no-store\r\nConnection: close\r\n");
  if (!r.allow.empty()) absl::StrAppend(&out, "Allow: ", r.allow, "\r\n");
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

// The server's thread: its reactor, the listener and the open connections.
class HttpServer::Loop {
 public:
  Loop(int listen_fd, HttpHandlers handlers, const tls::ServerTlsContextHolder* tls,
       std::string name)
      : listen_fd_(listen_fd), handlers_(std::move(handlers)), tls_(tls), name_(std::move(name)) {}
  ~Loop() {
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }

  void Main(std::promise<absl::Status>* started);
  // Any thread.
  void RequestStop() {
    io::Reactor* r = reactor_.load();
    if (r != nullptr) r->RunInLoop([this] { BeginStop(); });
  }

 private:
  class Connection;

  void OnAccept(int result, uint32_t flags);
  void OnClosed(Connection* c);
  void BeginStop();
  void StopWhenDrained();

  int listen_fd_;
  const HttpHandlers handlers_;
  const tls::ServerTlsContextHolder* const tls_;  // null: plain HTTP
  const std::string name_;
  std::unique_ptr<io::Reactor> owned_reactor_;
  std::atomic<io::Reactor*> reactor_{nullptr};
  io::Completion accept_;
  io::Timer drain_timer_;
  absl::flat_hash_set<Connection*> connections_;
  bool stopping_ = false;
};

class HttpServer::Loop::Connection : public io::IoObject {
 public:
  Connection(Loop* loop, io::Reactor* reactor, int fd) : loop_(loop), reactor_(reactor), fd_(fd) {
    recv_.set_handler([this](int result, uint32_t) { OnRecv(result); });
    send_.set_handler([this](int result, uint32_t) { OnSent(result); });
    // Before the response: the request took too long; after: the client does not read it.
    timer_.set_callback([this] {
      if (responding_) {
        Close();
      } else {
        Respond(408);
      }
    });
  }
  ~Connection() override {
    reactor_->timers().Cancel(&timer_);
    ::close(fd_);
  }
  bool Idle() const override { return closed_ && !recv_.in_flight() && !send_.in_flight(); }

  void Start() {
    reactor_->timers().ScheduleAfter(&timer_, kRequestTimeoutMs);
    if (loop_->tls_ != nullptr) {
      absl::StatusOr<std::unique_ptr<tls::TlsStream>> stream =
          tls::TlsStream::NewServer(*loop_->tls_->Get());
      if (!stream.ok()) {
        LogWarning() << loop_->name_ << ": TLS: " << stream.status().message();
        Close();
        return;
      }
      tls_ = std::move(*stream);
    }
    ArmRecv();
  }
  void Close() {
    if (closed_) return;
    closed_ = true;
    reactor_->timers().Cancel(&timer_);
    ::shutdown(fd_, SHUT_RDWR);
    if (recv_.in_flight()) reactor_->Cancel(&recv_);
    if (send_.in_flight()) reactor_->Cancel(&send_);
    loop_->OnClosed(this);
  }

 private:
  void ArmRecv() { reactor_->Recv(fd_, chunk_, sizeof(chunk_), &recv_); }

  void OnRecv(int result) {
    // After a 408 or 431 the request is no longer read: a second response would re-arm send_
    // while the first is in flight and free the buffer the kernel is still sending.
    if (closed_ || responding_) return;
    if (result <= 0) {
      Close();  // the client went away (or the request was cut short)
      return;
    }
    const size_t searched = request_.size();
    if (tls_ != nullptr) {
      // BoringSSL returns a record once it is whole (at most 16 KiB of plaintext, RFC 8446
      // §5.1): request_ stays within kRequestBytesMax and one record, then 413 or 431.
      absl::Status status =
          tls_->OnCiphertext(absl::string_view(chunk_, static_cast<size_t>(result)), &request_);
      FlushTls();  // handshake flights, alerts
      if (!status.ok() || tls_->peer_closed()) {
        if (!send_.in_flight()) Close();
        closing_ = true;
        return;
      }
    } else {
      request_.append(chunk_, static_cast<size_t>(result));
    }
    head_ended_ = head_ended_ || RequestHeadEnded(request_, searched);
    HttpRequest request;
    int error = 0;
    const bool complete = head_ended_ && ParseRequest(request_, kRequestBytesMax, &request, &error);
    if (!complete) {
      if (request_.size() >= kRequestBytesMax) {
        Respond(head_ended_ ? 413 : 431);
      } else {
        ArmRecv();
      }
      return;
    }
    if (error != 0) {
      Respond(error);
      return;
    }
    const HttpHandlers& h = loop_->handlers_;
    HttpResponse response =
        h.request ? h.request(request) : Route(request.method, request.target, h);
    Send(SerializeResponse(response, request.method == "HEAD"));
  }

  void Respond(int status) {
    if (closed_ || responding_) return;
    if (recv_.in_flight()) reactor_->Cancel(&recv_);
    HttpResponse r;
    r.status = status;
    r.body = absl::StrCat(Reason(status), "\n");
    Send(SerializeResponse(r, false));
  }

  void Send(std::string bytes) {
    responding_ = true;
    reactor_->timers().Cancel(&timer_);
    // The response must still leave within the time limit (a client that does not read).
    reactor_->timers().ScheduleAfter(&timer_, kRequestTimeoutMs);
    if (tls_ == nullptr) {
      out_ = std::move(bytes);
      sent_ = 0;
      reactor_->Send(fd_, out_.data(), out_.size(), &send_);
      return;
    }
    plain_ = std::move(bytes);
    plain_taken_ = 0;
    if (!tls_->established()) {
      Close();  // a response before the handshake (408): nothing can carry it
      return;
    }
    FlushTls();
  }

  // TLS: encrypts what the output limit allows of the response, then the close_notify after it,
  // and sends the ciphertext, one send at a time from a copy (the stream's buffer may move).
  void FlushTls() {
    if (closed_ || send_.in_flight()) return;
    if (responding_ && plain_taken_ < plain_.size()) {
      absl::StatusOr<size_t> taken = tls_->Write(absl::string_view(plain_).substr(plain_taken_));
      if (!taken.ok()) {
        Close();
        return;
      }
      plain_taken_ += *taken;
    }
    if (responding_ && plain_taken_ == plain_.size() && !tls_->shutdown_sent()) {
      (void)tls_->Shutdown();  // RFC 8446 §6.1: the response is complete
    }
    absl::string_view pending = tls_->PendingCiphertext();
    if (pending.empty()) {
      if (closing_ || (responding_ && tls_->shutdown_sent())) Close();
      return;
    }
    out_.assign(pending.data(), pending.size());
    tls_->ConsumeCiphertext(pending.size());
    sent_ = 0;
    reactor_->Send(fd_, out_.data(), out_.size(), &send_);
  }

  void OnSent(int result) {
    if (closed_) return;
    if (result <= 0) {
      Close();
      return;
    }
    sent_ += static_cast<size_t>(result);
    if (sent_ < out_.size()) {
      reactor_->Send(fd_, out_.data() + sent_, out_.size() - sent_, &send_);
      return;
    }
    if (tls_ != nullptr) {
      FlushTls();
      return;
    }
    Close();
  }

  Loop* const loop_;
  io::Reactor* const reactor_;
  const int fd_;
  char chunk_[kReceiveChunkBytes];
  std::string request_;  // plaintext
  std::string out_;      // bytes on the wire being sent
  size_t sent_ = 0;
  std::unique_ptr<tls::TlsStream> tls_;
  std::string plain_;  // TLS: the response, encrypted as the output limit allows
  size_t plain_taken_ = 0;
  io::Completion recv_;
  io::Completion send_;
  io::Timer timer_;
  bool head_ended_ = false;
  bool responding_ = false;
  bool closing_ = false;  // TLS failed or the peer closed: close once the alert is sent
  bool closed_ = false;
};

void HttpServer::Loop::Main(std::promise<absl::Status>* started) {
  SetThreadLogTag(name_);
  io::ReactorOptions options;
  options.sq_entries = kRingEntries;
  options.cq_entries = kCompletionEntries;
  absl::StatusOr<std::unique_ptr<io::Reactor>> created = io::Reactor::Create(options);
  if (!created.ok()) {
    started->set_value(created.status());
    return;
  }
  owned_reactor_ = std::move(*created);
  io::Reactor* reactor = owned_reactor_.get();
  accept_.set_handler([this](int result, uint32_t flags) { OnAccept(result, flags); });
  drain_timer_.set_callback([this] { StopWhenDrained(); });
  reactor->Accept(listen_fd_, &accept_, /*multishot=*/true);
  reactor_.store(reactor);
  started->set_value(absl::OkStatus());
  while (!reactor->stopping()) reactor->RunOnce();
  // Torn down on this thread: the ring takes submissions only from the thread that made it.
  reactor->timers().Cancel(&drain_timer_);
  reactor_.store(nullptr);
  owned_reactor_.reset();
  ::close(listen_fd_);  // from here on a connection is refused
  listen_fd_ = -1;
}

void HttpServer::Loop::OnAccept(int result, uint32_t flags) {
  io::Reactor* reactor = owned_reactor_.get();
  if (result >= 0) {
    if (stopping_ || connections_.size() >= kConnectionsMax) {
      ::close(result);
    } else {
      auto* c = new Connection(this, reactor, result);
      connections_.insert(c);
      c->Start();
    }
  } else if (result != -ECANCELED) {
    LogWarning() << name_ << " endpoint accept: " << std::strerror(-result);
  }
  if (!(flags & IORING_CQE_F_MORE)) {
    if (!stopping_) {
      reactor->Accept(listen_fd_, &accept_, /*multishot=*/true);
    } else {
      StopWhenDrained();
    }
  }
}

void HttpServer::Loop::OnClosed(Connection* c) {
  connections_.erase(c);
  owned_reactor_->RetireWhenIdle(std::unique_ptr<io::IoObject>(c));
}

void HttpServer::Loop::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  if (accept_.in_flight()) owned_reactor_->Cancel(&accept_);
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* c : open) c->Close();
  StopWhenDrained();
}

void HttpServer::Loop::StopWhenDrained() {
  io::Reactor* reactor = owned_reactor_.get();
  if (accept_.in_flight() || reactor->retiring() > 0) {
    // Cancelled operations complete within a turn or two.
    reactor->timers().ScheduleAfter(&drain_timer_, 1);
    return;
  }
  reactor->Stop();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                              HttpHandlers handlers) {
  return Start(listen, std::move(handlers), nullptr, "metrics");
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, HttpHandlers handlers, const tls::ServerTlsContextHolder* tls,
    std::string name) {
  ASSIGN_OR_RETURN(io::SocketAddress address, io::SocketAddress::Parse(listen));
  io::ListenOptions options;
  options.reuse_port = false;  // one server per address: a second relay must not share it
  options.backlog = kListenBacklog;
  ASSIGN_OR_RETURN(int fd, io::Listen(address, options));
  absl::StatusOr<io::SocketAddress> bound = io::LocalAddress(fd);
  if (!bound.ok()) {
    ::close(fd);
    return bound.status();
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->port_ = bound->port();
  server->loop_ = std::make_unique<Loop>(fd, std::move(handlers), tls, std::move(name));
  std::promise<absl::Status> started;
  std::future<absl::Status> result = started.get_future();
  Loop* loop = server->loop_.get();
  server->thread_ = std::thread([loop, &started] { loop->Main(&started); });
  absl::Status status = result.get();
  if (!status.ok()) {
    server->thread_.join();
    return status;
  }
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  loop_->RequestStop();
  thread_.join();
}

}  // namespace relay::metrics
