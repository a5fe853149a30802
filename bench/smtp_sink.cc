// smtp_sink: an SMTP receiver for load tests. It accepts mail on many loopback addresses (one
// io_uring reactor per thread, SO_REUSEPORT listeners so the kernel spreads connections), counts
// messages and bytes, records each arrival and, from the generator's X-Bench-Sent header, the
// end-to-end latency, and can refuse a share of transactions or answer slowly to play a
// throttling receiver. With --starttls it offers STARTTLS (RFC 3207) with the given certificate
// or a self-signed one made at start, and counts TLS sessions and TLS errors. See --help for the
// flags; the last line on stdout is a JSON summary.
//
//   smtp_sink --listen 127.0.0.1:2525 --listen [::1]:2525 --listen-range 127.0.0.10-127.0.0.50:25
//             --threads 2 --max-seconds 60 --fail-rate 0.1 --fail-reply "451 4.7.28 try later"
//             [--starttls [--tls-cert cert.pem --tls-key key.pem]]

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/common/counter.h"
#include "bench/common/flags.h"
#include "bench/common/latency_histogram.h"
#include "bench/common/time.h"
#include "bench/smtp_sink_session.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/io/buffer_ring.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"

// --listen ADDRESS:PORT and --listen-range FIRST-LAST:PORT (IPv4) are repeatable and handled by
// CommandLine, outside absl.
ABSL_FLAG(int, threads, 0, "Reactor threads (0: one per core)");
ABSL_FLAG(double, max_seconds, 0, "Exit after this many seconds (0: run until SIGTERM/SIGINT)");
ABSL_FLAG(double, stats_interval_s, 5, "Seconds between stats lines on stderr (0: none)");
ABSL_FLAG(double, fail_rate, 0, "Share of transactions (0..1) answered with --fail-reply");
ABSL_FLAG(std::string, fail_reply, "451 4.7.28 try later",
          "The scripted reply for failed transactions (a 4xx or 5xx line)");
ABSL_FLAG(std::string, fail_stage, "data",
          "Where the scripted failure is given: data (the reply to the end of data) or rcpt");
ABSL_FLAG(int, delay_ms, 0, "Delay every reply by this many milliseconds (a slow receiver)");
ABSL_FLAG(std::string, save_dir, "",
          "Write each accepted message to DIR/<thread>-<n>.eml and its envelope to .env "
          "(slow: for tests that check content)");
ABSL_FLAG(bool, chunking, true, "Offer CHUNKING (BDAT, RFC 3030)");
ABSL_FLAG(std::string, hostname, "sink.bench.test", "Name in the greeting and EHLO reply");
ABSL_FLAG(std::string, auth_user, "", "Offer AUTH PLAIN and require these credentials");
ABSL_FLAG(std::string, auth_password, "", "Password for --auth-user");
ABSL_FLAG(std::string, port_file, "",
          "Write the bound port of the first --listen address here once listening (for tests "
          "that listen on port 0)");
ABSL_FLAG(std::string, json_file, "", "Also write the JSON summary to this file");
ABSL_FLAG(std::string, arrivals_file, "",
          "Write one line per accepted message at exit: arrival_ns sent_ns (0 when unknown)");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the fault-injection choice");
ABSL_FLAG(int64_t, message_bytes_max, 64 << 20, "Largest message accepted (552 beyond)");
ABSL_FLAG(bool, starttls, false,
          "Offer STARTTLS (RFC 3207); without --tls-cert/--tls-key a self-signed pair for "
          "--hostname is made in a temporary directory at start");
ABSL_FLAG(std::string, tls_cert, "", "Certificate chain (PEM) for STARTTLS; implies --starttls");
ABSL_FLAG(std::string, tls_key, "", "Private key (PEM) for --tls-cert");

namespace bench {
namespace {

using relay::io::BufferRing;
using relay::io::Completion;
using relay::io::Reactor;
using relay::io::SocketAddress;
using relay::io::Timer;

constexpr uint16_t kBufferGroup = 1;
constexpr uint32_t kRecvBuffers = 512;
constexpr uint32_t kRecvBufferBytes = 16 * 1024;
// A client that pipelines without reading its replies is cut off beyond this.
constexpr size_t kPendingOutputBytesMax = 4 << 20;

struct SinkConfig {
  SinkSessionOptions session;
  // Set when STARTTLS is offered; shared read-only by every shard.
  std::shared_ptr<const relay::tls::ServerTlsContext> tls;
  double fail_rate = 0;
  std::string fail_reply;
  bool fail_at_rcpt = false;
  int delay_ms = 0;
  std::string save_dir;
  bool keep_arrivals = false;
  uint64_t seed = 1;
};

// Per-thread statistics: written by the shard thread, read by the main thread at any time.
struct ShardStats {
  Counter connections;
  Counter connections_open;
  Counter messages;
  Counter bytes;
  Counter rejected;
  Counter missing_header;  // accepted messages without a readable X-Bench-Sent
  Counter tls_sessions;    // handshakes completed
  Counter tls_resumed;     // of which resumed a session
  Counter tls_errors;      // handshakes or records that failed
  Counter first_arrival_ns;
  Counter last_arrival_ns;
  LatencyHistogram e2e_latency_ns;
  // Read only after the thread has stopped.
  std::vector<std::pair<int64_t, int64_t>> arrivals;  // (arrival_ns, sent_ns)
};

// The value of the X-Bench-Sent header in the message's header section, or -1.
int64_t SentNanos(std::string_view content) {
  size_t header_end = content.find("\r\n\r\n");
  std::string_view headers = content.substr(0, header_end);
  static constexpr std::string_view kName = "X-Bench-Sent:";
  size_t pos = 0;
  while (true) {
    pos = headers.find(kName, pos);
    if (pos == std::string_view::npos) return -1;
    if (pos == 0 || headers[pos - 1] == '\n') break;
    pos += kName.size();
  }
  size_t i = pos + kName.size();
  while (i < headers.size() && headers[i] == ' ') ++i;
  int64_t value = 0;
  size_t digits = 0;
  while (i < headers.size() && headers[i] >= '0' && headers[i] <= '9' && digits < 19) {
    value = value * 10 + (headers[i] - '0');
    ++i;
    ++digits;
  }
  return digits == 0 ? -1 : value;
}

class Shard;

class Connection : public relay::io::IoObject {
 public:
  Connection(Shard* shard, int fd);
  void Start();
  bool Idle() const override {
    return !recv_.in_flight() && !send_.in_flight() && !delay_timer_.scheduled();
  }
  void CloseNow();

 private:
  void ArmRecv();
  void OnRecv(int result, uint32_t flags);
  void OnPlaintext(std::string_view bytes);
  void OnSent(int result);
  void OnCiphertext(std::string_view bytes);
  void SwitchToTls();
  void Output();  // pending_ has new bytes
  // Sends what is ready: with `release_replies` the plaintext replies in pending_ too (that is
  // what the reply delay holds back); TLS handshake flights are never delayed.
  void Flush(bool release_replies);

  Shard* shard_;
  int fd_;
  SinkSession session_;
  Completion recv_;
  Completion send_;
  Timer delay_timer_;
  std::string out_;      // being sent (ciphertext once TLS runs)
  size_t out_sent_ = 0;  // bytes of out_ the kernel took
  std::string pending_;  // plaintext replies produced while out_ is in flight
  std::unique_ptr<relay::tls::TlsStream> tls_;
  std::string plaintext_in_;           // decrypted bytes of the current read
  bool start_tls_after_send_ = false;  // the 220 to STARTTLS is being sent in the clear
  bool tls_reported_ = false;
  bool tls_failed_ = false;  // no more replies can be encrypted
  bool close_after_flush_ = false;
  bool closed_ = false;
};

class Shard : public SinkSessionDelegate {
 public:
  Shard(int index, const SinkConfig& config, std::vector<int> listen_fds, ShardStats* stats)
      : index_(index),
        config_(config),
        listen_fds_(std::move(listen_fds)),
        stats_(stats),
        rng_(config.seed * 7919 + index) {}

  absl::Status Init() {
    relay::SetThreadLogTag(absl::StrCat("sink", index_));
    ASSIGN_OR_RETURN(reactor_, Reactor::Create({}));
    ASSIGN_OR_RETURN(
        buffers_, BufferRing::Create(reactor_.get(), kBufferGroup, kRecvBuffers, kRecvBufferBytes));
    accepts_.resize(listen_fds_.size());
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      accepts_[i] = std::make_unique<Completion>();
      int fd = listen_fds_[i];
      Completion* c = accepts_[i].get();
      c->set_handler([this, fd, c](int result, uint32_t flags) { OnAccept(fd, c, result, flags); });
      reactor_->Accept(fd, c, /*multishot=*/true);
    }
    return absl::OkStatus();
  }

  void Run() { reactor_->Run(); }
  // Any thread.
  void RequestStop() {
    reactor_->RunInLoop([this] { reactor_->Stop(); });
  }

  // Shard thread, after Run() returned: closes everything and waits for the kernel to let go.
  void Shutdown() {
    stopping_ = true;
    for (auto& c : accepts_) reactor_->Cancel(c.get());
    std::vector<Connection*> open(connections_.begin(), connections_.end());
    for (Connection* c : open) c->CloseNow();
    for (int i = 0; i < 500; ++i) {
      bool busy = reactor_->retiring() > 0;
      for (auto& c : accepts_) busy = busy || c->in_flight();
      if (!busy) break;
      reactor_->RunOnce(10);
    }
    for (int fd : listen_fds_) ::close(fd);
    for (auto& c : accepts_) {
      if (c->in_flight()) {
        relay::LogError() << "accept still in flight at shutdown";
        std::quick_exit(1);
      }
    }
    buffers_.reset();
    reactor_.reset();
  }

  std::string OnMessage(const SinkEnvelope& envelope, std::string_view content) override {
    if (!config_.fail_at_rcpt && Fails()) {
      stats_->rejected.Add();
      return config_.fail_reply;
    }
    int64_t arrival = WallNanos();
    int64_t sent = SentNanos(content);
    stats_->messages.Add();
    stats_->bytes.Add(content.size());
    if (stats_->first_arrival_ns.value() == 0) stats_->first_arrival_ns.Set(arrival);
    stats_->last_arrival_ns.Set(arrival);
    if (sent > 0) {
      stats_->e2e_latency_ns.Record(arrival - sent);
    } else {
      stats_->missing_header.Add();
    }
    if (config_.keep_arrivals) stats_->arrivals.emplace_back(arrival, std::max<int64_t>(sent, 0));
    if (!config_.save_dir.empty()) Save(envelope, content);
    return {};
  }

  std::string OnRecipient(std::string_view address) override {
    if (config_.fail_at_rcpt && Fails()) {
      stats_->rejected.Add();
      return config_.fail_reply;
    }
    return {};
  }

  void Closed(Connection* c) {
    connections_.erase(c);
    stats_->connections_open.Set(connections_.size());
    reactor_->RetireWhenIdle(std::unique_ptr<Connection>(c));
  }

  Reactor* reactor() { return reactor_.get(); }
  BufferRing* buffers() { return buffers_.get(); }
  ShardStats* stats() { return stats_; }
  const SinkConfig& config() const { return config_; }

 private:
  bool Fails() {
    return config_.fail_rate > 0 &&
           std::uniform_real_distribution<double>(0, 1)(rng_) < config_.fail_rate;
  }

  void OnAccept(int listen_fd, Completion* c, int result, uint32_t flags) {
    if (result >= 0) {
      if (stopping_) {
        ::close(result);
      } else {
        int one = 1;
        // Replies are small and latency is what is measured: no Nagle delay.
        setsockopt(result, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        auto* conn = new Connection(this, result);
        connections_.insert(conn);
        stats_->connections.Add();
        stats_->connections_open.Set(connections_.size());
        conn->Start();
      }
    } else if (result != -ECANCELED) {
      relay::LogWarning() << "accept: " << std::strerror(-result);
    }
    if (!(flags & IORING_CQE_F_MORE) && !stopping_ && result != -ECANCELED) {
      reactor_->Post([this, listen_fd, c] {
        if (!stopping_ && !c->in_flight()) reactor_->Accept(listen_fd, c, true);
      });
    }
  }

  void Save(const SinkEnvelope& envelope, std::string_view content) {
    std::string base = absl::StrCat(config_.save_dir, "/", index_, "-", ++saved_);
    std::string env = absl::StrCat("MAIL FROM:<", envelope.mail_from, ">\n");
    for (const auto& r : envelope.rcpt_to) absl::StrAppend(&env, "RCPT TO:<", r, ">\n");
    for (auto [name, data] :
         {std::pair<std::string, std::string_view>{base + ".eml", content}, {base + ".env", env}}) {
      FILE* f = std::fopen(name.c_str(), "wb");
      if (f == nullptr) {
        relay::LogError() << "cannot write " << name << ": " << std::strerror(errno);
        continue;
      }
      std::fwrite(data.data(), 1, data.size(), f);
      std::fclose(f);
    }
  }

  const int index_;
  const SinkConfig& config_;
  std::vector<int> listen_fds_;
  ShardStats* stats_;
  std::mt19937_64 rng_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<BufferRing> buffers_;
  std::vector<std::unique_ptr<Completion>> accepts_;
  absl::flat_hash_set<Connection*> connections_;
  uint64_t saved_ = 0;
  bool stopping_ = false;
};

Connection::Connection(Shard* shard, int fd)
    : shard_(shard), fd_(fd), session_(shard->config().session, shard) {
  recv_.set_handler([this](int result, uint32_t flags) { OnRecv(result, flags); });
  send_.set_handler([this](int result, uint32_t) { OnSent(result); });
  delay_timer_.set_callback([this] { Flush(/*release_replies=*/true); });
}

void Connection::Start() {
  session_.Greet(&pending_);
  Output();
  ArmRecv();
}

void Connection::ArmRecv() {
  if (closed_ || recv_.in_flight()) return;
  shard_->reactor()->RecvMultishot(fd_, kBufferGroup, &recv_);
}

void Connection::OnRecv(int result, uint32_t flags) {
  if (closed_) {
    if (BufferRing::HasBuffer(flags)) shard_->buffers()->Recycle(BufferRing::BufferId(flags));
    return;
  }
  if (result > 0 && BufferRing::HasBuffer(flags)) {
    uint16_t id = BufferRing::BufferId(flags);
    std::string_view bytes(shard_->buffers()->Buffer(id), static_cast<size_t>(result));
    if (tls_ != nullptr) {
      OnCiphertext(bytes);  // may close the connection
    } else {
      OnPlaintext(bytes);
    }
    shard_->buffers()->Recycle(id);
    if (closed_) return;
    if (pending_.size() > kPendingOutputBytesMax) {
      relay::LogWarning() << "client does not read its replies; closing";
      CloseNow();
      return;
    }
    Output();
    if (!(flags & IORING_CQE_F_MORE) && !close_after_flush_) ArmRecv();
    return;
  }
  if (result == -ENOBUFS) {
    // Every receive buffer is out: try again next turn, when handlers have recycled some.
    shard_->reactor()->Post([this] { ArmRecv(); });
    return;
  }
  // 0: the client closed; <0: reset or cancelled.
  CloseNow();
}

void Connection::OnPlaintext(std::string_view bytes) {
  SinkSession::Action action = session_.OnBytes(bytes, &pending_);
  if (action == SinkSession::Action::kStartTls && shard_->config().tls != nullptr) {
    // The 220 leaves in the clear; the stream is made once that send has completed (OnSent).
    // The client sends its ClientHello only after reading the 220, and completions are handled
    // in order, so no handshake byte can arrive before the switch (RFC 3207 §4).
    start_tls_after_send_ = true;
  } else if (action != SinkSession::Action::kContinue) {
    close_after_flush_ = true;
  }
}

void Connection::OnCiphertext(std::string_view bytes) {
  plaintext_in_.clear();
  absl::Status status =
      tls_->OnCiphertext(absl::string_view(bytes.data(), bytes.size()), &plaintext_in_);
  if (!status.ok()) {
    ShardStats* st = shard_->stats();
    st->tls_errors.Add();
    if (st->tls_errors.value() <= 5) relay::LogWarning() << "TLS: " << status.message();
    tls_failed_ = true;
    close_after_flush_ = true;
    Flush(/*release_replies=*/false);  // the alert, if any; closes when sent
    return;
  }
  if (tls_->established() && !tls_reported_) {
    tls_reported_ = true;
    shard_->stats()->tls_sessions.Add();
    if (tls_->session_reused()) shard_->stats()->tls_resumed.Add();
    session_.TlsStarted();
  }
  if (!plaintext_in_.empty()) OnPlaintext(plaintext_in_);
  Flush(/*release_replies=*/false);  // handshake flights and session tickets go out at once
}

void Connection::SwitchToTls() {
  start_tls_after_send_ = false;
  auto stream = relay::tls::TlsStream::NewServer(*shard_->config().tls);
  if (!stream.ok()) {
    shard_->stats()->tls_errors.Add();
    relay::LogWarning() << "STARTTLS: " << stream.status().message();
    CloseNow();
    return;
  }
  tls_ = std::move(*stream);
}

void Connection::Output() {
  if (pending_.empty()) return;
  if (shard_->config().delay_ms > 0) {
    if (!delay_timer_.scheduled()) {
      shard_->reactor()->timers().ScheduleAfter(&delay_timer_, shard_->config().delay_ms);
    }
    return;
  }
  Flush(/*release_replies=*/true);
}

void Connection::Flush(bool release_replies) {
  if (closed_ || send_.in_flight()) return;
  out_.clear();
  out_sent_ = 0;
  if (tls_ == nullptr) {
    if (release_replies) out_.swap(pending_);
  } else {
    if (release_replies && tls_->established() && !pending_.empty()) {
      auto taken = tls_->Write(pending_);
      if (taken.ok()) pending_.erase(0, *taken);
    }
    absl::string_view cipher = tls_->PendingCiphertext();
    out_.assign(cipher.data(), cipher.size());
    tls_->ConsumeCiphertext(cipher.size());
  }
  if (out_.empty()) {
    if (close_after_flush_ && (pending_.empty() || tls_failed_)) CloseNow();
    return;
  }
  shard_->reactor()->Send(fd_, out_.data(), out_.size(), &send_);
}

void Connection::OnSent(int result) {
  if (closed_) return;
  if (result < 0) {
    CloseNow();
    return;
  }
  out_sent_ += static_cast<size_t>(result);
  if (out_sent_ < out_.size()) {
    shard_->reactor()->Send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, &send_);
    return;
  }
  out_.clear();
  if (start_tls_after_send_ && pending_.empty()) {
    SwitchToTls();
    if (closed_) return;
  }
  if (!pending_.empty() && shard_->config().delay_ms > 0 && !delay_timer_.scheduled()) {
    Output();
    Flush(/*release_replies=*/false);
  } else {
    Flush(/*release_replies=*/true);
  }
}

void Connection::CloseNow() {
  if (closed_) return;
  closed_ = true;
  if (delay_timer_.scheduled()) shard_->reactor()->timers().Cancel(&delay_timer_);
  shard_->reactor()->Cancel(&recv_);
  shard_->reactor()->Cancel(&send_);
  shard_->reactor()->Close(fd_);
  shard_->Closed(this);
}

// "127.0.0.10-127.0.0.50:25" → every address of the range with that port.
absl::StatusOr<std::vector<SocketAddress>> ParseRange(const std::string& text) {
  size_t colon = text.rfind(':');
  size_t dash = text.find('-');
  if (colon == std::string::npos || dash == std::string::npos || dash > colon) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen-range wants FIRST-LAST:PORT (IPv4), got ", text));
  }
  std::string port = text.substr(colon);
  auto first = SocketAddress::Parse(text.substr(0, dash) + port);
  auto last = SocketAddress::Parse(text.substr(dash + 1, colon - dash - 1) + port);
  if (!first.ok()) return first.status();
  if (!last.ok()) return last.status();
  if (first->family() != AF_INET || last->family() != AF_INET) {
    return absl::InvalidArgumentError("--listen-range supports IPv4 ranges only");
  }
  uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(&first->storage)->sin_addr.s_addr);
  uint32_t b = ntohl(reinterpret_cast<const sockaddr_in*>(&last->storage)->sin_addr.s_addr);
  if (b < a || b - a >= 65536) {
    return absl::InvalidArgumentError(absl::StrCat("bad --listen-range ", text));
  }
  std::vector<SocketAddress> out;
  for (uint32_t x = a; x <= b; ++x) {
    SocketAddress s = *first;
    reinterpret_cast<sockaddr_in*>(&s.storage)->sin_addr.s_addr = htonl(x);
    out.push_back(s);
  }
  return out;
}

std::string StatsLine(const std::vector<std::unique_ptr<ShardStats>>& stats, double elapsed_s,
                      uint64_t* last_messages, double* last_time_s) {
  uint64_t messages = 0, bytes = 0, rejected = 0, open = 0, tls = 0;
  LatencyHistogram e2e;
  for (const auto& s : stats) {
    messages += s->messages.value();
    bytes += s->bytes.value();
    rejected += s->rejected.value();
    open += s->connections_open.value();
    tls += s->tls_sessions.value();
    e2e.Merge(s->e2e_latency_ns);
  }
  double interval = elapsed_s - *last_time_s;
  double rate = interval > 0 ? (messages - *last_messages) / interval : 0;
  *last_messages = messages;
  *last_time_s = elapsed_s;
  return absl::StrFormat(
      "sink: t=%.1fs messages=%d (%.0f/s) bytes=%d rejected=%d open_connections=%d "
      "tls_sessions=%d e2e %s",
      elapsed_s, messages, rate, bytes, rejected, open, tls, FormatPercentilesNanos(e2e));
}

int Main(int argc, char** argv) {
  CommandLine command_line(argc, argv, {"listen", "listen_range"});
  std::vector<std::string> listens = command_line.Values("listen");
  std::vector<std::string> ranges = command_line.Values("listen_range");
  absl::SetProgramUsageMessage(
      "SMTP sink for load tests.\n  smtp_sink --listen 127.0.0.1:2525 [--listen [::1]:2525] "
      "[--listen-range 127.0.0.10-127.0.0.50:25] [flags]");
  absl::ParseCommandLine(command_line.argc(), command_line.argv());

  std::vector<SocketAddress> addresses;
  for (const auto& l : listens) {
    auto a = SocketAddress::Parse(l);
    if (!a.ok()) {
      std::fprintf(stderr, "smtp_sink: --listen %s: %s\n", l.c_str(),
                   std::string(a.status().message()).c_str());
      return 2;
    }
    addresses.push_back(*a);
  }
  for (const auto& r : ranges) {
    auto a = ParseRange(r);
    if (!a.ok()) {
      std::fprintf(stderr, "smtp_sink: %s\n", std::string(a.status().message()).c_str());
      return 2;
    }
    addresses.insert(addresses.end(), a->begin(), a->end());
  }
  if (addresses.empty()) {
    std::fprintf(stderr, "smtp_sink: give at least one --listen or --listen-range\n");
    return 2;
  }
  if (absl::Status probe = Reactor::ProbeKernel(); !probe.ok()) {
    std::fprintf(stderr, "smtp_sink: %s\n", std::string(probe.message()).c_str());
    return 3;
  }

  SinkConfig config;
  config.session.hostname = absl::GetFlag(FLAGS_hostname);
  config.session.chunking = absl::GetFlag(FLAGS_chunking);
  config.session.auth_user = absl::GetFlag(FLAGS_auth_user);
  config.session.auth_password = absl::GetFlag(FLAGS_auth_password);
  config.session.message_bytes_max = absl::GetFlag(FLAGS_message_bytes_max);
  config.fail_rate = absl::GetFlag(FLAGS_fail_rate);
  config.fail_reply = absl::GetFlag(FLAGS_fail_reply);
  config.delay_ms = absl::GetFlag(FLAGS_delay_ms);
  config.save_dir = absl::GetFlag(FLAGS_save_dir);
  config.keep_arrivals = !absl::GetFlag(FLAGS_arrivals_file).empty();
  config.seed = absl::GetFlag(FLAGS_seed);
  std::string stage = absl::GetFlag(FLAGS_fail_stage);
  if (stage != "data" && stage != "rcpt") {
    std::fprintf(stderr, "smtp_sink: --fail-stage must be data or rcpt\n");
    return 2;
  }
  config.fail_at_rcpt = stage == "rcpt";
  if (config.fail_rate > 0 && (config.fail_reply.size() < 4 ||
                               (config.fail_reply[0] != '4' && config.fail_reply[0] != '5'))) {
    std::fprintf(stderr, "smtp_sink: --fail-reply must be a 4xx or 5xx reply line\n");
    return 2;
  }

  std::string tls_cert = absl::GetFlag(FLAGS_tls_cert);
  std::string tls_key = absl::GetFlag(FLAGS_tls_key);
  std::string self_signed_dir;
  if (tls_cert.empty() != tls_key.empty()) {
    std::fprintf(stderr, "smtp_sink: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_starttls) || !tls_cert.empty()) {
    if (tls_cert.empty()) {
      char dir[] = "/tmp/smtp_sink_tls.XXXXXX";
      if (mkdtemp(dir) == nullptr) {
        std::fprintf(stderr, "smtp_sink: mkdtemp: %s\n", std::strerror(errno));
        return 2;
      }
      self_signed_dir = dir;
      tls_cert = self_signed_dir + "/cert.pem";
      tls_key = self_signed_dir + "/key.pem";
      if (absl::Status s =
              relay::tls::GenerateSelfSignedCertificate(config.session.hostname, tls_cert, tls_key);
          !s.ok()) {
        std::fprintf(stderr, "smtp_sink: %s\n", std::string(s.message()).c_str());
        return 2;
      }
    }
    auto context = relay::tls::ServerTlsContext::Load(tls_cert, tls_key);
    if (!self_signed_dir.empty()) {
      // Loaded into memory: the files are not needed any more.
      std::remove(tls_cert.c_str());
      std::remove(tls_key.c_str());
      rmdir(self_signed_dir.c_str());
    }
    if (!context.ok()) {
      std::fprintf(stderr, "smtp_sink: %s\n", std::string(context.status().message()).c_str());
      return 2;
    }
    config.tls = *context;
    config.session.starttls = true;
  }

  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());

  // Bind every listener here, so that port 0 resolves once and each shard then binds the same
  // port with SO_REUSEPORT.
  // Every address given with port 0 gets the port the first of them was given, so that one
  // --port-file line describes them all (a range of loopback addresses on one port).
  std::vector<std::vector<int>> shard_fds(threads);
  uint16_t shared_port = 0;
  for (SocketAddress& address : addresses) {
    if (address.port() == 0 && shared_port != 0) address.set_port(shared_port);
    for (int t = 0; t < threads; ++t) {
      auto fd = relay::io::Listen(address);
      if (!fd.ok()) {
        std::fprintf(stderr, "smtp_sink: %s\n", std::string(fd.status().message()).c_str());
        return 2;
      }
      if (address.port() == 0) {
        auto bound = relay::io::LocalAddress(*fd);
        if (bound.ok()) address.set_port(bound->port());
        shared_port = address.port();
      }
      shard_fds[t].push_back(*fd);
    }
  }
  std::string listening;
  for (const auto& a : addresses)
    absl::StrAppend(&listening, listening.empty() ? "" : " ", a.ToString());
  std::fprintf(stderr, "smtp_sink: listening on %s with %d threads%s\n", listening.c_str(), threads,
               config.tls != nullptr ? ", offering STARTTLS" : "");
  if (std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    std::string tmp = pf + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f != nullptr) {
      std::fprintf(f, "%d\n", addresses.front().port());
      std::fclose(f);
      std::rename(tmp.c_str(), pf.c_str());
    }
  }

  // Signals go to the main thread only (sigtimedwait below); shard threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::unique_ptr<ShardStats>> stats;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::thread> workers;
  std::atomic<int> ready{0};
  std::atomic<bool> failed{false};
  for (int t = 0; t < threads; ++t) {
    stats.push_back(std::make_unique<ShardStats>());
    shards.push_back(std::make_unique<Shard>(t, config, shard_fds[t], stats.back().get()));
  }
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      // The reactor is made on its own thread: the ring is single-issuer.
      absl::Status s = shards[t]->Init();
      if (!s.ok()) {
        std::fprintf(stderr, "smtp_sink: %s\n", std::string(s.message()).c_str());
        failed = true;
        ready.fetch_add(1);
        return;
      }
      ready.fetch_add(1);
      shards[t]->Run();
      shards[t]->Shutdown();
    });
  }
  while (ready.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  const int64_t start_ns = MonoNanos();
  const double max_seconds = absl::GetFlag(FLAGS_max_seconds);
  const double interval_s = absl::GetFlag(FLAGS_stats_interval_s);
  double next_stats_s = interval_s > 0 ? interval_s : 1e300;
  uint64_t last_messages = 0;
  double last_time_s = 0;
  while (!failed) {
    double elapsed = (MonoNanos() - start_ns) / 1e9;
    if (max_seconds > 0 && elapsed >= max_seconds) break;
    double wait_s = std::min(next_stats_s - elapsed, 0.2);
    if (max_seconds > 0) wait_s = std::min(wait_s, max_seconds - elapsed);
    wait_s = std::max(wait_s, 0.001);
    timespec ts{static_cast<time_t>(wait_s),
                static_cast<long>((wait_s - static_cast<time_t>(wait_s)) * 1e9)};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) break;
    elapsed = (MonoNanos() - start_ns) / 1e9;
    if (sig == SIGUSR1 || elapsed >= next_stats_s) {
      std::fprintf(stderr, "%s\n", StatsLine(stats, elapsed, &last_messages, &last_time_s).c_str());
      if (elapsed >= next_stats_s) next_stats_s += interval_s;
    }
  }
  for (auto& s : shards) s->RequestStop();
  for (auto& w : workers) w.join();
  const double wall_s = (MonoNanos() - start_ns) / 1e9;

  uint64_t messages = 0, bytes = 0, rejected = 0, connections = 0, missing = 0, tls_sessions = 0,
           tls_resumed = 0, tls_errors = 0;
  int64_t first = 0, last = 0;
  LatencyHistogram e2e;
  for (const auto& s : stats) {
    messages += s->messages.value();
    bytes += s->bytes.value();
    rejected += s->rejected.value();
    connections += s->connections.value();
    missing += s->missing_header.value();
    tls_sessions += s->tls_sessions.value();
    tls_resumed += s->tls_resumed.value();
    tls_errors += s->tls_errors.value();
    int64_t f = static_cast<int64_t>(s->first_arrival_ns.value());
    int64_t l = static_cast<int64_t>(s->last_arrival_ns.value());
    if (f > 0 && (first == 0 || f < first)) first = f;
    last = std::max(last, l);
    e2e.Merge(s->e2e_latency_ns);
  }
  if (std::string path = absl::GetFlag(FLAGS_arrivals_file); !path.empty()) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f != nullptr) {
      for (const auto& s : stats) {
        for (auto [arrival, sent] : s->arrivals) {
          std::fprintf(f, "%lld %lld\n", static_cast<long long>(arrival),
                       static_cast<long long>(sent));
        }
      }
      std::fclose(f);
    }
  }
  double span_s = last > first ? (last - first) / 1e9 : 0;
  double cpu_s = ProcessCpuSeconds();
  std::fprintf(
      stderr,
      "smtp_sink: %llu messages, %llu bytes, %llu rejected, %llu connections in %.2fs "
      "(%.0f messages/s between first and last arrival), cpu %.2fs\n"
      "smtp_sink: end-to-end latency (X-Bench-Sent to arrival) %s, %llu without the "
      "header\n"
      "smtp_sink: %llu TLS sessions (%llu resumed), %llu TLS errors\n",
      static_cast<unsigned long long>(messages), static_cast<unsigned long long>(bytes),
      static_cast<unsigned long long>(rejected), static_cast<unsigned long long>(connections),
      wall_s, span_s > 0 ? messages / span_s : 0.0, cpu_s, FormatPercentilesNanos(e2e).c_str(),
      static_cast<unsigned long long>(missing), static_cast<unsigned long long>(tls_sessions),
      static_cast<unsigned long long>(tls_resumed), static_cast<unsigned long long>(tls_errors));
  std::string json = absl::StrFormat(
      "{\"tool\":\"smtp_sink\",\"messages\":%d,\"bytes\":%d,\"rejected\":%d,\"connections\":%d,"
      "\"missing_header\":%d,\"first_arrival_ns\":%d,\"last_arrival_ns\":%d,"
      "\"arrival_rate_per_s\":%.1f,\"wall_s\":%.3f,\"cpu_s\":%.3f,\"threads\":%d,"
      "\"tls_sessions\":%d,\"tls_resumed\":%d,\"tls_errors\":%d,\"e2e_latency\":%s}",
      messages, bytes, rejected, connections, missing, first, last,
      span_s > 0 ? messages / span_s : 0.0, wall_s, cpu_s, threads, tls_sessions, tls_resumed,
      tls_errors, PercentilesJsonNanos(e2e));
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  if (std::string path = absl::GetFlag(FLAGS_json_file); !path.empty()) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f != nullptr) {
      std::fprintf(f, "%s\n", json.c_str());
      std::fclose(f);
    }
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }
