// The parsers and checks of dkim/ that port 25 runs on strangers' mail are linear in their input
// (issue 13 item 4): a tag list, h= against the header fields, an ARC chain, and many signatures
// over one body. Each test compares the CPU time of an input with that of one 8 times larger
// (relay/base/scaling_test_util.h); the code these tests were written against took ~64 times.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dkim/arc.h"
#include "dkim/canon.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/verifier.h"
#include "gtest/gtest.h"
#include "relay/base/scaling_test_util.h"

namespace dkim {
namespace {

using relay::testing::kLinearRatioMax;
using relay::testing::ScalingRatio;

constexpr int64_t kNow = 1763800000;

// "t0=x; t1=x; ...": distinct tags, the case a duplicate check that compares each tag with every
// earlier one makes quadratic.
std::string TagList(size_t tags) {
  std::string out;
  for (size_t i = 0; i < tags; ++i) absl::StrAppend(&out, "t", i, "=x; ");
  return out;
}

TEST(DkimScaling, TagListParsingIsLinear) {
  // From 2,000 tags on, what a parse holds no longer fits in the first-level cache and a tag
  // costs ~1.6 times what it does below (57 against 36 ns here): both sizes above that, so that
  // the ratio measures the algorithm; eight parses a run for a millisecond or more.
  double ratio = ScalingRatio([](size_t n) { return TagList(n); },
                              [](const std::string& text) {
                                for (int i = 0; i < 8; ++i) {
                                  auto tags = ParseTagList(text);
                                  ASSERT_TRUE(tags.ok()) << tags.status();
                                }
                              },
                              2000);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(DkimScaling, DuplicateTagsAreStillRefused) {
  EXPECT_FALSE(ParseTagList(TagList(5000) + "t17=y").ok());
  EXPECT_FALSE(ParseTagList("a=1; b=2; a=3").ok());
  EXPECT_TRUE(ParseTagList("a=1; b=2; A=3").ok());  // tag names are case-sensitive (§3.2)
}

// n fields named X (some x) and an h= naming x n times: each name takes the bottom-most field not
// yet taken.
struct Selection {
  std::string text;
  std::vector<HeaderField> fields;
  std::vector<std::string_view> names;
};

std::unique_ptr<Selection> MakeSelection(size_t n) {
  auto s = std::make_unique<Selection>();
  for (size_t i = 0; i < n; ++i) absl::StrAppend(&s->text, i % 2 ? "X" : "x", ": ", i, "\r\n");
  size_t pos = 0;
  while (pos < s->text.size()) {
    size_t end = s->text.find("\r\n", pos) + 2;
    std::string_view raw = std::string_view(s->text).substr(pos, end - pos);
    s->fields.push_back(HeaderField{raw.substr(0, 1), raw});
    pos = end;
  }
  s->names.assign(n + n / 2, "x");  // a third of them sign "no such field"
  return s;
}

TEST(DkimScaling, HeaderSelectionIsLinear) {
  double ratio = ScalingRatio(
      MakeSelection,
      [](const std::unique_ptr<Selection>& s) {
        auto picked = SelectHeaders(s->fields, s->names);
        ASSERT_EQ(picked.size(), s->names.size());
      },
      32000);
  EXPECT_LT(ratio, kLinearRatioMax);
}

TEST(DkimScaling, HeaderSelectionPicksBottomUp) {
  std::string text = "From: a\r\nX: 1\r\nfrom: b\r\nx: 2\r\n";
  auto fields = ParseHeaderBlock(text);
  ASSERT_TRUE(fields.ok());
  std::vector<std::string_view> names = {"FROM", "x", "From", "X", "x", "subject"};
  auto picked = SelectHeaders(*fields, names);
  ASSERT_EQ(picked.size(), 6u);
  EXPECT_EQ(picked[0]->raw, "from: b\r\n");
  EXPECT_EQ(picked[1]->raw, "x: 2\r\n");
  EXPECT_EQ(picked[2]->raw, "From: a\r\n");
  EXPECT_EQ(picked[3]->raw, "X: 1\r\n");
  EXPECT_EQ(picked[4], nullptr);
  EXPECT_EQ(picked[5], nullptr);
}

struct ArcKey {
  std::string pem;
  std::string record;
};

const ArcKey& TheArcKey() {
  static const ArcKey* key = [] {
    auto k = PrivateKey::Generate(KeyAlgorithm::kEd25519Sha256, 0).value();
    return new ArcKey{k.ToPem().value(), k.PublicKeyRecord()};
  }();
  return *key;
}

// A message that went through `sets` forwarders, each adding a ~16 KiB
// ARC-Authentication-Results: what RFC 8617 §5.2 validation has to go through.
std::string ArcChain(size_t sets) {
  ArcSealerConfig c;
  c.domain = "fwd.example";
  c.selector = "arc";
  c.key_contents = TheArcKey().pem;
  auto sealer = ArcSealer::Create(c).value();
  std::string payload = "mx.fwd.example; spf=pass smtp.mailfrom=alice@origin.example";
  while (payload.size() < 16 * 1024) {
    payload += "\r\n\tx-filler=0123456789abcdef0123456789abcdef0123456789abcdef";
  }
  std::string message =
      "From: Alice <alice@origin.example>\r\nTo: bob@fwd.example\r\nSubject: hello\r\n"
      "\r\nBody.\r\n";
  for (size_t i = 0; i < sets; ++i) {
    ArcValidation chain;
    chain.status = i == 0 ? ArcChainStatus::kNone : ArcChainStatus::kPass;
    message = sealer->Seal(message, payload, chain, kNow).value() + message;
  }
  return message;
}

TEST(DkimScaling, ArcChainValidationIsLinearInItsSets) {
  KeyLookup lookup = [](std::string_view, std::string_view) -> absl::StatusOr<std::string> {
    return TheArcKey().record;
  };
  double ratio = ScalingRatio(
      ArcChain,
      [&lookup](const std::string& message) {
        ArcValidation v = ValidateArcChain(message, lookup, kNow);
        ASSERT_EQ(v.status, ArcChainStatus::kPass) << v.reason;
      },
      6);
  EXPECT_LT(ratio, kLinearRatioMax);
}

// `signatures` DKIM-Signature fields over a 4 MiB body, each with its own l=: the body hashes are
// wrong (the body is what costs), the key is found.
std::string ManySignatures(size_t signatures) {
  std::string m = "From: a@origin.example\r\nSubject: s\r\n";
  for (size_t i = 0; i < signatures; ++i) {
    absl::StrAppend(&m,
                    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=origin.example;",
                    " s=sel; h=from; l=", 1000000 + i, "; bh=AAAA; b=AAAA\r\n");
  }
  m += "\r\n";
  std::string line = "A line of a long body, the same again and again.  With  some   spaces.\r\n";
  while (m.size() < (4u << 20)) m += line;
  return m;
}

TEST(DkimScaling, SignaturesShareOnePassOverTheBody) {
  KeyLookup lookup = [](std::string_view, std::string_view) -> absl::StatusOr<std::string> {
    return TheArcKey().record;
  };
  auto verify = [&lookup](const std::string& message) {
    std::vector<VerifyResult> results = VerifyMessage(message, lookup, kNow);
    ASSERT_FALSE(results.empty());
    for (const VerifyResult& r : results) ASSERT_EQ(r.reason, "body hash mismatch");
  };
  // 16 signatures (kSignaturesCheckedMax) cost about what one does: the canonical body is hashed
  // once, each l= a snapshot of the same pass. Hashing it once per signature took ~16 times.
  double ratio = ScalingRatio([](size_t n) { return ManySignatures(n); }, verify, 1, 16);
  EXPECT_LT(ratio, 4);
}

}  // namespace
}  // namespace dkim
