#include "relay/tls/tls_stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace relay::tls {
namespace {

// Largest plaintext one SSL_read can return (RFC 8446 §5.1).
constexpr size_t kRecordPlaintextBytesMax = 16384;

bool IsIpLiteral(const std::string& host) {
  in6_addr addr6;
  in_addr addr4;
  return inet_pton(AF_INET, host.c_str(), &addr4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &addr6) == 1;
}

const char* SslErrorName(int code) {
  switch (code) {
    case SSL_ERROR_SSL:
      return "protocol error";
    case SSL_ERROR_SYSCALL:
      return "transport error";
    case SSL_ERROR_ZERO_RETURN:
      return "closed";
    case SSL_ERROR_WANT_READ:
      return "want read";
    case SSL_ERROR_WANT_WRITE:
      return "want write";
    default:
      return "error";
  }
}

}  // namespace

// The custom BIO: reads come from the borrowed span; writes append to the output buffer. Its data
// pointer is the TlsStream.
int TlsStream::BioRead(BIO* bio, char* out, int len) {
  auto* stream = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const size_t n = std::min(static_cast<size_t>(len), stream->borrowed_.size());
  if (n == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  memcpy(out, stream->borrowed_.data(), n);
  stream->borrowed_.remove_prefix(n);
  return static_cast<int>(n);
}

int TlsStream::BioWrite(BIO* bio, const char* in, int len) {
  auto* stream = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  // Never refuses: Write() bounds how much plaintext goes in, so the output stays near the limit.
  stream->out_.append(in, static_cast<size_t>(len));
  return len;
}

long TlsStream::BioCtrl(BIO* bio, int cmd, long larg, void* parg) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

namespace {

const BIO_METHOD* StreamBioMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "relay-tls-stream");
    return m;
  }();
  return method;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsStream>> TlsStream::NewServer(const ServerTlsContext& context,
                                                                Limits limits) {
  std::unique_ptr<TlsStream> stream(new TlsStream(/*is_server=*/true, limits));
  if (absl::Status status = stream->Init(context.ssl_ctx()); !status.ok()) return status;
  SSL_set_accept_state(stream->ssl_.get());
  return stream;
}

absl::StatusOr<std::unique_ptr<TlsStream>> TlsStream::NewClient(ClientTlsContext& context,
                                                                absl::string_view host,
                                                                Limits limits) {
  std::unique_ptr<TlsStream> stream(new TlsStream(/*is_server=*/false, limits));
  stream->host_ = std::string(host);
  stream->client_context_ = &context;
  if (absl::Status status = stream->Init(context.ssl_ctx()); !status.ok()) return status;
  SSL* ssl = stream->ssl_.get();
  SSL_set_connect_state(ssl);
  // RFC 6066 §3: SNI carries a host name, never an address literal.
  if (!stream->host_.empty() && !IsIpLiteral(stream->host_) &&
      !SSL_set_tlsext_host_name(ssl, stream->host_.c_str())) {
    return absl::InvalidArgumentError("bad SNI host name: " + DrainSslErrors());
  }
  if (context.options().check_host_name && !stream->host_.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    int ok = IsIpLiteral(stream->host_)
                 ? X509_VERIFY_PARAM_set1_ip_asc(param, stream->host_.c_str())
                 : X509_VERIFY_PARAM_set1_host(param, stream->host_.data(), stream->host_.size());
    if (!ok) return absl::InvalidArgumentError("bad host name: " + DrainSslErrors());
  }
  if (bssl::UniquePtr<SSL_SESSION> session = context.session_cache().Get(stream->host_)) {
    SSL_set_session(ssl, session.get());
  }
  return stream;
}

absl::Status TlsStream::Init(SSL_CTX* ctx) {
  ERR_clear_error();
  static const bool method_ready = [] {
    BIO_METHOD* m = const_cast<BIO_METHOD*>(StreamBioMethod());
    return m != nullptr && BIO_meth_set_read(m, &TlsStream::BioRead) &&
           BIO_meth_set_write(m, &TlsStream::BioWrite) && BIO_meth_set_ctrl(m, &TlsStream::BioCtrl);
  }();
  if (!method_ready) return absl::InternalError("cannot create the TLS stream BIO method");
  ssl_.reset(SSL_new(ctx));
  if (ssl_ == nullptr) return absl::InternalError("SSL_new: " + DrainSslErrors());
  BIO* bio = BIO_new(StreamBioMethod());
  if (bio == nullptr) return absl::InternalError("BIO_new: " + DrainSslErrors());
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_.get(), bio, bio);  // One reference, used for both directions.
  SSL_set_app_data(ssl_.get(), this);
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE);
  return absl::OkStatus();
}

TlsStream::~TlsStream() = default;

absl::Status TlsStream::Fail(absl::string_view what, int ssl_error) {
  failed_ = true;
  error_ = absl::StrCat(what, ": ", SslErrorName(ssl_error), ": ", DrainSslErrors());
  if (!is_server_ && ssl_ != nullptr) {
    long verify = SSL_get_verify_result(ssl_.get());
    if (verify != X509_V_OK) {
      absl::StrAppend(&error_, " (certificate: ", X509_verify_cert_error_string(verify), ")");
    }
  }
  return absl::UnavailableError(error_);
}

absl::Status TlsStream::Start() {
  if (is_server_) return absl::OkStatus();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc == 1) return absl::OkStatus();
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ) return absl::OkStatus();
  return Fail("TLS handshake", err);
}

absl::Status TlsStream::OnCiphertext(absl::Span<const uint8_t> ciphertext, std::string* plaintext) {
  if (failed_) return absl::FailedPreconditionError("TLS stream already failed: " + error_);
  if (peer_closed_) {
    discarded_bytes_ += ciphertext.size();  // after close_notify: ignored (RFC 8446 §6.1)
    return absl::OkStatus();
  }
  borrowed_ = ciphertext;
  absl::Status status = absl::OkStatus();
  while (!peer_closed_) {
    // SSL_read drives the handshake first, then decrypts (and answers post-handshake messages).
    size_t old_size = plaintext->size();
    plaintext->resize(old_size + kRecordPlaintextBytesMax);
    int rc = SSL_read(ssl_.get(), plaintext->data() + old_size,
                      static_cast<int>(kRecordPlaintextBytesMax));
    plaintext->resize(old_size + (rc > 0 ? static_cast<size_t>(rc) : 0));
    if (rc > 0) continue;
    int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      break;
    }
    status = Fail(SSL_is_init_finished(ssl_.get()) ? "TLS read" : "TLS handshake", err);
    break;
  }
  // Post-handshake messages that need an answer (a TLS 1.3 KeyUpdate with update_requested,
  // RFC 8446 §4.6.3) are queued by SSL_read but only written by the next SSL_write. A write of
  // zero bytes flushes them now, so that this one event leaves nothing owed to the peer.
  if (status.ok() && !peer_closed_ && !shutdown_sent_ && SSL_is_init_finished(ssl_.get())) {
    int rc = SSL_write(ssl_.get(), "", 0);
    if (rc < 0) {
      int err = SSL_get_error(ssl_.get(), rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        status = Fail("TLS write", err);
    }
  }
  // BoringSSL reads until the BIO runs dry (SSL_ERROR_WANT_READ), so bytes are left over only
  // after close_notify or an error. Both end the stream: RFC 8446 §6.1 says data received after a
  // closure alert MUST be ignored, and keeping it would let a peer that goes on sending grow
  // memory without bound. It is discarded, and so is everything a later call brings.
  discarded_bytes_ += borrowed_.size();
  borrowed_ = {};
  return status;
}

absl::StatusOr<size_t> TlsStream::Write(absl::string_view plaintext) {
  if (failed_) return absl::FailedPreconditionError("TLS stream failed: " + error_);
  if (shutdown_sent_) return absl::FailedPreconditionError("TLS stream is shut down");
  if (!SSL_is_init_finished(ssl_.get())) {
    return absl::FailedPreconditionError("TLS handshake not complete");
  }
  size_t pending = out_.size() - out_consumed_;
  if (pending >= limits_.ciphertext_out_bytes_max || plaintext.empty()) return 0;
  size_t room = limits_.ciphertext_out_bytes_max - pending;
  size_t take = std::min(room, plaintext.size());
  size_t written = 0;
  while (written < take) {
    int chunk = static_cast<int>(std::min<size_t>(take - written, 1 << 20));
    int rc = SSL_write(ssl_.get(), plaintext.data() + written, chunk);
    if (rc <= 0) return Fail("TLS write", SSL_get_error(ssl_.get(), rc));
    written += static_cast<size_t>(rc);
  }
  return written;
}

absl::Status TlsStream::Shutdown() {
  if (shutdown_sent_ || failed_) return absl::OkStatus();
  shutdown_sent_ = true;
  // Returns 0 ("sent ours, theirs not yet seen") or 1; either way close_notify is in out_.
  int rc = SSL_shutdown(ssl_.get());
  if (rc < 0) return Fail("TLS shutdown", SSL_get_error(ssl_.get(), rc));
  return absl::OkStatus();
}

void TlsStream::ConsumeCiphertext(size_t n) {
  out_consumed_ += std::min(n, out_.size() - out_consumed_);
  if (out_consumed_ == out_.size()) {
    out_.clear();  // Keeps the capacity.
    out_consumed_ = 0;
  }
}

bool TlsStream::established() const { return !failed_ && SSL_is_init_finished(ssl_.get()); }

bool TlsStream::session_reused() const { return SSL_session_reused(ssl_.get()) == 1; }

std::string TlsStream::protocol_version() const {
  if (!SSL_is_init_finished(ssl_.get())) return "";
  return SSL_get_version(ssl_.get());
}

std::string TlsStream::cipher_name() const {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_.get());
  return cipher == nullptr ? "" : SSL_CIPHER_standard_name(cipher);
}

bool TlsStream::peer_verified() const {
  if (!SSL_is_init_finished(ssl_.get())) return false;
  if (SSL_get0_peer_certificates(ssl_.get()) == nullptr) return false;
  return SSL_get_verify_result(ssl_.get()) == X509_V_OK;
}

std::vector<std::string> TlsStream::peer_chain() const {
  std::vector<std::string> chain;
  const STACK_OF(CRYPTO_BUFFER)* certs = SSL_get0_peer_certificates(ssl_.get());
  if (certs == nullptr) return chain;
  for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(certs); ++i) {
    const CRYPTO_BUFFER* b = sk_CRYPTO_BUFFER_value(certs, i);
    chain.emplace_back(reinterpret_cast<const char*>(CRYPTO_BUFFER_data(b)), CRYPTO_BUFFER_len(b));
  }
  return chain;
}

long TlsStream::peer_verify_result() const { return SSL_get_verify_result(ssl_.get()); }

std::string TlsStream::peer_verify_error() const {
  long result = SSL_get_verify_result(ssl_.get());
  return result == X509_V_OK ? "" : X509_verify_cert_error_string(result);
}

}  // namespace relay::tls
