// Fuzz target for the DNS message parser (dns/message.h): answers come from the network, from any
// server an attacker can make us ask. Besides memory safety it checks what the resolver relies
// on: names are non-empty and at most 255 wire bytes (4 presentation bytes each when escaped),
// RDATA is no larger than the message, TXT strings fit their RDATA, and AnswersFor returns only
// records of the type asked, as the resolver asks it (the first question).
#include <cstdint>
#include <string>
#include <string_view>

#include "dns/message.h"
#include "tools/fuzz/fuzz.h"

namespace dns {
namespace {

void CheckName(const std::string& name) {
  FUZZ_CHECK(!name.empty());
  FUZZ_CHECK(name.size() <= 4 * kNameBytesMax);
}

void FuzzMessage(std::string_view input) {
  absl::StatusOr<Message> m = ParseMessage(input);
  if (!m.ok()) return;
  for (const Question& q : m->questions) CheckName(q.name);
  if (!m->questions.empty()) {
    const std::string& qname = m->questions[0].name;
    for (uint16_t type : {kTypeMx, kTypeA, kTypeAaaa, kTypeTxt, kTypePtr, kTypeCname}) {
      std::string final_name;
      for (const ResourceRecord* rr : AnswersFor(*m, qname, type, &final_name)) {
        FUZZ_CHECK(rr->type == type);
      }
      CheckName(final_name);
    }
  }
  for (const auto* section : {&m->answers, &m->authorities, &m->additionals}) {
    FUZZ_CHECK(section->size() <= kRecordsMax);
    for (const ResourceRecord& rr : *section) {
      CheckName(rr.name);
      FUZZ_CHECK(rr.rdata.size() <= input.size());
      size_t text_bytes = 0;
      for (const std::string& t : rr.texts) text_bytes += t.size() + 1;
      FUZZ_CHECK(text_bytes <= rr.rdata.size());
    }
  }
}

// An answer to "example.com A" with as many A records as fit, each name a compression pointer to
// the question: the parser's most expanding case.
std::string ManyAnswers(size_t bytes) {
  std::string header("\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  std::string m = header + std::string(
                               "\x07"
                               "example\x03"
                               "com\x00\x00\x01\x00\x01",
                               17);
  const std::string record("\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\xc0\x00\x02\x01", 16);
  size_t count = 0;
  while (m.size() + record.size() <= std::min<size_t>(bytes, kMessageBytesMax) &&
         count < kRecordsMax) {
    m += record;
    ++count;
  }
  m[6] = static_cast<char>(count >> 8);
  m[7] = static_cast<char>(count & 0xff);
  return m;
}

}  // namespace
}  // namespace dns

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "dns_message",
      .run = dns::FuzzMessage,
      // A 2-byte compression pointer may stand for a 255-byte name, escaped to at most 1020
      // bytes, in a record of 12 bytes: the parsed message may hold ~100 bytes per wire byte.
      .bounds = {.heap_peak_bytes = {16 << 10, 128},
                 .heap_allocated_bytes = {32 << 10, 256},
                 .allocations = {64, 2}},
      .scaled = {{.name = "many answers",
                  .make = dns::ManyAnswers,
                  .bytes_max = dns::kMessageBytesMax}},
  };
  return target;
}
