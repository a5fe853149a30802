// ParsedMessage: the split into fields and body, fields put above by a forwarder, and body hashes
// at several l= lengths from one pass, equal to those of a BodyHasher per length.
#include "dkim/message.h"

#include <string>

#include "dkim/canon.h"
#include "gtest/gtest.h"

namespace dkim {
namespace {

constexpr char kMessage[] =
    "From: a@example.com\r\nSubject: hi\r\n\r\nLine  one. \r\n\r\nLine\ttwo.\r\n\r\n\r\n";

std::string Digest(Canonicalization c, std::string_view body, int64_t l) {
  BodyHasher h(c, l);
  h.Update(body);
  return h.Finish();
}

TEST(ParsedMessageTest, SplitsFieldsAndBody) {
  auto m = ParsedMessage::Parse(kMessage);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->fields().size(), 2u);
  EXPECT_EQ(m->fields()[1].raw, "Subject: hi\r\n");
  EXPECT_EQ(m->body(), "Line  one. \r\n\r\nLine\ttwo.\r\n\r\n\r\n");
  // No empty line: all header, no body.
  auto all_header = ParsedMessage::Parse("From: a@example.com\r\n");
  ASSERT_TRUE(all_header.ok());
  EXPECT_EQ(all_header->fields().size(), 1u);
  EXPECT_TRUE(all_header->body().empty());
  EXPECT_FALSE(ParsedMessage::Parse("no colon\r\n\r\nbody").ok());
}

TEST(ParsedMessageTest, FieldsAboveKeepTheBodyAndItsHashes) {
  auto m = ParsedMessage::Parse(kMessage);
  ASSERT_TRUE(m.ok());
  const BodyHash& before = m->Body(Canonicalization::kRelaxed, -1);
  auto forwarded = ParsedMessage::WithFields("Received: by us\r\nX-A: 1\r\n", *m);
  ASSERT_TRUE(forwarded.ok()) << forwarded.status();
  ASSERT_EQ(forwarded->fields().size(), 4u);
  EXPECT_EQ(forwarded->fields()[0].name, "Received");
  EXPECT_EQ(forwarded->fields()[2].raw, "From: a@example.com\r\n");
  EXPECT_EQ(forwarded->body(), m->body());
  // The same hash object: computed once for both.
  EXPECT_EQ(&forwarded->Body(Canonicalization::kRelaxed, -1), &before);
  EXPECT_FALSE(ParsedMessage::WithFields("bad\r\n", *m).ok());
}

TEST(ParsedMessageTest, FieldsDroppedKeepTheBodyAndItsHashes) {
  constexpr char kTwice[] =
      "X-A: 1\r\nFrom: a@example.com\r\nX-A: 2\r\nSubject: hi\r\n\r\nLine  one. \r\n";
  auto m = ParsedMessage::Parse(kTwice);
  ASSERT_TRUE(m.ok());
  const BodyHash& before = m->Body(Canonicalization::kRelaxed, -1);
  ParsedMessage cut = ParsedMessage::WithoutFields(
      *m, [](const HeaderField& f) { return HeaderNameEquals(f.name, "x-a"); });
  auto reparsed =
      ParsedMessage::Parse("From: a@example.com\r\nSubject: hi\r\n\r\nLine  one. \r\n");
  ASSERT_TRUE(reparsed.ok());
  ASSERT_EQ(cut.fields().size(), reparsed->fields().size());
  for (size_t i = 0; i < cut.fields().size(); ++i) {
    EXPECT_EQ(cut.fields()[i].raw, reparsed->fields()[i].raw);
  }
  EXPECT_EQ(cut.body(), m->body());
  EXPECT_EQ(&cut.Body(Canonicalization::kRelaxed, -1), &before);
  EXPECT_EQ(m->fields().size(), 4u);  // the original is as it was
}

TEST(ParsedMessageTest, BodyHashesAtEveryLengthMatchOneHasherEach) {
  auto m = ParsedMessage::Parse(kMessage);
  ASSERT_TRUE(m.ok());
  const std::string_view body = m->body();
  for (Canonicalization c : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
    for (int64_t l : {0, 1, 5, 11, 12, 13, 20, 1000}) m->WantBodyHash(c, l);
    for (int64_t l : {-1, 0, 1, 5, 11, 12, 13, 20, 1000}) {
      EXPECT_EQ(m->Body(c, l).digest, Digest(c, body, l)) << CanonicalizationName(c) << " l=" << l;
    }
    // A length not asked for before the pass: another pass, the same answer.
    EXPECT_EQ(m->Body(c, 7).digest, Digest(c, body, 7));
  }
  EXPECT_EQ(m->Body(Canonicalization::kRelaxed, -1).canonical_bytes, 24u);
  EXPECT_FALSE(m->Body(Canonicalization::kSimple, -1).saw_bare_line_break);
}

TEST(ParsedMessageTest, BareLineBreaksAreReported) {
  auto m = ParsedMessage::Parse("From: a@example.com\r\n\r\nbare\nLF\r\n");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->Body(Canonicalization::kRelaxed, -1).saw_bare_line_break);
}

TEST(BodyHasherTest, SeveralLengthsInOnePass) {
  std::string body;
  for (int i = 0; i < 5000; ++i) body += "some  text \t here\r\n";
  BodyHasher h(Canonicalization::kRelaxed, std::vector<uint64_t>{100, 4096, 4097, 50000, 7});
  // Chunk borders anywhere.
  for (size_t i = 0; i < body.size(); i += 777) h.Update(std::string_view(body).substr(i, 777));
  const std::string whole = h.Finish();
  EXPECT_EQ(whole, Digest(Canonicalization::kRelaxed, body, -1));
  for (int64_t l : {7, 100, 4096, 4097, 50000}) {
    EXPECT_EQ(h.DigestAt(static_cast<uint64_t>(l)), Digest(Canonicalization::kRelaxed, body, l))
        << l;
  }
  EXPECT_EQ(h.DigestAt(3), "");  // not asked for
}

}  // namespace
}  // namespace dkim
