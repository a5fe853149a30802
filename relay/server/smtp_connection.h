// The I/O driver of one inbound SMTP connection: moves bytes between the socket (io_uring
// multishot recv through the shard's provided buffers, one send at a time), the optional TLS
// stream and the protocol state machine (relay/smtp/server_session.h), and carries out the
// session's actions: STARTTLS, credential checks (on the authenticator's worker), and queueing an
// accepted message (Received header, missing Message-ID/Date, DKIM signature, spool append). The
// DKIM signature, and on port 25 the DKIM/ARC checks and the ARC seal, are computed on the shared
// SigningPool when there is one (results come back through the reactor; the connection is not
// freed while a worker may still read its message), inline otherwise. The
// "250" for a message is written only from the spool's durable callback, i.e. after the fdatasync
// covering the record completed.
//
// Shard thread only. It uses its shard only through the ConnectionContext it is given
// (connection_context.h). The shard owns the connection; it is retired through the reactor once
// none of its operations (recv, send, credential check, queue append) is outstanding.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dkim/arc.h"
#include "queue/spool.h"
#include "relay/io/reactor.h"
#include "relay/io/timer_wheel.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dmarc.h"
#include "relay/receive/inbound_checks.h"
#include "relay/receive/receive_state.h"
#include "relay/server/client_fields.h"
#include "relay/server/connection_context.h"
#include "relay/server/server_policies.h"
#include "relay/smtp/received.h"
#include "relay/smtp/server_session.h"
#include "relay/tls/tls_stream.h"

namespace relay::server {

// The client's DSN parameters (RFC 3461) for the envelope it queues: ENVID and RET, and each
// recipient's NOTIFY and ORCPT, found by the address the client gave (a forwarded target by its
// alias's; a recipient left out, suppressed, takes nothing). Mail `received` on port 25 asks for
// no success notice (SUCCESS is dropped, alone it becomes NEVER) and no full return (RET=FULL is
// HDRS): its sender may be forged, and such notices would be backscatter.
void CarryDsnParameters(const smtp::Envelope& env, bool received, queue::Envelope* qenv);

class SmtpConnection : public io::IoObject {
 public:
  // `receive`: a port-25 connection (relay/receive): no AUTH required, recipients by alias,
  // SPF checked, forwarded with SRS (see smtp_connection_receive.cc).
  // `client_key`: the peer's ClientKey (client_key.h), under which the shard counts its
  // connections.
  SmtpConnection(const ConnectionContext& context, int fd, std::string peer_ip,
                 std::string client_key, bool implicit_tls, bool receive = false);
  ~SmtpConnection() override;

  void Start();
  // Graceful stop: a session between transactions gets 421 and is closed now; one inside a
  // transaction is left to finish until ForceClose().
  void StopGracefully();
  void ForceClose(std::string_view reason);
  bool Idle() const override;
  const std::string& peer_ip() const { return peer_ip_; }
  const std::string& client_key() const { return client_key_; }
  bool implicit_tls() const { return implicit_tls_; }
  bool receive() const { return receive_; }  // port 25

 private:
  // The listener's policy (server_policies.h); called from the initialiser list.
  std::unique_ptr<smtp::ServerPolicy> MakePolicy(bool receive);

  // Port 25 (smtp_connection_receive.cc).
  void ReceiveMessage();
  void QueueReceived(const receive::InboundResults& results);
  // What a received message is queued with around this hop's Received field, which gets the
  // queue id of the append, and this hop's verdicts, logged with that id.
  struct ReceivedStamp {
    std::string above;  // ARC set (when sealed) and Authentication-Results, above Received
    std::string below;  // below Received: the quarantine mark, when DMARC asks for one
    std::vector<std::string> log;  // each logged as "port 25: <queue id>" + it
    absl::Time now;
  };
  // Appends the received message (QueuedMessage()) stamped with `stamp`.
  // Steps of QueueReceived: forged Authentication-Results out (cleaned_message_), this hop's
  // fields and log lines, the ARC seal (on the pool when there is one), the append.
  void RemoveOwnAuthResults(const receive::InboundResults& results);
  ReceivedStamp Stamp(const receive::InboundResults& results,
                      const receive::InboundDecision& decision, const receive::AuthResults& ar,
                      absl::Time now) const;
  void SealThenAppend(const receive::InboundResults& results, const receive::AuthResults& ar,
                      std::shared_ptr<const dkim::ArcSealer> sealer, queue::Envelope qenv,
                      ReceivedStamp stamp);
  void AppendReceived(const queue::Envelope& qenv, ReceivedStamp stamp);
  // Submission: the client's fields (relay/server/client_fields.h) leave the message
  // (cleaned_message_); with the session's tenant and XCAMPAIGN they fix attributes_. Returns
  // false after refusing (RefuseMessage) a value the relay cannot take; else sets
  // *unsubscribe_fields to the List-Unsubscribe fields to add ("" for none).
  bool TakeClientFields(std::string* unsubscribe_fields);
  // A bulk message's List-Unsubscribe fields ("" when none: not bulk, several recipients, the
  // client's own).
  std::string UnsubscribeFields(const ClientFields& fields);
  // Answers the message just received with `code` `enhanced` `text` on the next turn (this runs
  // inside Apply(), whose actions the session reuses). `enhanced` is a literal.
  void RefuseMessage(int code, std::string_view enhanced, std::string text);
  // A message to bounce-domain addresses (`to`): read on a worker as a returned bounce or a
  // complaint, its suppressions committed there, then its events recorded and 250 sent; it is
  // never queued (smtp_connection_receive.cc).
  void ReadReturnedMail(std::vector<std::string> to);
  // 451 4.3.2: the workers have too much waiting to check this message now.
  void RefuseReceivedBusy();

  void ArmRecv();
  void OnRecv(int result, uint32_t flags);
  void OnCiphertext(const char* data, size_t size);
  void OnPlaintext(std::string_view data);
  void Apply(const smtp::ServerActions& actions);
  // Apply() for the answer to an asynchronous step (AUTH, queueing): reading resumes, and the
  // client's deadlines start again.
  void ApplyResult(const smtp::ServerActions& actions);
  void QueueOutput(std::string_view plaintext);
  // Bytes of replies not yet on the socket: queued plaintext, TLS records, the send in flight.
  size_t OutputBacklog() const;
  // Reading stops while OutputBacklog() is above SmtpLimits::replies_unread_bytes_max and starts
  // again once the client has read it down to half.
  void PauseReading();
  void MaybeResumeReading();
  // More than input_held_bytes_max arrived while reading was paused: input is discarded from now
  // on, and the connection ends with 421 after the replies it is owed (SayGoodbyeForOverflow).
  void EndForOverflow();
  void SayGoodbyeForOverflow();
  void Flush();
  void OnSent(int result);
  void StartTls();
  void SwitchToTls();
  void CheckCredentials(const smtp::CredentialCheck& credentials);
  void QueueMessage();
  void OnPrepared(absl::Time now, absl::StatusOr<PreparedMessage> prepared);
  void AppendMessage(absl::Time now, std::string missing, std::string signatures);
  // Appends added_headers_ + the session's message with `qenv` as the queue record `id` (the id
  // the spool hands out next); the 250 (or the refusal) follows from the durable callback.
  void AppendToSpool(const queue::Envelope& qenv, queue::MessageId id, std::string id_text);
  // What AppendToSpool queues after added_headers_: the session's message, or cleaned_message_.
  std::string_view QueuedMessage() const {
    return cleaned_message_ ? std::string_view(*cleaned_message_) : session_.message();
  }
  // This hop's trace (RFC 5321 §4.4) for the message queued as `queue_id`.
  smtp::ReceivedInfo TraceInfo(const std::string& queue_id, absl::Time now) const;
  void OnQueued(absl::Status status, std::string queue_id);
  // Arms the one timer for what the connection waits for now (see Phase); a phase's deadline is
  // set when it begins and bytes arriving do not move it.
  void RearmTimer();
  int64_t PhaseLimitMs() const;
  bool OwnWorkPending() const {
    return auth_pending_ || sign_pending_ || queue_pending_ || checks_pending_ || seal_pending_ ||
           report_pending_;
  }
  void OnTimer();
  // Ends the connection: at once, or, when every reply has been sent and the client may still be
  // sending, after a linger (lingering_) so that a reset does not destroy the last replies.
  void Close();
  void StartLinger();
  // Counts in this shard's metrics cells (nothing when metrics are off).
  void CountSession();
  void CountTls(bool ok);

  const ConnectionContext ctx_;
  io::Reactor* const reactor_;
  const int fd_;
  const std::string peer_ip_;
  const std::string client_key_;
  const bool implicit_tls_;
  // policy_ on the submission ports; set by MakePolicy, so declared before policy_.
  SubmissionPolicy* submission_policy_ = nullptr;
  std::unique_ptr<smtp::ServerPolicy> policy_;  // before session_, which asks it
  smtp::ServerSession session_;
  std::unique_ptr<tls::TlsStream> tls_;
  bool tls_reported_ = false;      // OnTlsEstablished delivered to the session
  std::string plaintext_in_;       // decrypted bytes of one receive
  // Plaintext received but not yet given to the session because the client had not read its
  // replies; at most SmtpLimits::input_held_bytes_max.
  std::string held_in_;
  bool reading_paused_ = false;
  bool input_overflowed_ = false;  // see EndForOverflow
  std::string pending_out_;        // plaintext replies not yet handed to TLS / the socket
  std::string sending_;            // bytes of the send in flight; immutable while it is
  size_t sending_offset_ = 0;
  io::Completion recv_;
  io::Completion send_;
  io::Timer timer_;
  int64_t session_deadline_ms_ = 0;
  // What the client owes next: a TLS handshake, a command (idle), the rest of a command line, the
  // rest of a DATA body or BDAT chunk. kNone: no client deadline runs (our own work is pending).
  enum class Phase { kNone, kHandshake, kIdle, kCommand, kData };
  Phase phase_ = Phase::kNone;
  int64_t phase_deadline_ms_ = 0;
  bool auth_pending_ = false;
  bool sign_pending_ = false;  // MessagePreparer is preparing the message
  bool queue_pending_ = false;
  bool close_after_flush_ = false;
  bool start_tls_after_send_ = false;  // the plaintext 220 to STARTTLS is being sent
  bool closed_ = false;
  bool peer_gone_ = false;
  // The replies are all out and our side is shut (FIN): input is read and discarded until the
  // client closes or linger_deadline_ms_ (SmtpLimits::close_linger_ms), then Close().
  bool lingering_ = false;
  int64_t linger_deadline_ms_ = 0;
  uint64_t linger_bytes_ = 0;      // discarded so far, at most SmtpLimits::close_linger_bytes_max
  std::string added_headers_;      // scratch: trace and missing headers of one message
  // The message less what the relay takes out of it: on port 25 the Authentication-Results
  // fields that forge our authserv-id (RFC 8601 §5), on submission the client's fields; empty
  // when it had none, and the session's message is queued as it came.
  std::optional<std::string> cleaned_message_;
  queue::MessageAttributes attributes_;  // submission: the message's tenant, campaign, priority
  std::string refusal_text_;             // RefuseMessage's, until the posted answer runs
  // Port 25 only.
  const bool receive_;
  std::unique_ptr<receive::InboundChecks> checks_;
  bool checks_pending_ = false;    // InboundChecks::Finish is running for the message
  bool seal_pending_ = false;      // the ARC seal is being computed on the SigningPool
  bool report_pending_ = false;    // a returned report is being read on the SigningPool
  ReceivePolicy* receive_policy_ = nullptr;  // policy_, on port 25: the transaction's routes
};

}  // namespace relay::server
