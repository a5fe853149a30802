// A tiny blocking-socket driver for ClientSession, used by client_peer_test.sh to talk to real
// SMTP servers (Postfix's smtp-sink, Python's aiosmtpd) on 127.0.0.1. Plain text only: TLS is
// the delivery engine's. Prints one line per outcome:
//   CONN <kind> <code> <enhanced> <text>
//   MSG <message> RCPT <index> <kind> <code> <enhanced> <text>
// and "CLOSED <messages_done>" at the end.
//
// Usage: client_peer_driver PORT MESSAGES RCPT[,RCPT...] [BODY_KIB] [8bit|utf8|plain]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "relay/smtp/client_session.h"
#include "relay/smtp/dot_stuffer.h"

namespace {

using relay::smtp::ClientActions;
using relay::smtp::ClientConfig;
using relay::smtp::ClientSession;
using relay::smtp::DotStuffer;
using relay::smtp::Outcome;
using relay::smtp::OutcomeKind;
using relay::smtp::OutgoingMessage;

// Caps the RFC timeouts so a stuck peer fails the test quickly.
constexpr int kPollCapMs = 10000;

const char* KindName(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kDelivered:
      return "delivered";
    case OutcomeKind::kTransient:
      return "transient";
    case OutcomeKind::kPermanent:
      return "permanent";
  }
  return "?";
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Writes a DotStuffer's segments in bounded writev batches, as the io_uring driver will.
bool WriteBody(int fd, const std::string& message) {
  DotStuffer stuffer(message);
  iovec iov[16];
  while (!stuffer.done()) {
    size_t n = stuffer.Fill(iov, 16, 64 * 1024);
    size_t first = 0;
    while (first < n) {
      const ssize_t w = writev(fd, iov + first, static_cast<int>(n - first));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      size_t left = static_cast<size_t>(w);
      while (first < n && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (first < n) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
  }
  return true;
}

std::string MakeBody(int index, size_t body_kib, bool eight_bit) {
  std::string m = "From: sender@relay.example\r\nTo: rcpt@example.net\r\nSubject: test " +
                  std::to_string(index) + "\r\nMessage-ID: <" + std::to_string(index) +
                  "@relay.example>\r\n\r\n.dotline\r\n..double\r\nplain line\r\n.\r\n";
  if (eight_bit) m += "caf\xc3\xa9\r\n";
  const std::string line =
      "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvw\r\n";
  while (m.size() < body_kib * 1024) m += (m.size() / line.size()) % 5 == 0 ? "." + line : line;
  m += "last line without CRLF";
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PORT MESSAGES RCPT[,RCPT...] [BODY_KIB] [8bit|utf8|plain]\n",
                 argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int messages = std::atoi(argv[2]);
  std::vector<std::string> rcpts;
  for (std::string list = argv[3]; !list.empty();) {
    const size_t comma = list.find(',');
    rcpts.push_back(list.substr(0, comma));
    list = comma == std::string::npos ? "" : list.substr(comma + 1);
  }
  const size_t body_kib = argc > 4 ? static_cast<size_t>(std::atoi(argv[4])) : 1;
  const std::string mode = argc > 5 ? argv[5] : "plain";

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("connect");
    return 1;
  }

  ClientConfig config;
  config.ehlo_name = "client.relay.example";
  config.peer_name = "127.0.0.1";
  config.tls_supported = false;
  ClientSession session(config);

  int sent = 0;
  std::string body;
  int64_t timeout_ms = 0;
  bool closed = false;
  // Drains one event's actions; may feed more events (body sent, next message, quit).
  auto drain = [&](const ClientActions* a, auto&& self) -> void {
    if (!a->write.empty() && !WriteAll(fd, a->write.data(), a->write.size())) {
      self(&session.OnPeerClosed(), self);
      return;
    }
    timeout_ms = a->timeout_ms;
    if (a->connection_failed) {
      const Outcome& o = a->connection_outcome;
      std::printf("CONN %s %d %s %s\n", KindName(o.kind), o.code,
                  o.enhanced.empty() ? "-" : o.enhanced.c_str(), o.text.c_str());
    }
    if (a->message_done) {
      for (const Outcome& o : a->outcomes) {
        std::printf("MSG %d RCPT %zu %s %d %s %s\n", sent, o.recipient_index, KindName(o.kind),
                    o.code, o.enhanced.empty() ? "-" : o.enhanced.c_str(), o.text.c_str());
      }
    }
    if (a->close) {
      closed = true;
      return;
    }
    if (a->start_tls) {
      self(&session.OnTlsFailed("no TLS in this driver"), self);
      return;
    }
    if (a->send_body) {
      if (!WriteBody(fd, body)) {
        self(&session.OnPeerClosed(), self);
        return;
      }
      self(&session.OnBodySent(), self);
      return;
    }
    if (a->ready) {
      if (sent < messages) {
        ++sent;
        OutgoingMessage m;
        m.mail_from = "sender@relay.example";
        m.recipients = rcpts;
        body = MakeBody(sent, body_kib, mode == "8bit");
        m.size_bytes = body.size();
        m.needs_8bitmime = mode == "8bit";
        m.needs_smtputf8 = mode == "utf8";
        self(&session.SendMessage(std::move(m)), self);
      } else {
        self(&session.Quit(), self);
      }
    }
  };
  drain(&session.OnConnected(), drain);
  char buffer[4096];
  while (!closed) {
    pollfd p{fd, POLLIN, 0};
    const int wait_ms =
        timeout_ms > 0 && timeout_ms < kPollCapMs ? static_cast<int>(timeout_ms) : kPollCapMs;
    const int r = poll(&p, 1, wait_ms);
    if (r == 0) {
      drain(&session.OnTimeout(), drain);
      continue;
    }
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) {
      drain(&session.OnPeerClosed(), drain);
      continue;
    }
    drain(&session.OnBytes(std::string_view(buffer, static_cast<size_t>(n))), drain);
  }
  close(fd);
  std::printf("CLOSED %llu\n", static_cast<unsigned long long>(session.messages_done()));
  return 0;
}
