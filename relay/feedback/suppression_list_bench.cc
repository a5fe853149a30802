// Suppression lookups with a million entries in the file, as the RCPT check makes them: a hit,
// a miss in a known tenant, a miss in an unknown one; and one thread per core looking up at once
// (LMDB's readers take no lock). The file is built once per run in $TMPDIR (about 150 MB).
//
//   bazel run -c opt //relay/feedback:suppression_list_bench
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/feedback/suppression_list.h"

namespace relay::feedback {
namespace {

constexpr int kEntries = 1000000;
constexpr int kTenants = 100;

std::string Address(int i) { return "user" + std::to_string(i) + "@mailbox" + std::to_string(i % 977) + ".test"; }
std::string Tenant(int i) { return "sender" + std::to_string(i % kTenants) + ".example"; }

SuppressionList* List() {
  static SuppressionList* const list = [] {
    const char* tmp = std::getenv("TMPDIR");
    const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/suppression_bench-" +
                             std::to_string(::getpid()) + ".mdb";
    SuppressionListOptions o;
    o.path = path;
    o.map_bytes_max = size_t{1} << 31;
    auto opened = SuppressionList::Open(o);
    if (!opened.ok()) std::abort();
    std::vector<SuppressionEntry> batch;
    for (int i = 0; i < kEntries; ++i) {
      SuppressionEntry e;
      e.tenant = Tenant(i);
      e.address = Address(i);
      e.reason = SuppressionReason::kBounce;
      e.category = "bad-mailbox";
      e.time_unix_ms = 1765000000000 + i;
      e.queue_id = "0123456789abcdef";
      e.detail = "550 5.1.1 The email account that you tried to reach does not exist.";
      batch.push_back(std::move(e));
      if (batch.size() == 100000) {
        if (!(*opened)->AddMany(batch).ok()) std::abort();
        batch.clear();
      }
    }
    ::unlink(path.c_str());  // the mapping stays; nothing is left behind
    ::unlink((path + "-lock").c_str());
    return opened->release();
  }();
  return list;
}

void Lookup(benchmark::State& state, int kind) {
  SuppressionList* list = List();
  int i = static_cast<int>(state.thread_index()) * 7919;
  int64_t hits = 0;
  for (auto _ : state) {
    i = (i + 104729) % kEntries;
    const std::string tenant = kind == 2 ? "nobody.example" : Tenant(i);
    const std::string address = kind == 1 ? "x" + Address(i) : Address(i);
    auto found = list->Find(tenant, address);
    hits += found.ok() && found->has_value();
  }
  state.counters["hit_ratio"] =
      benchmark::Counter(static_cast<double>(hits), benchmark::Counter::kAvgIterations);
  if (state.thread_index() == 0) state.counters["entries"] = kEntries;
}

BENCHMARK_CAPTURE(Lookup, hit, 0);
BENCHMARK_CAPTURE(Lookup, miss_known_tenant, 1);
BENCHMARK_CAPTURE(Lookup, miss_unknown_tenant, 2);
BENCHMARK_CAPTURE(Lookup, hit, 0)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace relay::feedback

BENCHMARK_MAIN();
