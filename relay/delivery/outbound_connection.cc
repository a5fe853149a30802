#include "relay/delivery/outbound_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/delivery/delivery_policy.h"
#include "relay/io/buffer_ring.h"

namespace relay::delivery {
namespace {

constexpr size_t kBodyBytesPerWrite = 256 * 1024;

smtp::TlsPolicy ToSessionTls(TlsPolicy policy) {
  switch (policy) {
    case TlsPolicy::kDisabled: return smtp::TlsPolicy::kDisabled;
    case TlsPolicy::kRequired: return smtp::TlsPolicy::kRequired;
    case TlsPolicy::kOpportunistic: return smtp::TlsPolicy::kOpportunistic;
  }
  return smtp::TlsPolicy::kOpportunistic;
}

RecipientOutcome ToOutcome(const smtp::Outcome& o) {
  return RecipientOutcome{o.kind, o.code, o.enhanced, o.text};
}

bool NeedsUtf8(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace

OutboundConnection::OutboundConnection(DeliveryEngine* engine, ReadyQueue* queue)
    : engine_(engine), reactor_(engine->reactor()), queue_(queue) {
  connect_.set_handler([this](int result, uint32_t) { OnConnected(result); });
  recv_.set_handler([this](int result, uint32_t flags) { OnRecv(result, flags); });
  send_.set_handler([this](int result, uint32_t) { OnSent(result); });
  timer_.set_callback([this] { OnTimer(); });
}

OutboundConnection::~OutboundConnection() {
  reactor_->timers().Cancel(&timer_);
  if (fd_ >= 0) ::close(fd_);
}

bool OutboundConnection::Idle() const {
  return closed_ && !connect_.in_flight() && !recv_.in_flight() && !send_.in_flight();
}

void OutboundConnection::Start() { ConnectNext(""); }

void OutboundConnection::ConnectNext(std::string why) {
  if (!why.empty()) last_error_ = std::move(why);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  session_.reset();
  tls_.reset();
  dane_checked_.clear();  // a new peer: its certificate has not been checked
  reported_.clear();      // and a new session to report
  pending_out_.clear();
  connected_ = false;
  if (closed_) return;
  if (stop_after_current_ || candidate_ >= queue_->candidates().size()) {
    if (!stop_after_current_) {
      engine_->OnSiteUnreachable(
          queue_,
          RecipientOutcome::Transient(
              absl::StrCat("no MX host of ", queue_->site(), " could be reached; last error: ",
                           last_error_.empty() ? "none" : last_error_),
              0, "4.4.1")
              .Categorized(feedback::BounceCategory::kNoAnswerFromHost));
    }
    Close();
    return;
  }
  const dns::Candidate& c = queue_->candidates()[candidate_];
  const EgressSource& source = engine_->egress().source(queue_->source());
  if (!source.any_address && source.address.family() != c.address.family()) {
    // The queue's source cannot reach this address family (an IPv4 source and an AAAA, or the
    // reverse); the queue's family was chosen from the first candidate. Not an error of its own:
    // the reason kept is that of the candidates tried.
    ++candidate_;
    if (last_error_.empty()) {
      last_error_ = absl::StrCat("egress source ", source.name, " has no address of the family",
                                 " of ", c.host, " [", c.address.IpString(), "]");
    }
    ConnectNext("");
    return;
  }
  int fd = engine_->egress().OpenSocket(queue_->source(), c.address);
  if (fd == -EADDRNOTAVAIL) {
    engine_->egress().Suspend(queue_->source(),
                              reactor_->NowMs() + engine_->options().source_suspend_ms,
                              "the kernel refused the address (EADDRNOTAVAIL)");
    engine_->OnSiteUnreachable(
        queue_, RecipientOutcome::Transient(
                    absl::StrCat("egress source ", engine_->egress().source(queue_->source()).name,
                                 " is not usable (EADDRNOTAVAIL)"),
                    0, "4.4.0")
                    .Categorized(feedback::BounceCategory::kRouting));
    Close();
    return;
  }
  if (fd < 0) {
    ++candidate_;
    ConnectNext(absl::StrCat("socket for ", c.host, ": ", std::strerror(-fd)));
    return;
  }
  fd_ = fd;
  attempt_start_ms_ = reactor_->NowMs();
  // The kernel reads the address when the ring submits the connect, after this returns: it
  // must not live in the queue's candidate list, which the next MX lookup replaces.
  connect_address_ = c.address;
  reactor_->Connect(fd_, connect_address_.get(), connect_address_.length, &connect_);
  reactor_->timers().ScheduleAfter(&timer_, queue_->limits().timeouts.connect_ms);
}

void OutboundConnection::OnConnected(int result) {
  reactor_->timers().Cancel(&timer_);
  const dns::Candidate& c = queue_->candidates()[candidate_];
  if (result < 0) {
    if (result == -EADDRNOTAVAIL) {
      engine_->egress().Suspend(queue_->source(),
                                reactor_->NowMs() + engine_->options().source_suspend_ms,
                                "connect: EADDRNOTAVAIL");
    }
    std::string what = result == -ECANCELED ? "connection timed out" : std::strerror(-result);
    ++candidate_;
    ConnectNext(absl::StrCat(c.host, " [", c.address.IpString(), "]: ", what));
    return;
  }
  connected_ = true;
  smtp::ClientConfig config;
  config.ehlo_name = engine_->egress().source(queue_->source()).ehlo_name;
  config.peer_name = c.host;
  config.tls_policy =
      without_tls_ ? smtp::TlsPolicy::kDisabled : ToSessionTls(queue_->limits().tls);
  const DeliveryTimeouts& t = queue_->limits().timeouts;
  config.timeouts.greeting_ms = t.greeting_ms;
  config.timeouts.mail_ms = t.command_ms;
  config.timeouts.rcpt_ms = t.command_ms;
  config.timeouts.command_ms = t.command_ms;
  config.timeouts.data_initiation_ms = t.data_init_ms;
  config.timeouts.data_block_ms = t.data_block_ms;
  config.timeouts.data_termination_ms = t.data_done_ms;
  config.timeouts.tls_handshake_ms = t.tls_handshake_ms;
  config.limits = engine_->options().reply_limits;
  // One reply text per outcome record; longer texts are cut in the session, before they are
  // copied for each recipient.
  config.outcome_text_bytes_max = queue::kReplyBytesMax;
  config.tls_supported = engine_->client_tls() != nullptr;
  session_.emplace(config);
  ArmRecv();
  Apply(session_->OnConnected());
}

void OutboundConnection::ArmRecv() {
  if (closed_ || fd_ < 0 || recv_.in_flight()) return;
  reactor_->RecvMultishot(fd_, engine_->buffers()->group_id(), &recv_);
}

void OutboundConnection::OnRecv(int result, uint32_t flags) {
  io::BufferRing* buffers = engine_->buffers();
  if (result > 0 && io::BufferRing::HasBuffer(flags)) {
    uint16_t id = io::BufferRing::BufferId(flags);
    if (!closed_ && session_.has_value()) {
      OnData(std::string_view(buffers->Buffer(id), static_cast<size_t>(result)));
    }
    buffers->Recycle(id);
  } else if (result == 0 || (result < 0 && result != -ENOBUFS && result != -ECANCELED)) {
    if (!closed_ && session_.has_value()) Apply(session_->OnPeerClosed());
    return;
  }
  if (!(flags & IORING_CQE_F_MORE) && !closed_ && session_.has_value()) {
    if (result == -ENOBUFS) {
      reactor_->Post([this] { ArmRecv(); });
    } else if (result != -ECANCELED) {
      ArmRecv();
    }
  }
}

void OutboundConnection::OnData(std::string_view bytes) {
  if (tls_ == nullptr) {
    Apply(session_->OnBytes(bytes));
    return;
  }
  plaintext_in_.clear();
  bool was_established = tls_->established();
  absl::Status status = tls_->OnCiphertext(absl::string_view(bytes.data(), bytes.size()),
                                           &plaintext_in_);
  if (!status.ok()) {
    if (!was_established) engine_->CountTlsHandshake(false);
    std::string reason(status.message());
    Flush();
    Apply(session_->OnTlsFailed(reason));
    return;
  }
  if (!was_established && tls_->established()) {
    // [delivery] tls_verify is judged per job (RefusedForTls): a DANE host's certificate answers
    // to its TLSA records, not to a CA.
    engine_->CountTlsHandshake(true);
    Apply(session_->OnTlsEstablished());
  }
  if (!plaintext_in_.empty() && session_.has_value() && !closed_) {
    Apply(session_->OnBytes(plaintext_in_));
  }
  if (tls_ != nullptr && tls_->peer_closed() && session_.has_value() && !closed_) {
    // close_notify (RFC 8446 §6.1): no more replies can come on this connection, and whatever the
    // peer sends after it is discarded by the stream. Waiting for the TCP close would hold the
    // connection for a whole command timeout.
    Apply(session_->OnPeerClosed());
    return;
  }
  Flush();
}

void OutboundConnection::ApplyTimer(const smtp::ClientActions& actions) {
  // The session says when a deadline starts; bytes that arrive in between leave it running.
  if (!actions.rearm_timer) return;
  if (actions.timeout_ms > 0) {
    reactor_->timers().ScheduleAfter(&timer_, actions.timeout_ms);
  } else {
    reactor_->timers().Cancel(&timer_);
  }
}

void OutboundConnection::Apply(const smtp::ClientActions& actions) {
  if (!actions.write.empty()) pending_out_.append(actions.write);
  if (actions.start_tls) StartTls();
  ApplyTimer(actions);
  // Outcomes before the body: with pipelining, the message ahead finishes in the same event in
  // which the next one gets its 354, and the body is that next one's.
  if (actions.message_done) FinishJob(actions.outcomes);
  if (actions.next_message_done) FinishJob(actions.next_outcomes);
  if (actions.send_body && job_ != nullptr) {
    // From the body's end on, the remote may accept the message: mark the attempt first.
    engine_->RecordAttemptStart(*job_, current_candidate().host);
    const queue::MessageInfo* info = engine_->spool()->Find(job_->id);
    stuffer_.emplace(info != nullptr ? info->message : std::string_view());
  }
  const dns::Candidate& c = current_candidate();
  if (actions.connection_failed) {
    // Greeting, EHLO or STARTTLS failed at this address: the next candidate may do better.
    RecipientOutcome o = ToOutcome(actions.connection_outcome);
    bool tls_broke = tls_ != nullptr && !tls_->established();
    if (tls_broke && !without_tls_ && queue_->limits().tls == TlsPolicy::kOpportunistic) {
      without_tls_ = true;  // same candidate again, in plain text
      tls_failure_ = o.ToString();
      LogInfo() << "STARTTLS with " << c.host << " failed (" << o.ToString()
                << "); retrying without TLS";
    } else {
      without_tls_ = false;
      tls_failure_.clear();
      ++candidate_;
    }
    Flush();
    if (recv_.in_flight()) reactor_->Cancel(&recv_);
    ConnectNext(absl::StrCat(c.host, " [", c.address.IpString(), "]: ", o.ToString()));
    return;
  }
  if (actions.close) {
    // Nothing is left to say: a QUIT was answered already, or the session was aborted (timeout,
    // protocol error, lost peer). Close now even with a write in flight: a peer that stopped
    // reading would otherwise hold the connection open for as long as it likes.
    quitting_ = true;
    Close();
    return;
  }
  // Last use of `actions`: TakeWork feeds the session another event.
  if (actions.ready || actions.pipeline_ready) TakeWork();
  Flush();
}

void OutboundConnection::FinishJob(const std::vector<smtp::Outcome>& outcomes) {
  if (job_ == nullptr) return;
  const dns::Candidate& c = current_candidate();
  AttemptInfo attempt;
  attempt.mx_host = c.host;
  attempt.remote_ip = c.address.IpString();
  attempt.source_ip = engine_->egress().source(queue_->source()).name;
  if (tls_ != nullptr && tls_->established()) {
    attempt.tls_version = tls_->protocol_version();
    attempt.tls_cipher = tls_->cipher_name();
    attempt.tls_mode = tls_->peer_verified() ? TlsMode::kVerified : TlsMode::kOpportunistic;
    // Authenticated by its TLSA records (RefusedForTls let the job through), or verified as the
    // domain's MTA-STS policy asks (enforce, or testing that passed).
    if (const auto* tlsa = DeliveryEngine::DaneRecords(*job_, c.host);
        tlsa != nullptr && !tlsa->empty()) {
      attempt.tls_mode = TlsMode::kDane;
    } else if (attempt.tls_mode == TlsMode::kVerified && job_->sts != nullptr &&
               tlspolicy::StsMxAllowed(job_->sts->policy, c.host)) {
      attempt.tls_mode = TlsMode::kMtaSts;
    }
  }
  attempt.duration_ms = reactor_->NowMs() - attempt_start_ms_;
  attempt.remote_dsn = session_->extensions().dsn && job_->mail_from.empty();
  int64_t suspend_ms = 0;
  std::string suspend_reason;
  uint32_t backoff_s = 0;
  double backoff_rate = 1;
  std::string backoff_reason;
  bool delivered_any = false;
  for (const smtp::Outcome& o : outcomes) {
    if (o.recipient_index >= job_->recipients.size()) continue;
    RecipientOutcome outcome = ToOutcome(o);
    attempt.reply_received = o.from_peer;
    if (o.from_peer && outcome.kind == OutcomeKind::kTransient &&
        engine_->policy()->BounceForReply(queue_->limits(), outcome)) {
      outcome.kind = OutcomeKind::kPermanent;  // a reply rule knows this 4xx is final
    }
    delivered_any = delivered_any || outcome.kind == OutcomeKind::kDelivered;
    engine_->RecordOutcome(*job_, job_->recipients[o.recipient_index], outcome, attempt);
    if (o.from_peer && outcome.kind != OutcomeKind::kDelivered && suspend_ms == 0) {
      suspend_ms = engine_->policy()->SuspendMsForReply(queue_->limits(), outcome);
      if (suspend_ms > 0) suspend_reason = outcome.ToString();
    }
    if (o.from_peer && outcome.kind != OutcomeKind::kDelivered && backoff_s == 0) {
      if (const ReplyRule* r = engine_->policy()->BackoffForReply(queue_->limits(), outcome)) {
        backoff_s = r->backoff_s;
        backoff_rate = r->backoff_rate;
        backoff_reason = outcome.ToString();
      }
    }
  }
  if (delivered_any && !attempt.tls_version.empty()) engine_->DeliveredOverTls(*job_);
  ReleaseJob(job_);
  job_ = std::move(next_job_);
  attempt_start_ms_ = next_attempt_start_ms_;
  if (suspend_ms > 0) {
    engine_->SuspendQueue(queue_, reactor_->NowMs() + suspend_ms, suspend_reason);
    stop_after_current_ = true;
  } else if (backoff_s > 0) {
    engine_->BackoffQueue(queue_, reactor_->NowMs() + int64_t{backoff_s} * 1000, backoff_rate,
                          backoff_reason);
  }
}

void OutboundConnection::StartTls() {
  const dns::Candidate& c = queue_->candidates()[candidate_];
  auto stream = tls::TlsStream::NewClient(*engine_->client_tls(), c.host);
  if (!stream.ok()) {
    engine_->CountTlsHandshake(false);
    Apply(session_->OnTlsFailed(std::string(stream.status().message())));
    return;
  }
  tls_ = std::move(*stream);
  absl::Status s = tls_->Start();
  if (!s.ok()) {
    engine_->CountTlsHandshake(false);
    Apply(session_->OnTlsFailed(std::string(s.message())));
    return;
  }
  Flush();
}

bool OutboundConnection::IdleWithoutWork() const {
  return session_.has_value() && session_->idle() && job_ == nullptr && !closed_ && !quitting_;
}

bool OutboundConnection::CanPipeline() const {
  if (!session_.has_value() || closed_ || quitting_ || stop_after_current_) return false;
  if (!queue_->limits().pipeline_transactions) return false;
  if (!session_->can_pipeline() || job_ == nullptr || next_job_ != nullptr) return false;
  const uint64_t messages = session_->messages_done() + session_->messages_open();
  return messages < queue_->limits().messages_per_connection_max;
}

bool OutboundConnection::WaitingForWork() const { return IdleWithoutWork() || CanPipeline(); }

void OutboundConnection::Kick() {
  if (WaitingForWork()) TakeWork();
  Flush();
}

void OutboundConnection::TakeWork() {
  const bool idle = IdleWithoutWork();
  if (!idle && !CanPipeline()) return;  // pipelining: CanPipeline checks the limits itself
  if (idle) {
    bool used_up = session_->messages_done() >= queue_->limits().messages_per_connection_max;
    if (stop_after_current_ || used_up || engine_->QuitForFleet(this)) {
      Apply(session_->Quit());
      return;
    }
  }
  std::unique_ptr<Job>& slot = idle ? job_ : next_job_;
  const queue::MessageInfo* info = nullptr;
  for (;;) {
    slot = engine_->TakeJob(queue_);
    if (slot == nullptr) {
      // Nothing to do now: when idle, linger for reuse, then quit. Behind a body the session's
      // timer runs; the next `ready` or a Kick asks again.
      if (idle) reactor_->timers().ScheduleAfter(&timer_, engine_->options().idle_connection_ms);
      return;
    }
    info = engine_->spool()->Find(slot->id);
    if (info == nullptr) {
      ReleaseJob(slot);
      continue;
    }
    engine_->spool()->Pin(slot->id);
    if (!RefusedForTls(slot)) break;
  }
  (idle ? attempt_start_ms_ : next_attempt_start_ms_) = reactor_->NowMs();
  smtp::OutgoingMessage message;
  message.mail_from = slot->mail_from.empty() ? std::string(info->sender) : slot->mail_from;
  for (uint32_t r : slot->recipients) message.recipients.push_back(info->recipients[r].address);
  // A VERP return path sends the remote's DSNs to the bounce domain, which reads failures only:
  // the sender's parameters stay here, and the relay writes the DSNs it asked for itself.
  if (slot->mail_from.empty()) AddDsnParameters(*info, *slot, &message);
  message.require_tls = slot->require_tls;  // RefusedForTls saw the server offer it
  message.size_bytes = info->message.size();
  message.needs_8bitmime = NeedsUtf8(info->message);
  message.needs_smtputf8 = NeedsUtf8(message.mail_from) ||
                           std::any_of(message.recipients.begin(), message.recipients.end(),
                                       [](const std::string& r) { return NeedsUtf8(r); });
  if (idle) reactor_->timers().Cancel(&timer_);
  // Behind a body (RFC 2920 §3.1): the commands wait in pending_out_ and Flush writes them after
  // the body's last segment.
  Apply(session_->SendMessage(std::move(message)));
}

bool OutboundConnection::RefusedForTls(std::unique_ptr<Job>& job) {
  const bool encrypted = tls_ != nullptr && tls_->established();
  const bool verify = engine_->options().tls_verify;
  if (encrypted && job->sts == nullptr && job->dane == nullptr && !job->require_tls && !verify) {
    return false;  // the common case, at no cost
  }
  const dns::Candidate& c = current_candidate();
  auto plain_why = [&] {
    return absl::StrCat(c.host, " [", c.address.IpString(), "] ",
                        tls_failure_.empty() ? std::string("offered no STARTTLS")
                                             : absl::StrCat("failed STARTTLS: ", tls_failure_));
  };
  const bool verified = encrypted && tls_->peer_verified();
  std::string why;
  bool dane_authenticated = false;
  // An MX its domain's MTA-STS policy lists (looked at once, for the policy, the report and
  // REQUIRETLS).
  const bool sts_listed = job->sts != nullptr && tlspolicy::StsMxAllowed(job->sts->policy, c.host);
  const auto* tlsa = DeliveryEngine::DaneRecords(*job, c.host);
  if (tlsa != nullptr) {
    // DANE first (RFC 7672 §2.2, RFC 8461 §2): TLS is mandatory and the TLSA records, not a CA,
    // authenticate; a set with no usable record asks for TLS alone.
    if (!encrypted) {
      why = absl::StrCat(c.host, " publishes TLSA records (DANE): TLS is required");
    } else if (!tlsa->empty()) {
      if (dane_checked_ != *tlsa) {  // checked once per connection and set of records
        dane_checked_ = *tlsa;
        dane_status_ =
            tlspolicy::DaneAuthenticate(*tlsa, tls_->peer_chain(), {c.host},
                                        static_cast<int64_t>(reactor_->clock()->WallSeconds()));
      }
      dane_authenticated = dane_status_.ok();
      if (!dane_authenticated) {
        why = absl::StrCat("the TLSA records of ", c.host, " do not authenticate its certificate (",
                           dane_status_.message(), ")");
      }
    }
    if (!tlsa->empty()) {
      if (!encrypted) {
        ReportSession(*job, tlspolicy::TlsFailure::kStarttlsNotSupported, plain_why());
      } else if (!dane_authenticated) {
        ReportSession(*job, tlspolicy::TlsFailure::kValidationFailure,
                      std::string(dane_status_.message()));
      } else {
        ReportSession(*job, std::nullopt, "");
      }
    }
  } else if (job->sts != nullptr) {
    // MTA-STS next (RFC 8461 §5): it asks more than TLS.
    why = engine_->StsRequirement(*job, c.host, encrypted, verified,
                                  encrypted ? tls_->peer_verify_error() : std::string());
    // Reported in testing mode too (RFC 8460 §4.1).
    if (!sts_listed) {
      ReportSession(*job, tlspolicy::TlsFailure::kValidationFailure,
                    absl::StrCat(c.host, " is not an mx of the policy"));
    } else if (!encrypted) {
      ReportSession(*job, tlspolicy::TlsFailure::kStarttlsNotSupported, plain_why());
    } else if (!verified) {
      ReportSession(*job, CertificateFailure(tls_->peer_verify_result()),
                    tls_->peer_verify_error());
    } else {
      ReportSession(*job, std::nullopt, "");
    }
  }
  if (why.empty() && verify && encrypted && !verified && !dane_authenticated) {
    // [delivery] tls_verify: a certificate that is not valid for the MX defers (unless DANE
    // authenticated it: DANE-EE servers are self-signed as a rule).
    why = absl::StrCat("the certificate of ", c.host, " is not valid for it (",
                       tls_->peer_verify_error(), "; [delivery] tls_verify)");
  }
  std::string enhanced = "4.7.5";
  bool permanent = false;
  if (why.empty() && job->require_tls) {
    // REQUIRETLS (RFC 8689 §4.2.1): an MX that DNSSEC or the domain's MTA-STS policy vouches for,
    // authenticated TLS, and a server that offers REQUIRETLS; or the message goes back to its
    // sender.
    const bool mx_vouched = job->mx_dnssec || dane_authenticated || sts_listed;
    if (!mx_vouched) {
      why = absl::StrCat("neither DNSSEC nor an MTA-STS policy vouches for ", c.host,
                         " as an MX of ", job->domain);
    } else if (!encrypted) {
      why = plain_why();
    } else if (!dane_authenticated && !verified) {
      why = absl::StrCat("the certificate of ", c.host, " is not valid for it (",
                         tls_->peer_verify_error().empty() ? std::string("not verified")
                                                           : tls_->peer_verify_error(),
                         ")");
    } else if (!session_->extensions().requiretls) {
      why = absl::StrCat(c.host, " does not offer REQUIRETLS");
    }
    if (!why.empty()) {
      why = absl::StrCat(
          "REQUIRETLS: the message may go only over authenticated TLS to a server "
          "that offers REQUIRETLS: ",
          why);
      enhanced = "5.7.30";  // REQUIRETLS support required (RFC 8689 §7)
      permanent = true;
    }
  } else if (why.empty()) {
    // A rule that disables TLS for the site is the operator's word that its TLS is broken.
    if (encrypted || queue_->limits().tls == TlsPolicy::kDisabled) return false;
    std::string required = engine_->TlsRequirement(*job);
    if (required.empty()) return false;
    why = absl::StrCat(required, "; ", plain_why());
    enhanced = "4.7.10";
  } else if (!encrypted) {
    absl::StrAppend(&why, "; ", plain_why());
  }
  if (why.empty()) return false;
  RecipientOutcome outcome = (permanent ? RecipientOutcome::Permanent(std::move(why), 550, enhanced)
                                        : RecipientOutcome::Transient(std::move(why), 0, enhanced))
                                 .Categorized(feedback::BounceCategory::kBadConnection);
  AttemptInfo attempt;
  attempt.mx_host = c.host;
  attempt.remote_ip = c.address.IpString();
  attempt.source_ip = engine_->egress().source(queue_->source()).name;
  engine_->GiveBackWarmup(*job);  // it never left
  for (uint32_t r : job->recipients) engine_->RecordOutcome(*job, r, outcome, attempt);
  ReleaseJob(job);
  return true;
}

tlspolicy::TlsFailure OutboundConnection::CertificateFailure(long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
      return tlspolicy::TlsFailure::kCertificateHostMismatch;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return tlspolicy::TlsFailure::kCertificateExpired;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
      return tlspolicy::TlsFailure::kCertificateNotTrusted;
    default:
      return tlspolicy::TlsFailure::kValidationFailure;
  }
}

void OutboundConnection::ReportSession(const Job& job, std::optional<tlspolicy::TlsFailure> failure,
                                       std::string additional) {
  tlspolicy::TlsReportLedger* ledger = engine_->options().tls_reports;
  if (ledger == nullptr) return;
  // A session counts once per policy domain (RFC 8460 §4.4: sessions, not messages).
  if (std::find(reported_.begin(), reported_.end(), job.domain) != reported_.end()) return;
  if (reported_.size() >= kReportedDomainsMax) return;
  reported_.push_back(job.domain);
  const dns::Candidate& c = current_candidate();
  tlspolicy::TlsSession s;
  s.policy_domain = job.domain;
  if (const auto* tlsa = DeliveryEngine::DaneRecords(job, c.host); tlsa != nullptr) {
    s.policy_type = tlspolicy::ReportPolicyType::kTlsa;
    for (const tlspolicy::TlsaRecord& r : *tlsa) {
      s.policy_strings.push_back(tlspolicy::TlsaPresentation(r));
    }
  } else if (job.sts != nullptr) {
    s.policy_type = tlspolicy::ReportPolicyType::kSts;
    s.policy_strings = tlspolicy::StsPolicyLines(job.sts->policy);
    s.mx_hosts = job.sts->policy.mx;
  }
  s.success = !failure.has_value();
  if (failure.has_value()) {
    s.failure = *failure;
    sockaddr_storage local{};
    socklen_t length = sizeof(local);
    if (fd_ >= 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      s.sending_ip =
          io::SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&local), length).IpString();
    }
    s.receiving_mx = c.host;
    s.receiving_ip = c.address.IpString();
    s.additional = std::move(additional);
  }
  ledger->Record(s, static_cast<int64_t>(reactor_->clock()->WallSeconds()));
}

void OutboundConnection::AddDsnParameters(const queue::MessageInfo& info, const Job& job,
                                          smtp::OutgoingMessage* message) {
  message->ret = static_cast<smtp::DsnReturn>(info.attributes.dsn_ret);
  message->envid = info.attributes.envid;
  for (size_t i = 0; i < job.recipients.size(); ++i) {
    const queue::RecipientState& r = info.recipients[job.recipients[i]];
    if (r.notify == 0 && r.orcpt.empty()) continue;
    message->rcpt_params.resize(job.recipients.size());
    message->rcpt_params[i].notify = r.notify;
    message->rcpt_params[i].orcpt = r.orcpt;
  }
}

void OutboundConnection::ReleaseJob(std::unique_ptr<Job>& job) {
  if (job == nullptr) return;
  if (job == job_) stuffer_.reset();  // only the oldest job's body can be streaming
  engine_->spool()->Unpin(job->id);
  Job done = std::move(*job);
  job.reset();
  engine_->JobDone(done);
}

void OutboundConnection::Flush() {
  if (send_.in_flight() || closed_ || fd_ < 0 || !connected_) return;
  sending_.clear();
  sending_offset_ = 0;
  writev_in_flight_ = false;
  // Commands queued while a body streams are the next transaction's (RFC 2920 §3.1): they go out
  // after the body's terminator, never before.
  const bool body_streaming = stuffer_.has_value() && !stuffer_->done();
  if (tls_ != nullptr && tls_->established()) {
    if (!EncryptForSending(body_streaming)) return;
  } else if (tls_ != nullptr) {
    TakeCiphertext();  // handshake in progress: only its own records go out
  } else if (body_streaming) {
    if (WriteBodyPlain()) return;
  } else if (!pending_out_.empty()) {
    sending_.swap(pending_out_);
  }
  if (sending_.empty()) {
    if (stuffer_.has_value() && stuffer_->done()) {
      stuffer_.reset();
      Apply(session_->OnBodySent());
      return;
    }
    if (quitting_) Close();
    return;
  }
  reactor_->Send(fd_, sending_.data(), sending_.size(), &send_);
}

void OutboundConnection::TakeCiphertext() {
  absl::string_view c = tls_->PendingCiphertext();
  sending_.assign(c.data(), c.size());
  tls_->ConsumeCiphertext(c.size());
}

bool OutboundConnection::WriteBodyPlain() {
  // The body goes out straight from the spool's mapping.
  iov_count_ = stuffer_->Fill(iov_, kIovecsMax - 1, kBodyBytesPerWrite);
  if (stuffer_->done() && !pending_out_.empty()) {
    // The next transaction's commands in the same writev as the body's last segments.
    sending_.swap(pending_out_);
    iov_[iov_count_].iov_base = sending_.data();
    iov_[iov_count_].iov_len = sending_.size();
    ++iov_count_;
  }
  if (iov_count_ == 0) return false;
  writev_in_flight_ = true;
  reactor_->Writev(fd_, iov_, static_cast<unsigned>(iov_count_), &send_);
  return true;
}

bool OutboundConnection::EncryptForSending(bool body_streaming) {
  if (!body_streaming && !pending_out_.empty()) {
    auto taken = tls_->Write(pending_out_);
    if (taken.ok()) pending_out_.erase(0, *taken);
  }
  if (body_streaming) {
    // With TLS the bytes are copied once, into the record layer.
    size_t budget = kBodyBytesPerWrite;
    while (budget > 0 && !stuffer_->done()) {
      iovec one;
      if (stuffer_->Fill(&one, 1, budget) == 0) break;
      auto taken =
          tls_->Write(absl::string_view(static_cast<const char*>(one.iov_base), one.iov_len));
      if (!taken.ok() || *taken < one.iov_len) {
        // Cannot happen with budget below the TLS output limit; fail the connection cleanly.
        LogWarning() << "TLS write refused body bytes to " << queue_->site();
        Apply(session_->OnPeerClosed());
        return false;
      }
      budget -= one.iov_len;
    }
    if (stuffer_->done() && !pending_out_.empty()) {
      // The next transaction's commands in the same records as the body's end; what the output
      // limit refuses now goes in the next write.
      auto taken = tls_->Write(pending_out_);
      if (taken.ok()) pending_out_.erase(0, *taken);
    }
  }
  TakeCiphertext();
  return true;
}

void OutboundConnection::OnSent(int result) {
  if (closed_) return;  // closed with this write in flight
  if (result < 0) {
    if (session_.has_value()) Apply(session_->OnPeerClosed());
    return;
  }
  if (writev_in_flight_) {
    // A partial writev: hand the rest out again by re-filling from where the kernel stopped.
    size_t total = 0;
    for (size_t i = 0; i < iov_count_; ++i) total += iov_[i].iov_len;
    if (static_cast<size_t>(result) < total) {
      size_t skip = static_cast<size_t>(result);
      size_t i = 0;
      while (skip >= iov_[i].iov_len) skip -= iov_[i++].iov_len;
      iov_[i].iov_base = static_cast<char*>(iov_[i].iov_base) + skip;
      iov_[i].iov_len -= skip;
      // The kernel reads the iovec array when the SQE is submitted: shift it before that.
      std::memmove(iov_, iov_ + i, (iov_count_ - i) * sizeof(iovec));
      iov_count_ -= i;
      reactor_->Writev(fd_, iov_, static_cast<unsigned>(iov_count_), &send_);
      return;
    }
    writev_in_flight_ = false;
  } else {
    sending_offset_ += static_cast<size_t>(result);
    if (sending_offset_ < sending_.size()) {
      reactor_->Send(fd_, sending_.data() + sending_offset_, sending_.size() - sending_offset_,
                     &send_);
      return;
    }
  }
  if (quitting_ && pending_out_.empty() && (tls_ == nullptr || tls_->PendingCiphertext().empty())) {
    Close();
    return;
  }
  if (stuffer_.has_value() && !stuffer_->done() && session_.has_value()) {
    // A whole body write completed (partial ones were resubmitted above): the next write gets its
    // own deadline. Only the timer: Flush below starts that write.
    ApplyTimer(session_->OnBodyProgress());
  }
  Flush();
}

void OutboundConnection::OnTimer() {
  if (closed_) return;
  if (!connected_) {
    // Connect timeout: cancel; the connect completion moves on to the next candidate.
    reactor_->Cancel(&connect_);
    return;
  }
  if (IdleWithoutWork()) {
    Apply(session_->Quit());  // idle for idle_connection_ms
    return;
  }
  Apply(session_->OnTimeout());
}

void OutboundConnection::StopAfterCurrent() {
  stop_after_current_ = true;
  if (!connected_) {
    if (connect_.in_flight()) reactor_->Cancel(&connect_);
    return;
  }
  if (IdleWithoutWork()) Apply(session_->Quit());
}

void OutboundConnection::Close() {
  if (closed_) return;
  closed_ = true;
  reactor_->timers().Cancel(&timer_);
  // The session always reports outcomes before closing; anything left is retried later.
  for (std::unique_ptr<Job>* job : {&job_, &next_job_}) {
    if (*job == nullptr) continue;
    for (uint32_t r : (*job)->recipients) {
      engine_->RecordOutcome(**job, r,
                             RecipientOutcome::Transient("connection closed during delivery"),
                             AttemptInfo{});
    }
    ReleaseJob(*job);
  }
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (recv_.in_flight()) reactor_->Cancel(&recv_);
  if (connect_.in_flight()) reactor_->Cancel(&connect_);
  engine_->OnConnectionClosed(this);
}

}  // namespace relay::delivery
