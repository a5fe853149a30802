// Fuzz target for spool recovery (queue/spool.h, queue/segment.h, queue/spool_reader.h): what a
// crash, a torn write or a damaged disk leaves in a segment file, read back at start. The input
// describes a segment: a flags byte, then ops that append message and state records (encoded by
// the real writer's encoders) and ops that damage the file afterwards (flip, zero or overwrite
// bytes, move the committed length). The file is written to a fresh spool directory, then:
//   - ScanSegment: every record it hands out has its magic, this segment's number, an aligned
//     place inside the file and a CRC32C that an independent (bitwise) CRC agrees with, and the
//     scan ends inside the file;
//   - SpoolReader and Spool::Open (recovery: re-appending what it could read, moving the damaged
//     segment aside) either fail cleanly or yield only messages that were written, with their
//     sender, recipients and bytes as written, or that a valid record of the scan carried;
//   - a message whose record is intact and that no valid state record touches is never lost
//     (unless the segment's own header is damaged).
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "queue/record_format.h"
#include "queue/segment.h"
#include "queue/spool.h"
#include "queue/spool_reader.h"
#include "relay/base/log.h"
#include "tools/fuzz/fuzz.h"

namespace queue {
namespace {

constexpr uint64_t kSegmentBytes = 64 << 10;
constexpr uint64_t kEpoch = 0x5f3a1c2b4d5e6;

// CRC32C (Castagnoli, reflected 0x82F63B78), bit by bit: nothing shared with the SSE4.2 code.
uint32_t ReferenceCrc32c(uint32_t crc, const char* data, size_t size) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= static_cast<uint8_t>(data[i]);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
  }
  return ~crc;
}

struct Written {
  std::string sender;
  MessageAttributes attributes;
  uint8_t notify0 = 0;  // the first recipient's DSN parameters
  std::string orcpt0;
  std::vector<std::string> recipients;
  std::string message;
  uint64_t offset = 0;
  uint64_t end = 0;
};

struct Damage {
  uint8_t kind;
  uint64_t offset;
  std::string bytes;
};

void FuzzSpoolRecovery(std::string_view data) {
  relay::fuzz::InputReader in(data);
  const uint8_t flags = in.Byte();
  const uint64_t seq = 1 + (flags & 3);
  std::string file(kSegmentBytes, '\0');
  std::map<MessageId, Written> written;
  std::vector<MessageId> ids;
  uint64_t end = kSegmentHeaderBytes;
  uint64_t committed = flags & 4 ? 0 : ~uint64_t{0};  // ~0: the end of what was written
  std::vector<Damage> damages;
  while (!in.empty()) {
    const uint8_t op = in.Byte();
    if (op % 8 < 3) {  // a message
      Written w;
      const int recipients = 1 + op / 8 % 4;
      w.sender = std::string(in.Take(in.Byte() % 40));
      std::vector<RecipientState> states(recipients);
      for (int r = 0; r < recipients; ++r) {
        states[r].address = "r" + std::to_string(r) + "@" + std::string(in.Take(in.Byte() % 16));
        w.recipients.push_back(states[r].address);
      }
      if (op & 0x80) {  // a message with attributes and DSN parameters (record version 4)
        w.attributes.tenant = std::string(in.Take(in.Byte() % 24));
        w.attributes.campaign = std::string(in.Take(in.Byte() % 24));
        w.attributes.priority = static_cast<Priority>(in.Byte() % (kPriorityMax + 1));
        w.attributes.envid = std::string(in.Take(in.Byte() % 24));
        w.attributes.dsn_ret = in.Byte() % (kDsnRetMax + 1);
        states[0].notify = in.Byte() % 8;  // any of SUCCESS, FAILURE, DELAY (or none)
        states[0].orcpt = std::string(in.Take(in.Byte() % 24));
        w.notify0 = states[0].notify;
        w.orcpt0 = states[0].orcpt;
      }
      w.message = std::string(in.Take(4 * static_cast<size_t>(in.Byte())));
      const MessageId id{kEpoch, ids.size() + 1};
      const size_t total =
          AlignRecord(kRecordHeaderBytes +
                      MessagePayloadBytes(w.sender, w.attributes, states, w.message.size()));
      if (end + total > kSegmentBytes) break;
      EncodeMessageRecord(file.data() + end, seq, id, 1763840000000, 0, w.sender, w.attributes,
                          states, w.message, "");
      w.offset = end;
      w.end = end + total;
      end += total;
      written[id] = std::move(w);
      ids.push_back(id);
    } else if (op % 8 == 3) {  // a state record for a message written before
      if (ids.empty()) continue;
      StateRecord state;
      static constexpr RecordType kTypes[] = {RecordType::kDelivered,     RecordType::kDeferred,
                                              RecordType::kBounced,       RecordType::kDeleted,
                                              RecordType::kDelayNotified, RecordType::kAttempt};
      state.type = kTypes[op / 8 % 6];
      state.id = ids[in.Below(static_cast<uint32_t>(ids.size()))];
      state.recipient =
          state.type == RecordType::kDeleted || state.type == RecordType::kDelayNotified
              ? kAllRecipients
              : in.Below(5);
      state.time_unix_ms = 1763840000000;
      state.reply = std::string(in.Take(in.Byte() % 64));
      state.attempts = 1;
      const size_t total = AlignRecord(kRecordHeaderBytes + StatePayloadBytes(state));
      if (end + total > kSegmentBytes) break;
      EncodeStateRecord(file.data() + end, seq, state);
      end += total;
    } else if (op % 8 == 7) {  // the committed length
      committed = in.Below(kSegmentBytes / 8) * 8;
    } else {  // damage, applied once everything is written
      Damage d;
      d.kind = op % 8;
      d.offset = in.Below(kSegmentBytes / 8) * 8 + in.Byte() % 8;
      d.bytes = std::string(in.Take(1 + in.Byte() % 32));
      damages.push_back(std::move(d));
    }
  }
  if (committed == ~uint64_t{0}) committed = end;
  SegmentHeader header{};
  header.magic = kSegmentMagic;
  header.version = kFormatVersion;
  header.segment_bytes = kSegmentBytes;
  header.segment_seq = seq;
  header.committed_bytes = committed;
  std::memcpy(file.data(), &header, sizeof(header));
  std::vector<bool> changed(kSegmentBytes, false);
  for (const Damage& d : damages) {
    for (size_t i = 0; i < d.bytes.size() && d.offset + i < kSegmentBytes; ++i) {
      char& c = file[d.offset + i];
      const char before = c;
      c = d.kind == 4 ? static_cast<char>(c ^ d.bytes[i]) : d.kind == 5 ? '\0' : d.bytes[i];
      if (c != before) changed[d.offset + i] = true;
    }
  }
  const bool short_file = flags & 8;  // a creation cut short: less than a header
  if (short_file) file.resize(flags % 64 * 64);

  const std::string dir = relay::fuzz::ScratchDirectory() + "/spool";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);
  const std::string path = dir + "/segment-000001.q";
  relay::fuzz::WriteFile(path, file);

  // The scan, checked record by record.
  std::set<MessageId> scanned_messages, scanned_states;
  if (auto segment = SegmentFile::Open(path, /*writable=*/false); segment.ok()) {
    const SegmentFile& f = **segment;
    const ScanOutcome outcome = ScanSegment(
        f, f.bytes(),
        [&](const RecordHeader& h, std::string_view payload, uint64_t offset,
            uint64_t record_end) -> absl::Status {
          FUZZ_CHECK(offset % kRecordAlignBytes == 0 && offset >= kSegmentHeaderBytes);
          FUZZ_CHECK(record_end <= f.bytes() && record_end > offset);
          FUZZ_CHECK(h.magic == kRecordMagic && h.segment_seq == f.seq());
          FUZZ_CHECK(payload.data() == f.data() + offset + kRecordHeaderBytes);
          RecordHeader zeroed = h;
          zeroed.crc32c = 0;
          const uint32_t crc = ReferenceCrc32c(
              ReferenceCrc32c(0, reinterpret_cast<const char*>(&zeroed), sizeof(zeroed)),
              payload.data(), payload.size());
          FUZZ_CHECK(crc == h.crc32c);
          if (h.type == static_cast<uint8_t>(RecordType::kMessage)) {
            absl::StatusOr<MessageRecordView> m = DecodeMessagePayload(payload);
            if (!m.ok()) return m.status();
            scanned_messages.insert(m->id);
          } else {
            absl::StatusOr<StateRecord> s =
                DecodeStatePayload(static_cast<RecordType>(h.type), payload);
            if (!s.ok()) return s.status();
            scanned_states.insert(s->id);
          }
          return absl::OkStatus();
        });
    FUZZ_CHECK(outcome.end_offset >= kSegmentHeaderBytes && outcome.end_offset <= f.bytes());
    for (const CorruptRecord& c : outcome.corruptions) FUZZ_CHECK(c.offset < f.bytes());
  }

  auto check_message = [&](MessageId id, std::string_view sender,
                           const MessageAttributes& attributes,
                           const std::vector<RecipientState>& recipients, std::string_view bytes) {
    auto it = written.find(id);
    if (it == written.end()) {
      FUZZ_CHECK(scanned_messages.count(id) != 0);  // a record made valid by the damage itself
      return;
    }
    bool intact = true;
    for (uint64_t i = it->second.offset; i < it->second.end; ++i) intact = intact && !changed[i];
    if (!intact) {
      FUZZ_CHECK(scanned_messages.count(id) != 0);
      return;
    }
    FUZZ_CHECK(sender == it->second.sender);
    FUZZ_CHECK(attributes == it->second.attributes);
    FUZZ_CHECK(recipients.size() == it->second.recipients.size());
    for (size_t r = 0; r < recipients.size(); ++r) {
      FUZZ_CHECK(recipients[r].address == it->second.recipients[r]);
    }
    FUZZ_CHECK(recipients[0].notify == it->second.notify0 &&
               recipients[0].orcpt == it->second.orcpt0);
    FUZZ_CHECK(bytes == it->second.message);
  };

  if (auto reader = SpoolReader::Open(dir); reader.ok()) {
    (*reader)->index().ForEach([&](const MessageInfo& m) {
      check_message(m.id, m.sender, m.attributes, m.recipients, m.message);
    });
  }

  SpoolOptions options;
  options.directory = dir;
  options.segment_bytes = kSegmentBytes;
  options.reserve_segments = 0;
  options.fsync = false;
  RecoveryReport report;
  absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(options, &report);
  if (!spool.ok()) return;
  FUZZ_CHECK(report.segments <= 1 && report.live_messages == (*spool)->stats().live_messages);
  std::set<MessageId> live;
  (*spool)->ForEachMessage([&](const MessageInfo& m) {
    live.insert(m.id);
    check_message(m.id, m.sender, m.attributes, m.recipients, (*spool)->MessageBytes(m.id));
  });
  // A damaged segment header makes the whole segment a free one (segment_seq 0: a recycled
  // segment keeps its old records, so nothing tells them apart) or moves it aside: no record of
  // it is expected back then.
  bool header_intact = !short_file;
  for (size_t i = 0; i < sizeof(SegmentHeader); ++i) header_intact = header_intact && !changed[i];
  if (!header_intact) return;
  for (const auto& [id, w] : written) {
    bool intact = true;
    for (uint64_t i = w.offset; i < w.end; ++i) intact = intact && !changed[i];
    if (intact && scanned_states.count(id) == 0) FUZZ_CHECK(live.count(id) != 0);
  }
}

// A segment of many small messages: op 0 (one recipient), sender "a@b", recipient domain
// "c.de", a 4-byte body.
std::string ManyMessages(size_t bytes) {
  const std::string message = std::string("\x00\x03", 2) + "a@b" + "\x04" + "c.de" + "\x01" + "body";
  return relay::fuzz::Repeat(std::string(1, '\0'), message, "", bytes);
}

}  // namespace
}  // namespace queue

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "spool_recovery",
      .run = queue::FuzzSpoolRecovery,
      // The segment image (64 KiB), the spool's write buffer (1 MiB) and the map of what was
      // written, the index of the reader and of the spool, the copies recovery re-appends; a
      // message record for as little as 4 input bytes.
      .bounds = {.heap_peak_bytes = {2 << 20, 512},
                 .heap_allocated_bytes = {8 << 20, 2048},
                 .allocations = {4096, 16}},
      .init =
          [] {
            relay::SetLogLevel(relay::LogLevel::kOff);  // every damaged segment is logged
            (void)relay::fuzz::ScratchDirectory();
            const char kText[] = "123456789";
            FUZZ_CHECK(queue::ReferenceCrc32c(0, kText, 9) == 0xE3069283u);
            FUZZ_CHECK(queue::Crc32c(0, kText, 9) == 0xE3069283u);
          },
      .scaled = {{.name = "many messages", .make = queue::ManyMessages, .bytes_max = 8 << 10}},
  };
  return target;
}
