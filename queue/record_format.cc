#include "queue/record_format.h"

#include <nmmintrin.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace queue {
namespace {

// Little-endian put/get: the relay only runs on x86-64 (the CRC needs SSE4.2), so plain memcpy.
template <typename T>
char* Put(char* out, T value) {
  std::memcpy(out, &value, sizeof(value));
  return out + sizeof(value);
}

// memcpy that accepts an empty view with a null data pointer.
char* PutBytes(char* out, std::string_view s) {
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

char* PutStr16(char* out, std::string_view s) {
  out = Put<uint16_t>(out, static_cast<uint16_t>(s.size()));
  return PutBytes(out, s);
}

void PutId(char*& out, MessageId id) {
  out = Put<uint64_t>(out, id.hi);
  out = Put<uint64_t>(out, id.lo);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  template <typename T>
  bool Get(T* value) {
    if (data_.size() < sizeof(T)) return false;
    std::memcpy(value, data_.data(), sizeof(T));
    data_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetStr16(std::string_view* s) {
    uint16_t n;
    if (!Get(&n) || data_.size() < n) return false;
    *s = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool GetStr32(std::string_view* s) {
    uint32_t n;
    if (!Get(&n) || data_.size() < n) return false;
    *s = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  bool GetId(MessageId* id) { return Get(&id->hi) && Get(&id->lo); }
  bool empty() const { return data_.empty(); }
  size_t remaining() const { return data_.size(); }

 private:
  std::string_view data_;
};

uint32_t RecordCrc(const RecordHeader& header, const char* payload) {
  RecordHeader copy = header;
  copy.crc32c = 0;
  uint32_t crc = Crc32c(0, &copy, sizeof(copy));
  return Crc32c(crc, payload, header.payload_bytes);
}

size_t Finish(char* out, RecordType type, uint64_t segment_seq, size_t payload_bytes,
              uint8_t version) {
  RecordHeader header{};
  header.magic = kRecordMagic;
  header.version = version;
  header.type = static_cast<uint8_t>(type);
  header.payload_bytes = static_cast<uint32_t>(payload_bytes);
  header.segment_seq = segment_seq;
  header.crc32c = RecordCrc(header, out + kRecordHeaderBytes);
  size_t total = kRecordHeaderBytes + payload_bytes;
  size_t aligned = AlignRecord(total);
  std::memset(out + total, 0, aligned - total);
  // The header goes in last so that a reader racing the writer in the same process never sees a
  // magic before the payload (readers in other processes rely on committed_bytes instead).
  std::memcpy(out, &header, sizeof(header));
  return aligned;
}

size_t Finish(char* out, RecordType type, uint64_t segment_seq, size_t payload_bytes) {
  return Finish(out, type, segment_seq, payload_bytes, RecordVersion(type));
}

bool HasOriginals(const std::vector<RecipientState>& recipients) {
  for (const RecipientState& r : recipients) {
    if (!r.original.empty()) return true;
  }
  return false;
}

bool KnownVersion(RecordType type, uint8_t version) {
  return version == RecordVersion(type) ||
         (type == RecordType::kMessage &&
          (version == kMessageWithOriginalsVersion || version == kMessageWithAttributesVersion ||
           version == kMessageRequiringTlsVersion));
}

// The attributes' TLS byte (RFC 8689).
constexpr uint8_t kTlsRequire = 1;   // REQUIRETLS
constexpr uint8_t kTlsOptional = 2;  // TLS-Required: No

// The attributes block's bytes (without its own str16 length); 0 for empty attributes.
size_t AttributesBytes(const MessageAttributes& a) {
  if (a.empty()) return 0;
  // The TLS byte is written only when it says something: older readers stop before it.
  const size_t tls = a.require_tls || a.tls_optional ? 1 : 0;
  return 2 + a.tenant.size() + 2 + a.campaign.size() + 1 + 2 + a.envid.size() + 1 + tls;
}

bool HasRecipientDsn(const std::vector<RecipientState>& recipients) {
  for (const RecipientState& r : recipients) {
    if (r.notify != 0 || !r.orcpt.empty()) return true;
  }
  return false;
}

char* PutAttributes(char* p, const MessageAttributes& a) {
  p = Put<uint16_t>(p, static_cast<uint16_t>(AttributesBytes(a)));
  p = PutStr16(p, a.tenant);
  p = PutStr16(p, a.campaign);
  p = Put<uint8_t>(p, static_cast<uint8_t>(a.priority));
  p = PutStr16(p, a.envid);
  p = Put<uint8_t>(p, a.dsn_ret);
  if (!a.require_tls && !a.tls_optional) return p;
  return Put<uint8_t>(p, static_cast<uint8_t>((a.require_tls ? kTlsRequire : 0) |
                                              (a.tls_optional ? kTlsOptional : 0)));
}

// The fields of an attributes block this code knows; bytes after them are a later version's
// fields and are ignored.
bool DecodeAttributes(std::string_view block, MessageAttributes* a) {
  Reader r(block);
  std::string_view tenant, campaign;
  uint8_t priority;
  if (!r.GetStr16(&tenant) || !r.GetStr16(&campaign) || !r.Get(&priority) ||
      priority > kPriorityMax || tenant.size() > kAttributeBytesMax ||
      campaign.size() > kAttributeBytesMax) {
    return false;
  }
  a->tenant.assign(tenant);
  a->campaign.assign(campaign);
  a->priority = static_cast<Priority>(priority);
  if (r.empty()) return true;  // a block without the DSN fields
  std::string_view envid;
  if (!r.GetStr16(&envid) || envid.size() > kAttributeBytesMax || !r.Get(&a->dsn_ret) ||
      a->dsn_ret > kDsnRetMax) {
    return false;
  }
  a->envid.assign(envid);
  if (r.empty()) return true;  // a block without the TLS byte
  uint8_t tls = 0;
  if (!r.Get(&tls)) return false;  // other bits: a later version's, ignored
  a->require_tls = (tls & kTlsRequire) != 0;
  a->tls_optional = (tls & kTlsOptional) != 0;
  return true;
}

}  // namespace

bool IsKnownRecordType(uint8_t type) { return type >= 1 && type <= 7; }

const char* PriorityName(Priority priority) {
  switch (priority) {
    case Priority::kNormal:
      return "normal";
    case Priority::kBulk:
      return "bulk";
    case Priority::kTransactional:
      return "transactional";
  }
  return "unknown";
}

int PriorityRank(Priority priority) {
  switch (priority) {
    case Priority::kTransactional:
      return 2;
    case Priority::kNormal:
      return 1;
    case Priority::kBulk:
      return 0;
  }
  return 1;
}

std::string TenantOf(const MessageAttributes& attributes, std::string_view sender) {
  if (!attributes.tenant.empty()) return attributes.tenant;
  const size_t at = sender.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string domain(sender.substr(at + 1));
  for (char& c : domain) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return domain;
}

uint8_t RecordVersion(RecordType type) { return type == RecordType::kAttempt ? 2 : 1; }

const char* RecipientStatusName(RecipientStatus status) {
  switch (status) {
    case RecipientStatus::kPending:
      return "pending";
    case RecipientStatus::kDelivered:
      return "delivered";
    case RecipientStatus::kBounced:
      return "bounced";
  }
  return "unknown";
}

std::string MessageId::ToString() const {
  return absl::StrCat(absl::Hex(hi & ((uint64_t{1} << 56) - 1)), "-", absl::Hex(hi >> 56), "-",
                      absl::Hex(lo));
}

absl::StatusOr<MessageId> MessageId::Parse(std::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(text), '-');
  uint64_t epoch, shard, seq;
  if (parts.size() != 3 || !absl::SimpleHexAtoi(parts[0], &epoch) ||
      !absl::SimpleHexAtoi(parts[1], &shard) || !absl::SimpleHexAtoi(parts[2], &seq) ||
      shard > 255 || epoch >= (uint64_t{1} << 56)) {
    return absl::InvalidArgumentError(absl::StrCat("not a message id: ", ToAbsl(text)));
  }
  return MessageId{(shard << 56) | epoch, seq};
}

uint32_t Crc32c(uint32_t crc, const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc & 0xffffffffu;
  while (size >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    size -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (size > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --size;
  }
  return ~c32;
}

size_t MessagePayloadBytes(std::string_view sender, const MessageAttributes& attributes,
                           const std::vector<RecipientState>& recipients, size_t message_bytes) {
  size_t n = 16 + 8 + 4 + 2 + sender.size() + 4;
  if (!attributes.empty()) n += 2 + AttributesBytes(attributes);
  const bool originals = HasOriginals(recipients);
  const bool dsn = HasRecipientDsn(recipients);
  for (const RecipientState& r : recipients) {
    n += 2 + r.address.size() + 1 + 4 + 8 + 2 + r.last_reply.size();
    if (originals) n += 2 + r.original.size();
    if (dsn) n += 1 + 2 + r.orcpt.size();
  }
  return n + 4 + message_bytes;
}

size_t StatePayloadBytes(const StateRecord& state) {
  size_t n = 16 + 8 + 4 + 2 + state.reply.size();
  if (state.type == RecordType::kDeferred) n += 4 + 8;
  return n;
}

size_t EncodeMessageRecord(char* out, uint64_t segment_seq, MessageId id, int64_t created_unix_ms,
                           uint32_t flags, std::string_view sender,
                           const MessageAttributes& attributes,
                           const std::vector<RecipientState>& recipients,
                           std::string_view message_part1, std::string_view message_part2) {
  char* p = out + kRecordHeaderBytes;
  const bool originals = HasOriginals(recipients);
  const bool with_attributes = !attributes.empty();
  const bool dsn = HasRecipientDsn(recipients);
  flags &= ~(kMessageFlagOriginalRecipients | kMessageFlagAttributes | kMessageFlagRecipientDsn);
  if (originals) flags |= kMessageFlagOriginalRecipients;
  if (with_attributes) flags |= kMessageFlagAttributes;
  if (dsn) flags |= kMessageFlagRecipientDsn;
  PutId(p, id);
  p = Put<int64_t>(p, created_unix_ms);
  p = Put<uint32_t>(p, flags);
  p = PutStr16(p, sender);
  if (with_attributes) p = PutAttributes(p, attributes);
  p = Put<uint32_t>(p, static_cast<uint32_t>(recipients.size()));
  for (const RecipientState& r : recipients) {
    p = PutStr16(p, r.address);
    p = Put<uint8_t>(p, static_cast<uint8_t>(r.status));
    p = Put<uint32_t>(p, r.attempts);
    p = Put<int64_t>(p, r.next_attempt_unix_ms);
    p = PutStr16(p, r.last_reply);
    if (originals) p = PutStr16(p, r.original);
    if (dsn) {
      p = Put<uint8_t>(p, r.notify);
      p = PutStr16(p, r.orcpt);
    }
  }
  p = Put<uint32_t>(p, static_cast<uint32_t>(message_part1.size() + message_part2.size()));
  p = PutBytes(p, message_part1);
  p = PutBytes(p, message_part2);
  // The lowest version that holds the record: older readers still read the rest.
  const uint8_t version = attributes.require_tls   ? kMessageRequiringTlsVersion
                          : with_attributes || dsn ? kMessageWithAttributesVersion
                          : originals              ? kMessageWithOriginalsVersion
                                                   : RecordVersion(RecordType::kMessage);
  return Finish(out, RecordType::kMessage, segment_seq, p - (out + kRecordHeaderBytes), version);
}

size_t EncodeStateRecord(char* out, uint64_t segment_seq, const StateRecord& state) {
  char* p = out + kRecordHeaderBytes;
  PutId(p, state.id);
  p = Put<int64_t>(p, state.time_unix_ms);
  p = Put<uint32_t>(p, state.recipient);
  p = PutStr16(p, state.reply);
  if (state.type == RecordType::kDeferred) {
    p = Put<uint32_t>(p, state.attempts);
    p = Put<int64_t>(p, state.next_attempt_unix_ms);
  }
  return Finish(out, state.type, segment_seq, p - (out + kRecordHeaderBytes));
}

ScanResult CheckRecord(const char* data, size_t available, uint64_t segment_seq,
                       RecordHeader* header, size_t* total_bytes) {
  if (available < kRecordHeaderBytes) {
    for (size_t i = 0; i < available; ++i) {
      if (data[i] != 0) return ScanResult::kInvalid;
    }
    return ScanResult::kEnd;
  }
  std::memcpy(header, data, sizeof(*header));
  if (header->magic != kRecordMagic) {
    static constexpr char kZeros[kRecordHeaderBytes] = {};
    return std::memcmp(data, kZeros, kRecordHeaderBytes) == 0 ? ScanResult::kEnd
                                                              : ScanResult::kInvalid;
  }
  if (!IsKnownRecordType(header->type) ||
      !KnownVersion(static_cast<RecordType>(header->type), header->version) ||
      header->segment_seq != segment_seq ||
      header->payload_bytes > available - kRecordHeaderBytes) {
    return ScanResult::kInvalid;
  }
  if (RecordCrc(*header, data + kRecordHeaderBytes) != header->crc32c) return ScanResult::kInvalid;
  *total_bytes = AlignRecord(kRecordHeaderBytes + header->payload_bytes);
  if (*total_bytes > available) return ScanResult::kInvalid;
  return ScanResult::kValid;
}

absl::StatusOr<MessageRecordView> DecodeMessagePayload(std::string_view payload) {
  Reader r(payload);
  MessageRecordView v;
  uint32_t count;
  // A recipient takes at least 17 bytes (address and reply lengths, status, attempts, next
  // attempt): a count the payload cannot hold is refused before room is made for it, or a
  // record of a few bytes claiming kRecipientsMax recipients would allocate megabytes.
  constexpr size_t kRecipientBytesMin = 2 + 1 + 4 + 8 + 2;
  if (!r.GetId(&v.id) || !r.Get(&v.created_unix_ms) || !r.Get(&v.flags) || !r.GetStr16(&v.sender)) {
    return absl::DataLossError("malformed message record envelope");
  }
  if ((v.flags & kMessageFlagAttributes) != 0) {
    std::string_view block;
    if (!r.GetStr16(&block) || !DecodeAttributes(block, &v.attributes)) {
      return absl::DataLossError("malformed message record attributes");
    }
  }
  if (!r.Get(&count) || count > kRecipientsMax || count > r.remaining() / kRecipientBytesMin) {
    return absl::DataLossError("malformed message record envelope");
  }
  v.recipients.resize(count);
  const bool originals = (v.flags & kMessageFlagOriginalRecipients) != 0;
  const bool dsn = (v.flags & kMessageFlagRecipientDsn) != 0;
  for (RecipientState& rs : v.recipients) {
    std::string_view address, reply, original, orcpt;
    uint8_t status;
    if (!r.GetStr16(&address) || !r.Get(&status) || status > 2 || !r.Get(&rs.attempts) ||
        !r.Get(&rs.next_attempt_unix_ms) || !r.GetStr16(&reply) ||
        (originals && !r.GetStr16(&original)) ||
        (dsn && (!r.Get(&rs.notify) || !IsValidNotify(rs.notify) || !r.GetStr16(&orcpt) ||
                 orcpt.size() > kOrcptBytesMax))) {
      return absl::DataLossError("malformed message record recipient");
    }
    rs.orcpt.assign(orcpt);
    rs.address.assign(address);
    rs.status = static_cast<RecipientStatus>(status);
    rs.last_reply.assign(reply);
    rs.original.assign(original);
  }
  if (!r.GetStr32(&v.message) || !r.empty()) {
    return absl::DataLossError("malformed message record body");
  }
  return v;
}

absl::StatusOr<StateRecord> DecodeStatePayload(RecordType type, std::string_view payload) {
  Reader r(payload);
  StateRecord s;
  s.type = type;
  std::string_view reply;
  if (!r.GetId(&s.id) || !r.Get(&s.time_unix_ms) || !r.Get(&s.recipient) || !r.GetStr16(&reply)) {
    return absl::DataLossError("malformed state record");
  }
  s.reply.assign(reply);
  if (type == RecordType::kDeferred &&
      (!r.Get(&s.attempts) || !r.Get(&s.next_attempt_unix_ms))) {
    return absl::DataLossError("malformed deferred record");
  }
  if (!r.empty()) return absl::DataLossError("trailing bytes in state record");
  return s;
}

}  // namespace queue
