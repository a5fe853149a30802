// The I/O driver of one outbound SMTP connection: connects from its ready queue's egress source to
// the site's candidates in order (next MX / next address on failure), runs the client protocol
// state machine (relay/smtp/client_session.h) over io_uring and, after STARTTLS, a client
// TlsStream; streams each message's body straight from the spool's mapping through a DotStuffer
// (no per-connection copy of the message in plain text; with TLS the bytes are copied once, into
// the encryption), and reports one outcome per recipient to the engine. It takes jobs from its
// ready queue until messages_per_connection_max, lingers idle_connection_ms for more, then quits.
//
// Shard thread only; owned by the engine and retired through the reactor once none of its
// operations is in flight.
#pragma once

#include <memory>
#include <optional>
#include <string>

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
  // Idle in the protocol, holding no job: may take one.
  bool WaitingForWork() const;
  // Work may be waiting in the queue: take it if idle.
  void Kick();
  // Finish the message in progress, then QUIT.
  void StopAfterCurrent();
  // Close now (shutdown grace over); a message in progress is recorded as deferred.
  void Abort() { Close(); }
  bool Idle() const override;
  ReadyQueue* queue() const { return queue_; }

 private:
  void ConnectNext(std::string why);
  void OnConnected(int result);
  void ArmRecv();
  void OnRecv(int result, uint32_t flags);
  void OnData(std::string_view bytes);
  void Apply(const smtp::ClientActions& actions);
  void StartTls();
  void TakeWork();
  void Flush();
  void OnSent(int result);
  void OnTimer();
  void ReleaseJob();
  void Close();

  DeliveryEngine* const engine_;
  io::Reactor* const reactor_;
  ReadyQueue* const queue_;
  size_t candidate_ = 0;          // index of the candidate being tried / connected
  int fd_ = -1;
  std::optional<smtp::ClientSession> session_;
  std::unique_ptr<tls::TlsStream> tls_;
  std::string last_error_;        // why the previous candidate failed
  std::string plaintext_in_;
  std::string pending_out_;       // commands not yet sent
  std::string sending_;           // bytes of the send in flight (commands or ciphertext)
  size_t sending_offset_ = 0;
  bool writev_in_flight_ = false;
  iovec iov_[64];
  size_t iov_count_ = 0;
  std::optional<smtp::DotStuffer> stuffer_;  // the body being streamed
  std::unique_ptr<Job> job_;
  io::Completion connect_;
  io::Completion recv_;
  io::Completion send_;
  io::Timer timer_;
  int64_t attempt_start_ms_ = 0;
  bool connected_ = false;
  bool stop_after_current_ = false;
  bool closed_ = false;
  bool quitting_ = false;
  // Opportunistic TLS failed its handshake at this candidate: the retry there goes without
  // STARTTLS (RFC 7435: opportunistic security falls back to plain text, never to no delivery).
  bool without_tls_ = false;
};

}  // namespace relay::delivery
