#include "relay/server/smtp_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "dkim/header.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/io/buffer_ring.h"
#include "relay/server/client_fields.h"
#include "relay/smtp/received.h"

namespace relay::server {

// The spool keeps what the SMTP parser takes (queue/ cannot see relay/smtp).
static_assert(queue::kOrcptBytesMax == smtp::kOrcptBytesMax);
static_assert(queue::kAttributeBytesMax >= smtp::kEnvidBytesMax);
static_assert(queue::kAttributeBytesMax >= smtp::kLabelBytesMax);

void CarryDsnParameters(const smtp::Envelope& env, bool received, queue::Envelope* qenv) {
  if (env.params.envid) qenv->attributes.envid = *env.params.envid;
  qenv->attributes.dsn_ret = static_cast<uint8_t>(env.params.ret);
  qenv->attributes.require_tls = env.params.requiretls;
  // RFC 8689 §4.1: with REQUIRETLS, a TLS-Required field is ignored.
  if (env.params.requiretls) qenv->attributes.tls_optional = false;
  if (received && env.params.ret == smtp::DsnReturn::kFull) {
    qenv->attributes.dsn_ret = static_cast<uint8_t>(smtp::DsnReturn::kHeaders);
  }
  const bool any =
      std::any_of(env.rcpt_params.begin(), env.rcpt_params.end(),
                  [](const smtp::RcptParams& p) { return p.notify != 0 || !p.orcpt.empty(); });
  if (!any) return;
  absl::flat_hash_map<std::string_view, const smtp::RcptParams*> by_address;
  for (size_t i = 0; i < env.recipients.size() && i < env.rcpt_params.size(); ++i) {
    by_address.try_emplace(env.recipients[i], &env.rcpt_params[i]);
  }
  const size_t n = qenv->recipients.size();
  qenv->notify.assign(n, 0);
  qenv->orcpt.assign(n, "");
  for (size_t i = 0; i < n; ++i) {
    // A forwarded target takes its alias's parameters: the address the client gave.
    const bool forwarded =
        i < qenv->original_recipients.size() && !qenv->original_recipients[i].empty();
    auto it = by_address.find(forwarded ? qenv->original_recipients[i] : qenv->recipients[i]);
    if (it == by_address.end()) continue;
    uint8_t notify = it->second->notify;
    if (received && (notify & smtp::kNotifySuccess) != 0) {
      // Port 25's senders are strangers: no success notice to an address anyone can forge, and
      // none from the final MX naming an alias's private target (RFC 3461 §6.2.7.3 would send
      // "expanded"; a forwarder of one's own domains owes nothing beyond failures). What stays
      // keeps its meaning: SUCCESS alone becomes NEVER.
      notify &= static_cast<uint8_t>(~smtp::kNotifySuccess);
      if (notify == 0) notify = smtp::kNotifyNever;
    }
    qenv->notify[i] = notify;
    qenv->orcpt[i] = it->second->orcpt;
  }
}

namespace {

smtp::ServerConfig SessionConfig(const Config& config, bool tls_available, bool receive) {
  smtp::ServerConfig c;
  c.hostname = config.hostname;
  c.tls_available = tls_available;
  c.auth_enabled = true;
  c.auth_requires_tls = config.auth_requires_tls;
  c.auth_required = true;  // submission: never an open relay
  c.campaigns = !receive;  // XCAMPAIGN
  c.requiretls = !receive;  // REQUIRETLS: the submission ports (RFC 8689)
  if (receive) {
    // Port 25: anyone may hand us mail for our domains; AUTH only under TLS, for relaying.
    c.auth_required = false;
    c.auth_requires_tls = true;
  }
  c.limits.command_line_bytes_max = config.smtp.command_line_bytes_max;
  c.limits.data_line_bytes_max = config.smtp.data_line_bytes_max;
  c.limits.message_bytes_max = config.smtp.message_bytes_max;
  c.limits.recipients_max = config.smtp.recipients_max;
  c.limits.errors_max = static_cast<int>(config.smtp.errors_max);
  c.limits.command_timeout_ms = config.smtp.command_timeout_ms;
  c.limits.data_timeout_ms = config.smtp.data_timeout_ms;
  c.limits.session_timeout_ms = config.smtp.session_timeout_ms;
  return c;
}

}  // namespace

SmtpConnection::SmtpConnection(const ConnectionContext& context, int fd, std::string peer_ip,
                               std::string client_key, bool implicit_tls, bool receive)
    : ctx_(context),
      reactor_(context.reactor),
      fd_(fd),
      peer_ip_(std::move(peer_ip)),
      client_key_(std::move(client_key)),
      implicit_tls_(implicit_tls),
      policy_(MakePolicy(receive)),
      session_(SessionConfig(context.config(), context.shared->tls != nullptr, receive),
               policy_.get()),
      receive_(receive) {
  if (receive_) {
    receive_policy_ = static_cast<ReceivePolicy*>(policy_.get());
    receive::Offload offload;
    if (SigningPool* pool = context.shared->signing_pool) {
      // DKIM verification and ARC validation on the worker threads (issue 13).
      offload = [pool, reactor = reactor_, queued_max = context.config().receive.checks_queued_max](
                    std::function<void()> work, std::function<void()> done) {
        return pool->TryRun(std::move(work), reactor, std::move(done), queued_max);
      };
    }
    checks_ = std::make_unique<receive::InboundChecks>(reactor_, context.spf, context.dkim_checker,
                                                       context.config().receive.checks_timeout_ms,
                                                       context.dmarc_checker, std::move(offload));
  }
  recv_.set_handler([this](int result, uint32_t flags) { OnRecv(result, flags); });
  send_.set_handler([this](int result, uint32_t) { OnSent(result); });
  timer_.set_callback([this] { OnTimer(); });
}

SmtpConnection::~SmtpConnection() {
  reactor_->timers().Cancel(&timer_);
  ::close(fd_);
}

bool SmtpConnection::Idle() const {
  return closed_ && !recv_.in_flight() && !send_.in_flight() && !auth_pending_ && !sign_pending_ &&
         !queue_pending_ && !checks_pending_ && !seal_pending_ && !report_pending_ &&
         (checks_ == nullptr || !checks_->busy());
}

void SmtpConnection::Start() {
  session_deadline_ms_ = reactor_->NowMs() + ctx_.config().smtp.session_timeout_ms;
  if (implicit_tls_) {
    auto stream = tls::TlsStream::NewServer(*ctx_.shared->tls->Get());
    if (!stream.ok()) {
      LogWarning() << "TLS for " << peer_ip_ << ": " << stream.status();
      Close();
      return;
    }
    tls_ = std::move(*stream);
  } else {
    CountSession();
    Apply(session_.OnConnected(peer_ip_, /*tls_active=*/false));
  }
  ArmRecv();
  RearmTimer();
}

void SmtpConnection::ArmRecv() {
  if (closed_ || peer_gone_ || reading_paused_ || recv_.in_flight()) return;
  reactor_->RecvMultishot(fd_, ctx_.buffers->group_id(), &recv_);
}

void SmtpConnection::OnRecv(int result, uint32_t flags) {
  io::BufferRing* buffers = ctx_.buffers;
  if (result > 0 && io::BufferRing::HasBuffer(flags)) {
    uint16_t id = io::BufferRing::BufferId(flags);
    if (lingering_ && !closed_) {
      // Read only to be discarded, within the linger's byte bound.
      linger_bytes_ += static_cast<uint64_t>(result);
      if (linger_bytes_ > ctx_.config().smtp.close_linger_bytes_max) {
        buffers->Recycle(id);
        Close();
        return;
      }
    } else if (!closed_) {
      const char* data = buffers->Buffer(id);
      if (tls_ != nullptr) {
        OnCiphertext(data, static_cast<size_t>(result));
      } else {
        OnPlaintext(std::string_view(data, static_cast<size_t>(result)));
      }
    }
    buffers->Recycle(id);
  } else if (result == 0 || (result < 0 && result != -ENOBUFS && result != -ECANCELED)) {
    // The peer closed or the connection broke: nothing more will arrive.
    peer_gone_ = true;
    if (!closed_) Close();
    return;
  }
  // A multishot recv ends on ENOBUFS (all buffers out) or by itself; arm it again.
  if (!(flags & IORING_CQE_F_MORE) && !closed_) {
    if (result == -ENOBUFS) {
      reactor_->Post([this] { ArmRecv(); });
    } else {
      ArmRecv();
    }
  }
}

void SmtpConnection::OnCiphertext(const char* data, size_t size) {
  plaintext_in_.clear();
  absl::Status status = tls_->OnCiphertext(absl::string_view(data, size), &plaintext_in_);
  if (!status.ok()) {
    if (!tls_->established()) CountTls(false);
    LogInfo() << "TLS error from " << peer_ip_ << ": " << status.message();
    Flush();  // the alert, if any
    close_after_flush_ = true;
    if (!send_.in_flight()) Close();
    return;
  }
  if (tls_->established() && !tls_reported_) {
    tls_reported_ = true;
    CountTls(true);
    if (implicit_tls_) {
      CountSession();
      Apply(session_.OnConnected(peer_ip_, /*tls_active=*/true));
    }
    Apply(session_.OnTlsEstablished(tls_->protocol_version(), tls_->cipher_name()));
  }
  if (!plaintext_in_.empty() && !closed_) OnPlaintext(plaintext_in_);
  if (tls_->peer_closed() && !closed_) {
    // close_notify: the client sends nothing more (RFC 8446 §6.1). What it is owed is sent (it
    // may still read), then the connection ends instead of waiting for a timeout.
    close_after_flush_ = true;
  }
  Flush();
}

void SmtpConnection::OnPlaintext(std::string_view data) {
  const SmtpLimits& limits = ctx_.config().smtp;
  const size_t bound = limits.replies_unread_bytes_max;
  if (input_overflowed_) return;  // the connection ends after the replies it is owed
  if (reading_paused_) {
    // Bytes already on their way when reading stopped (a multishot receive's last buffers): kept
    // for when the client has read its replies.
    if (held_in_.size() + data.size() > limits.input_held_bytes_max) {
      LogInfo() << peer_ip_ << " sends more than " << limits.input_held_bytes_max
                << " bytes without reading its replies: closing";
      EndForOverflow();
      return;
    }
    held_in_.append(data);
    return;
  }
  // Fed in slices, so that the replies of one slice are counted before the next is parsed: a
  // client pipelining commands that each cost more reply than input (EHLO, HELP, RSET) stops
  // near the bound, not a whole receive buffer beyond it.
  constexpr size_t kSliceBytes = 4096;
  while (!data.empty() && !closed_) {
    size_t n = std::min(data.size(), kSliceBytes);
    Apply(session_.OnBytes(data.substr(0, n)));
    data.remove_prefix(n);
    // The session waits for AUTH or the queue: what the client pipelined meanwhile stays in the
    // kernel, not in the session, so that no overflow can close a connection whose message is
    // being queued (the client would get 421 for a message we deliver).
    if (OutputBacklog() > bound || session_.paused()) {
      held_in_.assign(data.data(), data.size());
      PauseReading();
      break;
    }
  }
  RearmTimer();
}

size_t SmtpConnection::OutputBacklog() const {
  size_t backlog = pending_out_.size() + (sending_.size() - sending_offset_);
  if (tls_ != nullptr) backlog += tls_->PendingCiphertext().size();
  return backlog;
}

void SmtpConnection::PauseReading() {
  if (reading_paused_ || closed_) return;
  reading_paused_ = true;
  // The kernel keeps the rest in the socket's buffer, and TCP tells the client to wait.
  if (recv_.in_flight()) reactor_->Cancel(&recv_);
}

void SmtpConnection::EndForOverflow() {
  input_overflowed_ = true;
  std::string().swap(held_in_);
  // The reply to work in progress (the 250 of a message being queued) goes first: a 421 in its
  // place would make the client send again a message that is delivered all the same.
  if (!OwnWorkPending()) SayGoodbyeForOverflow();
}

void SmtpConnection::SayGoodbyeForOverflow() {
  pending_out_ += absl::StrCat("421 4.7.0 ", ctx_.config().hostname,
                               " Too much input without reading the replies\r\n");
  // After what is being sent: Close() now would drop the 421 and the replies before it. A client
  // that reads nothing more is dropped by the timer (replies_unread_timeout_ms).
  close_after_flush_ = true;
  Flush();
  RearmTimer();
}

void SmtpConnection::MaybeResumeReading() {
  if (!reading_paused_ || closed_ || session_.paused() || input_overflowed_) return;
  if (OutputBacklog() > ctx_.config().smtp.replies_unread_bytes_max / 2) return;
  reading_paused_ = false;
  std::string held;
  held.swap(held_in_);
  if (!held.empty()) OnPlaintext(held);  // may pause again, holding what is left
  ArmRecv();
  RearmTimer();  // the stall deadline no longer applies
}

void SmtpConnection::Apply(const smtp::ServerActions& actions) {
  if (!actions.write.empty()) QueueOutput(actions.write);
  if (actions.start_tls) StartTls();
  // `close` wins (server_session.h): the client got 421, not 250, so the message is not queued.
  if (actions.check_credentials && !actions.close) CheckCredentials(actions.credentials);
  if (actions.message_ready && !actions.close) QueueMessage();
  if (actions.close) {
    close_after_flush_ = true;
    if (!send_.in_flight() && pending_out_.empty()) Close();
  }
  Flush();
}

void SmtpConnection::ApplyResult(const smtp::ServerActions& actions) {
  Apply(actions);
  if (input_overflowed_) {
    if (!closed_ && !close_after_flush_) SayGoodbyeForOverflow();
    return;
  }
  MaybeResumeReading();  // what the client pipelined while the session waited
  RearmTimer();
}

void SmtpConnection::QueueOutput(std::string_view plaintext) { pending_out_.append(plaintext); }

void SmtpConnection::Flush() {
  if (send_.in_flight() || closed_) return;
  if (tls_ != nullptr && !pending_out_.empty() && tls_->established()) {
    auto taken = tls_->Write(pending_out_);
    if (taken.ok()) pending_out_.erase(0, *taken);
  }
  sending_.clear();
  sending_offset_ = 0;
  if (tls_ != nullptr) {
    absl::string_view cipher = tls_->PendingCiphertext();
    sending_.assign(cipher.data(), cipher.size());
    tls_->ConsumeCiphertext(cipher.size());
  } else {
    sending_.swap(pending_out_);
  }
  if (sending_.empty()) {
    if (close_after_flush_ && pending_out_.empty()) Close();
    return;
  }
  reactor_->Send(fd_, sending_.data(), sending_.size(), &send_);
}

void SmtpConnection::OnSent(int result) {
  if (result < 0) {
    if (result != -ECANCELED && result != -EPIPE && result != -ECONNRESET) {
      LogDebug() << "send to " << peer_ip_ << ": " << std::strerror(-result);
    }
    peer_gone_ = true;
    if (!closed_) Close();
    return;
  }
  sending_offset_ += static_cast<size_t>(result);
  if (sending_offset_ < sending_.size()) {
    reactor_->Send(fd_, sending_.data() + sending_offset_, sending_.size() - sending_offset_,
                   &send_);
    return;
  }
  sending_.clear();
  sending_offset_ = 0;
  if (start_tls_after_send_ && pending_out_.empty()) SwitchToTls();
  Flush();
  MaybeResumeReading();
}

void SmtpConnection::StartTls() {
  // "220 Ready to start TLS" is in pending_out_ and must leave in the clear (RFC 3207 §4). The
  // stream is created when that send has completed: the client sends its ClientHello only after
  // reading the 220, and completions are handled in order, so no ClientHello byte can be
  // processed before the switch. Bytes that arrive earlier were sent before the client saw the
  // 220 (command injection, CVE-2011-0411); the session discards them.
  start_tls_after_send_ = true;
}

void SmtpConnection::SwitchToTls() {
  start_tls_after_send_ = false;
  auto stream = tls::TlsStream::NewServer(*ctx_.shared->tls->Get());
  if (!stream.ok()) {
    LogWarning() << "STARTTLS for " << peer_ip_ << ": " << stream.status();
    Close();
    return;
  }
  tls_ = std::move(*stream);
}

void SmtpConnection::CheckCredentials(const smtp::CredentialCheck& credentials) {
  auth_pending_ = true;
  ctx_.shared->authenticator->Check(
      credentials, peer_ip_, reactor_, [this](smtp::AuthResult result) {
        auth_pending_ = false;
        if (const metrics::RelayMetrics* m = ctx_.metrics()) {
          metrics::AuthOutcome outcome =
              result == smtp::AuthResult::kOk       ? metrics::AuthOutcome::kSuccess
              : result == smtp::AuthResult::kFailed ? metrics::AuthOutcome::kFailure
                                                    : metrics::AuthOutcome::kError;
          m->auth(outcome).Add(ctx_.shard_index);
        }
        if (closed_) return;
        ApplyResult(session_.OnAuthResult(result));
      });
}

std::unique_ptr<smtp::ServerPolicy> SmtpConnection::MakePolicy(bool receive) {
  Authenticator* authenticator = ctx_.shared->authenticator;
  if (!receive) {
    auto policy = std::make_unique<SubmissionPolicy>(authenticator, ctx_.shared->suppression,
                                                     ctx_.config().suppression.accept_suppressed,
                                                     ctx_.tenants);
    submission_policy_ = policy.get();
    return policy;
  }
  ReceivePolicy::Hooks hooks;
  hooks.authenticated = [this] { return session_.authenticated(); };
  // SPF is evaluated while the client sends RCPT and DATA (RFC 7208 §2.4).
  hooks.on_mail_from = [this](std::string_view address) {
    checks_->StartSpf(peer_ip_, address, session_.ehlo_name(), ctx_.config().hostname);
  };
  return std::make_unique<ReceivePolicy>(authenticator, ctx_.shared->receive, peer_ip_,
                                         std::move(hooks));
}

namespace {

// The address of the message's one From field ("Joe <joe@example.com>" -> "joe@example.com"), or
// "" when there is no From, several, or one without a single address: the signer refuses those.
std::string HeaderFromAddress(std::string_view message) {
  size_t end = message.find("\r\n\r\n");
  std::string_view block = end == std::string_view::npos ? message : message.substr(0, end + 2);
  absl::StatusOr<std::vector<dkim::HeaderField>> fields = dkim::ParseHeaderBlock(block);
  if (!fields.ok()) return "";
  const dkim::HeaderField* from = nullptr;
  for (const dkim::HeaderField& f : *fields) {
    if (!dkim::HeaderNameEquals(f.name, "from")) continue;
    if (from != nullptr) return "";
    from = &f;
  }
  if (from == nullptr || !dkim::FromDomain(from->raw).ok()) return "";
  // The same parse that picks the signing domain: the address checked is the one signed for.
  absl::StatusOr<std::string> address = dkim::FromAddress(from->raw);
  return address.ok() ? *address : "";
}

}  // namespace

void SmtpConnection::QueueMessage() {
  if (receive_) return ReceiveMessage();
  cleaned_message_.reset();
  std::string unsubscribe_fields;
  if (!TakeClientFields(&unsubscribe_fields)) return;  // may set cleaned_message_
  std::string_view message = QueuedMessage();
  absl::Time now = absl::Now();
  // DESIGN.md: the signing domain is bound to the authenticated user, like the envelope sender.
  // The From domain picks the key, so a From the user may not send as is refused, or with
  // [submission] header_from = "any" signed with the envelope sender's domain instead.
  std::string forced_domain;
  if (session_.authenticated()) {
    std::string from = HeaderFromAddress(message);
    if (!from.empty() && !policy_->MaySendAs(session_.user(), from)) {
      if (!ctx_.config().header_from_any) {
        LogInfo() << "refused a message from " << session_.user() << " with a From: it may not "
                  << "send as";
        return RefuseMessage(550, "5.7.1", "From: is not an address this user may send as");
      }
      const std::string& sender = session_.envelope().mail_from;
      size_t at = sender.rfind('@');
      // The null sender names no domain of the user's: only a configured default signing
      // domain can sign then.
      forced_domain = at == std::string::npos ? "-" : absl::AsciiStrToLower(sender.substr(at + 1));
    }
  }
  // The connection is not freed while sign_pending_ (Idle()): `message` stays for the pool.
  sign_pending_ = true;
  ctx_.preparer->Prepare(message, forced_domain, ctx_.spool->NextMessageId().ToString(), now,
                         std::move(unsubscribe_fields),
                         [this, now](absl::StatusOr<PreparedMessage> prepared) {
                           sign_pending_ = false;
                           // The client left: it got no 250, so the message is not queued.
                           if (closed_) return;
                           OnPrepared(now, std::move(prepared));
                         });
}

void SmtpConnection::RefuseMessage(int code, std::string_view enhanced, std::string text) {
  refusal_text_ = std::move(text);
  queue_pending_ = true;
  reactor_->Post([this, code, enhanced] {
    queue_pending_ = false;
    if (closed_) return;
    ApplyResult(session_.OnMessageRefused(smtp::Reply{code, enhanced, refusal_text_}));
  });
}

bool SmtpConnection::TakeClientFields(std::string* unsubscribe_fields) {
  const Config& config = ctx_.config();
  // The tenants the transaction took at MAIL FROM, which its named tenant belongs to.
  const config::TenantSettings& tenants = submission_policy_->tenant_settings() != nullptr
                                              ? *submission_policy_->tenant_settings()
                                              : config.tenants;
  const bool links = ctx_.shared->unsubscribe != nullptr;
  ClientFields fields = ReadClientFields(
      session_.message(),
      {links ? std::string_view(config.unsubscribe.bulk_header) : std::string_view(),
       tenants.campaign_header, tenants.priority_header});
  if (fields.without_fields) cleaned_message_ = std::move(*fields.without_fields);
  attributes_ = queue::MessageAttributes();
  attributes_.tls_optional = fields.tls_required_no;
  if (const config::Tenant* tenant = submission_policy_->named_tenant()) {
    attributes_.tenant = tenant->name;
    attributes_.priority = tenant->priority;
  }
  if (const std::optional<std::string>& campaign = session_.envelope().params.campaign) {
    attributes_.campaign = *campaign;
  }
  if (const std::optional<std::string>& campaign = fields.values[1]) {
    if (!smtp::IsValidLabel(*campaign)) {
      RefuseMessage(550, "5.6.0",
                    absl::StrCat(tenants.campaign_header, ": a campaign name is 1 to ",
                                 smtp::kLabelBytesMax, " letters, digits, spaces and -_.+@:/"));
      return false;
    }
    attributes_.campaign = *campaign;
  }
  if (const std::optional<std::string>& priority = fields.values[2]) {
    std::optional<queue::Priority> named = config::PriorityNamed(*priority);
    if (!named) {
      RefuseMessage(550, "5.6.0",
                    absl::StrCat(tenants.priority_header, ": transactional, normal or bulk"));
      return false;
    }
    attributes_.priority = config::AllowedPriority(submission_policy_->named_tenant(), *named);
    if (attributes_.priority != *named) {
      LogInfo() << "message from " << session_.user() << " asked for class "
                << queue::PriorityName(*named) << ", above its tenant's priority_max: "
                << queue::PriorityName(attributes_.priority);
    }
  }
  if (links) *unsubscribe_fields = UnsubscribeFields(fields);
  return true;
}

std::string SmtpConnection::UnsubscribeFields(const ClientFields& fields) {
  const config::UnsubscribeSettings& settings = ctx_.config().unsubscribe;
  const bool bulk =
      (fields.values[0] && SaysBulk(*fields.values[0])) ||
      (session_.authenticated() &&
       std::find(settings.bulk_users.begin(), settings.bulk_users.end(),
                 absl::AsciiStrToLower(session_.user())) != settings.bulk_users.end());
  if (!bulk || fields.has_list_unsubscribe) return "";
  const smtp::Envelope& env = session_.envelope();
  const size_t at = env.mail_from.rfind('@');
  if (env.recipients.size() != 1 || at == std::string::npos) {
    // A link names one address: a message for several gets none (send bulk mail one recipient
    // a message, as list software does).
    LogInfo() << "bulk message from <" << env.mail_from << "> for " << env.recipients.size()
              << " recipients: no List-Unsubscribe (one link names one address)";
    return "";
  }
  return ctx_.shared->unsubscribe->HeaderFields(absl::AsciiStrToLower(env.mail_from.substr(at + 1)),
                                                env.recipients.front());
}

void SmtpConnection::OnPrepared(absl::Time now, absl::StatusOr<PreparedMessage> prepared) {
  const metrics::RelayMetrics* m = ctx_.metrics();
  const int shard = ctx_.shard_index;
  if (!prepared.ok()) {
    // A message that cannot be signed is refused rather than sent unsigned and failing DMARC.
    ctx_.counters->messages_refused++;
    if (m != nullptr) {
      m->dkim_refused.Add(shard);
      m->transactions_refused.Add(shard);
    }
    LogInfo() << "refused message from " << peer_ip_ << ": DKIM: " << prepared.status().message();
    ApplyResult(session_.OnMessageRefused(
        smtp::Reply{550, "5.6.0", "Message refused: cannot be DKIM-signed (malformed header)"}));
    return;
  }
  if (m != nullptr && !prepared->algorithms.empty()) {
    m->dkim_signing_us.Observe(shard, static_cast<uint64_t>(prepared->signing_ns) / 1000);
    for (dkim::KeyAlgorithm a : prepared->algorithms) {
      m->dkim_signatures(a == dkim::KeyAlgorithm::kEd25519Sha256
                             ? metrics::DkimAlgorithm::kEd25519Sha256
                             : metrics::DkimAlgorithm::kRsaSha256)
          .Add(shard);
    }
  }
  AppendMessage(now, std::move(prepared->missing), std::move(prepared->signatures));
}

void SmtpConnection::AppendMessage(absl::Time now, std::string missing, std::string signatures) {
  const smtp::Envelope& env = session_.envelope();
  queue::MessageId id = ctx_.spool->NextMessageId();
  std::string id_text = id.ToString();
  added_headers_ = smtp::BuildReceivedHeader(TraceInfo(id_text, now));
  added_headers_ += signatures;
  added_headers_ += missing;

  queue::Envelope qenv;
  qenv.sender = env.mail_from;
  qenv.recipients = env.recipients;
  qenv.attributes = attributes_;
  if (submission_policy_ != nullptr && !submission_policy_->suppressed().empty()) {
    // Taken at RCPT, reported, never queued ([suppression] at_rcpt = "accept").
    const auto& suppressed = submission_policy_->suppressed();
    std::erase_if(qenv.recipients, [&](const std::string& r) {
      return std::any_of(suppressed.begin(), suppressed.end(),
                         [&](const feedback::SuppressionEntry& e) { return e.address == r; });
    });
    if (qenv.recipients.empty()) {
      ctx_.host->OnRecipientsSuppressed("", env.mail_from, suppressed);
      ApplyResult(session_.OnMessageTakenUnqueued("Ok: not queued, every recipient is suppressed"));
      return;
    }
    ctx_.host->OnRecipientsSuppressed(id_text, env.mail_from, suppressed);
  }
  CarryDsnParameters(env, /*received=*/false, &qenv);
  AppendToSpool(qenv, id, std::move(id_text));
}

smtp::ReceivedInfo SmtpConnection::TraceInfo(const std::string& queue_id, absl::Time now) const {
  const smtp::Envelope& env = session_.envelope();
  smtp::ReceivedInfo info;
  info.ehlo_name = session_.ehlo_name();
  info.peer_ip = peer_ip_;
  info.hostname = ctx_.config().hostname;
  info.esmtp = session_.esmtp();
  info.tls = session_.tls_active();
  info.authenticated = session_.authenticated();
  info.smtputf8 = env.params.smtputf8;
  info.tls_version = session_.tls_version();
  info.tls_cipher = session_.tls_cipher();
  info.queue_id = queue_id;
  for (const std::string& r : env.recipients) info.recipients.push_back(r);
  info.time = now;
  return info;
}

void SmtpConnection::AppendToSpool(const queue::Envelope& qenv, queue::MessageId id,
                                   std::string id_text) {
  queue::Spool* spool = ctx_.spool;
  std::string_view message = QueuedMessage();
  queue_pending_ = true;
  // The durable callback runs even if this connection has gone by then: delivery must start
  // for every durably queued message, so the engine is told from here and not from OnQueued.
  ConnectionHost* host = ctx_.host;
  uint64_t size_bytes = added_headers_.size() + message.size();
  host->OnMessageAppending(qenv, id_text, size_bytes, added_headers_, message);
  absl::StatusOr<queue::Appended> appended = spool->AppendMessage(
      qenv, added_headers_, message, [this, host, id, id_text, size_bytes](absl::Status status) {
        // Told here, not in OnQueued: the message is queued whether or not its client stayed
        // for the 250.
        if (status.ok()) host->OnMessageQueued(id, id_text, size_bytes);
        OnQueued(std::move(status), id_text);
      });
  if (!appended.ok()) {
    queue_pending_ = false;
    ctx_.counters->messages_refused++;
    if (const metrics::RelayMetrics* m = ctx_.metrics()) {
      m->transactions_refused.Add(ctx_.shard_index);
    }
    absl::StatusCode code = appended.status().code();
    LogWarning() << "queue refused a message from " << peer_ip_ << ": " << appended.status();
    if (code == absl::StatusCode::kInvalidArgument) {
      ApplyResult(
          session_.OnMessageRefused(smtp::Reply{552, "5.3.4", "Message too big for the queue"}));
    } else if (code == absl::StatusCode::kResourceExhausted ||
               code == absl::StatusCode::kFailedPrecondition) {
      ApplyResult(session_.OnMessageRefused(smtp::kSpoolFull));
    } else {
      ApplyResult(session_.OnMessageRefused(smtp::kLocalError));
    }
    return;
  }
  DCHECK(appended->id == id);
}

void SmtpConnection::OnQueued(absl::Status status, std::string queue_id) {
  queue_pending_ = false;
  if (closed_) return;  // the client left; the message is queued (or not) all the same
  if (status.ok()) {
    ctx_.counters->messages_accepted++;
    ApplyResult(session_.OnMessageQueued(queue_id));
  } else {
    ctx_.counters->messages_refused++;
    if (const metrics::RelayMetrics* m = ctx_.metrics()) {
      m->transactions_refused.Add(ctx_.shard_index);
    }
    LogError() << "queue sync failed, refusing " << queue_id << ": " << status;
    ApplyResult(session_.OnMessageRefused(smtp::kSpoolFull));
  }
}

void SmtpConnection::RearmTimer() {
  if (closed_) return;
  if (lingering_) {
    reactor_->timers().Schedule(&timer_, linger_deadline_ms_);
    return;
  }
  const SmtpLimits& limits = ctx_.config().smtp;
  const int64_t now = reactor_->NowMs();
  int64_t deadline;
  if (reading_paused_) {
    deadline = now + limits.replies_unread_timeout_ms;
  } else if (OwnWorkPending()) {
    // The client waits for us: no deadline of its own runs, and a new one starts afterwards.
    phase_ = Phase::kNone;
    deadline = now + limits.command_timeout_ms;  // OnTimer checks again then
  } else {
    const Phase phase = tls_ != nullptr && !tls_reported_ ? Phase::kHandshake
                        : session_.in_data()              ? Phase::kData
                        : session_.mid_command()          ? Phase::kCommand
                                                          : Phase::kIdle;
    // A deadline is set when its phase begins; only waiting for the next command starts afresh
    // with each completed one.
    if (phase != phase_ || phase == Phase::kIdle) {
      phase_ = phase;
      phase_deadline_ms_ = now + PhaseLimitMs();
    }
    deadline = phase_deadline_ms_;
  }
  reactor_->timers().Schedule(&timer_, std::min(deadline, session_deadline_ms_));
}

int64_t SmtpConnection::PhaseLimitMs() const {
  const SmtpLimits& limits = ctx_.config().smtp;
  int64_t ms = 0;
  switch (phase_) {
    case Phase::kHandshake:
      ms = limits.greeting_timeout_ms;
      break;
    case Phase::kData:
      return limits.data_timeout_ms;  // a body cannot be hurried; stress does not shorten it
    case Phase::kCommand:
      ms = limits.command_deadline_ms;
      break;
    case Phase::kIdle:
    case Phase::kNone:
      ms = limits.command_timeout_ms;
      // Port 25 has no AUTH; on submission an unauthenticated client has little to wait for.
      if (!receive_ && !session_.authenticated()) {
        ms = std::min<int64_t>(ms, limits.idle_before_auth_ms);
      }
      break;
  }
  if (ctx_.host->UnderStress()) ms = std::min<int64_t>(ms, limits.stress_timeout_ms);
  return ms;
}

void SmtpConnection::OnTimer() {
  if (closed_) return;
  if (lingering_) {
    Close();  // the client is still sending: end it now
    return;
  }
  if (OwnWorkPending()) {
    // Our own work is outstanding, not the client's: wait for it.
    RearmTimer();
    return;
  }
  if (close_after_flush_ && reading_paused_) {
    // Its last replies (a 421) have not been taken in replies_unread_timeout_ms.
    LogInfo() << peer_ip_ << " has not read its last replies: closing";
    Close();
    return;
  }
  if (reading_paused_) {
    // The client has left its replies unread for replies_unread_timeout_ms: nothing it sends is
    // read meanwhile, so waiting for it to finish a command is pointless.
    LogInfo() << peer_ip_ << " has not read its replies for "
              << ctx_.config().smtp.replies_unread_timeout_ms << " ms: closing";
    pending_out_ +=
        absl::StrCat("421 4.4.2 ", ctx_.config().hostname, " Replies not read in time\r\n");
    Flush();
    Close();
    return;
  }
  LogInfo() << "timeout for " << peer_ip_;
  Apply(session_.OnTimeout());
  if (!closed_) {
    close_after_flush_ = true;
    Flush();
  }
}

void SmtpConnection::StopGracefully() {
  if (closed_) return;
  if (session_.in_data() || OwnWorkPending()) return;  // let it finish
  ForceClose("Server shutting down");
}

void SmtpConnection::ForceClose(std::string_view reason) {
  if (closed_) return;
  if (lingering_) {
    Close();  // its replies are out already
    return;
  }
  // Only where the client can read it: not in the middle of a TLS handshake.
  if (tls_ == nullptr || tls_->established()) {
    pending_out_ +=
        absl::StrCat("421 4.3.2 ", ctx_.config().hostname, " ", std::string(reason), "\r\n");
  }
  close_after_flush_ = true;
  Flush();
  if (!send_.in_flight()) Close();
}

void SmtpConnection::CountSession() {
  if (const metrics::RelayMetrics* m = ctx_.metrics()) {
    m->listener(implicit_tls_ ? metrics::ListenerKind::kSubmissions
                              : metrics::ListenerKind::kSubmission)
        .sessions.Add(ctx_.shard_index);
  }
}

void SmtpConnection::CountTls(bool ok) {
  if (const metrics::RelayMetrics* m = ctx_.metrics()) {
    (ok ? m->tls_handshakes(metrics::Direction::kInbound)
        : m->tls_failures(metrics::Direction::kInbound))
        .Add(ctx_.shard_index);
  }
}

void SmtpConnection::StartLinger() {
  lingering_ = true;
  linger_deadline_ms_ = reactor_->NowMs() + ctx_.config().smtp.close_linger_ms;
  if (checks_ != nullptr) {
    checks_->Cancel();  // nothing more is accepted on this connection
    checks_pending_ = false;
  }
  ::shutdown(fd_, SHUT_WR);  // FIN after the replies already queued in the kernel
  reading_paused_ = false;
  held_in_.clear();
  ArmRecv();
  RearmTimer();
}

void SmtpConnection::Close() {
  if (closed_) return;
  if (!lingering_ && close_after_flush_ && !peer_gone_ && !send_.in_flight() &&
      pending_out_.empty() && ctx_.config().smtp.close_linger_ms > 0) {
    StartLinger();
    return;
  }
  closed_ = true;
  reactor_->timers().Cancel(&timer_);
  if (checks_ != nullptr) {
    // The client left before its 250: nothing was accepted, the checks are dropped.
    checks_->Cancel();
    checks_pending_ = false;
  }
  ::shutdown(fd_, SHUT_RDWR);
  reactor_->Cancel(&recv_);
  ctx_.host->OnConnectionClosed(this);
}

}  // namespace relay::server
