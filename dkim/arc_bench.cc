// What ARC costs a forwarder, against the DKIM signature the relay already makes per message:
// sealing a 4 KiB message (ARC-Message-Signature and ARC-Seal, two private-key operations) and
// validating a one-set chain (two public-key operations), with RSA-2048 and Ed25519 keys. The
// ratios to DKIM signing with the same key, measured in the same run, are printed at the end.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dkim/arc.h"
#include "dkim/key.h"
#include "dkim/signer.h"

namespace {

constexpr int64_t kNow = 1763800000;

std::string Message() {
  std::string m =
      "From: Alice <alice@origin.example>\r\nTo: bob@fwd.example\r\nSubject: benchmark\r\n"
      "Date: Sun, 22 Nov 2026 20:22:40 +0000\r\nMessage-ID: <bench@origin.example>\r\n"
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n";
  while (m.size() < 4096) m += "A line of body text, the kind a newsletter is made of.\r\n";
  return m;
}

struct Keys {
  std::map<dkim::KeyAlgorithm, std::string> pem;
  std::map<dkim::KeyAlgorithm, std::string> record;
};

const Keys& TheKeys() {
  static const Keys* keys = [] {
    auto* k = new Keys();
    for (dkim::KeyAlgorithm a :
         {dkim::KeyAlgorithm::kRsaSha256, dkim::KeyAlgorithm::kEd25519Sha256}) {
      dkim::PrivateKey key = dkim::PrivateKey::Generate(a, 2048).value();
      k->pem[a] = key.ToPem().value();
      k->record[a] = key.PublicKeyRecord();
    }
    return k;
  }();
  return *keys;
}

dkim::KeyAlgorithm Algorithm(const benchmark::State& state) {
  return state.range(0) == 0 ? dkim::KeyAlgorithm::kRsaSha256 : dkim::KeyAlgorithm::kEd25519Sha256;
}

void BM_DkimSign(benchmark::State& state) {
  dkim::SignerConfig config;
  config.keys.push_back({"origin.example", "s", "", TheKeys().pem.at(Algorithm(state)), ""});
  auto signer = dkim::Signer::Create(config).value();
  const std::string message = Message();
  for (auto _ : state) {
    dkim::SigningSession session = signer->Begin();
    session.Update(message);
    benchmark::DoNotOptimize(session.Finish(kNow).value());
  }
}
BENCHMARK(BM_DkimSign)->Arg(0)->Arg(1);

std::unique_ptr<dkim::ArcSealer> Sealer(dkim::KeyAlgorithm a) {
  dkim::ArcSealerConfig c;
  c.domain = "fwd.example";
  c.selector = "arc";
  c.key_contents = TheKeys().pem.at(a);
  return dkim::ArcSealer::Create(c).value();
}

void BM_ArcSeal(benchmark::State& state) {
  auto sealer = Sealer(Algorithm(state));
  const std::string message = Message();
  const dkim::ArcValidation none;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        sealer->Seal(message, "mx.fwd.example; spf=pass smtp.mailfrom=a@origin.example", none, kNow)
            .value());
  }
}
BENCHMARK(BM_ArcSeal)->Arg(0)->Arg(1);

void BM_ArcValidate(benchmark::State& state) {
  const std::string message = Message();
  const std::string sealed =
      Sealer(Algorithm(state))->Seal(message, "mx.fwd.example; arc=none", {}, kNow).value() +
      message;
  const std::string record = TheKeys().record.at(Algorithm(state));
  dkim::KeyLookup lookup = [&record](std::string_view,
                                     std::string_view) -> absl::StatusOr<std::string> {
    return record;
  };
  for (auto _ : state) {
    dkim::ArcValidation v = dkim::ValidateArcChain(sealed, lookup, kNow);
    if (v.status != dkim::ArcChainStatus::kPass) state.SkipWithError(v.reason.c_str());
  }
}
BENCHMARK(BM_ArcValidate)->Arg(0)->Arg(1);

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // No colour: the ratio lines are read by scripts.
  RatioReporter() : ConsoleReporter(OO_None) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      cpu_[run.benchmark_name()] = run.GetAdjustedCPUTime();
    }
  }
  const std::map<std::string, double>& cpu() const { return cpu_; }

 private:
  std::map<std::string, double> cpu_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& cpu = reporter.cpu();
  for (const char* arg : {"0", "1"}) {
    const char* key = arg[0] == '0' ? "rsa-2048" : "ed25519";
    auto base = cpu.find(std::string("BM_DkimSign/") + arg);
    if (base == cpu.end() || base->second <= 0) continue;
    for (const char* name : {"BM_ArcSeal/", "BM_ArcValidate/"}) {
      auto it = cpu.find(name + std::string(arg));
      if (it == cpu.end()) continue;
      std::printf("ratio %s%s / BM_DkimSign (%s): %.2f of one DKIM signature's CPU time\n", name,
                  arg, key, it->second / base->second);
    }
  }
  return 0;
}
