// A server TlsStream and a client TlsStream talking to each other in memory.
#include "relay/tls/tls_stream.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"

namespace relay::tls {
namespace {

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

struct CertFiles {
  std::string cert;
  std::string key;
};

CertFiles MakeCert(const std::string& name, const std::string& host) {
  CertFiles files{TempDir() + "/" + name + ".crt", TempDir() + "/" + name + ".key"};
  absl::Status status = GenerateSelfSignedCertificate(host, files.cert, files.key);
  EXPECT_TRUE(status.ok()) << status;
  return files;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

// Moves every pending byte from `from` to `to`, `chunk_bytes` at a time, collecting plaintext.
absl::Status Transfer(TlsStream& from, TlsStream& to, size_t chunk_bytes, std::string* plaintext) {
  while (!from.PendingCiphertext().empty()) {
    std::string bytes(from.PendingCiphertext().substr(0, chunk_bytes));
    from.ConsumeCiphertext(bytes.size());
    absl::Status status = to.OnCiphertext(bytes, plaintext);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Runs both directions until neither side has anything to send.
absl::Status Pump(TlsStream& client, TlsStream& server, size_t chunk_bytes = 1 << 20,
                  std::string* client_plain = nullptr, std::string* server_plain = nullptr) {
  std::string ignored_c, ignored_s;
  if (client_plain == nullptr) client_plain = &ignored_c;
  if (server_plain == nullptr) server_plain = &ignored_s;
  for (int round = 0; round < 100; ++round) {
    if (client.PendingCiphertext().empty() && server.PendingCiphertext().empty()) {
      return absl::OkStatus();
    }
    if (absl::Status s = Transfer(client, server, chunk_bytes, server_plain); !s.ok()) return s;
    if (absl::Status s = Transfer(server, client, chunk_bytes, client_plain); !s.ok()) return s;
  }
  return absl::InternalError("pump did not settle");
}

std::string PeerCommonName(const TlsStream& stream) {
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(stream.ssl()));
  if (peer == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(peer.get()), NID_commonName, cn, sizeof(cn));
  return cn;
}

std::string Pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed * 7) & 0xff);
  return s;
}

ClientTlsContext::Options Opportunistic() {
  ClientTlsContext::Options options;
  options.ca_file = "";
  return options;
}

class TlsVersionTest : public ::testing::TestWithParam<uint16_t> {
 protected:
  void SetUp() override {
    files_ = MakeCert("server", "mx.example.test");
    ServerTlsContext::Options options;
    options.max_version = GetParam();
    auto server = ServerTlsContext::Load(files_.cert, files_.key, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ctx_ = *server;
    auto client = ClientTlsContext::Create(Opportunistic());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ctx_ = *std::move(client);
  }

  std::pair<std::unique_ptr<TlsStream>, std::unique_ptr<TlsStream>> Connect() {
    auto server = TlsStream::NewServer(*server_ctx_);
    auto client = TlsStream::NewClient(*client_ctx_, "mx.example.test");
    EXPECT_TRUE(server.ok() && client.ok());
    EXPECT_TRUE((*client)->Start().ok());
    EXPECT_FALSE((*client)->PendingCiphertext().empty());  // The ClientHello.
    absl::Status status = Pump(**client, **server);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_TRUE((*client)->established());
    EXPECT_TRUE((*server)->established());
    return {*std::move(client), *std::move(server)};
  }

  const char* ExpectedVersion() const {
    return GetParam() == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2";
  }

  CertFiles files_;
  std::shared_ptr<const ServerTlsContext> server_ctx_;
  std::unique_ptr<ClientTlsContext> client_ctx_;
};

TEST_P(TlsVersionTest, HandshakeDataBothWaysInEveryChunkSizeAndCloseNotify) {
  auto [client, server] = Connect();
  EXPECT_EQ(client->protocol_version(), ExpectedVersion());
  EXPECT_EQ(server->protocol_version(), ExpectedVersion());
  EXPECT_FALSE(server->cipher_name().empty());
  EXPECT_EQ(client->cipher_name(), server->cipher_name());
  EXPECT_NE(server->cipher_name().find("TLS_"), std::string::npos);
  // Opportunistic: the self-signed certificate does not verify, and that is only reported.
  EXPECT_FALSE(client->peer_verified());
  EXPECT_FALSE(client->peer_verify_error().empty());
  EXPECT_EQ(PeerCommonName(*client), "mx.example.test");

  constexpr size_t kChunkBytesMax = 80;
  for (size_t chunk = 1; chunk <= kChunkBytesMax; ++chunk) {
    std::string to_server = Pattern(700 + chunk, 1);
    std::string to_client = Pattern(500 + 3 * chunk, 2);
    // Plaintext also goes in `chunk`-sized writes, so records of every small size occur.
    for (size_t i = 0; i < to_server.size(); i += chunk) {
      auto n = client->Write(absl::string_view(to_server).substr(i, chunk));
      ASSERT_TRUE(n.ok()) << n.status();
      ASSERT_EQ(*n, std::min(chunk, to_server.size() - i));
    }
    auto n = server->Write(to_client);
    ASSERT_TRUE(n.ok());
    ASSERT_EQ(*n, to_client.size());
    std::string got_server, got_client;
    ASSERT_TRUE(Pump(*client, *server, chunk, &got_client, &got_server).ok()) << chunk;
    ASSERT_EQ(got_server, to_server) << "chunk " << chunk;
    ASSERT_EQ(got_client, to_client) << "chunk " << chunk;
  }

  // One big write crosses many records.
  std::string big = Pattern(300000, 3);
  size_t sent = 0;
  std::string got;
  while (sent < big.size()) {
    auto n = client->Write(absl::string_view(big).substr(sent));
    ASSERT_TRUE(n.ok());
    sent += *n;
    ASSERT_LE(client->PendingCiphertext().size(), 256 * 1024 + 16 * 1024 + 512);
    ASSERT_TRUE(Transfer(*client, *server, 4096, &got).ok());
  }
  EXPECT_EQ(got, big);

  // close_notify both ways (RFC 8446 §6.1).
  ASSERT_TRUE(client->Shutdown().ok());
  EXPECT_FALSE(client->Write("late").ok());
  std::string none;
  ASSERT_TRUE(Transfer(*client, *server, 7, &none).ok());
  EXPECT_TRUE(server->peer_closed());
  ASSERT_TRUE(server->Shutdown().ok());
  ASSERT_TRUE(Transfer(*server, *client, 7, &none).ok());
  EXPECT_TRUE(client->peer_closed());
  EXPECT_TRUE(none.empty());
}

TEST_P(TlsVersionTest, SecondConnectionResumesTheSession) {
  {
    auto [client, server] = Connect();
    EXPECT_FALSE(client->session_reused());
    // TLS 1.3 tickets arrive after the handshake; send data so they are processed.
    ASSERT_TRUE(server->Write("hello").ok());
    std::string plain;
    ASSERT_TRUE(Pump(*client, *server, 1 << 20, &plain).ok());
    EXPECT_EQ(plain, "hello");
  }
  EXPECT_EQ(client_ctx_->session_cache().size(), 1u);
  auto [client, server] = Connect();
  EXPECT_TRUE(client->session_reused());
  EXPECT_TRUE(server->session_reused());
  EXPECT_EQ(client->protocol_version(), ExpectedVersion());

  // Another host does not get that session.
  auto server2 = TlsStream::NewServer(*server_ctx_);
  auto client2 = TlsStream::NewClient(*client_ctx_, "other.example.test");
  ASSERT_TRUE(server2.ok() && client2.ok());
  ASSERT_TRUE((*client2)->Start().ok());
  ASSERT_TRUE(Pump(**client2, **server2).ok());
  EXPECT_TRUE((*client2)->established());
  EXPECT_FALSE((*client2)->session_reused());
}

TEST_P(TlsVersionTest, PostHandshakeMessagesAreAnsweredWithinOneEvent) {
  if (GetParam() != TLS1_3_VERSION) GTEST_SKIP() << "KeyUpdate is TLS 1.3 (RFC 8446 4.6.3)";
  auto [client, server] = Connect();
  {
    // Plain data owes the peer nothing: no empty records, no stray output.
    ASSERT_TRUE(client->Write("x").ok());
    std::string x;
    ASSERT_TRUE(Transfer(*client, *server, 1 << 20, &x).ok());
    ASSERT_EQ(x, "x");
    EXPECT_TRUE(server->PendingCiphertext().empty());
  }
  // The client asks for a KeyUpdate (RFC 8446 §4.6.3) and sends data under its new keys.
  ASSERT_EQ(SSL_key_update(client->ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  ASSERT_TRUE(client->Write("after update").ok());
  std::string plain;
  ASSERT_TRUE(Transfer(*client, *server, 1 << 20, &plain).ok());
  EXPECT_EQ(plain, "after update");
  // The server's own KeyUpdate must go out now, without waiting for the server to write.
  EXPECT_FALSE(server->PendingCiphertext().empty());
  std::string back;
  ASSERT_TRUE(Transfer(*server, *client, 1 << 20, &back).ok());
  ASSERT_TRUE(server->Write("reply").ok());
  ASSERT_TRUE(Transfer(*server, *client, 1 << 20, &back).ok());
  EXPECT_EQ(back, "reply");
}

TEST_P(TlsVersionTest, BytesAfterCloseNotifyAreDiscarded) {
  auto [client, server] = Connect();
  // The server's last data, its close_notify and then more records and junk, all in one chunk:
  // the data before the alert is delivered, nothing after it (RFC 8446 §6.1).
  ASSERT_TRUE(server->Write("221 bye\r\n").ok());
  ASSERT_TRUE(server->Shutdown().ok());
  std::string wire(server->PendingCiphertext());
  server->ConsumeCiphertext(wire.size());
  const std::string junk(100000, '\x17');
  std::string plain;
  ASSERT_TRUE(client->OnCiphertext(wire + junk, &plain).ok());
  EXPECT_EQ(plain, "221 bye\r\n");
  EXPECT_TRUE(client->peer_closed());
  EXPECT_EQ(client->discarded_bytes(), junk.size());
  // Whatever comes later is dropped as it arrives, not kept.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(client->OnCiphertext(junk, &plain).ok());
  }
  EXPECT_EQ(plain, "221 bye\r\n");
  EXPECT_EQ(client->discarded_bytes(), 101 * junk.size());
  EXPECT_TRUE(client->PendingCiphertext().empty());
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsVersionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION), [](const auto& info) {
                           return info.param == TLS1_3_VERSION ? std::string("Tls13")
                                                               : std::string("Tls12");
                         });

TEST(TlsSessionCacheTest, BoundedLeastRecentlyUsed) {
  CertFiles files = MakeCert("cache", "cache.example.test");
  auto server_ctx = ServerTlsContext::Load(files.cert, files.key);
  ASSERT_TRUE(server_ctx.ok());
  ClientTlsContext::Options options = Opportunistic();
  options.session_hosts_max = 2;
  auto client_ctx = ClientTlsContext::Create(options);
  ASSERT_TRUE(client_ctx.ok());
  for (const char* host : {"a.test", "b.test", "c.test"}) {
    auto server = TlsStream::NewServer(**server_ctx);
    auto client = TlsStream::NewClient(**client_ctx, host);
    ASSERT_TRUE((*client)->Start().ok());
    ASSERT_TRUE(Pump(**client, **server).ok());
    ASSERT_TRUE((*server)->Write("x").ok());
    ASSERT_TRUE(Pump(**client, **server).ok());
  }
  TlsSessionCache& cache = (*client_ctx)->session_cache();
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Get("a.test"), nullptr);
  EXPECT_NE(cache.Get("b.test"), nullptr);
  EXPECT_NE(cache.Get("c.test"), nullptr);
}

TEST(TlsVerifyTest, RequiredVerificationRefusesUntrustedSelfSignedCertificate) {
  CertFiles files = MakeCert("untrusted", "mx.example.test");
  auto server_ctx = ServerTlsContext::Load(files.cert, files.key);
  ASSERT_TRUE(server_ctx.ok());
  ClientTlsContext::Options options;
  options.verify_required = true;
  // The system store, when present; otherwise an empty store refuses just the same.
  struct stat st;
  if (stat(options.ca_file.c_str(), &st) != 0) options.ca_file = "";
  auto client_ctx = ClientTlsContext::Create(options);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();
  auto server = TlsStream::NewServer(**server_ctx);
  auto client = TlsStream::NewClient(**client_ctx, "mx.example.test");
  ASSERT_TRUE((*client)->Start().ok());
  absl::Status status = Pump(**client, **server);
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE((*client)->established());
  EXPECT_NE((*client)->error().find("certificate"), std::string::npos) << (*client)->error();
  EXPECT_NE((*client)->peer_verify_result(), X509_V_OK);
  // The client's alert reaches the server, which fails too.
  std::string plain;
  EXPECT_FALSE(Transfer(**client, **server, 1 << 20, &plain).ok());
  EXPECT_FALSE((*server)->established());
}

TEST(TlsVerifyTest, TrustedCertificateVerifiesAndHostNameIsChecked) {
  CertFiles files = MakeCert("trusted", "mx.example.test");
  auto server_ctx = ServerTlsContext::Load(files.cert, files.key);
  ASSERT_TRUE(server_ctx.ok());
  ClientTlsContext::Options options;
  options.verify_required = true;
  options.ca_file = files.cert;
  auto client_ctx = ClientTlsContext::Create(options);
  ASSERT_TRUE(client_ctx.ok()) << client_ctx.status();
  {
    auto server = TlsStream::NewServer(**server_ctx);
    auto client = TlsStream::NewClient(**client_ctx, "mx.example.test");
    ASSERT_TRUE((*client)->Start().ok());
    ASSERT_TRUE(Pump(**client, **server).ok()) << (*client)->error();
    EXPECT_TRUE((*client)->established());
    EXPECT_TRUE((*client)->peer_verified());
    EXPECT_EQ((*client)->peer_verify_error(), "");
  }
  auto server = TlsStream::NewServer(**server_ctx);
  auto client = TlsStream::NewClient(**client_ctx, "wrong.example.test");
  ASSERT_TRUE((*client)->Start().ok());
  EXPECT_FALSE(Pump(**client, **server).ok());
  EXPECT_FALSE((*client)->established());
  EXPECT_EQ((*client)->peer_verify_result(), X509_V_ERR_HOSTNAME_MISMATCH);
}

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cert_ = TempDir() + "/live.crt";
    key_ = TempDir() + "/live.key";
    ASSERT_TRUE(GenerateSelfSignedCertificate("old.example.test", cert_, key_).ok());
    auto holder = ServerTlsContextHolder::Create(cert_, key_);
    ASSERT_TRUE(holder.ok()) << holder.status();
    holder_ = *std::move(holder);
    auto client = ClientTlsContext::Create(Opportunistic());
    ASSERT_TRUE(client.ok());
    client_ctx_ = *std::move(client);
  }

  std::pair<std::unique_ptr<TlsStream>, std::unique_ptr<TlsStream>> Connect() {
    auto server = TlsStream::NewServer(*holder_->Get());
    auto client = TlsStream::NewClient(*client_ctx_, "relay.test");
    EXPECT_TRUE((*client)->Start().ok());
    EXPECT_TRUE(Pump(**client, **server).ok());
    EXPECT_TRUE((*client)->established());
    return {*std::move(client), *std::move(server)};
  }

  void ExpectDataFlows(TlsStream& client, TlsStream& server) {
    ASSERT_TRUE(client.Write("ping").ok());
    ASSERT_TRUE(server.Write("pong").ok());
    std::string c, s;
    ASSERT_TRUE(Pump(client, server, 1 << 20, &c, &s).ok());
    EXPECT_EQ(s, "ping");
    EXPECT_EQ(c, "pong");
  }

  std::string cert_, key_;
  std::unique_ptr<ServerTlsContextHolder> holder_;
  std::unique_ptr<ClientTlsContext> client_ctx_;
};

TEST_F(ReloadTest, GoodNewCertificateServesNewStreamsAndOldStreamContinues) {
  auto [client1, server1] = Connect();
  EXPECT_EQ(PeerCommonName(*client1), "old.example.test");
  ASSERT_TRUE(GenerateSelfSignedCertificate("new.example.test", cert_, key_).ok());
  bool reloaded = false;
  ASSERT_TRUE(holder_->ReloadIfChanged(&reloaded).ok());
  EXPECT_TRUE(reloaded);
  ASSERT_TRUE(holder_->ReloadIfChanged(&reloaded).ok());
  EXPECT_FALSE(reloaded);  // Nothing changed since.
  auto [client2, server2] = Connect();
  EXPECT_EQ(PeerCommonName(*client2), "new.example.test");
  ExpectDataFlows(*client1, *server1);
  ExpectDataFlows(*client2, *server2);
  // An explicit reload (SIGHUP) of the same files also succeeds.
  EXPECT_TRUE(holder_->Reload().ok());
}

TEST_F(ReloadTest, BadCertificateIsRefusedAndTheOldOneKept) {
  auto [client1, server1] = Connect();
  std::shared_ptr<const ServerTlsContext> before = holder_->Get();
  std::string good_cert = ReadFile(cert_);
  std::string good_key = ReadFile(key_);

  WriteFile(cert_, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
  absl::Status status = holder_->Reload();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find(cert_), std::string::npos) << status;
  EXPECT_EQ(holder_->Get(), before);

  // A valid certificate whose key is not the one in the key file.
  std::string other_cert = TempDir() + "/other.crt", other_key = TempDir() + "/other.key";
  ASSERT_TRUE(GenerateSelfSignedCertificate("other.example.test", other_cert, other_key).ok());
  WriteFile(cert_, ReadFile(other_cert));
  bool reloaded = true;
  status = holder_->ReloadIfChanged(&reloaded);
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(reloaded);
  EXPECT_NE(status.message().find("does not match"), std::string::npos) << status;
  EXPECT_EQ(holder_->Get(), before);
  // The same bad files are not retried (and not logged) on every periodic check.
  EXPECT_TRUE(holder_->ReloadIfChanged(&reloaded).ok());
  EXPECT_FALSE(reloaded);

  // Missing key file.
  WriteFile(cert_, good_cert);
  unlink(key_.c_str());
  EXPECT_FALSE(holder_->Reload().ok());
  EXPECT_EQ(holder_->Get(), before);

  auto [client2, server2] = Connect();
  EXPECT_EQ(PeerCommonName(*client2), "old.example.test");
  ExpectDataFlows(*client1, *server1);
  WriteFile(key_, good_key);
}

TEST(SelfSignedTest, CertificateParsesNamesTheHostAndMatchesTheKey) {
  const std::string cert_path = TempDir() + "/gen.crt", key_path = TempDir() + "/gen.key";
  ASSERT_TRUE(GenerateSelfSignedCertificate("relay.example.org", cert_path, key_path).ok());
  struct stat st;
  ASSERT_EQ(stat(key_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  bssl::UniquePtr<BIO> cert_bio(BIO_new_file(cert_path.c_str(), "r"));
  bssl::UniquePtr<X509> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(cert, nullptr);
  bssl::UniquePtr<BIO> key_bio(BIO_new_file(key_path.c_str(), "r"));
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(X509_verify(cert.get(), key.get()), 1);  // Self-signed.
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "relay.example.org");
  // X509_check_host looks at the subjectAltName dNSName.
  EXPECT_EQ(X509_check_host(cert.get(), "relay.example.org", 17,
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr),
            1);
  EXPECT_NE(X509_check_host(cert.get(), "other.example.org", 17, 0, nullptr), 1);
  // Valid now, expiring in a year (give or take a day), not before.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(cert.get())), 0);
  int days = 0, seconds = 0;
  ASSERT_TRUE(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert.get()),
                             X509_get0_notAfter(cert.get())));
  EXPECT_EQ(days, 365);
  EXPECT_FALSE(GenerateSelfSignedCertificate("", cert_path, key_path).ok());
}

}  // namespace
}  // namespace relay::tls
