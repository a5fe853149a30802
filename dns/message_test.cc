#include "dns/message.h"

#include <string>

#include "gtest/gtest.h"

namespace dns {
namespace {

using Section = MessageBuilder::Section;

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

TEST(MessageTest, ParsesMxAnswerWithCompression) {
  MessageBuilder b(0xBEEF, MessageBuilder::kFlagResponse | MessageBuilder::kFlagRecursionDesired);
  b.AddQuestion("Example.COM", kTypeMx);
  b.AddMx(Section::kAnswer, "example.com", 300, 10, "mx1.example.com");
  b.AddMx(Section::kAnswer, "example.com", 200, 20, "mx2.example.com");
  b.AddA(Section::kAdditional, "mx1.example.com", 60, "192.0.2.1");
  // The builder compressed the repeated names: the message is much shorter than spelled out.
  EXPECT_LT(b.wire().size(), 110u);
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->id, 0xBEEF);
  EXPECT_TRUE(m->response);
  EXPECT_TRUE(m->recursion_desired);
  EXPECT_EQ(m->rcode, kRcodeNoError);
  ASSERT_EQ(m->questions.size(), 1u);
  EXPECT_EQ(m->questions[0].name, "Example.COM");
  ASSERT_EQ(m->answers.size(), 2u);
  // Compression matches names without case, so the answer's owner spells like the question.
  EXPECT_TRUE(NameEquals(m->answers[0].name, "example.com"));
  EXPECT_EQ(m->answers[0].type, kTypeMx);
  EXPECT_EQ(m->answers[0].ttl_s, 300u);
  EXPECT_EQ(m->answers[0].preference, 10);
  EXPECT_TRUE(NameEquals(m->answers[0].target, "mx1.example.com"));
  EXPECT_TRUE(NameEquals(m->answers[1].target, "mx2.example.com"));
  ASSERT_EQ(m->additionals.size(), 1u);
  EXPECT_EQ(m->additionals[0].address[0], 192);
  EXPECT_EQ(m->additionals[0].address[3], 1);
}

TEST(MessageTest, HandWrittenPointerIntoQuestion) {
  // Header, question "a.b" MX, answer whose owner is a pointer to offset 12 and whose exchange
  // is "mx" + pointer to "b" (offset 14).
  std::string wire = Bytes({0x00, 0x01, 0x81, 0x80, 0,   1,    0,  1, 0, 0,  0, 0,  // header
                            1,    'a',  1,    'b',  0,   0,    15, 0, 1,            // question
                            0xC0, 12,   0,    15,   0,   1,    0,  0, 0, 60, 0, 7,  // answer head
                            0,    5,    2,    'm',  'x', 0xC0, 14});                // MX rdata
  absl::StatusOr<Message> m = ParseMessage(wire);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].name, "a.b");
  EXPECT_EQ(m->answers[0].preference, 5);
  EXPECT_EQ(m->answers[0].target, "mx.b");
}

TEST(MessageTest, RejectsPointerLoopAndForwardPointer) {
  // A name that points at itself.
  std::string self = Bytes({0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1});
  EXPECT_FALSE(ParseMessage(self).ok());
  // A name that points forward.
  std::string fwd =
      Bytes({0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 18, 0, 1, 0, 1, 1, 'a', 0});
  EXPECT_FALSE(ParseMessage(fwd).ok());
  // Two names pointing at each other: the second points back at the first, which points
  // forward.
  std::string pair =
      Bytes({0, 1, 0x81, 0x80, 0, 2, 0, 0, 0, 0, 0, 0, 0xC0, 18, 0, 1, 0, 1, 0xC0, 12, 0, 1, 0, 1});
  EXPECT_FALSE(ParseMessage(pair).ok());
}

TEST(MessageTest, RejectsOverlongNameAndBadLabels) {
  std::string wire = Bytes({0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0});
  for (int i = 0; i < 5; ++i) {
    wire.push_back(63);
    wire.append(63, 'x');
  }
  wire += Bytes({0, 0, 1, 0, 1});
  EXPECT_FALSE(ParseMessage(wire).ok());  // 5 * 64 + 1 > 255
  std::string ext = Bytes({0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1});
  EXPECT_FALSE(ParseMessage(ext).ok());  // label type 01 (RFC 6891 §5: deprecated)
}

TEST(MessageTest, RejectsTruncationAnywhere) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("txt.example", kTypeTxt);
  b.AddTxt(Section::kAnswer, "txt.example", 30, {"v=spf1 -all", std::string(255, 'x')});
  b.AddSoa(Section::kAuthority, "example", 60, SoaData{"ns.example", "h.example", 1, 2, 3, 4, 5});
  ASSERT_TRUE(ParseMessage(b.wire()).ok());
  for (size_t len = 0; len < b.wire().size(); ++len) {
    EXPECT_FALSE(ParseMessage(std::string_view(b.wire()).substr(0, len)).ok()) << len;
  }
}

TEST(MessageTest, SectionCountsLargerThanTheMessage) {
  std::string wire = Bytes({0, 1, 0x81, 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  EXPECT_FALSE(ParseMessage(wire).ok());
}

TEST(MessageTest, TxtStringsAndSoa) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("txt.example", kTypeTxt);
  std::vector<std::string> parts = {std::string(255, 'a'), std::string(200, 'b'), ""};
  b.AddTxt(Section::kAnswer, "txt.example", 30, parts);
  b.AddSoa(Section::kAuthority, "example", 3600,
           SoaData{"ns.example", "hostmaster.example", 2024, 7200, 600, 86400, 60});
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->answers.size(), 1u);
  EXPECT_EQ(m->answers[0].texts, parts);
  ASSERT_EQ(m->authorities.size(), 1u);
  const SoaData& soa = m->authorities[0].soa;
  EXPECT_EQ(soa.mname, "ns.example");
  EXPECT_EQ(soa.rname, "hostmaster.example");
  EXPECT_EQ(soa.serial, 2024u);
  EXPECT_EQ(soa.minimum_s, 60u);
}

TEST(MessageTest, TxtStringOverrunningRdataIsRejected) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("t", kTypeTxt);
  b.AddTxt(Section::kAnswer, "t", 30, {"abc"});
  std::string wire = b.wire();
  wire[wire.size() - 4] = 10;  // the string claims 10 bytes inside a 4-byte RDATA
  EXPECT_FALSE(ParseMessage(wire).ok());
}

TEST(MessageTest, NullMxAndEscapes) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("example", kTypeMx);
  b.AddMx(Section::kAnswer, "example", 30, 0, ".");
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->answers[0].target, ".");
  std::string odd =
      Bytes({0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 0x07, 0, 0, 1, 0, 1});
  m = ParseMessage(odd);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->questions[0].name, "a\\.\\007");
}

TEST(MessageTest, TtlWithTopBitIsZero) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("h", kTypeA);
  b.AddA(Section::kAnswer, "h", 0x80000001u, "192.0.2.1");
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->answers[0].ttl_s, 0u);  // RFC 2181 §8
}

TEST(MessageTest, AnswersForFollowsCnames) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("alias.example", kTypeMx);
  b.AddName(Section::kAnswer, "alias.example", kTypeCname, 30, "real.example");
  b.AddMx(Section::kAnswer, "REAL.example", 30, 10, "mx.example");
  b.AddMx(Section::kAnswer, "unrelated.example", 30, 10, "evil.example");
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok());
  std::string final_name;
  auto records = AnswersFor(*m, "alias.example.", kTypeMx, &final_name);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]->target, "mx.example");
  EXPECT_EQ(final_name, "real.example");
}

TEST(MessageTest, CnameLoopEnds) {
  MessageBuilder b(7, MessageBuilder::kFlagResponse);
  b.AddQuestion("a.example", kTypeA);
  b.AddName(Section::kAnswer, "a.example", kTypeCname, 30, "b.example");
  b.AddName(Section::kAnswer, "b.example", kTypeCname, 30, "a.example");
  absl::StatusOr<Message> m = ParseMessage(b.wire());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(AnswersFor(*m, "a.example", kTypeA).empty());
}

TEST(MessageTest, ReverseNames) {
  EXPECT_EQ(*ReverseName("192.0.2.25"), "25.2.0.192.in-addr.arpa");
  EXPECT_EQ(*ReverseName("2001:db8::25"),
            "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_FALSE(ReverseName("mail.example").ok());
}

TEST(MessageTest, NamesCompareWithoutCase) {
  EXPECT_TRUE(NameEquals("MX.Example.COM.", "mx.example.com"));
  EXPECT_FALSE(NameEquals("mx.example.com", "mx.example.co"));
  EXPECT_EQ(CanonicalName("MX.Example.COM."), "mx.example.com");
}

}  // namespace
}  // namespace dns
