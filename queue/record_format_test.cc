#include "queue/record_format.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace queue {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 Appendix B.4 test vectors for CRC32C.
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(0, ones.data(), ones.size()), 0x62a8ab43u);
  std::string inc(32, '\0');
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(0, inc.data(), inc.size()), 0x46dd794eu);
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xe3069283u);
}

TEST(Crc32cTest, Incremental) {
  std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
  uint32_t whole = Crc32c(0, data.data(), data.size());
  for (size_t split = 0; split <= data.size(); ++split) {
    uint32_t c = Crc32c(0, data.data(), split);
    EXPECT_EQ(Crc32c(c, data.data() + split, data.size() - split), whole) << split;
  }
}

TEST(MessageIdTest, RoundTrip) {
  MessageId id{(uint64_t{3} << 56) | 0x5f3a1c2b4d5e6, 0x1a};
  EXPECT_EQ(id.ToString(), "5f3a1c2b4d5e6-3-1a");
  auto parsed = MessageId::Parse(id.ToString());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, id);
  EXPECT_FALSE(MessageId::Parse("zz-1-2").ok());
  EXPECT_FALSE(MessageId::Parse("1-2").ok());
  EXPECT_FALSE(MessageId::Parse("1-100-2").ok());
}

std::vector<char> EncodeSampleMessage(uint64_t seq, size_t* size) {
  std::vector<RecipientState> rcpts(2);
  rcpts[0].address = "a@example.com";
  rcpts[1].address = "b@example.org";
  rcpts[1].attempts = 3;
  rcpts[1].next_attempt_unix_ms = 1234;
  rcpts[1].last_reply = "451 4.7.1 try later";
  std::string_view sender = "sender@example.net";
  std::string_view part1 = "DKIM-Signature: v=1\r\n";
  std::string_view part2 = "Subject: hi\r\n\r\nbody\r\n";
  size_t payload = MessagePayloadBytes(sender, {}, rcpts, part1.size() + part2.size());
  std::vector<char> buf(AlignRecord(kRecordHeaderBytes + payload), '\x55');
  *size = EncodeMessageRecord(buf.data(), seq, MessageId{7, 9}, 1700000000000, 0, sender, {}, rcpts,
                              part1, part2);
  return buf;
}

TEST(RecordTest, MessageRoundTrip) {
  size_t size;
  std::vector<char> buf = EncodeSampleMessage(42, &size);
  EXPECT_EQ(size, buf.size());
  EXPECT_EQ(size % kRecordAlignBytes, 0u);
  RecordHeader header;
  size_t total;
  ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 42, &header, &total), ScanResult::kValid);
  EXPECT_EQ(total, size);
  EXPECT_EQ(header.type, static_cast<uint8_t>(RecordType::kMessage));
  auto view = DecodeMessagePayload(
      std::string_view(buf.data() + kRecordHeaderBytes, header.payload_bytes));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->id, (MessageId{7, 9}));
  EXPECT_EQ(view->created_unix_ms, 1700000000000);
  EXPECT_EQ(view->sender, "sender@example.net");
  ASSERT_EQ(view->recipients.size(), 2u);
  EXPECT_EQ(view->recipients[0].address, "a@example.com");
  EXPECT_EQ(view->recipients[1].attempts, 3u);
  EXPECT_EQ(view->recipients[1].next_attempt_unix_ms, 1234);
  EXPECT_EQ(view->recipients[1].last_reply, "451 4.7.1 try later");
  EXPECT_EQ(view->message, "DKIM-Signature: v=1\r\nSubject: hi\r\n\r\nbody\r\n");
  // The wrong segment (a recycled segment's old record) is not valid.
  EXPECT_EQ(CheckRecord(buf.data(), buf.size(), 41, &header, &total), ScanResult::kInvalid);
}

// A recipient count the payload cannot hold (each recipient takes at least 17 bytes) is refused
// before anything is allocated for it.
TEST(RecordTest, RecipientCountLargerThanThePayloadIsRefused) {
  std::string payload(16 + 8 + 4 + 2, '\0');  // id, created, flags, empty sender
  const uint32_t count = kRecipientsMax;
  payload.append(reinterpret_cast<const char*>(&count), sizeof(count));
  payload.append(17, '\0');  // room for one recipient only
  EXPECT_TRUE(absl::IsDataLoss(DecodeMessagePayload(payload).status()));
}

TEST(RecordTest, StateRoundTrip) {
  for (RecordType type : {RecordType::kDelivered, RecordType::kDeferred, RecordType::kBounced,
                          RecordType::kDeleted, RecordType::kDelayNotified,
                          RecordType::kAttempt}) {
    StateRecord s;
    s.type = type;
    s.id = MessageId{1, 2};
    s.recipient = 5;
    s.time_unix_ms = 99;
    s.reply = "250 2.0.0 ok";
    s.attempts = 4;
    s.next_attempt_unix_ms = 1000;
    std::vector<char> buf(AlignRecord(kRecordHeaderBytes + StatePayloadBytes(s)));
    size_t n = EncodeStateRecord(buf.data(), 3, s);
    ASSERT_EQ(n, buf.size());
    RecordHeader header;
    size_t total;
    ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 3, &header, &total), ScanResult::kValid);
    auto d = DecodeStatePayload(type, std::string_view(buf.data() + kRecordHeaderBytes,
                                                       header.payload_bytes));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->id, s.id);
    EXPECT_EQ(d->recipient, 5u);
    EXPECT_EQ(d->reply, s.reply);
    if (type == RecordType::kDeferred) {
      EXPECT_EQ(d->attempts, 4u);
      EXPECT_EQ(d->next_attempt_unix_ms, 1000);
    }
  }
}

// Writes `header` over the record in `buf` with its CRC recomputed, as a writer would have.
void RewriteHeader(RecordHeader& header, std::vector<char>& buf) {
  header.crc32c = 0;
  std::memcpy(buf.data(), &header, sizeof(header));
  uint32_t crc = Crc32c(0, buf.data(), kRecordHeaderBytes);
  header.crc32c = Crc32c(crc, buf.data() + kRecordHeaderBytes, header.payload_bytes);
  std::memcpy(buf.data(), &header, sizeof(header));
}

// A record carries the version its type appeared in: the first format's types stay readable by
// its readers, and an attempt marker claiming version 1 (or any record claiming another version)
// is not a valid record.
TEST(RecordTest, EachTypeCarriesTheVersionItAppearedIn) {
  for (RecordType type : {RecordType::kDelivered, RecordType::kAttempt}) {
    StateRecord s;
    s.type = type;
    s.id = MessageId{1, 2};
    s.reply = "mx.example.com";
    std::vector<char> buf(AlignRecord(kRecordHeaderBytes + StatePayloadBytes(s)));
    EncodeStateRecord(buf.data(), 3, s);
    RecordHeader header;
    size_t total;
    ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 3, &header, &total), ScanResult::kValid);
    EXPECT_EQ(header.version, type == RecordType::kAttempt ? 2 : 1);
    EXPECT_EQ(header.version, RecordVersion(type));
    EXPECT_LE(header.version, kRecordVersionMax);
    // The same record under the other version, CRC recomputed: refused.
    header.version = type == RecordType::kAttempt ? 1 : 2;
    RewriteHeader(header, buf);
    EXPECT_EQ(CheckRecord(buf.data(), buf.size(), 3, &header, &total), ScanResult::kInvalid);
  }
}

// A message with a tenant, a campaign or a priority carries them in an attributes block after the
// sender, in a version 4 record (older readers refuse it as a whole); the recipients and the body
// around the block read as before, originals included.
TEST(RecordTest, AttributesRoundTripInVersion4) {
  std::vector<RecipientState> rcpts(2);
  rcpts[0].address = "a@example.org";
  rcpts[1].address = "b@example.org";
  rcpts[1].original = "alias@local.example";
  MessageAttributes attributes;
  attributes.tenant = "shop";
  attributes.campaign = "spring-sale 2027";
  attributes.priority = Priority::kBulk;
  std::string_view part = "Subject: sale\r\n\r\nbody\r\n";
  size_t payload = MessagePayloadBytes("news@shop.example", attributes, rcpts, part.size());
  std::vector<char> buf(AlignRecord(kRecordHeaderBytes + payload));
  ASSERT_EQ(EncodeMessageRecord(buf.data(), 5, MessageId{1, 2}, 17, 0, "news@shop.example",
                                attributes, rcpts, part, {}),
            buf.size());
  RecordHeader header;
  size_t total;
  ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 5, &header, &total), ScanResult::kValid);
  EXPECT_EQ(header.version, kMessageWithAttributesVersion);
  const std::string_view bytes(buf.data() + kRecordHeaderBytes, header.payload_bytes);
  auto view = DecodeMessagePayload(bytes);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->flags, kMessageFlagAttributes | kMessageFlagOriginalRecipients);
  EXPECT_EQ(view->sender, "news@shop.example");
  EXPECT_EQ(view->attributes, attributes);
  ASSERT_EQ(view->recipients.size(), 2u);
  EXPECT_EQ(view->recipients[1].original, "alias@local.example");
  EXPECT_EQ(view->message, part);
  EXPECT_EQ(TenantOf(view->attributes, view->sender), "shop");
  // No named tenant: the sender's domain, lower-cased; the null sender has none.
  EXPECT_EQ(TenantOf(MessageAttributes{}, "News@Shop.Example"), "shop.example");
  EXPECT_EQ(TenantOf(MessageAttributes{}, ""), "");

  // A priority out of range or a block cut short is damage, not a guess.
  const size_t priority_at = 16 + 8 + 4 + 2 + 17 + 2 + 2 + 4 + 2 + 16;
  ASSERT_EQ(bytes[priority_at], static_cast<char>(Priority::kBulk));
  std::string bad(bytes);
  bad[priority_at] = 9;
  EXPECT_FALSE(DecodeMessagePayload(bad).ok());
  bad = std::string(bytes);
  bad[16 + 8 + 4 + 2 + 17] = 3;  // the block's length: shorter than its fields
  EXPECT_FALSE(DecodeMessagePayload(bad).ok());
}

// The DSN parameters: ENVID and RET in the attributes block, NOTIFY and ORCPT per recipient
// (kMessageFlagRecipientDsn), all in a version 4 record.
TEST(RecordTest, DsnParametersRoundTrip) {
  std::vector<RecipientState> rcpts(2);
  rcpts[0].address = "a@example.org";
  rcpts[0].notify = 1 | 2;
  rcpts[0].orcpt = "rfc822;A@example.org";
  rcpts[1].address = "b@example.org";
  MessageAttributes attributes;
  attributes.envid = "batch-7";
  attributes.dsn_ret = 2;
  MessageAttributes tls;  // REQUIRETLS and TLS-Required: No (RFC 8689) in the byte after RET
  tls.require_tls = true;
  MessageAttributes tls_optional;
  tls_optional.tls_optional = true;
  tls_optional.envid = "x";
  std::string_view part = "Subject: x\r\n\r\nbody\r\n";
  for (const MessageAttributes& a : {attributes, MessageAttributes{}, tls, tls_optional}) {
    size_t payload = MessagePayloadBytes("s@example.com", a, rcpts, part.size());
    std::vector<char> buf(AlignRecord(kRecordHeaderBytes + payload));
    ASSERT_EQ(EncodeMessageRecord(buf.data(), 5, MessageId{1, 2}, 17, 0, "s@example.com", a, rcpts,
                                  part, {}),
              buf.size());
    RecordHeader header;
    size_t total;
    ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 5, &header, &total), ScanResult::kValid);
    // Recipients' DSN alone is v4; REQUIRETLS is v5, so that no older build delivers it without.
    EXPECT_EQ(header.version,
              a.require_tls ? kMessageRequiringTlsVersion : kMessageWithAttributesVersion);
    auto view = DecodeMessagePayload(
        std::string_view(buf.data() + kRecordHeaderBytes, header.payload_bytes));
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_NE(view->flags & kMessageFlagRecipientDsn, 0u);
    EXPECT_EQ(view->attributes, a);
    EXPECT_EQ(view->recipients[0].notify, 3);
    EXPECT_EQ(view->recipients[0].orcpt, "rfc822;A@example.org");
    EXPECT_EQ(view->recipients[1].notify, 0);
    EXPECT_EQ(view->recipients[1].orcpt, "");
    EXPECT_EQ(view->message, part);
  }
}

// A later version may append fields to the attributes block: this one reads the fields it knows.
TEST(RecordTest, AttributesBlockIgnoresLaterFields) {
  std::string payload(16 + 8, '\0');
  const uint32_t flags = kMessageFlagAttributes;
  payload.append(reinterpret_cast<const char*>(&flags), 4);
  payload.append("\0\0", 2);  // the null sender
  // tenant "t", campaign "c", transactional, envid "e", RET=HDRS, REQUIRETLS with a bit this
  // version does not know, then a later version's bytes.
  const std::string block = std::string("\x01\0t", 3) + std::string("\x01\0c", 3) + "\x02" +
                            std::string("\x01\0e", 3) + "\x02" + "\x81" + "later";
  const uint16_t block_bytes = static_cast<uint16_t>(block.size());
  payload.append(reinterpret_cast<const char*>(&block_bytes), 2);
  payload += block;
  payload.append(std::string(4, '\0'));  // no recipients
  payload.append(std::string(4, '\0'));  // an empty message
  auto view = DecodeMessagePayload(payload);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->attributes.tenant, "t");
  EXPECT_EQ(view->attributes.campaign, "c");
  EXPECT_EQ(view->attributes.priority, Priority::kTransactional);
  EXPECT_EQ(view->attributes.envid, "e");
  EXPECT_EQ(view->attributes.dsn_ret, 2);
  EXPECT_TRUE(view->attributes.require_tls);
  EXPECT_FALSE(view->attributes.tls_optional);
}

// A block of the first version 4 writers ends after the priority: no DSN fields, still read.
TEST(RecordTest, AttributesBlockWithoutDsnFields) {
  std::string payload(16 + 8, '\0');
  const uint32_t flags = kMessageFlagAttributes;
  payload.append(reinterpret_cast<const char*>(&flags), 4);
  payload.append("\0\0", 2);
  const std::string block = std::string("\x01\0t", 3) + std::string("\0\0", 2) + "\x01";
  const uint16_t block_bytes = static_cast<uint16_t>(block.size());
  payload.append(reinterpret_cast<const char*>(&block_bytes), 2);
  payload += block;
  payload.append(std::string(8, '\0'));
  auto view = DecodeMessagePayload(payload);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->attributes.tenant, "t");
  EXPECT_EQ(view->attributes.priority, Priority::kBulk);
  EXPECT_EQ(view->attributes.envid, "");
}

// Forwarded mail keeps, per recipient, the address the sender used (a DSN names it instead of the
// private target). Such a message record is version 3, so that the first format's readers refuse
// it as a whole instead of misreading its recipients; every other message record stays version 1.
TEST(RecordTest, OriginalRecipientsRoundTripInVersion3) {
  std::vector<RecipientState> rcpts(3);
  rcpts[0].address = "me@gmail.example";
  rcpts[0].original = "anything@local.example";
  rcpts[1].address = "boss@named.example";
  rcpts[1].original = "PostMaster+x@Local.Example";
  rcpts[2].address = "same@example.org";  // not expanded: no original
  rcpts[2].last_reply = "451 4.7.1 later";
  std::string_view part = "Subject: fwd\r\n\r\nbody\r\n";
  for (uint32_t flags : {0u, kMessageFlagCompacted}) {
    size_t payload = MessagePayloadBytes("SRS0=x@local.example", {}, rcpts, part.size());
    std::vector<char> buf(AlignRecord(kRecordHeaderBytes + payload));
    ASSERT_EQ(EncodeMessageRecord(buf.data(), 5, MessageId{1, 2}, 17, flags, "SRS0=x@local.example",
                                  {}, rcpts, part, {}),
              buf.size());
    RecordHeader header;
    size_t total;
    ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 5, &header, &total), ScanResult::kValid);
    EXPECT_EQ(header.version, kMessageWithOriginalsVersion);
    EXPECT_LE(header.version, kRecordVersionMax);
    auto view = DecodeMessagePayload(
        std::string_view(buf.data() + kRecordHeaderBytes, header.payload_bytes));
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->flags, flags | kMessageFlagOriginalRecipients);
    ASSERT_EQ(view->recipients.size(), 3u);
    EXPECT_EQ(view->recipients[0].original, "anything@local.example");
    EXPECT_EQ(view->recipients[1].original, "PostMaster+x@Local.Example");
    EXPECT_EQ(view->recipients[1].address, "boss@named.example");
    EXPECT_EQ(view->recipients[2].original, "");
    EXPECT_EQ(view->recipients[2].last_reply, "451 4.7.1 later");
    EXPECT_EQ(view->message, part);
  }
  // Without originals: version 1 and no flag, byte for byte the first format.
  size_t size;
  std::vector<char> plain = EncodeSampleMessage(42, &size);
  RecordHeader header;
  size_t total;
  ASSERT_EQ(CheckRecord(plain.data(), plain.size(), 42, &header, &total), ScanResult::kValid);
  EXPECT_EQ(header.version, 1);
  auto view = DecodeMessagePayload(
      std::string_view(plain.data() + kRecordHeaderBytes, header.payload_bytes));
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->flags, 0u);
  EXPECT_EQ(view->recipients[0].original, "");
  // Version 3 means nothing for other record types.
  StateRecord s;
  s.type = RecordType::kDelivered;
  s.id = MessageId{1, 2};
  std::vector<char> buf(AlignRecord(kRecordHeaderBytes + StatePayloadBytes(s)));
  EncodeStateRecord(buf.data(), 3, s);
  std::memcpy(&header, buf.data(), sizeof(header));
  header.version = kMessageWithOriginalsVersion;
  RewriteHeader(header, buf);
  EXPECT_EQ(CheckRecord(buf.data(), buf.size(), 3, &header, &total), ScanResult::kInvalid);
}

TEST(RecordTest, EveryFlippedBitIsDetected) {
  size_t size;
  std::vector<char> buf = EncodeSampleMessage(1, &size);
  RecordHeader header;
  size_t total;
  ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 1, &header, &total), ScanResult::kValid);
  // Padding is not covered by the CRC; every other bit is.
  const size_t covered = kRecordHeaderBytes + header.payload_bytes;
  for (size_t bit = 0; bit < covered * 8; ++bit) {
    std::vector<char> copy = buf;
    copy[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    EXPECT_NE(CheckRecord(copy.data(), copy.size(), 1, &header, &total), ScanResult::kValid)
        << "bit " << bit;
  }
}

TEST(RecordTest, TruncatedIsNotValidAndZerosAreEnd) {
  size_t size;
  std::vector<char> buf = EncodeSampleMessage(1, &size);
  RecordHeader header;
  size_t total;
  ASSERT_EQ(CheckRecord(buf.data(), buf.size(), 1, &header, &total), ScanResult::kValid);
  // Cutting in the zero padding leaves a complete record.
  const size_t covered = kRecordHeaderBytes + header.payload_bytes;
  for (size_t cut = 0; cut < covered; ++cut) {
    std::vector<char> copy(size + 64, '\0');
    std::memcpy(copy.data(), buf.data(), cut);
    ScanResult r = CheckRecord(copy.data(), copy.size(), 1, &header, &total);
    EXPECT_NE(r, ScanResult::kValid) << cut;
    if (cut == 0) {
      EXPECT_EQ(r, ScanResult::kEnd);
    }
  }
}

}  // namespace
}  // namespace queue
