// Assertions, in the three kinds the project uses:
//   CHECK(cond)      always evaluated, fatal when false (broken invariants that make going on unsafe);
//   DCHECK(cond)     evaluated only in debug builds (cheap self-checks on hot paths);
//   EXPECT_OR_COUNT(cond)  fatal in debug builds; in release builds it counts the violation in
//                    a process-wide counter (exported as a metric) and logs it, and the relay
//                    goes on. For states that must never happen but must not kill a production relay.
// Any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace relay {

[[noreturn]] void CheckFailed(const char* file, int line, const char* expr);
void ExpectationFailed(const char* file, int line, const char* expr);
// Number of EXPECT_OR_COUNT violations since start.
uint64_t ExpectationFailures();

}  // namespace relay

#define CHECK(cond) \
  (__builtin_expect(!!(cond), 1) ? (void)0 : ::relay::CheckFailed(__FILE__, __LINE__, #cond))

#ifdef NDEBUG
#define DCHECK(cond) (void)sizeof(!(cond))
#else
#define DCHECK(cond) CHECK(cond)
#endif

#define EXPECT_OR_COUNT(cond)                                                            \
  (__builtin_expect(!!(cond), 1) ? true                                                   \
                                 : (::relay::ExpectationFailed(__FILE__, __LINE__, #cond), \
                                    false))
