// DNS resolver benchmarks, each against a baseline measured in the same run:
//   - parsing raw answers (MX with addresses, long TXT) against copying the same bytes;
//   - cached MX resolutions (the delivery engine's common case) against uncached ones;
//   - queries per second through c-ares on the reactor against a plain blocking UDP
//     request/response loop to the same unbound.
// The DNS server is Debian's unbound, started by this binary on 127.0.0.1 and a free port with the
// zones of dns/testing/unbound_server.cc; without unbound the server benchmarks are skipped.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "dns/message.h"
#include "dns/resolver.h"
#include "dns/testing/unbound_server.h"
#include "relay/io/reactor.h"

namespace {

using dns::MessageBuilder;
using Section = MessageBuilder::Section;

constexpr int kBatch = 64;  // lookups in flight at once; also the number of bench domains

dns::testing::UnboundServer* g_server = nullptr;
relay::io::Reactor* g_reactor = nullptr;

std::string MxAnswer() {
  MessageBuilder b(1, MessageBuilder::kFlagResponse | MessageBuilder::kFlagRecursionAvailable);
  b.AddQuestion("example.com", dns::kTypeMx);
  b.AddMx(Section::kAnswer, "example.com", 300, 5, "gmail-smtp-in.l.google.com");
  b.AddMx(Section::kAnswer, "example.com", 300, 10, "alt1.gmail-smtp-in.l.google.com");
  b.AddMx(Section::kAnswer, "example.com", 300, 20, "alt2.gmail-smtp-in.l.google.com");
  b.AddA(Section::kAdditional, "gmail-smtp-in.l.google.com", 300, "192.0.2.26");
  b.AddAaaa(Section::kAdditional, "gmail-smtp-in.l.google.com", 300, "2001:db8::1a");
  return b.wire();
}

std::string TxtAnswer() {
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion("s1._domainkey.example.com", dns::kTypeTxt);
  b.AddTxt(Section::kAnswer, "s1._domainkey.example.com", 300,
           {"v=DKIM1; k=rsa; p=" + std::string(236, 'A'), std::string(156, 'B')});
  return b.wire();
}

void BM_CopyMxAnswer(benchmark::State& state) {
  std::string wire = MxAnswer();
  for (auto _ : state) {
    std::string copy(wire);
    benchmark::DoNotOptimize(copy.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * wire.size());
}
BENCHMARK(BM_CopyMxAnswer);

void BM_ParseMxAnswer(benchmark::State& state) {
  std::string wire = MxAnswer();
  for (auto _ : state) {
    auto m = dns::ParseMessage(wire);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * wire.size());
}
BENCHMARK(BM_ParseMxAnswer);

void BM_ParseTxtAnswer(benchmark::State& state) {
  std::string wire = TxtAnswer();
  for (auto _ : state) {
    auto m = dns::ParseMessage(wire);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * wire.size());
}
BENCHMARK(BM_ParseTxtAnswer);

std::unique_ptr<dns::Resolver> MakeResolver(size_t cache_entries) {
  dns::ResolverOptions options;
  options.servers = {g_server->address()};
  options.timeout_ms = 1000;
  options.cache.entries_max = cache_entries;
  auto resolver = dns::Resolver::Create(g_reactor, options);
  if (!resolver.ok()) {
    fprintf(stderr, "resolver: %s\n", std::string(resolver.status().message()).c_str());
    abort();
  }
  return *std::move(resolver);
}

std::vector<std::string> BenchDomains() {
  std::vector<std::string> out;
  for (int i = 0; i < kBatch; ++i) out.push_back("d" + std::to_string(i) + ".bench.test");
  return out;
}

// Resolves every bench domain once, all in flight together; returns how many failed.
int MxBatch(dns::Resolver* resolver, const std::vector<std::string>& domains) {
  int outstanding = static_cast<int>(domains.size());
  int failed = 0;
  std::vector<dns::QueryHandle> handles;
  handles.reserve(domains.size());
  for (const std::string& d : domains) {
    handles.push_back(
        resolver->ResolveMx(d, dns::FamilyPreference::kIpv4First, [&](dns::MxResult r) {
          failed += !r.status.ok() || r.candidates.size() != 2;
          --outstanding;
        }));
  }
  while (outstanding > 0) g_reactor->RunOnce(100);
  return failed;
}

void BM_MxCached(benchmark::State& state) {
  auto resolver = MakeResolver(10000);
  std::vector<std::string> domains = BenchDomains();
  if (MxBatch(resolver.get(), domains) != 0) state.SkipWithError("MX lookups failed");
  for (auto _ : state) {
    if (MxBatch(resolver.get(), domains) != 0) state.SkipWithError("MX lookups failed");
  }
  state.SetItemsProcessed(state.iterations() * domains.size());
  state.counters["queries_sent"] = resolver->queries_sent();
}

void BM_MxUncached(benchmark::State& state) {
  auto resolver = MakeResolver(0);  // every MX needs its MX and both hosts' A records
  std::vector<std::string> domains = BenchDomains();
  for (auto _ : state) {
    if (MxBatch(resolver.get(), domains) != 0) state.SkipWithError("MX lookups failed");
  }
  state.SetItemsProcessed(state.iterations() * domains.size());
  state.counters["queries_sent"] = resolver->queries_sent();
  state.counters["timeouts"] = resolver->timeouts();
}

void BM_ResolverQueries(benchmark::State& state) {
  auto resolver = MakeResolver(0);
  std::vector<std::string> domains = BenchDomains();
  for (auto _ : state) {
    int outstanding = kBatch;
    std::vector<dns::QueryHandle> handles;
    handles.reserve(kBatch);
    for (const std::string& d : domains) {
      handles.push_back(resolver->Query(d, dns::kTypeMx, [&](dns::QueryResult r) {
        if (!r.status.ok()) state.SkipWithError("query failed");
        --outstanding;
      }));
    }
    while (outstanding > 0) g_reactor->RunOnce(100);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// Baseline: one blocking sendto/recv per query, the simplest client there is.
void BM_BlockingUdpQueries(benchmark::State& state) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(g_server->port());
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::vector<std::string> queries;
  for (const std::string& d : BenchDomains()) {
    MessageBuilder b(static_cast<uint16_t>(queries.size() + 1),
                     MessageBuilder::kFlagRecursionDesired);
    b.AddQuestion(d, dns::kTypeMx);
    queries.push_back(b.wire());
  }
  char buf[1500];
  size_t i = 0;
  for (auto _ : state) {
    const std::string& q = queries[i++ % queries.size()];
    if (send(fd, q.data(), q.size(), 0) < 0 || recv(fd, buf, sizeof(buf), 0) < 12) {
      state.SkipWithError("no answer");
      break;
    }
  }
  close(fd);
  state.SetItemsProcessed(state.iterations());
}

// Keeps every run's items/s so that main() can print the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (it != run.counters.end()) rates_[run.benchmark_name()] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double Rate(const std::string& prefix) const {
    for (const auto& [name, rate] : rates_) {
      if (name.rfind(prefix, 0) == 0) return rate;
    }
    return 0;
  }

 private:
  std::map<std::string, double> rates_;
};

void PrintRatio(const RatioReporter& r, const char* what, const std::string& a,
                const std::string& baseline) {
  double x = r.Rate(a), y = r.Rate(baseline);
  if (x <= 0 || y <= 0) return;
  printf("%-44s %12.0f/s vs %12.0f/s baseline (%s): x%.2f\n", what, x, y, baseline.c_str(), x / y);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::unique_ptr<dns::testing::UnboundServer> server;
  std::unique_ptr<relay::io::Reactor> reactor;
  std::string skip;
  if (!dns::testing::UnboundServer::Available()) {
    fprintf(stderr, "FAIL: unbound is not installed (Debian package unbound)\n");
    return 1;
  }
  if (absl::Status probe = relay::io::Reactor::ProbeKernel(); !probe.ok()) {
    skip = std::string(probe.message());
  } else {
    auto started =
        dns::testing::UnboundServer::Start(dns::testing::TempDir(), dns::testing::TestZones());
    if (!started.ok()) {
      fprintf(stderr, "unbound: %s\n", std::string(started.status().message()).c_str());
      return 1;
    }
    server = *std::move(started);
    relay::io::ReactorOptions options;
    options.sq_entries = 256;
    options.cq_entries = 1024;
    auto created = relay::io::Reactor::Create(options);
    if (!created.ok()) {
      fprintf(stderr, "reactor: %s\n", std::string(created.status().message()).c_str());
      return 1;
    }
    reactor = *std::move(created);
    g_server = server.get();
    g_reactor = reactor.get();
  }
  if (!skip.empty()) {
    printf("SKIP: server benchmarks (%s)\n", skip.c_str());
  } else {
    benchmark::RegisterBenchmark("BM_MxCached", BM_MxCached)->UseRealTime();
    benchmark::RegisterBenchmark("BM_MxUncached", BM_MxUncached)->UseRealTime();
    benchmark::RegisterBenchmark("BM_ResolverQueries", BM_ResolverQueries)->UseRealTime();
    benchmark::RegisterBenchmark("BM_BlockingUdpQueries", BM_BlockingUdpQueries)->UseRealTime();
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  printf("\nRatios (same run, same machine):\n");
  PrintRatio(reporter, "MX answer parses", "BM_ParseMxAnswer", "BM_CopyMxAnswer");
  PrintRatio(reporter, "cached MX resolutions", "BM_MxCached", "BM_MxUncached");
  PrintRatio(reporter, "resolver queries (64 in flight)", "BM_ResolverQueries",
             "BM_BlockingUdpQueries");
  benchmark::Shutdown();
  // Resolvers are gone; let the ring retire their socket watches before it closes.
  for (int i = 0; i < 100 && reactor != nullptr && reactor->retiring() > 0; ++i) {
    reactor->RunOnce(10);
  }
  return 0;
}
