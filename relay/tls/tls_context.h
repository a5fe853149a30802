// TLS configuration objects (BoringSSL SSL_CTX) for the relay's two roles.
//
// ServerTlsContext: an immutable SSL_CTX loaded from a certificate chain PEM file and a private key
// PEM file (TLS 1.2 and 1.3, AEAD ciphers with forward secrecy only). A TlsStream made from it
// holds its own reference on the SSL_CTX (SSL_new counts references), so a session keeps the
// context it started with for its whole life, whatever happens to the holder.
//
// ServerTlsContextHolder: the current ServerTlsContext, shared by every shard as a thread-safe
// snapshot. Shards call Get() once per accepted TLS connection (one uncontended mutex); the main
// thread calls Reload() on SIGHUP and ReloadIfChanged() from a periodic timer. A reload that fails
// (unreadable file, bad PEM, key not matching the certificate) logs one line naming the problem and
// keeps the previous context, so new connections go on working with the old certificate.
//
// ClientTlsContext: the SSL_CTX for outbound delivery. Opportunistic by default (the peer's
// certificate is checked and the result reported, but a failure does not stop the handshake), or
// verifying against a CA file (the system store by default) with the destination host name
// checked (RFC 6125). Each client stream sends SNI and offers the last TLS session received from
// the same destination host, kept in a bounded per-host cache, so later connections resume.
// A ClientTlsContext belongs to one shard thread and must outlive the streams made from it.
#pragma once

#include <openssl/ssl.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace relay::tls {

// Cipher suites for TLS 1.2 (TLS 1.3 suites are fixed by BoringSSL: all AEAD). ECDHE only, AEAD
// only, as RFC 7525 §4.2 recommends.
inline constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// The file identity used to notice a changed certificate or key without reading it.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  int64_t size_bytes = -1;
  int64_t mtime_nanos = -1;
  bool operator==(const FileStamp&) const = default;
};
// The stamp of `path`, or a stamp with size_bytes == -1 when it cannot be stat'ed.
FileStamp StampFile(const std::string& path);

class ServerTlsContext {
 public:
  struct Options {
    // Lowest protocol version offered; TLS1_2_VERSION or TLS1_3_VERSION.
    uint16_t min_version = TLS1_2_VERSION;
    uint16_t max_version = TLS1_3_VERSION;
  };

  // Loads and checks the pair. The error names the file and what is wrong with it.
  static absl::StatusOr<std::shared_ptr<const ServerTlsContext>> Load(const std::string& cert_path,
                                                                      const std::string& key_path,
                                                                      const Options& options);
  static absl::StatusOr<std::shared_ptr<const ServerTlsContext>> Load(const std::string& cert_path,
                                                                      const std::string& key_path) {
    return Load(cert_path, key_path, Options());
  }

  // The SSL_CTX, configured and never modified after Load (safe to share across threads).
  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  // Subject and expiry of the leaf certificate, for log lines.
  const std::string& description() const { return description_; }
  const FileStamp& cert_stamp() const { return cert_stamp_; }
  const FileStamp& key_stamp() const { return key_stamp_; }

 private:
  ServerTlsContext() = default;
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string description_;
  FileStamp cert_stamp_;
  FileStamp key_stamp_;
};

// Thread-safe: Get() from any shard thread, Reload*() from one control thread (or any thread:
// reloads serialise on their own mutex).
class ServerTlsContextHolder {
 public:
  // The first load must succeed: there is no old context to keep.
  static absl::StatusOr<std::unique_ptr<ServerTlsContextHolder>> Create(
      std::string cert_path, std::string key_path,
      ServerTlsContext::Options options = ServerTlsContext::Options());

  // The context for a new connection.
  std::shared_ptr<const ServerTlsContext> Get() const ABSL_LOCKS_EXCLUDED(mu_);

  // Loads the files again. On success new connections get the new context; on failure the old
  // one stays, a warning is logged, and the error is returned.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(reload_mu_, mu_);
  // Reloads only when either file's stamp differs from the loaded context's and from the last
  // stamps that already failed (so a bad file is reported once, not on every check). Returns OK
  // when nothing changed; *reloaded (optional) says whether a new context was installed.
  absl::Status ReloadIfChanged(bool* reloaded = nullptr) ABSL_LOCKS_EXCLUDED(reload_mu_, mu_);

 private:
  ServerTlsContextHolder(std::string cert_path, std::string key_path,
                         ServerTlsContext::Options options)
      : cert_path_(std::move(cert_path)), key_path_(std::move(key_path)), options_(options) {}
  absl::Status ReloadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);

  const std::string cert_path_;
  const std::string key_path_;
  const ServerTlsContext::Options options_;
  absl::Mutex reload_mu_;
  // Stamps of the last load attempt that failed, so it is not retried until a file changes again.
  FileStamp failed_cert_stamp_ ABSL_GUARDED_BY(reload_mu_);
  FileStamp failed_key_stamp_ ABSL_GUARDED_BY(reload_mu_);
  mutable absl::Mutex mu_;
  std::shared_ptr<const ServerTlsContext> current_ ABSL_GUARDED_BY(mu_);
};

// Per destination host, the last resumable TLS session; least recently used evicted first.
// One shard thread.
class TlsSessionCache {
 public:
  explicit TlsSessionCache(size_t hosts_max) : hosts_max_(hosts_max) {}
  // Takes ownership of `session`, replacing the host's previous one.
  void Put(absl::string_view host, bssl::UniquePtr<SSL_SESSION> session);
  // The host's session (a new reference), or null.
  bssl::UniquePtr<SSL_SESSION> Get(absl::string_view host);
  void Erase(absl::string_view host);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string host;
    bssl::UniquePtr<SSL_SESSION> session;
  };
  const size_t hosts_max_;
  std::list<Entry> lru_;  // Front is most recently used.
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> entries_;
};

class ClientTlsContext {
 public:
  struct Options {
    // When true a certificate that does not verify (chain or host name) fails the handshake;
    // when false (opportunistic, RFC 7435) the result is only reported by the stream.
    bool verify_required = false;
    // Whether the destination host name must appear in the certificate (RFC 6125 §6.4).
    bool check_host_name = true;
    // Trust anchors. Empty: none (every peer is then reported unverified).
    std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";
    uint16_t min_version = TLS1_2_VERSION;
    uint16_t max_version = TLS1_3_VERSION;
    // Destination hosts whose last session is kept for resumption.
    size_t session_hosts_max = 4096;
  };

  static absl::StatusOr<std::unique_ptr<ClientTlsContext>> Create(const Options& options);
  static absl::StatusOr<std::unique_ptr<ClientTlsContext>> Create() { return Create(Options()); }

  SSL_CTX* ssl_ctx() const { return ctx_.get(); }
  const Options& options() const { return options_; }
  TlsSessionCache& session_cache() { return session_cache_; }

 private:
  explicit ClientTlsContext(const Options& options)
      : options_(options), session_cache_(options.session_hosts_max) {}
  static int OnNewSession(SSL* ssl, SSL_SESSION* session);

  const Options options_;
  bssl::UniquePtr<SSL_CTX> ctx_;
  TlsSessionCache session_cache_;
};

// The text of BoringSSL's error queue (and clears it), e.g. for a failed load.
std::string DrainSslErrors();

}  // namespace relay::tls
