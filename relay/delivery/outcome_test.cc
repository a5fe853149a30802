#include "relay/delivery/outcome.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

TEST(OutcomeTest, AnOutcomeThatFitsIsKept) {
  const RecipientOutcome o = RecipientOutcome::Permanent("no such user", 550, "5.1.1");
  const RecipientOutcome fitted = o.FittedTo(4096);
  EXPECT_EQ(fitted.ToString(), "550 5.1.1 no such user");
  EXPECT_EQ(fitted.kind, OutcomeKind::kPermanent);
}

TEST(OutcomeTest, ALongReplyKeepsItsCodesAndTheStartOfItsText) {
  std::string text = "mailbox unavailable: ";
  while (text.size() < 6000) text += "policy text ";
  const RecipientOutcome o = RecipientOutcome::Permanent(text, 550, "5.7.1");
  const RecipientOutcome fitted = o.FittedTo(4096);
  const std::string line = fitted.ToString();
  EXPECT_LE(line.size(), 4096u);
  EXPECT_GE(line.size(), 4090u);  // cut as late as the bound allows
  EXPECT_EQ(fitted.kind, OutcomeKind::kPermanent);
  EXPECT_EQ(fitted.code, 550);
  EXPECT_EQ(fitted.enhanced, "5.7.1");
  EXPECT_EQ(line.rfind("550 5.7.1 mailbox unavailable: policy text", 0), 0u) << line;
  EXPECT_EQ(line.substr(line.size() - 12), " [truncated]");
}

TEST(OutcomeTest, TheCutNeverSplitsAUtf8Character) {
  // "é" is two bytes, "€" three, "𝄞" four (RFC 3629 §3): the cut lands at each offset in turn.
  for (const std::string ch : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e"}) {
    for (size_t bound = 40; bound < 48; ++bound) {
      std::string text;
      while (text.size() < 100) text += ch;
      const RecipientOutcome fitted =
          RecipientOutcome::Transient(text, 451, "4.3.0").FittedTo(bound);
      const std::string line = fitted.ToString();
      ASSERT_LE(line.size(), bound);
      const std::string kept = fitted.text.substr(0, fitted.text.size() - 12);
      EXPECT_EQ(kept.size() % ch.size(), 0u) << "bound " << bound << ": " << line;
      EXPECT_EQ(kept.substr(0, ch.size()), ch);
    }
  }
}

TEST(OutcomeTest, ALocalReasonWithoutACodeIsCutToo) {
  const RecipientOutcome o = RecipientOutcome::Transient(std::string(5000, 'r'));
  const RecipientOutcome fitted = o.FittedTo(100);
  EXPECT_EQ(fitted.code, 0);
  EXPECT_EQ(fitted.ToString().size(), 100u);
}

TEST(OutcomeTest, ABoundBelowTheCodesStillHolds) {
  const RecipientOutcome fitted =
      RecipientOutcome::Permanent(std::string(50, 't'), 550, "5.1.1").FittedTo(8);
  EXPECT_LE(fitted.ToString().size(), 8u);
}

}  // namespace
}  // namespace relay::delivery
