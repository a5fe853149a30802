// smtp_load: an SMTP load generator that behaves like an application submitting mail. N
// connections spread over one io_uring reactor per thread; each greets with EHLO, starts TLS when
// asked (STARTTLS, RFC 3207, or implicit TLS as on port 465, RFC 8314), authenticates with AUTH
// PLAIN when asked, and sends message after message, batching MAIL, RCPT and DATA in
// one write when the server offers PIPELINING (RFC 2920 §3.1: DATA ends a batch, the message
// waits for 354). It stops by itself at --count messages or after --duration-s, whichever comes
// first, and prints accepted messages/s, the latency from the end of the message to the reply,
// connection errors, TLS handshakes (resumed or not) and TLS errors, and every non-2xx reply
// counted by code; the last line on stdout is a JSON summary. TLS is opportunistic in the
// generator: the server's certificate is not checked (load tests use self-signed ones).
//
// Safety rule of the project: the target must be loopback or a documentation prefix routed in a
// test namespace (bench/common/address_policy.h); anything else is refused before any connect.
//
//   smtp_load --target 127.0.0.1:2525 --connections 50 --duration-s 20 --size 4096
//             --domains gmail.test:67,hotmail.test:9,yahoo.test:6,other.test:18
//   smtp_load --target 127.0.0.1:587 --starttls --auth user:password --count 1000

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/common/address_policy.h"
#include "bench/common/counter.h"
#include "bench/common/flags.h"
#include "bench/common/latency_histogram.h"
#include "bench/common/smtp_reply.h"
#include "bench/common/time.h"
#include "bench/smtp_load_message.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"

ABSL_FLAG(std::string, target, "",
          "Server address(es), comma-separated: 127.0.0.1:2525,[::1]:2525");
ABSL_FLAG(int, connections, 10, "Concurrent connections");
ABSL_FLAG(int, threads, 0, "Reactor threads (0: one per core, at most --connections)");
ABSL_FLAG(int64_t, count, 0, "Stop after this many messages (0: only --duration-s bounds the run)");
ABSL_FLAG(double, duration_s, 10, "Stop starting messages after this many seconds (> 0)");
ABSL_FLAG(double, rate, 0,
          "Target messages per second over all connections (0: as fast as possible)");
ABSL_FLAG(int, messages_per_connection, 0,
          "Messages per connection before QUIT and a new connection (0: unlimited, 1: one each)");
ABSL_FLAG(std::string, size, "4096", "Message size or mix: 4096, 4K, or 4K:80,100K:20");
ABSL_FLAG(std::string, domains, "bench.test",
          "Recipient domain mix, e.g. gmail.test:67,hotmail.test:9,yahoo.test:6,other.test:18");
ABSL_FLAG(std::string, from, "load@sender.bench.test", "Envelope sender and From address");
ABSL_FLAG(std::string, ehlo, "load.bench.test", "EHLO name");
ABSL_FLAG(std::string, auth_user, "", "AUTH PLAIN with this user (RFC 4954) after EHLO");
ABSL_FLAG(std::string, auth_password, "", "Password for --auth-user");
ABSL_FLAG(std::string, auth, "", "user:password, the same as --auth-user and --auth-password");
ABSL_FLAG(bool, pipelining, true, "Use PIPELINING when the server offers it");
ABSL_FLAG(bool, starttls, false, "STARTTLS after EHLO (RFC 3207), then EHLO again");
ABSL_FLAG(bool, implicit_tls, false, "TLS from the first byte, as on port 465 (RFC 8314)");
ABSL_FLAG(bool, tls_resume, true,
          "Offer the last TLS session of the same thread and target on a new connection");
ABSL_FLAG(int, reply_timeout_ms, 30000, "Give up on a connection whose reply takes longer");
ABSL_FLAG(double, progress_interval_s, 0, "Seconds between progress lines on stderr (0: none)");
ABSL_FLAG(std::string, json_file, "", "Also write the JSON summary to this file");
ABSL_FLAG(uint64_t, seed, 1, "Seed for sizes, domains and recipients");

namespace bench {
namespace {

using relay::io::Completion;
using relay::io::Reactor;
using relay::io::SocketAddress;
using relay::io::Timer;

constexpr size_t kRecvBufferBytes = 16 * 1024;
constexpr int kReconnectDelayMs = 100;
// After the duration, transactions in flight get this long to finish before connections are cut.
constexpr int64_t kDrainGraceMs = 10000;
constexpr int kReplyCodesMax = 600;

struct LoadConfig {
  std::vector<SocketAddress> targets;
  int connections = 10;
  int threads = 1;
  int64_t count = 0;
  double rate = 0;
  int messages_per_connection = 0;
  std::string ehlo;
  std::string auth_user;
  std::string auth_password;
  bool pipelining = true;
  bool starttls = false;
  bool implicit_tls = false;
  bool tls_resume = true;
  int reply_timeout_ms = 30000;
  const MessageFactory* messages = nullptr;
  uint64_t seed = 1;
};

// Shared by all threads.
struct Budget {
  std::atomic<int64_t> claimed{0};
  std::atomic<bool> stop{false};
  int64_t count = 0;        // 0: unlimited
  int64_t deadline_ns = 0;  // monotonic: no new message after this
  bool Spent() const {
    return stop.load(std::memory_order_relaxed) || MonoNanos() >= deadline_ns ||
           (count > 0 && claimed.load(std::memory_order_relaxed) >= count);
  }
  bool Claim() {
    if (stop.load(std::memory_order_relaxed) || MonoNanos() >= deadline_ns) return false;
    if (count == 0) return true;
    return claimed.fetch_add(1, std::memory_order_relaxed) < count;
  }
};

// Per-thread statistics: written by the shard thread, read by the main thread.
struct ShardStats {
  Counter connects;
  Counter connection_errors;
  Counter transactions;
  Counter sent;  // messages whose content was sent
  Counter accepted;
  Counter accepted_bytes;
  Counter sent_bytes;
  Counter last_accept_ns;                       // monotonic
  Counter tls_handshakes;                       // completed
  Counter tls_resumed;                          // of which resumed a session
  Counter tls_errors;                           // failed handshakes or records, no STARTTLS
  std::array<Counter, kReplyCodesMax> replies;  // non-2xx/3xx replies by code
  LatencyHistogram latency_ns;                  // end of message to its reply
  // Read only after the thread has stopped: the first text seen for each failing code.
  std::array<std::string, kReplyCodesMax> sample;
};

class Shard;

class LoadConnection : public relay::io::IoObject {
 public:
  LoadConnection(Shard* shard, const SocketAddress& target);
  bool Idle() const override {
    return !connect_.in_flight() && !recv_.in_flight() && !send_.in_flight() && !timer_.scheduled();
  }
  void Start();
  // Pacing granted a message: start the transaction.
  void Go();
  // The hard stop: drop the connection without waiting.
  void Abort();
  bool closed() const { return closed_; }

 private:
  enum class Expect {
    kGreeting,
    kEhlo,
    kStartTls,
    kTlsHandshake,  // not a reply: the handshake's end, bounded by the same timeout
    kAuth,
    kMail,
    kRcpt,
    kData,
    kDataEnd,
    kRset,
    kQuit
  };

  void OnConnect(int result);
  void OnRecv(int result);
  void OnSent(int result);
  void OnTimeout();
  void HandleReply(const SmtpReply& reply);
  void HandlePlaintext(std::string_view bytes);
  void StartTls();
  void TlsFailed(absl::string_view why);
  void Send(std::string_view bytes);
  void Flush();
  void Expecting(Expect e);
  void NextMessage();
  void SendRcpt();
  void SendData();
  void Quit();
  void Fail(const char* why);
  // Closes the socket; with `reconnect_delay_ms` >= 0 a new connection follows after that delay
  // unless the run is over.
  void Close(int reconnect_delay_ms);
  void CountReply(const SmtpReply& reply);

  Shard* shard_;
  SocketAddress target_;
  int fd_ = -1;
  Completion connect_;
  Completion recv_;
  Completion send_;
  Timer timer_;  // reply timeout, or the reconnect delay while closed
  std::unique_ptr<char[]> recv_buffer_;
  SmtpReplyReader reader_;
  std::deque<Expect> expects_;
  std::string out_;
  size_t out_sent_ = 0;
  std::string pending_;  // plaintext not yet handed to the socket (or to TLS)
  std::unique_ptr<relay::tls::TlsStream> tls_;
  std::string plaintext_in_;  // decrypted bytes of the current read
  BuiltMessage message_;
  bool pipelining_ = false;
  bool txn_failed_ = false;
  bool closed_ = true;
  bool reconnect_pending_ = false;
  bool give_up_ = false;
  bool reserved_ = false;  // a message of the budget is claimed for this connection
  int messages_here_ = 0;
  int64_t data_end_ns_ = 0;
};

class Shard {
 public:
  Shard(int index, const LoadConfig& config, Budget* budget, ShardStats* stats, int connections)
      : index_(index),
        config_(config),
        budget_(budget),
        stats_(stats),
        connection_count_(connections),
        rng_(config.seed * 1000003 + index) {
    if (config.rate > 0) {
      interval_ns_ = static_cast<int64_t>(1e9 * config.threads / config.rate);
    }
  }

  absl::Status Init() {
    relay::SetThreadLogTag(absl::StrCat("load", index_));
    ASSIGN_OR_RETURN(reactor_, Reactor::Create({}));
    if (config_.starttls || config_.implicit_tls) {
      relay::tls::ClientTlsContext::Options options;
      options.ca_file.clear();  // test servers have self-signed certificates: nothing to verify
      options.check_host_name = false;
      ASSIGN_OR_RETURN(tls_, relay::tls::ClientTlsContext::Create(options));
    }
    pace_timer_.set_callback([this] { ReleasePaced(); });
    for (int i = 0; i < connection_count_; ++i) {
      const SocketAddress& t =
          config_.targets[(index_ + i * config_.threads) % config_.targets.size()];
      connections_.push_back(std::make_unique<LoadConnection>(this, t));
    }
    return absl::OkStatus();
  }

  // Called on the main thread before any shard runs: every connection holds its first message, so
  // a short run bounded by a count opens all --connections even when one thread's connections
  // could send the whole count before another thread has started.
  void ReserveFirstMessages() {
    for (int i = 0; i < connection_count_ && budget_->Claim(); ++i) ++reserved_first_;
  }
  // One of those, for a connection's first Start(); false when none is left.
  bool TakeReservedFirst() {
    if (reserved_first_ == 0) return false;
    --reserved_first_;
    return true;
  }

  void Run() {
    for (auto& c : connections_) c->Start();
    const int64_t hard_stop_ms =
        reactor_->NowMs() + (budget_->deadline_ns - MonoNanos()) / 1000000 + kDrainGraceMs;
    int64_t last_check_ms = 0;
    while (true) {
      reactor_->RunOnce(100);
      // Looking at every connection costs O(connections): do it a few times a second only.
      if (reactor_->NowMs() - last_check_ms < 20) continue;
      last_check_ms = reactor_->NowMs();
      bool all_closed = true;
      for (auto& c : connections_) all_closed = all_closed && c->closed() && c->Idle();
      if (all_closed) break;
      if (reactor_->NowMs() >= hard_stop_ms) {
        relay::LogWarning() << "transactions still open " << kDrainGraceMs
                            << " ms after the end: cutting connections";
        for (auto& c : connections_) c->Abort();
        for (int i = 0; i < 500; ++i) {
          bool idle = true;
          for (auto& c : connections_) idle = idle && c->Idle();
          if (idle) break;
          reactor_->RunOnce(10);
        }
        break;
      }
    }
    if (pace_timer_.scheduled()) reactor_->timers().Cancel(&pace_timer_);
    connections_.clear();
    reactor_.reset();
  }

  static constexpr int64_t kPaceCatchUpNs = 1500000;

  // A connection wants to start a message; false when the budget is spent. With a target rate
  // the connection may be parked and started later through Go().
  bool ClaimMessage() { return budget_->Claim(); }
  bool RequestMessage(LoadConnection* c, bool claimed) {
    if (!claimed && !budget_->Claim()) return false;
    if (interval_ns_ == 0) {
      c->Go();
      return true;
    }
    waiting_.push_back(c);
    ReleasePaced();
    return true;
  }

  void ReleasePaced() {
    int64_t now = MonoNanos();
    // Catch-up of at most one interval or one timer tick and a half (the timers have 1 ms
    // granularity), whichever is longer: a stall is not followed by a burst, and rates above one
    // message per millisecond are still reached (with one interval only, a 1 ms wake-up released
    // at most two messages: a 4,800/s target ran at 2,600/s).
    const int64_t catch_up_ns = std::max<int64_t>(interval_ns_, kPaceCatchUpNs);
    if (next_ns_ < now - catch_up_ns) next_ns_ = now - catch_up_ns;
    while (!waiting_.empty() && next_ns_ <= now) {
      LoadConnection* c = waiting_.front();
      waiting_.pop_front();
      next_ns_ += interval_ns_;
      c->Go();
    }
    if (!waiting_.empty() && !pace_timer_.scheduled()) {
      int64_t delay_ms = std::max<int64_t>(1, (next_ns_ - now + 999999) / 1000000);
      reactor_->timers().ScheduleAfter(&pace_timer_, delay_ms);
    }
  }

  void Forget(LoadConnection* c) {
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), c), waiting_.end());
  }

  Reactor* reactor() { return reactor_.get(); }
  relay::tls::ClientTlsContext* tls() { return tls_.get(); }
  const LoadConfig& config() const { return config_; }
  ShardStats* stats() { return stats_; }
  std::mt19937_64& rng() { return rng_; }
  int index() const { return index_; }
  uint64_t NextSeq() { return seq_++; }
  // No new message will be started: stop asked, duration over, or the count used up.
  bool draining() const { return budget_->Spent(); }

 private:
  const int index_;
  const LoadConfig& config_;
  Budget* budget_;
  int reserved_first_ = 0;  // messages claimed for first connections before the threads ran
  ShardStats* stats_;
  const int connection_count_;
  std::mt19937_64 rng_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<relay::tls::ClientTlsContext> tls_;  // outlives the connections (cleared first)
  std::vector<std::unique_ptr<LoadConnection>> connections_;
  int64_t interval_ns_ = 0;
  int64_t next_ns_ = 0;
  std::deque<LoadConnection*> waiting_;
  Timer pace_timer_;
  uint64_t seq_ = 0;
};

LoadConnection::LoadConnection(Shard* shard, const SocketAddress& target)
    : shard_(shard), target_(target), recv_buffer_(new char[kRecvBufferBytes]) {
  connect_.set_handler([this](int result, uint32_t) { OnConnect(result); });
  recv_.set_handler([this](int result, uint32_t) { OnRecv(result); });
  send_.set_handler([this](int result, uint32_t) { OnSent(result); });
  timer_.set_callback([this] { OnTimeout(); });
}

void LoadConnection::Start() {
  reconnect_pending_ = false;
  if (give_up_) return;
  // The first message is claimed before connecting, so that a run bounded by a count opens no
  // connection that would find the budget spent after its EHLO.
  if (!reserved_) reserved_ = shard_->TakeReservedFirst() || shard_->ClaimMessage();
  if (!reserved_) return;
  fd_ = socket(target_.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    shard_->stats()->connection_errors.Add();
    relay::LogError() << "socket: " << std::strerror(errno);
    give_up_ = true;
    return;
  }
  int one = 1;
  // Commands are small and the reply latency is what is measured: no Nagle delay.
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  closed_ = false;
  reader_.Clear();
  expects_.clear();
  out_.clear();
  pending_.clear();
  out_sent_ = 0;
  messages_here_ = 0;
  pipelining_ = false;
  tls_.reset();
  shard_->reactor()->Connect(fd_, target_.get(), target_.length, &connect_);
  if (shard_->config().implicit_tls) {
    Expecting(Expect::kTlsHandshake);
  } else {
    Expecting(Expect::kGreeting);
  }
}

void LoadConnection::OnConnect(int result) {
  if (closed_) return;
  if (result < 0) {
    if (shard_->stats()->connection_errors.value() < 5) {
      relay::LogWarning() << "connect " << target_.ToString() << ": " << std::strerror(-result);
    }
    Fail(nullptr);
    return;
  }
  shard_->stats()->connects.Add();
  if (shard_->config().implicit_tls) {
    StartTls();
    if (closed_) return;
  }
  shard_->reactor()->Recv(fd_, recv_buffer_.get(), kRecvBufferBytes, &recv_);
}

void LoadConnection::StartTls() {
  relay::tls::ClientTlsContext* context = shard_->tls();
  // The session cache is keyed by the host: the target's address.
  std::string host = target_.ToString();
  if (!shard_->config().tls_resume) context->session_cache().Erase(host);
  auto stream = relay::tls::TlsStream::NewClient(*context, host);
  if (!stream.ok()) {
    TlsFailed(stream.status().message());
    return;
  }
  tls_ = std::move(*stream);
  if (absl::Status s = tls_->Start(); !s.ok()) {
    TlsFailed(s.message());
    return;
  }
  Flush();  // the ClientHello
}

void LoadConnection::TlsFailed(absl::string_view why) {
  ShardStats* st = shard_->stats();
  st->tls_errors.Add();
  if (st->tls_errors.value() <= 5) {
    relay::LogWarning() << target_.ToString() << ": TLS: " << why;
  }
  if (tls_ != nullptr) Flush();  // the alert, if any, goes out before the close when it can
  Fail(nullptr);
}

void LoadConnection::Expecting(Expect e) {
  expects_.push_back(e);
  if (!timer_.scheduled()) {
    shard_->reactor()->timers().ScheduleAfter(&timer_, shard_->config().reply_timeout_ms);
  }
}

void LoadConnection::OnTimeout() {
  if (closed_) {
    if (!reconnect_pending_) return;
    if (connect_.in_flight() || recv_.in_flight() || send_.in_flight()) {
      // The old socket's operations have not all come back yet: the completions are reused.
      shard_->reactor()->timers().ScheduleAfter(&timer_, 1);
      return;
    }
    Start();
    return;
  }
  Fail("reply timeout");
}

void LoadConnection::OnRecv(int result) {
  if (closed_) return;
  if (result <= 0) {
    if (result == 0 && !expects_.empty() && expects_.front() == Expect::kQuit) {
      Close(/*reconnect_delay_ms=*/0);
      return;
    }
    Fail(result == 0 ? "connection closed by the server" : std::strerror(-result));
    return;
  }
  std::string_view bytes(recv_buffer_.get(), static_cast<size_t>(result));
  if (tls_ == nullptr) {
    HandlePlaintext(bytes);
  } else {
    plaintext_in_.clear();
    absl::Status s =
        tls_->OnCiphertext(absl::string_view(bytes.data(), bytes.size()), &plaintext_in_);
    if (!s.ok()) {
      TlsFailed(s.message());
      return;
    }
    if (!expects_.empty() && expects_.front() == Expect::kTlsHandshake && tls_->established()) {
      ShardStats* st = shard_->stats();
      st->tls_handshakes.Add();
      if (tls_->session_reused()) st->tls_resumed.Add();
      expects_.pop_front();
      shard_->reactor()->timers().Cancel(&timer_);
      if (shard_->config().implicit_tls) {
        Expecting(Expect::kGreeting);
      } else {
        // RFC 3207 §4.2: the client discards what it knew from the first EHLO and says it again.
        Send(absl::StrCat("EHLO ", shard_->config().ehlo, "\r\n"));
        Expecting(Expect::kEhlo);
      }
    }
    if (!closed_ && !plaintext_in_.empty()) HandlePlaintext(plaintext_in_);
    if (!closed_) Flush();  // handshake flights
  }
  if (!closed_ && !recv_.in_flight()) {
    shard_->reactor()->Recv(fd_, recv_buffer_.get(), kRecvBufferBytes, &recv_);
  }
}

void LoadConnection::HandlePlaintext(std::string_view bytes) {
  reader_.Append(bytes);
  while (!closed_) {
    SmtpReply reply;
    bool complete = false;
    absl::Status s = reader_.Next(&reply, &complete);
    if (!s.ok()) {
      relay::LogWarning() << "from " << target_.ToString() << ": " << s.message();
      Fail(nullptr);
      return;
    }
    if (!complete) break;
    HandleReply(reply);
  }
}

void LoadConnection::CountReply(const SmtpReply& reply) {
  ShardStats* st = shard_->stats();
  if (reply.code > 0 && reply.code < kReplyCodesMax) {
    st->replies[reply.code].Add();
    if (st->sample[reply.code].empty()) st->sample[reply.code] = reply.Summary();
  }
}

void LoadConnection::HandleReply(const SmtpReply& reply) {
  if (expects_.empty()) {
    relay::LogWarning() << "unexpected reply from " << target_.ToString() << ": "
                        << reply.Summary();
    Fail(nullptr);
    return;
  }
  Expect e = expects_.front();
  expects_.pop_front();
  if (expects_.empty()) {
    shard_->reactor()->timers().Cancel(&timer_);
  } else {
    shard_->reactor()->timers().ScheduleAfter(&timer_, shard_->config().reply_timeout_ms);
  }
  const LoadConfig& config = shard_->config();
  const bool ok = reply.code / 100 == 2;
  switch (e) {
    case Expect::kGreeting:
      if (reply.code != 220) {
        CountReply(reply);
        Fail(nullptr);
        return;
      }
      Send(absl::StrCat("EHLO ", config.ehlo, "\r\n"));
      Expecting(Expect::kEhlo);
      return;
    case Expect::kEhlo: {
      if (!ok) {
        CountReply(reply);
        Fail(nullptr);
        return;
      }
      bool auth_plain = false;
      bool starttls = false;
      for (size_t i = 1; i < reply.lines.size(); ++i) {
        std::string kw = absl::AsciiStrToUpper(reply.lines[i]);
        if (kw == "PIPELINING") pipelining_ = config.pipelining;
        if (kw == "STARTTLS") starttls = true;
        if (absl::StartsWith(kw, "AUTH") &&
            (absl::StrContains(kw, " PLAIN") || absl::StrContains(kw, "=PLAIN"))) {
          auth_plain = true;
        }
      }
      if (config.starttls && tls_ == nullptr) {
        if (!starttls) {
          relay::LogError() << target_.ToString() << " does not offer STARTTLS";
          shard_->stats()->tls_errors.Add();
          give_up_ = true;
          Fail(nullptr);
          return;
        }
        Send("STARTTLS\r\n");
        Expecting(Expect::kStartTls);
        return;
      }
      if (!config.auth_user.empty()) {
        if (!auth_plain) {
          relay::LogError() << target_.ToString() << " does not offer AUTH PLAIN";
          give_up_ = true;
          Fail(nullptr);
          return;
        }
        // RFC 4616: authzid NUL authcid NUL passwd, as the initial response (RFC 4954 §4).
        std::string creds = absl::StrCat(std::string(1, '\0'), config.auth_user,
                                         std::string(1, '\0'), config.auth_password);
        Send(absl::StrCat("AUTH PLAIN ", absl::Base64Escape(creds), "\r\n"));
        Expecting(Expect::kAuth);
        return;
      }
      NextMessage();
      return;
    }
    case Expect::kStartTls:
      if (reply.code != 220) {
        CountReply(reply);
        TlsFailed(reply.Summary());
        return;
      }
      // RFC 3207 §4: nothing the server sent before its 220 may be used after the handshake.
      reader_.Clear();
      Expecting(Expect::kTlsHandshake);
      StartTls();
      return;
    case Expect::kTlsHandshake:
      // OnRecv takes this expectation off when the handshake completes; a reply cannot be here.
      relay::LogWarning() << "reply during the TLS handshake from " << target_.ToString();
      Fail(nullptr);
      return;
    case Expect::kAuth:
      if (reply.code != 235) {
        CountReply(reply);
        relay::LogError() << "AUTH PLAIN refused: " << reply.Summary();
        give_up_ = true;
        Fail(nullptr);
        return;
      }
      NextMessage();
      return;
    case Expect::kMail:
      if (!ok) {
        CountReply(reply);
        txn_failed_ = true;
      }
      if (!pipelining_) {
        if (txn_failed_) {
          Send("RSET\r\n");
          Expecting(Expect::kRset);
        } else {
          SendRcpt();
        }
      }
      return;
    case Expect::kRcpt:
      if (!ok) {
        // After a refused MAIL the RCPT's 503 is a consequence, not a new refusal.
        if (!txn_failed_) CountReply(reply);
        txn_failed_ = true;
      }
      if (!pipelining_) {
        if (txn_failed_) {
          Send("RSET\r\n");
          Expecting(Expect::kRset);
        } else {
          SendData();
        }
      }
      return;
    case Expect::kData:
      if (reply.code == 354) {
        if (txn_failed_) {
          // RFC 2920 §3.1: DATA accepted although a recipient failed; send an empty message
          // the server will refuse or drop, and count nothing for it.
          Send(".\r\n");
          Expecting(Expect::kRset);
          return;
        }
        Send(message_.wire);
        data_end_ns_ = MonoNanos();
        shard_->stats()->sent.Add();
        shard_->stats()->sent_bytes.Add(message_.content_bytes);
        Expecting(Expect::kDataEnd);
        return;
      }
      if (!txn_failed_) CountReply(reply);  // a DATA refused only because RCPT failed is not new
      Send("RSET\r\n");
      Expecting(Expect::kRset);
      return;
    case Expect::kDataEnd:
      shard_->stats()->latency_ns.Record(MonoNanos() - data_end_ns_);
      if (ok) {
        shard_->stats()->accepted.Add();
        shard_->stats()->accepted_bytes.Add(message_.content_bytes);
        shard_->stats()->last_accept_ns.Set(MonoNanos());
      } else {
        CountReply(reply);
      }
      NextMessage();
      return;
    case Expect::kRset:
      NextMessage();
      return;
    case Expect::kQuit:
      Close(/*reconnect_delay_ms=*/0);
      return;
  }
}

void LoadConnection::NextMessage() {
  const int per_connection = shard_->config().messages_per_connection;
  if (per_connection > 0 && messages_here_ >= per_connection) {
    Quit();
    return;
  }
  bool claimed = reserved_;
  reserved_ = false;
  if (!shard_->RequestMessage(this, claimed)) {
    give_up_ = true;  // the budget is spent: no new connection either
    Quit();
  }
}

void LoadConnection::Go() {
  if (closed_) return;
  ++messages_here_;
  txn_failed_ = false;
  shard_->stats()->transactions.Add();
  shard_->config().messages->Build(shard_->NextSeq(), shard_->index(), shard_->rng(), &message_);
  const std::string& from = shard_->config().messages->from();
  if (pipelining_) {
    Send(absl::StrCat("MAIL FROM:<", from, ">\r\nRCPT TO:<", message_.rcpt, ">\r\nDATA\r\n"));
    Expecting(Expect::kMail);
    Expecting(Expect::kRcpt);
    Expecting(Expect::kData);
  } else {
    Send(absl::StrCat("MAIL FROM:<", from, ">\r\n"));
    Expecting(Expect::kMail);
  }
}

void LoadConnection::SendRcpt() {
  Send(absl::StrCat("RCPT TO:<", message_.rcpt, ">\r\n"));
  Expecting(Expect::kRcpt);
}

void LoadConnection::SendData() {
  Send("DATA\r\n");
  Expecting(Expect::kData);
}

void LoadConnection::Quit() {
  Send("QUIT\r\n");
  Expecting(Expect::kQuit);
}

void LoadConnection::Send(std::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  Flush();
}

void LoadConnection::Flush() {
  if (closed_ || send_.in_flight()) return;
  out_sent_ = 0;
  if (tls_ == nullptr) {
    if (pending_.empty()) return;
    out_.swap(pending_);
    pending_.clear();
  } else {
    if (tls_->established() && !pending_.empty()) {
      auto taken = tls_->Write(pending_);
      if (taken.ok()) pending_.erase(0, *taken);
    }
    absl::string_view cipher = tls_->PendingCiphertext();
    if (cipher.empty()) return;
    out_.assign(cipher.data(), cipher.size());
    tls_->ConsumeCiphertext(cipher.size());
  }
  shard_->reactor()->Send(fd_, out_.data(), out_.size(), &send_);
}

void LoadConnection::OnSent(int result) {
  if (closed_) return;
  if (result < 0) {
    Fail(std::strerror(-result));
    return;
  }
  out_sent_ += static_cast<size_t>(result);
  if (out_sent_ < out_.size()) {
    shard_->reactor()->Send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, &send_);
    return;
  }
  out_.clear();
  Flush();
}

void LoadConnection::Fail(const char* why) {
  if (closed_) return;
  shard_->stats()->connection_errors.Add();
  if (why != nullptr && shard_->stats()->connection_errors.value() <= 5) {
    relay::LogWarning() << target_.ToString() << ": " << why;
  }
  Close(kReconnectDelayMs);
}

void LoadConnection::Close(int reconnect_delay_ms) {
  if (closed_) return;
  closed_ = true;
  shard_->Forget(this);
  if (timer_.scheduled()) shard_->reactor()->timers().Cancel(&timer_);
  shard_->reactor()->Cancel(&connect_);
  shard_->reactor()->Cancel(&recv_);
  shard_->reactor()->Cancel(&send_);
  shard_->reactor()->Close(fd_);
  fd_ = -1;
  tls_.reset();
  if (reconnect_delay_ms >= 0 && !give_up_ && !shard_->draining()) {
    // The new socket waits until every operation of the old one has come back (OnTimeout).
    reconnect_pending_ = true;
    shard_->reactor()->timers().ScheduleAfter(&timer_, reconnect_delay_ms);
  }
}

void LoadConnection::Abort() {
  give_up_ = true;
  if (reconnect_pending_ && timer_.scheduled()) shard_->reactor()->timers().Cancel(&timer_);
  reconnect_pending_ = false;
  Close(/*reconnect_delay_ms=*/-1);
}

std::string RepliesJson(const std::vector<std::unique_ptr<ShardStats>>& stats, std::string* human) {
  std::string json = "{";
  for (int code = 0; code < kReplyCodesMax; ++code) {
    uint64_t n = 0;
    std::string sample;
    for (const auto& s : stats) {
      n += s->replies[code].value();
      if (sample.empty()) sample = s->sample[code];
    }
    if (n == 0) continue;
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"", code, "\":", n);
    absl::StrAppend(human, "  ", n, " x ", sample, "\n");
  }
  return json + "}";
}

int Main(int argc, char** argv) {
  CommandLine command_line(argc, argv, {});
  absl::SetProgramUsageMessage(
      "SMTP load generator.\n  smtp_load --target 127.0.0.1:2525 --connections 50 "
      "--duration-s 20 [--count N] [--rate R] [--size 4K] [--domains d1:w1,d2:w2]");
  absl::ParseCommandLine(command_line.argc(), command_line.argv());

  LoadConfig config;
  std::string targets = absl::GetFlag(FLAGS_target);
  if (targets.empty()) {
    std::fprintf(stderr, "smtp_load: --target is required\n");
    return 2;
  }
  for (absl::string_view t : absl::StrSplit(targets, ',', absl::SkipWhitespace())) {
    auto a = SocketAddress::Parse(std::string(t));
    if (!a.ok()) {
      std::fprintf(stderr, "smtp_load: --target %s: %s\n", std::string(t).c_str(),
                   std::string(a.status().message()).c_str());
      return 2;
    }
    if (a->port() == 0) {
      std::fprintf(stderr, "smtp_load: --target %s needs a port\n", std::string(t).c_str());
      return 2;
    }
    if (absl::Status s = CheckBenchDestination(*a); !s.ok()) {
      std::fprintf(stderr, "smtp_load: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    config.targets.push_back(*a);
  }
  config.starttls = absl::GetFlag(FLAGS_starttls);
  config.implicit_tls = absl::GetFlag(FLAGS_implicit_tls);
  config.tls_resume = absl::GetFlag(FLAGS_tls_resume);
  if (config.starttls && config.implicit_tls) {
    std::fprintf(stderr, "smtp_load: --starttls and --implicit-tls exclude each other\n");
    return 2;
  }
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  if (!(duration_s > 0)) {
    std::fprintf(stderr, "smtp_load: --duration-s must be > 0 (the run always ends by itself)\n");
    return 2;
  }
  config.connections = std::max(1, absl::GetFlag(FLAGS_connections));
  config.threads = absl::GetFlag(FLAGS_threads);
  if (config.threads <= 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
  config.threads = std::min(config.threads, config.connections);
  config.count = std::max<int64_t>(0, absl::GetFlag(FLAGS_count));
  config.rate = std::max(0.0, absl::GetFlag(FLAGS_rate));
  config.messages_per_connection = std::max(0, absl::GetFlag(FLAGS_messages_per_connection));
  config.ehlo = absl::GetFlag(FLAGS_ehlo);
  config.auth_user = absl::GetFlag(FLAGS_auth_user);
  config.auth_password = absl::GetFlag(FLAGS_auth_password);
  if (std::string auth = absl::GetFlag(FLAGS_auth); !auth.empty()) {
    size_t colon = auth.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "smtp_load: --auth wants user:password\n");
      return 2;
    }
    config.auth_user = auth.substr(0, colon);
    config.auth_password = auth.substr(colon + 1);
  }
  config.pipelining = absl::GetFlag(FLAGS_pipelining);
  config.reply_timeout_ms = std::max(1, absl::GetFlag(FLAGS_reply_timeout_ms));
  config.seed = absl::GetFlag(FLAGS_seed);
  MessageOptions message_options;
  message_options.sizes = absl::GetFlag(FLAGS_size);
  message_options.domains = absl::GetFlag(FLAGS_domains);
  message_options.from = absl::GetFlag(FLAGS_from);
  auto factory = MessageFactory::Create(message_options);
  if (!factory.ok()) {
    std::fprintf(stderr, "smtp_load: %s\n", std::string(factory.status().message()).c_str());
    return 2;
  }
  config.messages = &*factory;
  if (absl::Status probe = Reactor::ProbeKernel(); !probe.ok()) {
    std::fprintf(stderr, "smtp_load: %s\n", std::string(probe.message()).c_str());
    return 3;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Budget budget;
  budget.count = config.count;
  const int64_t start_ns = MonoNanos();
  const double cpu_start_s = ProcessCpuSeconds();
  budget.deadline_ns = start_ns + static_cast<int64_t>(duration_s * 1e9);
  std::vector<std::unique_ptr<ShardStats>> stats;
  std::vector<std::unique_ptr<Shard>> shards;
  for (int t = 0; t < config.threads; ++t) {
    int n = config.connections / config.threads + (t < config.connections % config.threads);
    stats.push_back(std::make_unique<ShardStats>());
    shards.push_back(std::make_unique<Shard>(t, config, &budget, stats.back().get(), n));
  }
  for (auto& shard : shards) shard->ReserveFirstMessages();
  std::atomic<int> running{config.threads};
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < config.threads; ++t) {
    workers.emplace_back([&, t] {
      absl::Status s = shards[t]->Init();  // on this thread: the ring is single-issuer
      if (!s.ok()) {
        std::fprintf(stderr, "smtp_load: %s\n", std::string(s.message()).c_str());
        failed = true;
      } else {
        shards[t]->Run();
      }
      running.fetch_sub(1);
    });
  }
  const double progress_s = absl::GetFlag(FLAGS_progress_interval_s);
  double next_progress = progress_s > 0 ? progress_s : 1e300;
  while (running.load() > 0) {
    timespec ts{0, 50 * 1000000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) budget.stop = true;
    double elapsed = (MonoNanos() - start_ns) / 1e9;
    if (elapsed >= next_progress) {
      uint64_t accepted = 0, errors = 0;
      for (const auto& s : stats) {
        accepted += s->accepted.value();
        errors += s->connection_errors.value();
      }
      std::fprintf(stderr, "smtp_load: t=%.1fs accepted=%llu (%.0f/s) connection_errors=%llu\n",
                   elapsed, static_cast<unsigned long long>(accepted), accepted / elapsed,
                   static_cast<unsigned long long>(errors));
      next_progress += progress_s;
    }
  }
  for (auto& w : workers) w.join();
  const double wall_s = (MonoNanos() - start_ns) / 1e9;
  const double cpu_s = ProcessCpuSeconds() - cpu_start_s;

  uint64_t connects = 0, errors = 0, transactions = 0, sent = 0, accepted = 0, accepted_bytes = 0,
           sent_bytes = 0, tls_handshakes = 0, tls_resumed = 0, tls_errors = 0;
  int64_t last_accept = 0;
  LatencyHistogram latency;
  for (const auto& s : stats) {
    connects += s->connects.value();
    errors += s->connection_errors.value();
    transactions += s->transactions.value();
    sent += s->sent.value();
    accepted += s->accepted.value();
    accepted_bytes += s->accepted_bytes.value();
    sent_bytes += s->sent_bytes.value();
    tls_handshakes += s->tls_handshakes.value();
    tls_resumed += s->tls_resumed.value();
    tls_errors += s->tls_errors.value();
    last_accept = std::max<int64_t>(last_accept, s->last_accept_ns.value());
    latency.Merge(s->latency_ns);
  }
  // The rate over the time in which messages were being accepted (not the final QUITs).
  double active_s = last_accept > start_ns ? (last_accept - start_ns) / 1e9 : wall_s;
  double rate = accepted / active_s;
  std::string human_replies;
  std::string replies = RepliesJson(stats, &human_replies);
  std::fprintf(stderr,
               "smtp_load: %llu accepted of %llu sent (%llu transactions) in %.2fs: %.1f "
               "messages/s accepted\n"
               "smtp_load: end of message to reply: %s\n"
               "smtp_load: %llu connections, %llu connection errors, cpu %.2fs (%.1f%% of one "
               "core)\n"
               "smtp_load: %llu TLS handshakes (%llu resumed), %llu TLS errors\n%s%s",
               static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(sent),
               static_cast<unsigned long long>(transactions), active_s, rate,
               FormatPercentilesNanos(latency).c_str(), static_cast<unsigned long long>(connects),
               static_cast<unsigned long long>(errors), cpu_s, 100 * cpu_s / wall_s,
               static_cast<unsigned long long>(tls_handshakes),
               static_cast<unsigned long long>(tls_resumed),
               static_cast<unsigned long long>(tls_errors),
               human_replies.empty() ? "" : "smtp_load: replies other than 2xx/3xx:\n",
               human_replies.c_str());
  std::string json = absl::StrFormat(
      "{\"tool\":\"smtp_load\",\"targets\":\"%s\",\"connections\":%d,\"threads\":%d,"
      "\"transactions\":%d,\"sent\":%d,\"accepted\":%d,\"sent_bytes\":%d,\"accepted_bytes\":%d,"
      "\"active_s\":%.3f,\"wall_s\":%.3f,\"accepted_per_s\":%.1f,\"connects\":%d,"
      "\"connection_errors\":%d,\"cpu_s\":%.3f,\"tls_handshakes\":%d,\"tls_resumed\":%d,"
      "\"tls_errors\":%d,\"latency\":%s,\"replies\":%s}",
      targets, config.connections, config.threads, transactions, sent, accepted, sent_bytes,
      accepted_bytes, active_s, wall_s, rate, connects, errors, cpu_s, tls_handshakes, tls_resumed,
      tls_errors, PercentilesJsonNanos(latency), replies);
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
