// The on-disk format of the queue: every byte a segment file holds is described here.
//
// Versions. The segment header's `version` is kFormatVersion (1): the layout of the files has not
// changed since. Each record carries the format version its type appeared in (RecordVersion):
// version 1 for the types of the first format, version 2 for kAttempt, version 3 for a kMessage
// whose recipients carry the address each was expanded from (kMessageFlagOriginalRecipients:
// forwarded mail), version 4 for a kMessage with attributes (kMessageFlagAttributes: a named
// tenant, a campaign, a priority class), version 5 for a kMessage whose attributes ask for
// REQUIRETLS (RFC 8689: a build that would drop the flag and deliver without it must not read
// it). A message is written with the lowest version that holds it. A reader accepts a record only
// with a version it knows for its type, so code of the first format reads a spool of this one as
// long as it holds none of the newer kinds, and sees them as damaged records (its segment's
// messages are re-appended and the segment moved aside: nothing is lost).
//
// A spool is a directory of fixed-size segment files (`segment-NNNNNN.q`). Each file starts with a
// 4096-byte SegmentHeader; records follow back to back from offset kSegmentHeaderBytes, each
// aligned to 8 bytes. The rest of a pre-allocated file is zeros, so a record header whose magic is
// zero marks the end of the written part.
//
//   RecordHeader (32 bytes)          payload (payload_bytes)            zero padding to 8
//   magic version type flags len crc segment_seq reserved
//
// The CRC32C (Castagnoli, computed with the SSE4.2 crc32 instruction) covers the 32-byte header
// with its crc field set to zero, then the payload. The header carries the sequence number of the
// segment it was written into: a recycled segment still holds records of its previous life past
// the new end, and those fail this check instead of coming back to life.
//
// Payloads (all integers little-endian; `str16` is a u16 length then the bytes, `str32` a u32
// length then the bytes):
//   kMessage:   id(16) created_unix_ms(i64) flags(u32) sender(str16)
//               [attributes(str16): with kMessageFlagAttributes, record version 4; its bytes are
//                tenant(str16) campaign(str16) priority(u8) [envid(str16) ret(u8) [tls(u8)]]
//                -- tls: bit 0 REQUIRETLS (record version 5), bit 1 `TLS-Required: No`; written
//                only when one is set;
//                -- the bracketed part may be absent (a block of the first version 4 writers);
//                a reader ignores bytes after the fields it knows, so a later field needs no new
//                version as long as losing it is harmless: a copy made by compaction in an
//                older build writes only the fields that build knows]
//               recipient_count(u32)
//               per recipient: address(str16) status(u8) attempts(u32) next_attempt_unix_ms(i64)
//                              last_reply(str16) [original(str16): with
//                              kMessageFlagOriginalRecipients, record version 3]
//                              [notify(u8) orcpt(str16): with kMessageFlagRecipientDsn, record
//                              version 4]
//               message(str32)  -- the prepended headers (Received, DKIM-Signature) then the
//                                  message as received; stored contiguously so it is served as
//                                  one string_view straight from the mapping.
//               A first copy has every recipient kPending with 0 attempts. A copy re-appended by
//               compaction (flag kMessageFlagCompacted) carries the state at the time of the copy
//               and supersedes every earlier copy of the same id.
//   kDelivered: id(16) time_unix_ms(i64) recipient(u32) reply(str16)
//   kDeferred:  id(16) time_unix_ms(i64) recipient(u32) reply(str16) attempts(u32)
//               next_attempt_unix_ms(i64)
//   kBounced:   id(16) time_unix_ms(i64) recipient(u32) reply(str16)
//   kDeleted:   id(16) time_unix_ms(i64) recipient(u32 = kAllRecipients) reply(str16, the reason)
//   kDelayNotified: id(16) time_unix_ms(i64) recipient(u32 = kAllRecipients) reply(str16)
//               a "delayed" DSN (RFC 3464) went to the sender; the message is not final. A
//               compacted copy carries it as kMessageFlagDelayNotified.
//   kAttempt:   id(16) time_unix_ms(i64) recipient(u32) reply(str16, the MX host or why)
//               (version 2) the message's body is about to go out to this recipient's MX, or an
//               earlier attempt's outcome is still unknown: until a kDelivered, kBounced or
//               kDeferred record follows it, the recipient has an attempt whose outcome nobody
//               recorded, and the remote may hold a copy (RFC 1047). Written before the body, so
//               a crash can only leave it without its outcome, never the other way round. A
//               compacted copy is followed by one for each recipient that has one open.
// State records are only ever appended; nothing is rewritten in place except the segment header.
//
// Thread-safety: the functions here are pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace queue {

// Debian's abseil keeps absl::string_view distinct from std::string_view.
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view FromAbsl(absl::string_view s) { return std::string_view(s.data(), s.size()); }

inline constexpr uint32_t kSegmentMagic = 0x47455351;  // "QSEG" little-endian
inline constexpr uint32_t kRecordMagic = 0x43455251;   // "QREC" little-endian
// The segment header's version.
inline constexpr uint8_t kFormatVersion = 1;
// The newest record version this code reads and writes (see RecordVersion).
inline constexpr uint8_t kRecordVersionMax = 5;
// The version of a kMessage record with kMessageFlagOriginalRecipients; without it, version 1.
inline constexpr uint8_t kMessageWithOriginalsVersion = 3;
// The version of a kMessage record with kMessageFlagAttributes (originals or not).
inline constexpr uint8_t kMessageWithAttributesVersion = 4;
// The version of a kMessage record whose attributes ask for REQUIRETLS.
inline constexpr uint8_t kMessageRequiringTlsVersion = 5;
inline constexpr size_t kSegmentHeaderBytes = 4096;
inline constexpr size_t kRecordHeaderBytes = 32;
inline constexpr size_t kRecordAlignBytes = 8;
// An address longer than this cannot be stored (RFC 5321 §4.5.3.1.3 limits a path to 256 octets).
inline constexpr size_t kAddressBytesMax = 1024;
inline constexpr size_t kReplyBytesMax = 4096;
inline constexpr uint32_t kRecipientsMax = 100000;
inline constexpr uint32_t kAllRecipients = 0xffffffff;

enum class RecordType : uint8_t {
  kMessage = 1,
  kDelivered = 2,
  kDeferred = 3,
  kBounced = 4,
  kDeleted = 5,
  kDelayNotified = 6,
  kAttempt = 7,
};
bool IsKnownRecordType(uint8_t type);
// The format version a record type appeared in, which its records carry: 1, or 2 for kAttempt.
uint8_t RecordVersion(RecordType type);

inline constexpr uint32_t kMessageFlagCompacted = 1;
inline constexpr uint32_t kMessageFlagDelayNotified = 2;
// Every recipient carries `original` (set by the encoder when any recipient has one).
inline constexpr uint32_t kMessageFlagOriginalRecipients = 4;
// The attributes block follows the sender (set by the encoder when any attribute is set).
inline constexpr uint32_t kMessageFlagAttributes = 8;
// Every recipient carries notify and orcpt (set by the encoder when any recipient has one).
inline constexpr uint32_t kMessageFlagRecipientDsn = 16;

// The segment header, at offset 0 of every segment file. `segment_seq` 0 means the file is a free
// segment of the reserve. `committed_bytes` is the end of the records covered by the last completed
// fdatasync; the writer publishes it (release store) after each sync, readers in other processes
// load it (acquire) and read records below it without any lock.
struct SegmentHeader {
  uint32_t magic;
  uint8_t version;
  uint8_t reserved0[3];
  uint64_t segment_bytes;
  uint64_t segment_seq;
  uint64_t committed_bytes;
  uint32_t shard;
  uint32_t reserved1;
  // Message ids issued while this segment is the head start above this (survives restarts even if
  // every older segment has been recycled).
  uint64_t id_floor_hi;
};
static_assert(sizeof(SegmentHeader) <= kSegmentHeaderBytes);

struct RecordHeader {
  uint32_t magic;
  uint8_t version;
  uint8_t type;
  uint16_t flags;
  uint32_t payload_bytes;
  uint32_t crc32c;
  uint64_t segment_seq;
  uint64_t reserved;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

// A message id: `hi` is the spool's epoch (microseconds of the open that issued it, strictly
// increasing across opens of one shard) with the shard number in its top 8 bits, `lo` a sequence
// within that epoch. Printed as "EPOCH-SHARD-SEQ" in lower-case hex without padding, e.g.
// "5f3a1c2b4d5e6-0-1a".
struct MessageId {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const MessageId& a, const MessageId& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  friend bool operator!=(const MessageId& a, const MessageId& b) { return !(a == b); }
  friend bool operator<(const MessageId& a, const MessageId& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  }
  template <typename H>
  friend H AbslHashValue(H h, const MessageId& id) {
    return H::combine(std::move(h), id.hi, id.lo);
  }
  std::string ToString() const;
  static absl::StatusOr<MessageId> Parse(std::string_view text);
};

enum class RecipientStatus : uint8_t {
  kPending = 0,    // not yet attempted, or deferred: due at next_attempt_unix_ms
  kDelivered = 1,  // final
  kBounced = 2,    // final
};
const char* RecipientStatusName(RecipientStatus status);

struct RecipientState {
  std::string address;
  // The address the sender gave at RCPT when the relay expanded it into `address` (an alias's
  // target, which is private: a DSN names this one instead, see relay/delivery/delivery_policy.h);
  // empty when the sender's own address is `address`. RFC 3461 §4.2 calls it the ORCPT.
  std::string original;
  // The client's DSN parameters for this recipient (RFC 3461 §4.1, §4.2): NOTIFY as
  // smtp::kNotify* bits (0: none given, the relay's default) and ORCPT ("rfc822;a@b", "": none).
  uint8_t notify = 0;
  std::string orcpt;
  RecipientStatus status = RecipientStatus::kPending;
  uint32_t attempts = 0;
  int64_t next_attempt_unix_ms = 0;
  std::string last_reply;
  // A kAttempt record with no outcome after it: an attempt whose outcome is unknown, so the remote
  // may already hold a copy. Not part of the message record: kAttempt records carry it.
  bool attempt_open = false;
};

// How urgent a message is for the scheduler (issue 16): transactional mail (a password reset)
// goes before bulk mail (a newsletter) at a busy site; kNormal between the two.
enum class Priority : uint8_t { kNormal = 0, kBulk = 1, kTransactional = 2 };
inline constexpr uint8_t kPriorityMax = 2;
const char* PriorityName(Priority priority);  // "normal", "bulk", "transactional"
// The order classes are served in: transactional 2, normal 1, bulk 0.
int PriorityRank(Priority priority);

// Who a message belongs to and how it is to be treated, fixed at acceptance. Empty strings and
// kNormal are "not set"; a message with nothing set stores no attributes block at all.
struct MessageAttributes {
  // The named tenant (relay/server/tenants.h), lower-case; empty: the tenant is the domain of
  // the sender, as it was before tenants had names (TenantOf).
  std::string tenant;
  std::string campaign;  // as the client named it (printable ASCII, checked on input)
  Priority priority = Priority::kNormal;
  // The DSN extension's message parameters as the client gave them (RFC 3461 §4.3, §4.4): ENVID
  // and RET (0 none, 1 FULL, 2 HDRS: smtp::DsnReturn's values). NOTIFY and ORCPT are each
  // recipient's (RecipientState).
  std::string envid;
  uint8_t dsn_ret = 0;
  // RFC 8689: the client asked for REQUIRETLS (delivery only over verified TLS to servers that
  // offer it), or wrote `TLS-Required: No` (the destination's TLS policies may be ignored).
  bool require_tls = false;
  bool tls_optional = false;

  bool empty() const {
    return tenant.empty() && campaign.empty() && priority == Priority::kNormal && envid.empty() &&
           dsn_ret == 0 && !require_tls && !tls_optional;
  }
  friend bool operator==(const MessageAttributes&, const MessageAttributes&) = default;
};
// Bytes each string attribute may hold; longer ones are refused by the spool (ENVID's limit is
// 100, ORCPT's 500: RFC 3461 §4.4, §4.2).
inline constexpr size_t kAttributeBytesMax = 128;
inline constexpr size_t kOrcptBytesMax = 500;
inline constexpr uint8_t kDsnRetMax = 2;
inline constexpr uint8_t kNotifyMax = 15;
// NOTIFY bits as smtp::kNotify* has them: NEVER (8) alone, or any of the other three.
inline constexpr bool IsValidNotify(uint8_t n) {
  return n <= kNotifyMax && ((n & 8) == 0 || n == 8);
}

// The message's tenant: the named one, else the sender's domain (lower-case), else "" (the null
// sender: the relay's own DSNs).
std::string TenantOf(const MessageAttributes& attributes, std::string_view sender);

// The envelope as accepted: MAIL FROM (may be empty: the null reverse-path, RFC 5321 §4.5.5) and
// each RCPT TO.
struct Envelope {
  std::string sender;
  std::vector<std::string> recipients;
  // Empty, or parallel to `recipients`: RecipientState::original of each.
  std::vector<std::string> original_recipients;
  // Empty, or parallel to `recipients`: RecipientState::notify and orcpt of each.
  std::vector<uint8_t> notify;
  std::vector<std::string> orcpt;
  MessageAttributes attributes;
};

// An outcome to append for one recipient (or, for kDeleted, the whole message).
struct StateRecord {
  // kDelivered, kDeferred, kBounced, kDeleted, kDelayNotified or kAttempt
  RecordType type = RecordType::kDelivered;
  MessageId id;
  // Index into the envelope's recipients; kAllRecipients for kDeleted and kDelayNotified.
  uint32_t recipient = 0;
  int64_t time_unix_ms = 0;
  std::string reply;  // the remote's reply (code, enhanced code, text) or the reason
  uint32_t attempts = 0;              // kDeferred: attempts so far
  int64_t next_attempt_unix_ms = 0;   // kDeferred: when to try again
};

// CRC32C (Castagnoli), hardware instruction. `crc` is a running value: pass the previous result to
// continue over more bytes; start with 0.
uint32_t Crc32c(uint32_t crc, const void* data, size_t size);

inline constexpr size_t AlignRecord(size_t bytes) {
  return (bytes + kRecordAlignBytes - 1) & ~(kRecordAlignBytes - 1);
}

// Sizes of a payload before encoding, so the writer reserves space and encodes straight into the
// mapping with no intermediate buffer.
size_t MessagePayloadBytes(std::string_view sender, const MessageAttributes& attributes,
                           const std::vector<RecipientState>& recipients, size_t message_bytes);
size_t StatePayloadBytes(const StateRecord& state);

// Encoders write header + payload at `out` (which has AlignRecord(kRecordHeaderBytes + payload)
// bytes) and return the bytes written including padding. `message_parts` are concatenated.
size_t EncodeMessageRecord(char* out, uint64_t segment_seq, MessageId id, int64_t created_unix_ms,
                           uint32_t flags, std::string_view sender,
                           const MessageAttributes& attributes,
                           const std::vector<RecipientState>& recipients,
                           std::string_view message_part1, std::string_view message_part2);
size_t EncodeStateRecord(char* out, uint64_t segment_seq, const StateRecord& state);

// The result of looking at the bytes at one offset of a segment.
enum class ScanResult {
  kValid,    // a complete record with a good CRC and this segment's sequence number
  kEnd,      // zeros: nothing was ever written here
  kInvalid,  // something is here but it is not a valid record (torn or corrupted)
};
// Checks the record at `data` (at most `available` bytes) for segment `segment_seq`; on kValid sets
// *header and *total_bytes (aligned).
ScanResult CheckRecord(const char* data, size_t available, uint64_t segment_seq,
                       RecordHeader* header, size_t* total_bytes);

// A decoded message record. string_views point into the payload (the mapping).
struct MessageRecordView {
  MessageId id;
  int64_t created_unix_ms = 0;
  uint32_t flags = 0;
  std::string_view sender;
  MessageAttributes attributes;
  std::vector<RecipientState> recipients;
  std::string_view message;
};
absl::StatusOr<MessageRecordView> DecodeMessagePayload(std::string_view payload);
absl::StatusOr<StateRecord> DecodeStatePayload(RecordType type, std::string_view payload);

}  // namespace queue
