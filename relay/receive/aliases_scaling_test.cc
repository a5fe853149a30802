// Expanding a recipient at RCPT time is linear in the aliases it goes through (issue 13 item 4):
// a line with many targets, and lines reached along many paths (a chain of diamonds, each
// doubling the paths), which must not be expanded once per path. The files are the operator's,
// but the expansion runs on the shard for every RCPT a stranger sends.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "relay/base/scaling_test_util.h"
#include "relay/receive/aliases.h"

namespace relay::receive {
namespace {

using relay::testing::kLinearRatioMax;
using relay::testing::ScalingRatio;

std::unique_ptr<Aliases> Build(std::string text, uint32_t depth_max = 100) {
  AliasesOptions options;
  options.targets_max = 100000;
  options.depth_max = depth_max;
  auto a = Aliases::Build({AliasesFile{"local.test", "local.test", std::move(text)}}, options);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::make_unique<Aliases>(std::move(*a));
}

TEST(AliasesScaling, ManyTargetsOfOneLineAreLinear) {
  double ratio = ScalingRatio(
      [](size_t n) {
        std::string text = "list: ";
        for (size_t i = 0; i < n; ++i) absl::StrAppend(&text, i ? ", " : "", "u", i, "@ext.test");
        return Build(text + "\n");
      },
      [](const std::unique_ptr<Aliases>& aliases) {
        for (int i = 0; i < 4; ++i) {
          Expansion e = aliases->Expand("list@local.test");
          ASSERT_EQ(e.status, ExpandStatus::kExpanded);
          ASSERT_GT(e.targets.size(), 1000u);
        }
      },
      2000);
  EXPECT_LT(ratio, kLinearRatioMax);
}

// d0: a0, b0; a0: d1; b0: d1; d1: a1, b1; ... d<n>: end@ext.test. 2^n paths from d0 to the end,
// each line two deep.
std::string Diamonds(size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&text, "d", i, ": a", i, ", b", i, "\na", i, ": d", i + 1, "\nb", i, ": d",
                    i + 1, "\n");
  }
  absl::StrAppend(&text, "d", n, ": end@ext.test, d", n, "x@ext.test\n");
  return text;
}

TEST(AliasesScaling, LinesReachedAlongManyPathsAreExpandedOnce) {
  double ratio = ScalingRatio([](size_t n) { return Build(Diamonds(n)); },
                              [](const std::unique_ptr<Aliases>& aliases) {
                                for (int i = 0; i < 1000; ++i) {
                                  Expansion e = aliases->Expand("d0@local.test");
                                  ASSERT_EQ(e.status, ExpandStatus::kExpanded);
                                  ASSERT_EQ(e.targets.size(), 2u);
                                }
                              },
                              4);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(AliasesScaling, DepthAndLoopsAreStillRefused) {
  AliasesOptions options;
  // Two lines deep per diamond: 12 levels for 6 diamonds, 14 for 7.
  options.depth_max = 13;
  EXPECT_TRUE(Aliases::Build({AliasesFile{"local.test", "f", Diamonds(6)}}, options).ok());
  auto deep = Aliases::Build({AliasesFile{"local.test", "f", Diamonds(7)}}, options);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("deeper than depth_max"), std::string::npos)
      << deep.status();
  auto loop = Aliases::Build({AliasesFile{"local.test", "f", "a: b, c\nb: c\nc: a\n"}}, options);
  ASSERT_FALSE(loop.ok());
  EXPECT_NE(loop.status().message().find("alias loop"), std::string::npos) << loop.status();
}

}  // namespace
}  // namespace relay::receive
