#include "tools/relayctl/send_test_command.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "relay/delivery/delivery_log.h"
#include "relay/server/config.h"
#include "relay/smtp/client_reply.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

constexpr int kIoTimeoutMs = 30000;

int Usage() {
  std::fprintf(stderr,
               "usage: relayctl send-test --to ADDRESS --user USER [--from ADDRESS] "
               "[--config PATH]\n"
               "                          [--server HOST:PORT] [--wait SECONDS]\n");
  return 2;
}

// "host:port", "[v6]:port" -> host and port; a wildcard listener is reached on loopback.
bool SplitHostPort(const std::string& text, std::string* host, std::string* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return false;
  *host = text.substr(0, colon);
  *port = text.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (*host == "0.0.0.0" || host->empty()) *host = "127.0.0.1";
  if (*host == "::") *host = "::1";
  return true;
}

absl::StatusOr<int> Connect(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat(host, ": ", gai_strerror(rc)));
  }
  int err = 0;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{kIoTimeoutMs / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", host, " port ", port, ": ", std::strerror(err)));
  }
  return fd;
}

// One blocking SMTP client conversation, in plain text and then over TLS (the relay's own
// TlsStream over a socket: the same code that delivers mail).
class Conversation {
 public:
  explicit Conversation(int fd) : fd_(fd), parser_(smtp::ReplyLimits()) {}
  ~Conversation() { close(fd_); }

  absl::StatusOr<smtp::ServerReply> Read() {
    for (;;) {
      smtp::ServerReply reply;
      switch (parser_.Next(&reply)) {
        case smtp::ReplyParser::Status::kReply:
          return reply;
        case smtp::ReplyParser::Status::kError:
          return absl::DataLossError(absl::StrCat("bad reply: ", parser_.error()));
        case smtp::ReplyParser::Status::kNeedMore:
          break;
      }
      std::string plaintext;
      absl::Status s = Receive(&plaintext);
      if (!s.ok()) return s;
      parser_.Feed(plaintext);
    }
  }

  // Sends a command line (CRLF added) and reads its reply.
  absl::StatusOr<smtp::ServerReply> Command(const std::string& line) {
    absl::Status s = Send(line + "\r\n");
    if (!s.ok()) return s;
    return Read();
  }

  absl::Status Send(std::string_view plaintext) {
    if (tls_ == nullptr) return SendRaw(plaintext);
    while (!plaintext.empty()) {
      absl::StatusOr<size_t> taken =
          tls_->Write(absl::string_view(plaintext.data(), plaintext.size()));
      if (!taken.ok()) return taken.status();
      plaintext.remove_prefix(*taken);
      absl::Status s = FlushTls();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status StartTls(tls::ClientTlsContext& context, const std::string& host) {
    parser_.Clear();
    auto stream = tls::TlsStream::NewClient(context, host);
    if (!stream.ok()) return stream.status();
    tls_ = std::move(*stream);
    absl::Status s = tls_->Start();
    while (s.ok() && !tls_->established()) {
      s = FlushTls();
      std::string ignored;
      if (s.ok()) s = Receive(&ignored);
    }
    return s.ok() ? FlushTls() : s;
  }

  const tls::TlsStream* tls() const { return tls_.get(); }

 private:
  absl::Status SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  absl::Status FlushTls() {
    absl::string_view pending = tls_->PendingCiphertext();
    absl::Status s = SendRaw(std::string_view(pending.data(), pending.size()));
    tls_->ConsumeCiphertext(pending.size());
    return s;
  }

  // One receive, decrypted when TLS is on.
  absl::Status Receive(std::string* plaintext) {
    char buf[16384];
    ssize_t n;
    do {
      n = ::recv(fd_, buf, sizeof(buf), 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return absl::UnavailableError("the relay closed the connection");
    if (n < 0) return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
    if (tls_ == nullptr) {
      plaintext->append(buf, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    absl::Status s = tls_->OnCiphertext(absl::string_view(buf, static_cast<size_t>(n)), plaintext);
    if (s.ok()) s = FlushTls();  // handshake messages, key updates
    return s;
  }

  const int fd_;
  smtp::ReplyParser parser_;
  std::unique_ptr<tls::TlsStream> tls_;
};

std::string Describe(const smtp::ServerReply& r) {
  return absl::StrCat(r.code, r.enhanced.empty() ? "" : " ", r.enhanced, " ", r.Text());
}

// The delivery log lines about `queue_id` ("EPOCH-SHARD-SEQ", hex) in `dir`: its shard's file.
std::vector<std::string> LogLines(const std::string& dir, const std::string& queue_id) {
  std::vector<std::string> lines;
  std::vector<std::string> parts = absl::StrSplit(queue_id, '-');
  unsigned long shard = 0;
  if (parts.size() != 3 || !absl::SimpleHexAtoi(parts[1], &shard)) return lines;
  const std::string needle = absl::StrCat("\"queue_id\":\"", queue_id, "\"");
  std::ifstream in(delivery::DeliveryLogPath(dir, static_cast<int>(shard)));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(needle) != std::string::npos) lines.push_back(line);
  }
  return lines;
}

// The first field `name` of a delivery log line, at any depth ("" when absent): a string without
// its quotes (the log's JSON escaping kept) or a number.
std::string Field(const std::string& line, const std::string& name) {
  const std::string key = absl::StrCat("\"", name, "\":");
  size_t at = line.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  if (at < line.size() && line[at] == '"') {
    size_t end = at + 1;
    while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
    return line.substr(at + 1, end - at - 1);
  }
  size_t end = line.find_first_of(",}", at);
  return line.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

}  // namespace

int SendTestCommand(int argc, char** argv) {
  std::string config_path = std::string(kDefaultConfigDir) + "/relayd.toml";
  std::string to, user, from, server;
  int wait_s = 30;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    if (arg == "--config") {
      config_path = argv[++i];
    } else if (arg == "--to") {
      to = argv[++i];
    } else if (arg == "--user") {
      user = argv[++i];
    } else if (arg == "--from") {
      from = argv[++i];
    } else if (arg == "--server") {
      server = argv[++i];
    } else if (arg == "--wait") {
      if (!absl::SimpleAtoi(argv[++i], &wait_s) || wait_s < 0) return Usage();
    } else {
      return Usage();
    }
  }
  if (from.empty() && user.find('@') != std::string::npos) from = user;
  auto bad_address = [](const std::string& a) {
    return a.empty() || a.find('@') == std::string::npos ||
           a.find_first_of("\r\n<> ") != std::string::npos;
  };
  if (bad_address(to) || bad_address(from) || user.empty()) {
    return Usage();
  }
  absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "relayctl: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (server.empty()) {
    if (config->submission_listen.empty()) {
      std::fprintf(stderr, "relayctl: %s has no STARTTLS submission listener: give --server\n",
                   config_path.c_str());
      return 1;
    }
    server = config->submission_listen[0];
  }
  std::string host, port;
  if (!SplitHostPort(server, &host, &port)) return Usage();
  std::optional<std::string> password = ReadPassword(/*confirm=*/false);
  if (!password) return 1;

  absl::StatusOr<int> fd = Connect(host, port);
  if (!fd.ok()) {
    std::fprintf(stderr, "relayctl: %s (is relayd running?)\n",
                 std::string(fd.status().message()).c_str());
    return 1;
  }
  Conversation smtp(*fd);
  auto fail = [](const std::string& step, const absl::StatusOr<smtp::ServerReply>& r) {
    std::fprintf(stderr, "relayctl: %s: %s\n", step.c_str(),
                 r.ok() ? Describe(*r).c_str() : std::string(r.status().message()).c_str());
    return 1;
  };
  absl::StatusOr<smtp::ServerReply> r = smtp.Read();
  if (!r.ok() || r->code != 220) return fail("greeting", r);
  r = smtp.Command("EHLO relayctl.send-test");
  if (!r.ok() || r->code != 250) return fail("EHLO", r);
  r = smtp.Command("STARTTLS");
  if (!r.ok() || r->code != 220) return fail("STARTTLS", r);
  tls::ClientTlsContext::Options tls_options;
  tls_options.verify_required = false;  // reported below: a self-signed test relay still works
  auto context = tls::ClientTlsContext::Create(tls_options);
  if (!context.ok()) {
    std::fprintf(stderr, "relayctl: TLS: %s\n", std::string(context.status().message()).c_str());
    return 1;
  }
  absl::Status tls_status = smtp.StartTls(**context, config->hostname);
  if (!tls_status.ok()) {
    std::fprintf(stderr, "relayctl: TLS handshake: %s\n",
                 std::string(tls_status.message()).c_str());
    return 1;
  }
  std::printf("connected to %s port %s: %s %s, certificate %s\n", host.c_str(), port.c_str(),
              smtp.tls()->protocol_version().c_str(), smtp.tls()->cipher_name().c_str(),
              smtp.tls()->peer_verified()
                  ? absl::StrCat("verified for ", config->hostname).c_str()
                  : absl::StrCat("NOT verified (", smtp.tls()->peer_verify_error(),
                                 "): fine for a test relay, not for production")
                        .c_str());
  r = smtp.Command("EHLO relayctl.send-test");
  if (!r.ok() || r->code != 250) return fail("EHLO after STARTTLS", r);
  std::string plain = std::string("\0", 1) + user + std::string("\0", 1) + *password;
  r = smtp.Command("AUTH PLAIN " + absl::Base64Escape(plain));
  if (!r.ok() || r->code != 235) return fail("AUTH", r);
  r = smtp.Command("MAIL FROM:<" + from + ">");
  if (!r.ok() || r->code != 250) return fail("MAIL FROM", r);
  r = smtp.Command("RCPT TO:<" + to + ">");
  if (!r.ok() || r->code != 250) return fail("RCPT TO", r);
  r = smtp.Command("DATA");
  if (!r.ok() || r->code != 354) return fail("DATA", r);
  const std::string now = absl::FormatTime("%a, %d %b %Y %H:%M:%S %z", absl::Now(),
                                           absl::LocalTimeZone());
  const std::string message = absl::StrCat(
      "From: <", from, ">\r\nTo: <", to, ">\r\nSubject: relay test from ", config->hostname,
      "\r\nDate: ", now,
      "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
      "This message was sent by relayctl send-test through ", config->hostname, " as ", user,
      ".\r\nIts headers show how it travelled: see the Received and Authentication-Results "
      "lines.\r\n.\r\n");
  absl::Status sent = smtp.Send(message);
  if (!sent.ok()) return fail("message", sent);
  r = smtp.Read();
  if (!r.ok() || r->code != 250) return fail("end of data", r);
  (void)smtp.Command("QUIT");
  std::string queue_id;
  const std::string text = r->Text();
  if (size_t at = text.find("queued as "); at != std::string::npos) {
    queue_id = text.substr(at + 10);
    queue_id = queue_id.substr(0, queue_id.find(' '));
  }
  std::printf("accepted: %s\n", Describe(*r).c_str());

  bool bounced = false;
  if (!queue_id.empty() && !config->log.dir.empty() && wait_s > 0) {
    // The delivery logs are the relay's record of each attempt.
    const absl::Time deadline = absl::Now() + absl::Seconds(wait_s);
    size_t shown = 0;
    bool final = false;
    while (!final && absl::Now() < deadline) {
      std::vector<std::string> lines = LogLines(config->log.dir, queue_id);
      for (; shown < lines.size(); ++shown) {
        const std::string& l = lines[shown];
        const std::string event = Field(l, "event");
        std::string detail;
        // relay/delivery/delivery_log.cc writes these names, "version" inside "tls" and
        // "code", "enhanced" and "text" inside "reply"; no other object uses them.
        for (const auto& [name, label] :
             {std::pair{"mx", "mx_host"}, std::pair{"source", "source"},
              std::pair{"version", "tls"}, std::pair{"code", "reply_code"},
              std::pair{"enhanced", "reply_enhanced"}, std::pair{"text", "reply"},
              std::pair{"reason", "reason"}}) {
          std::string v = Field(l, name);
          if (!v.empty()) absl::StrAppend(&detail, detail.empty() ? "" : " ", label, "=", v);
        }
        std::printf("%s %s\n", event.c_str(), detail.c_str());
        if (event == "bounced" || event == "expired") bounced = true;
        if (event == "delivered" || bounced) final = true;
      }
      if (!final) absl::SleepFor(absl::Milliseconds(200));
    }
    if (!final) std::printf("no delivery within %d s: `relayctl queue show %s` says why\n",
                            wait_s, queue_id.c_str());
  }

  const std::string domain = absl::AsciiStrToLower(from.substr(from.rfind('@') + 1));
  std::vector<std::string> selectors;
  for (const server::DkimKeyConfig& k : config->dkim_keys) {
    if (absl::EqualsIgnoreCase(k.domain, domain)) selectors.push_back(k.selector);
  }
  std::printf("\nIn the copy %s receives (Gmail: \"Show original\"), look for:\n", to.c_str());
  std::printf("  Received: from %s ([the source address above]) ... with ESMTPS (TLS)\n",
              config->hostname.c_str());
  std::printf("  Authentication-Results: ... spf=pass smtp.mailfrom=%s\n", from.c_str());
  if (selectors.empty()) {
    std::printf("  (no DKIM key for %s in %s: the message leaves unsigned and DMARC fails)\n",
                domain.c_str(), config_path.c_str());
  }
  for (const std::string& s : selectors) {
    std::printf("  Authentication-Results: ... dkim=pass header.d=%s header.s=%s\n",
                domain.c_str(), s.c_str());
  }
  std::printf("  Authentication-Results: ... dmarc=pass header.from=%s\n", domain.c_str());
  std::printf("`relayctl check-dns --config %s` explains a fail.\n", config_path.c_str());
  return bounced ? 1 : 0;
}

}  // namespace relay::relayctl
