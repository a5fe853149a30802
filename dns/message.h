// DNS messages on the wire (RFC 1035 §4): a parser for answers and a small builder for queries,
// test answers and benchmarks.
//
// The parser treats its input as hostile network bytes: every read is bounds-checked, compressed
// names (RFC 1035 §4.1.4) may only point backwards and a name may not exceed 255 bytes, so a
// malformed message yields an error Status, never a crash or an unbounded loop. Parsed messages
// own their data (no pointers into the input). Names are in presentation form without the final
// dot ("mx1.example.com"); the root is ".", and bytes that are not plain label characters are
// escaped as \DDD (RFC 1035 §5.1).
//
// Pure computation; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dns {

// RR types and classes used by the relay (RFC 1035 §3.2.2, RFC 3596, RFC 6891).
enum RrType : uint16_t {
  kTypeA = 1,
  kTypeNs = 2,
  kTypeCname = 5,
  kTypeSoa = 6,
  kTypePtr = 12,
  kTypeMx = 15,
  kTypeTxt = 16,
  kTypeAaaa = 28,
  kTypeOpt = 41,
  kTypeTlsa = 52,  // RFC 6698
};
constexpr uint16_t kClassIn = 1;

// RCODEs (RFC 1035 §4.1.1).
enum Rcode : uint8_t {
  kRcodeNoError = 0,
  kRcodeFormErr = 1,
  kRcodeServFail = 2,
  kRcodeNxDomain = 3,
  kRcodeNotImp = 4,
  kRcodeRefused = 5,
};

// Wire limits of RFC 1035 §2.3.4.
constexpr size_t kNameBytesMax = 255;
constexpr size_t kLabelBytesMax = 63;
// The largest message accepted (TCP length prefix limit).
constexpr size_t kMessageBytesMax = 65535;
// Bounds a record count so that a header claiming 65535 records in 20 bytes costs nothing.
constexpr size_t kRecordsMax = 4096;

struct SoaData {
  std::string mname;
  std::string rname;
  uint32_t serial = 0;
  uint32_t refresh_s = 0;
  uint32_t retry_s = 0;
  uint32_t expire_s = 0;
  uint32_t minimum_s = 0;  // RFC 2308 §4: the negative-caching TTL
};

struct ResourceRecord {
  std::string name;
  uint16_t type = 0;
  uint16_t rr_class = 0;
  uint32_t ttl_s = 0;
  std::string rdata;  // raw RDATA as received (compression pointers not expanded)

  // Decoded RDATA, filled according to `type`.
  uint16_t preference = 0;            // MX
  std::string target;                 // MX exchange, CNAME, PTR, NS
  std::vector<std::string> texts;     // TXT character-strings, in order (RFC 1035 §3.3.14)
  std::array<uint8_t, 16> address{};  // A (first 4 bytes) or AAAA
  SoaData soa;                        // SOA
};

struct Question {
  std::string name;
  uint16_t type = 0;
  uint16_t qclass = 0;
};

struct Message {
  uint16_t id = 0;
  bool response = false;
  uint8_t opcode = 0;
  bool authoritative = false;
  bool truncated = false;
  bool recursion_desired = false;
  bool recursion_available = false;
  // AD (RFC 4035 §3.2.3): the resolver validated every record of the answer with DNSSEC. Worth
  // only what the path to the resolver is worth (dns::ResolverOptions::trust_ad).
  bool authenticated_data = false;
  uint8_t rcode = 0;
  std::vector<Question> questions;
  std::vector<ResourceRecord> answers;
  std::vector<ResourceRecord> authorities;
  std::vector<ResourceRecord> additionals;
};

// Debian's abseil keeps absl::string_view distinct from std::string_view: this bridges them.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Parses a whole DNS message.
absl::StatusOr<Message> ParseMessage(absl::Span<const uint8_t> wire);
inline absl::StatusOr<Message> ParseMessage(std::string_view wire) {
  return ParseMessage(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(wire.data()), wire.size()));
}

// Case-insensitive comparison of presentation-form names (RFC 4343), ignoring a final dot.
bool NameEquals(std::string_view a, std::string_view b);
// Lower-cased name without a final dot: the form used for cache keys and site keys.
std::string CanonicalName(std::string_view name);

// The records of `type` that answer `qname`, following CNAMEs inside the answer section
// (RFC 1034 §3.6.2) for at most a few hops. `final_name` (optional) receives the name the chain
// ended at.
std::vector<const ResourceRecord*> AnswersFor(const Message& message, std::string_view qname,
                                              uint16_t type, std::string* final_name = nullptr);

// The reverse-lookup name of an IPv4 ("4.3.2.1.in-addr.arpa") or IPv6 (nibbles, "ip6.arpa")
// address given as text (RFC 1035 §3.5, RFC 3596 §2.5).
absl::StatusOr<std::string> ReverseName(std::string_view ip);

// Builds DNS messages. Names are compressed against earlier names in the message. Used for
// queries and, in tests and benchmarks, for answers.
class MessageBuilder {
 public:
  MessageBuilder(uint16_t id, uint16_t flags);
  // Header flag bits (RFC 1035 §4.1.1).
  static constexpr uint16_t kFlagResponse = 0x8000;
  static constexpr uint16_t kFlagAuthoritative = 0x0400;
  static constexpr uint16_t kFlagTruncated = 0x0200;
  static constexpr uint16_t kFlagRecursionDesired = 0x0100;
  static constexpr uint16_t kFlagRecursionAvailable = 0x0080;
  static constexpr uint16_t kFlagAuthenticatedData = 0x0020;

  enum class Section { kQuestion = 0, kAnswer = 1, kAuthority = 2, kAdditional = 3 };

  void SetRcode(uint8_t rcode);
  // Sections must be filled in order: questions, then answers, authorities, additionals.
  MessageBuilder& AddQuestion(std::string_view name, uint16_t type);
  MessageBuilder& AddA(Section s, std::string_view name, uint32_t ttl_s, std::string_view ipv4);
  MessageBuilder& AddAaaa(Section s, std::string_view name, uint32_t ttl_s, std::string_view ipv6);
  MessageBuilder& AddMx(Section s, std::string_view name, uint32_t ttl_s, uint16_t preference,
                        std::string_view exchange);
  MessageBuilder& AddName(Section s, std::string_view name, uint16_t type, uint32_t ttl_s,
                          std::string_view target);  // CNAME, PTR, NS
  MessageBuilder& AddTxt(Section s, std::string_view name, uint32_t ttl_s,
                         const std::vector<std::string>& strings);
  MessageBuilder& AddSoa(Section s, std::string_view name, uint32_t ttl_s, const SoaData& soa);
  // The finished message.
  const std::string& wire() const { return wire_; }

 private:
  void BeginRecord(Section s, std::string_view name, uint16_t type, uint32_t ttl_s);
  void EndRecord();
  void PutName(std::string_view name);
  void Put16(uint16_t v);
  void Put32(uint32_t v);
  void Set16(size_t offset, uint16_t v);

  std::string wire_;
  size_t rdlength_offset_ = 0;
  int section_ = 0;
  // Offsets of names (suffixes) already written, for compression.
  std::vector<std::pair<std::string, uint16_t>> names_;
};

}  // namespace dns
