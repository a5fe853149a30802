#include <string>

#include "gtest/gtest.h"
#include "relay/base/check.h"
#include "relay/base/clock.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"

namespace relay {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(5).ok());
}

TEST(FakeClock, AdvancesOnlyWhenTold) {
  FakeClock clock;
  int64_t t0 = clock.MonotonicNanos();
  double w0 = clock.WallSeconds();
  clock.AdvanceMillis(1500);
  EXPECT_EQ(clock.MonotonicNanos() - t0, 1500 * 1000000LL);
  EXPECT_DOUBLE_EQ(clock.WallSeconds() - w0, 1.5);
}

TEST(Check, ExpectOrCountPassesWhenTrue) {
  uint64_t before = ExpectationFailures();
  EXPECT_TRUE(EXPECT_OR_COUNT(1 + 1 == 2));
  EXPECT_EQ(ExpectationFailures(), before);
}

TEST(CheckDeathTest, CheckAborts) { EXPECT_DEATH(CHECK(1 == 2), "CHECK failed: 1 == 2"); }

// A peer's text cannot forge a log line: CR, LF and other control characters are escaped.
TEST(LogTest, ControlCharactersAreEscaped) {
  std::string out = "prefix ";
  AppendLogText(&out, "user\r\n2026-01-01T00:00:00Z ERROR [main] forged\x1b[2J\tend\x7f");
  EXPECT_EQ(out, "prefix user\\r\\n2026-01-01T00:00:00Z ERROR [main] forged\\x1b[2J\tend\\x7f");
  out.clear();
  AppendLogText(&out, "caf\xc3\xa9 ok");  // UTF-8 passes as it is
  EXPECT_EQ(out, "caf\xc3\xa9 ok");
}

}  // namespace
}  // namespace relay
