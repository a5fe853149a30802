// Deterministic message contents for the crash test, so that the test can check every recovered
// message byte for byte whoever wrote it. Test-only.
#pragma once

#include <cstdint>
#include <string>

namespace queue {

inline std::string SenderFor(uint64_t n) { return "n" + std::to_string(n) + "@example.net"; }

inline std::string BodyFor(uint64_t n) {
  std::string body = "Subject: crash test " + std::to_string(n) + "\r\n\r\n";
  const size_t bytes = 200 + (n * 7919) % 3000;
  uint64_t x = n * 0x9e3779b97f4a7c15ull + 1;
  while (body.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    body += static_cast<char>('a' + x % 26);
  }
  return body;
}

}  // namespace queue
