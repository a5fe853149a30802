// TLS costs, in memory (no sockets), with ratios against baselines measured in the same run:
//   - full TLS 1.3 handshake (ECDSA P-256) vs a resumed one (the per-host session cache's gain);
//   - bulk transfer through TlsStream (custom BIO, received ciphertext lent, not copied) vs the
//     same transfer through BoringSSL over a BIO pair, the classic memory-BIO arrangement.
#include <openssl/ssl.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"

namespace relay::tls {
namespace {

constexpr size_t kChunkBytes = 16384;

struct Fixture {
  std::shared_ptr<const ServerTlsContext> server;
  std::unique_ptr<ClientTlsContext> client;
};

Fixture& GetFixture() {
  static Fixture* fixture = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir = tmp != nullptr ? tmp : "/tmp";
    std::string cert = dir + "/bench.crt", key = dir + "/bench.key";
    if (!GenerateSelfSignedCertificate("bench.test", cert, key).ok()) abort();
    auto* f = new Fixture;
    f->server = ServerTlsContext::Load(cert, key).value();
    ClientTlsContext::Options options;
    options.ca_file = "";
    f->client = ClientTlsContext::Create(options).value();
    return f;
  }();
  return *fixture;
}

void Move(TlsStream& from, TlsStream& to, std::string* plain) {
  while (!from.PendingCiphertext().empty()) {
    absl::string_view out = from.PendingCiphertext();
    if (!to.OnCiphertext(out, plain).ok()) abort();
    from.ConsumeCiphertext(out.size());
  }
}

void Settle(TlsStream& client, TlsStream& server) {
  std::string plain;
  while (!client.PendingCiphertext().empty() || !server.PendingCiphertext().empty()) {
    Move(client, server, &plain);
    Move(server, client, &plain);
  }
}

std::pair<std::unique_ptr<TlsStream>, std::unique_ptr<TlsStream>> Handshake(const char* host) {
  Fixture& f = GetFixture();
  auto server = TlsStream::NewServer(*f.server).value();
  auto client = TlsStream::NewClient(*f.client, host).value();
  if (!client->Start().ok()) abort();
  Settle(*client, *server);
  if (!client->established()) abort();
  return {std::move(client), std::move(server)};
}

void BM_FullHandshake(benchmark::State& state) {
  Fixture& f = GetFixture();
  for (auto _ : state) {
    f.client->session_cache().Erase("full.test");
    auto streams = Handshake("full.test");
    if (streams.first->session_reused()) abort();
  }
}
BENCHMARK(BM_FullHandshake);

void BM_ResumedHandshake(benchmark::State& state) {
  // Prime the cache: the ticket arrives after the handshake, with the first data.
  {
    auto [client, server] = Handshake("resume.test");
    if (!server->Write("x").ok()) abort();
    Settle(*client, *server);
  }
  for (auto _ : state) {
    auto [client, server] = Handshake("resume.test");
    if (!client->session_reused()) abort();
    // Take the fresh ticket, as a real connection would with its first reply.
    if (!server->Write("x").ok()) abort();
    Settle(*client, *server);
  }
}
BENCHMARK(BM_ResumedHandshake);

void BM_TransferTlsStream(benchmark::State& state) {
  auto [client, server] = Handshake("transfer.test");
  std::string data(kChunkBytes, 'm');
  std::string plain;
  plain.reserve(4 * kChunkBytes);
  for (auto _ : state) {
    if (client->Write(data).value() != data.size()) abort();
    plain.clear();
    Move(*client, *server, &plain);
    if (plain.size() != data.size()) abort();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kChunkBytes));
}
BENCHMARK(BM_TransferTlsStream);

// Baseline: SSL objects over BIO_new_bio_pair, ciphertext copied in and out of the pair's buffers.
void BM_TransferBioPair(benchmark::State& state) {
  Fixture& f = GetFixture();
  bssl::UniquePtr<SSL> server(SSL_new(f.server->ssl_ctx()));
  bssl::UniquePtr<SSL> client(SSL_new(f.client->ssl_ctx()));
  BIO *server_internal, *server_network, *client_internal, *client_network;
  BIO_new_bio_pair(&server_internal, 65536, &server_network, 65536);
  BIO_new_bio_pair(&client_internal, 65536, &client_network, 65536);
  SSL_set_bio(server.get(), server_internal, server_internal);
  SSL_set_bio(client.get(), client_internal, client_internal);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  char buf[65536];
  // The driver's side: read from one network BIO into a socket buffer, write into the other.
  auto shuttle = [&](BIO* from, BIO* to) {
    int n;
    while ((n = BIO_read(from, buf, sizeof(buf))) > 0) {
      if (BIO_write(to, buf, n) != n) abort();
    }
  };
  for (int i = 0;
       i < 20 && !(SSL_is_init_finished(client.get()) && SSL_is_init_finished(server.get())); ++i) {
    SSL_do_handshake(client.get());
    shuttle(client_network, server_network);
    SSL_do_handshake(server.get());
    shuttle(server_network, client_network);
  }
  if (!SSL_is_init_finished(client.get())) abort();
  std::string data(kChunkBytes, 'm');
  std::string plain(4 * kChunkBytes, '\0');
  for (auto _ : state) {
    if (SSL_write(client.get(), data.data(), static_cast<int>(data.size())) !=
        static_cast<int>(data.size())) {
      abort();
    }
    shuttle(client_network, server_network);
    size_t got = 0;
    int n;
    while ((n = SSL_read(server.get(), plain.data() + got, static_cast<int>(plain.size() - got))) >
           0) {
      got += static_cast<size_t>(n);
    }
    if (got != data.size()) abort();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kChunkBytes));
  BIO_free(server_network);
  BIO_free(client_network);
}
BENCHMARK(BM_TransferBioPair);

// Prints the benchmarks as usual and keeps each one's CPU time per iteration for the ratios
// (CPU, not wall time: other work on the shared machine stretches wall time unevenly).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && run.iterations > 0) {
        nanos_[run.run_name.function_name] = run.GetAdjustedCPUTime();
      }
    }
  }
  void PrintRatio(const char* label, const char* measured, const char* baseline) {
    auto m = nanos_.find(measured), b = nanos_.find(baseline);
    if (m == nanos_.end() || b == nanos_.end() || m->second <= 0) return;
    printf("ratio %-46s %6.2fx  (%s vs %s)\n", label, b->second / m->second, measured, baseline);
  }

 private:
  std::map<std::string, double> nanos_;
};

}  // namespace
}  // namespace relay::tls

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  relay::tls::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintRatio("resumed handshake speed-up over full", "BM_ResumedHandshake",
                      "BM_FullHandshake");
  reporter.PrintRatio("TlsStream transfer speed vs BIO pair", "BM_TransferTlsStream",
                      "BM_TransferBioPair");
  benchmark::Shutdown();
  return 0;
}
