#include "relay/base/check.h"

#include <cstdio>
#include <cstdlib>

#include "relay/base/log.h"

namespace relay {
namespace {
std::atomic<uint64_t> expectation_failures{0};
}  // namespace

void CheckFailed(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "FATAL %s:%d: CHECK failed: %s\n", file, line, expr);
  std::fflush(stderr);
  std::abort();
}

void ExpectationFailed(const char* file, int line, const char* expr) {
  expectation_failures.fetch_add(1, std::memory_order_relaxed);
#ifdef NDEBUG
  LogError() << file << ":" << line << ": expectation failed (counted): " << expr;
#else
  CheckFailed(file, line, expr);
#endif
}

uint64_t ExpectationFailures() { return expectation_failures.load(std::memory_order_relaxed); }

}  // namespace relay
