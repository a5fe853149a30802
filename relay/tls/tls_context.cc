#include "relay/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/tls/tls_stream.h"

namespace relay::tls {

std::string DrainSslErrors() {
  std::string text;
  while (uint32_t err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "no further detail" : text;
}

FileStamp StampFile(const std::string& path) {
  FileStamp stamp;
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return stamp;
  stamp.device = st.st_dev;
  stamp.inode = st.st_ino;
  stamp.size_bytes = st.st_size;
  stamp.mtime_nanos = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return stamp;
}

namespace {

std::string Asn1TimeText(const ASN1_TIME* time) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || !ASN1_TIME_print(bio.get(), time)) return "?";
  const uint8_t* data;
  size_t len;
  BIO_mem_contents(bio.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string NameText(X509_NAME* name) {
  char buf[512];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ServerTlsContext>> ServerTlsContext::Load(
    const std::string& cert_path, const std::string& key_path, const Options& options) {
  ERR_clear_error();
  std::shared_ptr<ServerTlsContext> context(new ServerTlsContext());
  // Stamped before reading, so a file replaced during the load is noticed on the next check.
  context->cert_stamp_ = StampFile(cert_path);
  context->key_stamp_ = StampFile(key_path);
  context->ctx_.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = context->ctx_.get();
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + DrainSslErrors());
  if (!SSL_CTX_set_min_proto_version(ctx, options.min_version) ||
      !SSL_CTX_set_max_proto_version(ctx, options.max_version)) {
    return absl::InvalidArgumentError("bad TLS version range: " + DrainSslErrors());
  }
  if (!SSL_CTX_set_strict_cipher_list(ctx, kTls12Ciphers)) {
    return absl::InternalError("cipher list: " + DrainSslErrors());
  }
  if (!SSL_CTX_use_certificate_chain_file(ctx, cert_path.c_str())) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate file ", cert_path, ": ", DrainSslErrors()));
  }
  if (!SSL_CTX_use_PrivateKey_file(ctx, key_path.c_str(), SSL_FILETYPE_PEM)) {
    uint32_t err = ERR_peek_last_error();
    if (ERR_GET_LIB(err) == ERR_LIB_X509 && ERR_GET_REASON(err) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("private key file ", key_path, " does not match certificate ", cert_path));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("private key file ", key_path, ": ", DrainSslErrors()));
  }
  if (!SSL_CTX_check_private_key(ctx)) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("private key file ", key_path, " does not match certificate ", cert_path));
  }
  // Submission clients do not present certificates; SMTP AUTH identifies them.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  context->description_ = absl::StrCat("subject ", NameText(X509_get_subject_name(leaf)),
                                       ", expires ", Asn1TimeText(X509_get0_notAfter(leaf)));
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    LogWarning() << "certificate " << cert_path << " has expired (" << context->description_
                 << "); clients that verify will refuse it";
  }
  return std::shared_ptr<const ServerTlsContext>(std::move(context));
}

absl::StatusOr<std::unique_ptr<ServerTlsContextHolder>> ServerTlsContextHolder::Create(
    std::string cert_path, std::string key_path, ServerTlsContext::Options options) {
  std::unique_ptr<ServerTlsContextHolder> holder(
      new ServerTlsContextHolder(std::move(cert_path), std::move(key_path), options));
  auto context = ServerTlsContext::Load(holder->cert_path_, holder->key_path_, options);
  if (!context.ok()) return context.status();
  LogInfo() << "TLS certificate loaded: " << (*context)->description();
  absl::MutexLock lock(&holder->mu_);
  holder->current_ = *std::move(context);
  return holder;
}

std::shared_ptr<const ServerTlsContext> ServerTlsContextHolder::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status ServerTlsContextHolder::Reload() {
  absl::MutexLock lock(&reload_mu_);
  return ReloadLocked();
}

absl::Status ServerTlsContextHolder::ReloadLocked() {
  auto context = ServerTlsContext::Load(cert_path_, key_path_, options_);
  if (!context.ok()) {
    failed_cert_stamp_ = StampFile(cert_path_);
    failed_key_stamp_ = StampFile(key_path_);
    LogWarning() << "TLS certificate reload refused, keeping the current certificate: "
                 << context.status().message();
    return context.status();
  }
  failed_cert_stamp_ = FileStamp();
  failed_key_stamp_ = FileStamp();
  LogInfo() << "TLS certificate reloaded: " << (*context)->description();
  absl::MutexLock lock(&mu_);
  current_ = *std::move(context);
  return absl::OkStatus();
}

absl::Status ServerTlsContextHolder::ReloadIfChanged(bool* reloaded) {
  if (reloaded != nullptr) *reloaded = false;
  absl::MutexLock lock(&reload_mu_);
  const FileStamp cert = StampFile(cert_path_);
  const FileStamp key = StampFile(key_path_);
  std::shared_ptr<const ServerTlsContext> current = Get();
  if (cert == current->cert_stamp() && key == current->key_stamp()) return absl::OkStatus();
  if (cert == failed_cert_stamp_ && key == failed_key_stamp_) return absl::OkStatus();
  absl::Status status = ReloadLocked();
  if (status.ok() && reloaded != nullptr) *reloaded = true;
  return status;
}

void TlsSessionCache::Put(absl::string_view host, bssl::UniquePtr<SSL_SESSION> session) {
  auto it = entries_.find(host);
  if (it != entries_.end()) {
    it->second->session = std::move(session);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (hosts_max_ == 0) return;
  while (entries_.size() >= hosts_max_) {
    entries_.erase(lru_.back().host);
    lru_.pop_back();
  }
  lru_.push_front(Entry{std::string(host), std::move(session)});
  entries_.emplace(lru_.front().host, lru_.begin());
}

bssl::UniquePtr<SSL_SESSION> TlsSessionCache::Get(absl::string_view host) {
  auto it = entries_.find(host);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  SSL_SESSION* session = it->second->session.get();
  SSL_SESSION_up_ref(session);
  return bssl::UniquePtr<SSL_SESSION>(session);
}

void TlsSessionCache::Erase(absl::string_view host) {
  auto it = entries_.find(host);
  if (it == entries_.end()) return;
  lru_.erase(it->second);
  entries_.erase(it);
}

absl::StatusOr<std::unique_ptr<ClientTlsContext>> ClientTlsContext::Create(const Options& options) {
  ERR_clear_error();
  std::unique_ptr<ClientTlsContext> context(new ClientTlsContext(options));
  context->ctx_.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = context->ctx_.get();
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + DrainSslErrors());
  if (!SSL_CTX_set_min_proto_version(ctx, options.min_version) ||
      !SSL_CTX_set_max_proto_version(ctx, options.max_version)) {
    return absl::InvalidArgumentError("bad TLS version range: " + DrainSslErrors());
  }
  if (!options.ca_file.empty() &&
      !SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA file ", options.ca_file, ": ", DrainSslErrors()));
  }
  // With SSL_VERIFY_NONE BoringSSL still verifies the chain and records the result
  // (SSL_get_verify_result); it only does not abort the handshake, which is what opportunistic
  // TLS wants (RFC 7435 §1.3).
  SSL_CTX_set_verify(ctx, options.verify_required ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  // Sessions live in our per-host cache, not in BoringSSL's (a client has no internal cache).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, &ClientTlsContext::OnNewSession);
  return context;
}

int ClientTlsContext::OnNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* stream = static_cast<TlsStream*>(SSL_get_app_data(ssl));
  if (stream == nullptr || stream->client_context_ == nullptr ||
      !SSL_SESSION_is_resumable(session)) {
    return 0;  // Not kept: BoringSSL drops its reference.
  }
  stream->client_context_->session_cache_.Put(stream->host_, bssl::UniquePtr<SSL_SESSION>(session));
  return 1;  // We took the reference.
}

}  // namespace relay::tls
