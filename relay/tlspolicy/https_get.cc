#include "relay/tlspolicy/https_get.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/sv.h"

namespace relay::tlspolicy {

bool ParseHttpResponseHead(std::string_view response, int* code, std::string* content_type,
                           size_t* body_start, int64_t* content_length) {
  if (content_length != nullptr) *content_length = -1;
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  *body_start = end + 4;
  const std::string_view head = response.substr(0, end);
  size_t eol = head.find("\r\n");
  const std::string_view status = head.substr(0, eol);
  // "HTTP/1.x NNN reason"
  if (!absl::StartsWith(Sv(status), "HTTP/1.") || status.size() < 12 || status[8] != ' ' ||
      !absl::SimpleAtoi(Sv(status.substr(9, 3)), code) || *code < 100 || *code > 999) {
    return false;
  }
  content_type->clear();
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const std::string_view line =
        head.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (content_length != nullptr &&
        absl::EqualsIgnoreCase(Sv(line.substr(0, colon)), "content-length")) {
      int64_t n = -1;
      const absl::string_view v = absl::StripAsciiWhitespace(Sv(line.substr(colon + 1)));
      *content_length = v.size() <= 12 && absl::SimpleAtoi(v, &n) && n >= 0 ? n : -1;
      continue;
    }
    if (!absl::EqualsIgnoreCase(Sv(line.substr(0, colon)), "content-type")) continue;
    std::string_view value = line.substr(colon + 1);
    const size_t semicolon = value.find(';');
    if (semicolon != std::string_view::npos) value = value.substr(0, semicolon);
    *content_type = absl::AsciiStrToLower(absl::StripAsciiWhitespace(Sv(value)));
  }
  return true;
}

std::unique_ptr<HttpsGet> HttpsGet::Start(io::Reactor* reactor, tls::ClientTlsContext* context,
                                          std::string host, io::SocketAddress address,
                                          std::string path, HttpsGetLimits limits, Done done) {
  std::unique_ptr<HttpsGet> get(new HttpsGet(reactor, context, std::move(host), address,
                                             std::move(path), limits, std::move(done)));
  HttpsGet* raw = get.get();
  reactor->Post([raw] { raw->Begin(); });  // `done` never runs inside Start
  return get;
}

std::unique_ptr<HttpsGet> HttpsGet::StartPost(io::Reactor* reactor, tls::ClientTlsContext* context,
                                              std::string host, io::SocketAddress address,
                                              std::string path, std::string content_type,
                                              std::string body, HttpsGetLimits limits, Done done) {
  std::unique_ptr<HttpsGet> post(new HttpsGet(reactor, context, std::move(host), address,
                                              std::move(path), limits, std::move(done)));
  post->post_ = true;
  post->post_type_ = std::move(content_type);
  post->post_body_ = std::move(body);
  HttpsGet* raw = post.get();
  reactor->Post([raw] { raw->Begin(); });
  return post;
}

HttpsGet::HttpsGet(io::Reactor* reactor, tls::ClientTlsContext* context, std::string host,
                   io::SocketAddress address, std::string path, HttpsGetLimits limits, Done done)
    : reactor_(reactor),
      context_(context),
      host_(std::move(host)),
      address_(address),
      path_(std::move(path)),
      limits_(limits),
      done_(std::move(done)) {
  connect_.set_handler([this](int result, uint32_t) { OnConnected(result); });
  recv_.set_handler([this](int result, uint32_t) { OnRecv(result); });
  send_.set_handler([this](int result, uint32_t) { OnSent(result); });
  deadline_.set_callback([this] {
    Finish(absl::DeadlineExceededError(absl::StrCat("https://", host_, path_,
                                                    ": no complete answer within ",
                                                    limits_.timeout_ms / 1000, " s")));
  });
}

HttpsGet::~HttpsGet() {
  reactor_->timers().Cancel(&deadline_);
  if (fd_ >= 0) ::close(fd_);
}

bool HttpsGet::Idle() const {
  return begun_ && !connect_.in_flight() && !recv_.in_flight() && !send_.in_flight();
}

void HttpsGet::Begin() {
  begun_ = true;
  if (finished_) return;
  reactor_->timers().ScheduleAfter(&deadline_, limits_.timeout_ms);
  fd_ = ::socket(address_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    Finish(absl::InternalError(absl::StrCat("socket: ", std::strerror(errno))));
    return;
  }
  reactor_->Connect(fd_, address_.get(), address_.length, &connect_);
}

void HttpsGet::OnConnected(int result) {
  if (finished_) return;
  if (result < 0) {
    Finish(absl::UnavailableError(absl::StrCat("https://", host_, ": connect to ",
                                               address_.IpString(), ": ", std::strerror(-result))));
    return;
  }
  absl::StatusOr<std::unique_ptr<tls::TlsStream>> stream =
      tls::TlsStream::NewClient(*context_, host_);
  if (!stream.ok()) {
    Finish(stream.status());
    return;
  }
  tls_ = std::move(*stream);
  if (absl::Status s = tls_->Start(); !s.ok()) {
    Finish(s);
    return;
  }
  reactor_->Recv(fd_, buffer_, sizeof(buffer_), &recv_);
  Flush();
}

void HttpsGet::Flush() {
  if (finished_ || send_.in_flight() || fd_ < 0 || tls_ == nullptr) return;
  if (!request_sent_ && tls_->established()) {
    request_sent_ = true;
    const std::string request =
        post_ ? absl::StrCat("POST ", path_, " HTTP/1.0\r\nHost: ", host_,
                             "\r\nUser-Agent: relayd\r\nContent-Type: ", post_type_,
                             "\r\nContent-Length: ", post_body_.size(),
                             "\r\nConnection: close\r\n\r\n", post_body_)
              : absl::StrCat("GET ", path_, " HTTP/1.0\r\nHost: ", host_,
                             "\r\nUser-Agent: relayd\r\nAccept: text/plain\r\nConnection: "
                             "close\r\n\r\n");
    absl::StatusOr<size_t> written = tls_->Write(request);
    if (!written.ok() || *written != request.size()) {
      Finish(absl::InternalError("the request could not be written"));
      return;
    }
  }
  const absl::string_view pending = tls_->PendingCiphertext();
  if (pending.empty()) return;
  sending_.assign(pending.data(), pending.size());
  tls_->ConsumeCiphertext(pending.size());
  reactor_->Send(fd_, sending_.data(), sending_.size(), &send_);
}

void HttpsGet::OnSent(int result) {
  if (finished_) return;
  if (result < 0) {
    Finish(absl::UnavailableError(
        absl::StrCat("https://", host_, ": send: ", std::strerror(-result))));
    return;
  }
  if (static_cast<size_t>(result) < sending_.size()) {
    sending_.erase(0, static_cast<size_t>(result));
    reactor_->Send(fd_, sending_.data(), sending_.size(), &send_);
    return;
  }
  sending_.clear();
  Flush();
}

void HttpsGet::OnRecv(int result) {
  if (finished_) return;
  if (result < 0) {
    Finish(absl::UnavailableError(
        absl::StrCat("https://", host_, ": receive: ", std::strerror(-result))));
    return;
  }
  if (result == 0) {
    Complete(/*close_notify=*/false);
    return;
  }
  std::string plaintext;
  const bool was_established = tls_->established();
  absl::Status s =
      tls_->OnCiphertext(absl::string_view(buffer_, static_cast<size_t>(result)), &plaintext);
  if (!s.ok()) {
    Finish(absl::UnavailableError(
        absl::StrCat("https://", host_, ": TLS: ", s.message(),
                     was_established ? "" : " (the certificate must be valid for the name)")));
    return;
  }
  if (response_.size() + plaintext.size() > limits_.head_bytes_max + limits_.body_bytes_max) {
    Finish(absl::ResourceExhaustedError(
        absl::StrCat("https://", host_, path_, ": the answer is longer than ",
                     limits_.head_bytes_max + limits_.body_bytes_max, " bytes")));
    return;
  }
  response_ += plaintext;
  if (tls_->peer_closed()) {
    Complete(/*close_notify=*/true);
    return;
  }
  Flush();
  if (!finished_) reactor_->Recv(fd_, buffer_, sizeof(buffer_), &recv_);
}

void HttpsGet::Complete(bool close_notify) {
  HttpsGetResult result;
  size_t body_start = 0;
  int64_t content_length = -1;
  const std::string url = absl::StrCat("https://", host_, path_);
  if (tls_ == nullptr || !tls_->established()) {
    Finish(absl::UnavailableError(absl::StrCat(url, ": closed before TLS was established")));
    return;
  }
  if (!ParseHttpResponseHead(response_, &result.code, &result.content_type, &body_start,
                             &content_length)) {
    Finish(absl::InvalidArgumentError(absl::StrCat(url, ": not an HTTP/1.x answer")));
    return;
  }
  if (body_start > limits_.head_bytes_max) {
    Finish(absl::ResourceExhaustedError(
        absl::StrCat(url, ": the answer's head is longer than ", limits_.head_bytes_max)));
    return;
  }
  if (post_ && result.code >= 200 && result.code <= 299) {
    finished_ = true;
    reactor_->timers().Cancel(&deadline_);
    Done done = std::move(done_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    done(std::move(result));
    return;
  }
  if (result.code != 200) {
    // Redirects included (RFC 8461 §3.3: not followed).
    Finish(absl::NotFoundError(absl::StrCat(url, ": HTTP status ", result.code)));
    return;
  }
  if (result.content_type != "text/plain") {
    Finish(absl::InvalidArgumentError(absl::StrCat(
        url, ": Content-Type ", result.content_type.empty() ? "(none)" : result.content_type,
        ", not text/plain")));
    return;
  }
  if (response_.size() - body_start > limits_.body_bytes_max) {
    Finish(absl::ResourceExhaustedError(
        absl::StrCat(url, ": the body is longer than ", limits_.body_bytes_max, " bytes")));
    return;
  }
  // A TCP close without close_notify may be a cut made on the path: the body counts only when
  // its Content-Length says it is whole.
  const size_t body_bytes = response_.size() - body_start;
  if (content_length >= 0 ? body_bytes != static_cast<uint64_t>(content_length) : !close_notify) {
    Finish(
        absl::DataLossError(absl::StrCat(url, ": the body may be cut (", body_bytes, " bytes",
                                         content_length >= 0 ? absl::StrCat(" of ", content_length)
                                                             : std::string(", no Content-Length"),
                                         close_notify ? ")" : ", no TLS close_notify)")));
    return;
  }
  result.body = response_.substr(body_start);
  finished_ = true;
  reactor_->timers().Cancel(&deadline_);
  Done done = std::move(done_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  done(std::move(result));
}

void HttpsGet::Cancel() {
  if (finished_) return;
  finished_ = true;
  done_ = nullptr;
  reactor_->timers().Cancel(&deadline_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (connect_.in_flight()) reactor_->Cancel(&connect_);
  if (recv_.in_flight()) reactor_->Cancel(&recv_);
  if (send_.in_flight()) reactor_->Cancel(&send_);
}

void HttpsGet::Finish(absl::Status status) {
  if (finished_) return;
  finished_ = true;
  reactor_->timers().Cancel(&deadline_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (connect_.in_flight()) reactor_->Cancel(&connect_);
  if (recv_.in_flight()) reactor_->Cancel(&recv_);
  HttpsGetResult result;
  result.status = std::move(status);
  Done done = std::move(done_);
  done(std::move(result));
}

}  // namespace relay::tlspolicy
