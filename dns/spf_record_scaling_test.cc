// Macro expansion of a domain-spec from a stranger's SPF record is linear in what it expands to
// (issue 13 item 4): RFC 7208 §7.3 cuts a name longer than 253 bytes label by label from the
// left, and a record can make the expansion tens of KiB of one-byte labels.
#include <string>

#include "dns/spf_record.h"
#include "gtest/gtest.h"
#include "relay/base/scaling_test_util.h"

namespace dns::spf {
namespace {

using relay::testing::kLinearRatioMax;
using relay::testing::ScalingRatio;

MacroContext Context() {
  MacroContext c;
  // A local part of 64 one-byte labels' worth: "a.a.a...".
  c.local_part = "a";
  while (c.local_part.size() < 63) c.local_part += ".a";
  c.sender = c.local_part + "@sender.example";
  c.sender_domain = "sender.example";
  c.domain = "sender.example";
  EXPECT_TRUE(ParseIp("192.0.2.3", &c.address, &c.ipv6));
  c.ip = "192.0.2.3";
  return c;
}

TEST(SpfScaling, LongExpansionsAreCutInLinearTime) {
  const MacroContext context = Context();
  double ratio = ScalingRatio(
      [](size_t n) {
        std::string spec;
        for (size_t i = 0; i < n; ++i) spec += "%{l}.";
        return spec + "example.com";
      },
      [&context](const std::string& spec) {
        auto name = ExpandDomainSpec(spec, context, 253);
        ASSERT_TRUE(name.ok()) << name.status();
        ASSERT_LE(name->size(), 253u);
        ASSERT_TRUE(name->ends_with(".a.example.com")) << *name;
      },
      2000);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(SpfScaling, CutKeepsTheRightmostLabelsThatFit) {
  MacroContext c = Context();
  auto name = ExpandDomainSpec("%{l}.%{l}.%{l}.%{l}.%{l}.example.com", c, 253);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_LE(name->size(), 253u);
  EXPECT_GT(name->size(), 250u);  // only whole labels go, one byte each
  EXPECT_EQ(name->front(), 'a');
  // A name without dots that is too long leaves nothing.
  c.local_part = std::string(300, 'b');
  EXPECT_FALSE(ExpandDomainSpec("%{l}", c, 253).ok());
}

}  // namespace
}  // namespace dns::spf
