// The I/O driver of one outbound SMTP connection: connects from its ready queue's egress source to
// the site's candidates in order (next MX / next address on failure), runs the client protocol
// state machine (relay/smtp/client_session.h) over io_uring and, after STARTTLS, a client
// TlsStream; streams each message's body straight from the spool's mapping through a DotStuffer
// (no per-connection copy of the message in plain text; with TLS the bytes are copied once, into
// the encryption), and reports one outcome per recipient to the engine. It takes jobs from its
// ready queue until messages_per_connection_max, lingers idle_connection_ms for more, then quits.
// With PIPELINING (RFC 2920 §3.1) the next job is taken while a body is being sent, and its
// MAIL/RCPT/DATA go out in the same writev as the body's last segments (or, when they do not fit,
// in the write that follows), before the body's final reply: one round trip per message on a busy
// connection instead of two. At most two jobs are held then: the one whose final reply is awaited
// and the pipelined one; a lost connection records both as deferred.
//
// Shard thread only; owned by the engine and retired through the reactor once none of its
// operations is in flight.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "relay/delivery/engine.h"
#include "relay/io/reactor.h"
#include "relay/smtp/client_session.h"
#include "relay/smtp/dot_stuffer.h"
#include "relay/tls/tls_stream.h"

namespace relay::delivery {

class OutboundConnection : public io::IoObject {
 public:
  OutboundConnection(DeliveryEngine* engine, ReadyQueue* queue);
  ~OutboundConnection() override;

  void Start();
  // Idle in the protocol holding no job, or sending a body with PIPELINING and nothing pipelined
  // behind it yet: may take one.
  bool WaitingForWork() const;
  // Work may be waiting in the queue: take it if idle.
  void Kick();
  // Finish the message in progress, then QUIT.
  void StopAfterCurrent();
  // Close now (shutdown grace over); a message in progress is recorded as deferred.
  void Abort() { Close(); }
  bool Idle() const override;
  ReadyQueue* queue() const { return queue_; }
  // Its fleet lease was given back before it closed (DeliveryEngine::QuitForFleet).
  bool lease_returned() const { return lease_returned_; }
  void set_lease_returned() { lease_returned_ = true; }
  // Calls f(job) for the jobs it holds (the one being sent and the one pipelined behind it).
  template <typename F>
  void ForEachJob(F f) const {
    if (job_ != nullptr) f(*job_);
    if (next_job_ != nullptr) f(*next_job_);
  }

 private:
  void ConnectNext(std::string why);
  void OnConnected(int result);
  void ArmRecv();
  void OnRecv(int result, uint32_t flags);
  void OnData(std::string_view bytes);
  void Apply(const smtp::ClientActions& actions);
  // The timer part of `actions` alone.
  void ApplyTimer(const smtp::ClientActions& actions);
  void StartTls();
  void TakeWork();
  // Idle in the protocol and holding no job (lingering for reuse).
  bool IdleWithoutWork() const;
  // The session can take a pipelined message now and the limits allow one more.
  bool CanPipeline() const;
  // The oldest job's outcomes (the session finishes messages in order): record, release, and the
  // pipelined job becomes the oldest.
  void FinishJob(const std::vector<smtp::Outcome>& outcomes);
  // Starts the next send: TLS records, the plain body's next segments (writev), or commands.
  void Flush();
  // sending_ = the TLS records waiting to go out.
  void TakeCiphertext();
  // Starts a writev of the plain body's next segments (and the next commands once it is done);
  // false when there is nothing to write.
  bool WriteBodyPlain();
  // Puts the pending commands and up to kBodyBytesPerWrite of body through TLS into sending_;
  // false when the connection failed instead.
  bool EncryptForSending(bool body_streaming);
  void OnSent(int result);
  void OnTimer();
  void ReleaseJob(std::unique_ptr<Job>& job);
  // A job this connection may not carry is deferred with the reason and released (true): its
  // domain's MTA-STS policy in enforce mode asks for what the connection lacks (engine
  // StsRequirement), or it has no TLS and the domain is in the downgrade memory
  // (TlsRequirement). The job is pinned.
  bool RefusedForTls(std::unique_ptr<Job>& job);
  // Counts this session for `job`'s policy domain in the TLS reports: a success (no failure) or
  // a failure of that type, once per session and domain.
  void ReportSession(const Job& job, std::optional<tlspolicy::TlsFailure> failure,
                     std::string additional);
  static tlspolicy::TlsFailure CertificateFailure(long verify_result);
  // The sender's DSN parameters (RFC 3461) of `job`'s recipients, passed on when the server
  // offers DSN.
  static void AddDsnParameters(const queue::MessageInfo& info, const Job& job,
                               smtp::OutgoingMessage* message);
  void Close();

  DeliveryEngine* const engine_;
  io::Reactor* const reactor_;
  ReadyQueue* const queue_;
  size_t candidate_ = 0;          // index of the candidate being tried / connected
  // The candidate of the session in progress (candidate_ may already point past the last one
  // when the session ends).
  const dns::Candidate& current_candidate() const {
    return queue_->candidates()[std::min(candidate_, queue_->candidates().size() - 1)];
  }
  int fd_ = -1;
  std::optional<smtp::ClientSession> session_;
  std::unique_ptr<tls::TlsStream> tls_;
  std::string last_error_;        // why the previous candidate failed
  std::string tls_failure_;       // why STARTTLS failed, when this candidate goes on without TLS
  // The TLSA records this connection's certificate was last checked against, and the verdict.
  std::vector<tlspolicy::TlsaRecord> dane_checked_;
  absl::Status dane_status_;
  // The policy domains this session was counted for in the TLS reports (RFC 8460), bounded.
  static constexpr size_t kReportedDomainsMax = 64;
  std::vector<std::string> reported_;
  std::string plaintext_in_;
  std::string pending_out_;       // commands not yet sent
  std::string sending_;           // bytes of the send in flight (commands or ciphertext)
  size_t sending_offset_ = 0;
  bool writev_in_flight_ = false;
  static constexpr size_t kIovecsMax = 64;
  iovec iov_[kIovecsMax];
  size_t iov_count_ = 0;
  std::optional<smtp::DotStuffer> stuffer_;  // the body being streamed
  std::unique_ptr<Job> job_;       // the oldest message in the session (its body, its replies)
  std::unique_ptr<Job> next_job_;  // pipelined behind job_'s body (RFC 2920 §3.1), or null
  int64_t next_attempt_start_ms_ = 0;
  io::Completion connect_;
  io::SocketAddress connect_address_;  // what connect_ was given, until it completes
  io::Completion recv_;
  io::Completion send_;
  io::Timer timer_;
  int64_t attempt_start_ms_ = 0;
  bool connected_ = false;
  bool stop_after_current_ = false;
  bool closed_ = false;
  bool quitting_ = false;
  bool lease_returned_ = false;  // its fleet lease went back before it closed (QuitForFleet)
  // Opportunistic TLS failed its handshake at this candidate: the retry there goes without
  // STARTTLS (RFC 7435: opportunistic security falls back to plain text, never to no delivery).
  bool without_tls_ = false;
};

}  // namespace relay::delivery
