// DKIM signing benchmarks: signatures/s for RSA-2048, Ed25519 and dual (RSA + Ed25519) on 4 KiB
// and 100 KiB messages, next to the bare private-key operation of BoringSSL (RSA_sign /
// ED25519_sign over a 32-byte digest) measured in the same run; and body canonicalization plus
// SHA-256 (MB/s) next to plain SHA-256 of the same bytes. After the runs it prints the ratios:
// the signer's overhead beyond the key operation (the goal is < 10% for a 4 KiB message with an
// RSA key) and the body hasher's speed relative to SHA-256.
//
//   bazel run -c opt //bench:dkim_bench
//   bazel run -c opt //bench:dkim_bench -- --benchmark_filter=Sign
#include <openssl/bytestring.h>
#include <openssl/curve25519.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/common/cpu_time_reporter.h"
#include "benchmark/benchmark.h"
#include "dkim/canon.h"
#include "dkim/key.h"
#include "dkim/signer.h"

namespace {

constexpr int64_t kNow = 1700000000;
// The relay hands DATA to the signer in chunks about this big (one receive buffer).
constexpr size_t kChunkBytes = 16 * 1024;

struct Keys {
  std::string rsa_pem;
  std::string ed_pem;
  RSA* rsa = nullptr;               // the same RSA key, for the bare operation
  uint8_t ed_private[64] = {};      // the same Ed25519 key
};

const Keys& GetKeys() {
  static const Keys* const keys = [] {
    auto* k = new Keys();
    dkim::PrivateKey rsa = *dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kRsaSha256, 2048);
    dkim::PrivateKey ed = *dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kEd25519Sha256, 0);
    k->rsa_pem = *rsa.ToPem();
    k->ed_pem = *ed.ToPem();
    // Parse the PEMs again with BoringSSL alone for the bare operations.
    for (const std::string* pem : {&k->rsa_pem, &k->ed_pem}) {
      std::string b64;
      size_t begin = pem->find('\n') + 1;
      size_t end = pem->find("-----END");
      std::string der;
      dkim::Base64Decode(pem->substr(begin, end - begin), &der);
      CBS cbs;
      CBS_init(&cbs, reinterpret_cast<const uint8_t*>(der.data()), der.size());
      EVP_PKEY* pkey = EVP_parse_private_key(&cbs);
      if (EVP_PKEY_id(pkey) == EVP_PKEY_RSA) {
        k->rsa = EVP_PKEY_get1_RSA(pkey);
      } else {
        uint8_t seed[32], pub[32];
        size_t len = sizeof(seed);
        EVP_PKEY_get_raw_private_key(pkey, seed, &len);
        ED25519_keypair_from_seed(pub, k->ed_private, seed);
      }
      EVP_PKEY_free(pkey);
    }
    return k;
  }();
  return *keys;
}

// A typical transactional message of about `bytes` bytes: real-looking headers, text body.
std::string Message(size_t bytes) {
  std::string m =
      "Received: from app1.example.com (app1.example.com [192.0.2.10])\r\n"
      "\tby relay.example.com with ESMTPSA id 4f2a9c; Sun, 22 Nov 2026 20:00:00 +0000\r\n"
      "From: \"Example Shop\" <orders@example.com>\r\n"
      "To: Customer Name <customer@example.net>\r\n"
      "Subject: Your order #123456 has shipped\r\n"
      "Date: Sun, 22 Nov 2026 20:00:00 +0000\r\n"
      "Message-ID: <20261122200000.123456@example.com>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n"
      "List-Unsubscribe: <https://example.com/u/abcdef>, <mailto:unsub@example.com>\r\n"
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
      "\r\n";
  const std::string line =
      "Thank you for your order.  Your parcel is on its way and should arrive\tsoon.  \r\n";
  while (m.size() + line.size() <= bytes) m += line;
  m.append(bytes - m.size() > 2 ? std::string(bytes - m.size() - 2, 'x') + "\r\n" : "");
  return m;
}

std::unique_ptr<dkim::Signer> MakeSigner(bool rsa, bool ed) {
  dkim::SignerConfig config;
  if (rsa) config.keys.push_back({"example.com", "rsa", "", GetKeys().rsa_pem, ""});
  if (ed) config.keys.push_back({"example.com", "ed", "", GetKeys().ed_pem, ""});
  return std::move(*dkim::Signer::Create(config));
}

void BM_BareRsa2048Sign(benchmark::State& state) {
  const Keys& keys = GetKeys();
  uint8_t digest[32] = {1, 2, 3};
  uint8_t sig[512];
  unsigned len = 0;
  for (auto _ : state) {
    RSA_sign(NID_sha256, digest, sizeof(digest), sig, &len, keys.rsa);
    benchmark::DoNotOptimize(sig);
    digest[0]++;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BareRsa2048Sign)->Unit(benchmark::kMicrosecond);

void BM_BareEd25519Sign(benchmark::State& state) {
  const Keys& keys = GetKeys();
  uint8_t digest[32] = {1, 2, 3};
  uint8_t sig[64];
  for (auto _ : state) {
    ED25519_sign(sig, digest, sizeof(digest), keys.ed_private);
    benchmark::DoNotOptimize(sig);
    digest[0]++;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BareEd25519Sign)->Unit(benchmark::kMicrosecond);

// Full per-message path: Begin, Update in receive-buffer chunks, Finish (body hash, header hash,
// key operations, folding).
void SignBench(benchmark::State& state, bool rsa, bool ed) {
  std::unique_ptr<dkim::Signer> signer = MakeSigner(rsa, ed);
  std::string message = Message(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    dkim::SigningSession session = signer->Begin();
    std::string_view rest = message;
    while (!rest.empty()) {
      size_t n = std::min(rest.size(), kChunkBytes);
      session.Update(rest.substr(0, n));
      rest.remove_prefix(n);
    }
    absl::StatusOr<std::string> out = session.Finish(kNow);
    if (!out.ok() || out->empty()) state.SkipWithError("signing failed");
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
}
void BM_SignRsa2048(benchmark::State& state) { SignBench(state, true, false); }
void BM_SignEd25519(benchmark::State& state) { SignBench(state, false, true); }
void BM_SignDual(benchmark::State& state) { SignBench(state, true, true); }
BENCHMARK(BM_SignRsa2048)->Arg(4 << 10)->Arg(100 << 10)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignEd25519)->Arg(4 << 10)->Arg(100 << 10)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SignDual)->Arg(4 << 10)->Arg(100 << 10)->Unit(benchmark::kMicrosecond);

// Body canonicalization + SHA-256, against SHA-256 alone over the same 1 MiB.
void BM_BodyHashRelaxed(benchmark::State& state) {
  std::string body = Message(1 << 20);
  for (auto _ : state) {
    dkim::BodyHasher hasher(dkim::Canonicalization::kRelaxed);
    hasher.Update(body);
    benchmark::DoNotOptimize(hasher.Finish());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_BodyHashRelaxed)->Unit(benchmark::kMicrosecond);

void BM_BodyHashSimple(benchmark::State& state) {
  std::string body = Message(1 << 20);
  for (auto _ : state) {
    dkim::BodyHasher hasher(dkim::Canonicalization::kSimple);
    hasher.Update(body);
    benchmark::DoNotOptimize(hasher.Finish());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_BodyHashSimple)->Unit(benchmark::kMicrosecond);

void BM_PlainSha256(benchmark::State& state) {
  std::string body = Message(1 << 20);
  uint8_t digest[32];
  for (auto _ : state) {
    SHA256(reinterpret_cast<const uint8_t*>(body.data()), body.size(), digest);
    benchmark::DoNotOptimize(digest);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_PlainSha256)->Unit(benchmark::kMicrosecond);

void PrintRatios(const std::map<std::string, double>& us) {
  auto get = [&us](const std::string& name) {
    auto it = us.find(name);
    return it == us.end() ? 0.0 : it->second;
  };
  double rsa = get("BM_BareRsa2048Sign"), ed = get("BM_BareEd25519Sign");
  std::printf("\nRatios from this run (per message, against the bare key operation):\n");
  struct Row {
    const char* label;
    std::string name;
    double bare;
  } rows[] = {
      {"RSA-2048 4 KiB  ", "BM_SignRsa2048/4096", rsa},
      {"RSA-2048 100 KiB", "BM_SignRsa2048/102400", rsa},
      {"Ed25519  4 KiB  ", "BM_SignEd25519/4096", ed},
      {"Ed25519  100 KiB", "BM_SignEd25519/102400", ed},
      {"dual     4 KiB  ", "BM_SignDual/4096", rsa + ed},
      {"dual     100 KiB", "BM_SignDual/102400", rsa + ed},
  };
  for (const Row& row : rows) {
    double t = get(row.name);
    if (t <= 0 || row.bare <= 0) continue;
    std::printf("  %s %9.1f sig/s  key op %8.1f us  signer %8.1f us  overhead %6.1f%%\n", row.label,
                1e6 / t, row.bare, t, (t / row.bare - 1) * 100);
  }
  double sha = get("BM_PlainSha256");
  for (const char* name : {"BM_BodyHashRelaxed", "BM_BodyHashSimple"}) {
    double t = get(name);
    if (t <= 0 || sha <= 0) continue;
    double mib = 1.0;  // 1 MiB per iteration
    std::printf("  %-18s %8.1f MB/s   plain SHA-256 %8.1f MB/s   ratio %.2f\n", name,
                mib * 1.048576 / (t / 1e6), mib * 1.048576 / (sha / 1e6), sha / t);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  relay::bench::CpuTimeReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  PrintRatios(reporter.cpu_time());  // µs: every benchmark here is in kMicrosecond
  benchmark::Shutdown();
  return 0;
}
