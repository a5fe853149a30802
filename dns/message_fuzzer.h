// The parser's fuzz body, shared by the bounded random test (message_fuzz_test.cc) and the
// libFuzzer entry point (message_fuzzer.cc). It parses the input and walks whatever came out,
// checking the invariants the rest of the resolver relies on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dns/message.h"

namespace dns {

// Returns true when the input parsed.
inline bool FuzzOneMessage(const uint8_t* data, size_t size) {
  absl::StatusOr<Message> m = ParseMessage(absl::MakeConstSpan(data, size));
  if (!m.ok()) return false;
  auto check_name = [](const std::string& name) {
    // Each wire byte becomes at most 4 presentation bytes (\DDD).
    if (name.empty() || name.size() > 4 * kNameBytesMax) __builtin_trap();
  };
  for (const Question& q : m->questions) {
    check_name(q.name);
    for (uint16_t type : {kTypeMx, kTypeA, kTypeAaaa, kTypeTxt, kTypePtr}) {
      for (const ResourceRecord* rr : AnswersFor(*m, q.name, type)) {
        if (rr->type != type) __builtin_trap();
      }
    }
  }
  for (const auto* section : {&m->answers, &m->authorities, &m->additionals}) {
    for (const ResourceRecord& rr : *section) {
      check_name(rr.name);
      if (rr.rdata.size() > size) __builtin_trap();
      size_t text_bytes = 0;
      for (const std::string& t : rr.texts) text_bytes += t.size() + 1;
      if (text_bytes > rr.rdata.size()) __builtin_trap();
    }
  }
  return true;
}

}  // namespace dns
