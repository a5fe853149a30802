// One connection's TLS, server or client side, with no socket I/O: the I/O driver moves the
// ciphertext, this object runs BoringSSL over it.
//
// Data path. BoringSSL reads and writes through a small custom BIO instead of a BIO pair or a
// memory BIO, so that received ciphertext is not copied into an intermediate BIO buffer:
// OnCiphertext(bytes) lends the driver's receive buffer (a provided-buffer-ring slot, say) to
// BoringSSL for the duration of the call, and BoringSSL decrypts straight out of it (it buffers a
// partial record itself). BoringSSL takes every byte it is lent unless it stops at close_notify or
// at an error; those leftover bytes, and every byte received after a close_notify, are discarded
// and counted (discarded_bytes), never kept (RFC 8446 §6.1: data after a closure alert is
// ignored), so a peer that goes on sending after its close_notify costs no memory. Ciphertext to
// send accumulates in one buffer that the driver sends from (PendingCiphertext /
// ConsumeCiphertext) and that keeps its capacity, so steady state allocates nothing.
//
// One event is processed to completion: OnCiphertext drives the handshake as far as the bytes
// allow, decrypts every complete record into *plaintext, and leaves in the output buffer
// everything that must go out as a consequence (handshake flights, TLS 1.3 NewSessionTicket and
// KeyUpdate replies, alerts). After any call the driver sends PendingCiphertext() if it is not
// empty. A client starts with Start() (its ClientHello); a server waits for bytes.
//
// Threads: a TlsStream belongs to the one thread that drives it. It keeps a reference on the
// SSL_CTX it was made from, so a server certificate reload does not affect it. A client stream
// must not outlive its ClientTlsContext (the session cache is there).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "relay/tls/tls_context.h"

namespace relay::tls {

struct TlsStreamLimits {
  // Write() accepts plaintext only while less than this much ciphertext waits to be sent, so a
  // slow peer cannot make the output buffer grow without bound.
  size_t ciphertext_out_bytes_max = 256 * 1024;
};

class TlsStream {
 public:
  using Limits = TlsStreamLimits;

  static absl::StatusOr<std::unique_ptr<TlsStream>> NewServer(const ServerTlsContext& context,
                                                              Limits limits = Limits());
  // `host` is the destination: sent as SNI (unless it is an IP literal), checked against the
  // certificate, and the key of the session cache.
  static absl::StatusOr<std::unique_ptr<TlsStream>> NewClient(ClientTlsContext& context,
                                                              absl::string_view host,
                                                              Limits limits = Limits());
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Client: produces the ClientHello. No effect on a server.
  absl::Status Start();

  // Bytes arrived from the peer. `ciphertext` is only borrowed for the call. Decrypted
  // application data is appended to *plaintext. An error is fatal for the connection: send
  // PendingCiphertext() (it may hold an alert) and close. After the peer's close_notify the bytes
  // are discarded (see above) and OK is returned: the driver closes once peer_closed().
  absl::Status OnCiphertext(absl::Span<const uint8_t> ciphertext, std::string* plaintext);
  absl::Status OnCiphertext(absl::string_view ciphertext, std::string* plaintext) {
    return OnCiphertext(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(ciphertext.data()), ciphertext.size()),
        plaintext);
  }

  // Encrypts as much of `plaintext` as the output limit allows and returns how many bytes were
  // taken (possibly 0: send, then try again). FailedPrecondition before the handshake completed
  // or after shutdown.
  absl::StatusOr<size_t> Write(absl::string_view plaintext);

  // Queues close_notify (RFC 8446 §6.1). Further Write() calls fail.
  absl::Status Shutdown();

  // Ciphertext waiting to be sent, and how much of it the socket took.
  absl::string_view PendingCiphertext() const {
    return absl::string_view(out_).substr(out_consumed_);
  }
  void ConsumeCiphertext(size_t n);

  bool is_server() const { return is_server_; }
  bool established() const;
  // The peer sent close_notify: no more plaintext will come.
  bool peer_closed() const { return peer_closed_; }
  bool shutdown_sent() const { return shutdown_sent_; }
  // Received bytes dropped after a close_notify or an error.
  uint64_t discarded_bytes() const { return discarded_bytes_; }
  bool session_reused() const;
  // "TLSv1.3", "TLSv1.2"; empty before the handshake completed.
  std::string protocol_version() const;
  // IETF name, e.g. "TLS_AES_128_GCM_SHA256" (as in the Received header, RFC 8314 §4.3).
  std::string cipher_name() const;
  // Client side: whether the peer's chain verified against the context's trust anchors and, when
  // configured, named the destination host. Meaningful once established.
  bool peer_verified() const;
  // X509_V_OK (0) or the verification error code, and its text.
  long peer_verify_result() const;
  // The certificates the peer presented, leaf first, DER (empty before the handshake).
  std::vector<std::string> peer_chain() const;
  std::string peer_verify_error() const;
  // The last error, as text (empty when none).
  const std::string& error() const { return error_; }
  // The destination host of a client stream.
  const std::string& host() const { return host_; }

  SSL* ssl() const { return ssl_.get(); }

 private:
  TlsStream(bool is_server, Limits limits) : is_server_(is_server), limits_(limits) {}
  absl::Status Init(SSL_CTX* ctx);
  absl::Status Fail(absl::string_view what, int ssl_error);
  static int BioRead(BIO* bio, char* out, int len);
  static int BioWrite(BIO* bio, const char* in, int len);
  static long BioCtrl(BIO* bio, int cmd, long larg, void* parg);

  const bool is_server_;
  const Limits limits_;
  bssl::UniquePtr<SSL> ssl_;
  ClientTlsContext* client_context_ = nullptr;
  std::string host_;
  // Received ciphertext lent by the driver for the current OnCiphertext call.
  absl::Span<const uint8_t> borrowed_;
  uint64_t discarded_bytes_ = 0;
  // Ciphertext to send; [out_consumed_, size) is still pending.
  std::string out_;
  size_t out_consumed_ = 0;
  bool peer_closed_ = false;
  bool shutdown_sent_ = false;
  bool failed_ = false;
  std::string error_;

  friend class ClientTlsContext;
};

}  // namespace relay::tls
