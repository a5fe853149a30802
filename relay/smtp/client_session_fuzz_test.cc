// Replays seed transcripts through the client fuzz target, then mutates them for a bounded time
// (a few seconds), so the target's invariants are exercised on every test run under GCC and the
// sanitizers. The target itself CHECKs its invariants: a violation aborts the test.
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

// Encodes a script for the target: a config byte, then ops (see client_session_fuzz.cc).
class Script {
 public:
  explicit Script(uint8_t config) { bytes_.push_back(static_cast<char>(config)); }
  Script& Server(std::string_view text) {
    // Op 0 with length 1 + op/8: send in chunks of up to 8 bytes, each once.
    while (!text.empty()) {
      const size_t n = std::min<size_t>(text.size(), 8);
      bytes_.push_back(static_cast<char>((n - 1) << 3));
      bytes_.append(text.substr(0, n));
      text.remove_prefix(n);
    }
    return *this;
  }
  // Op 3: `chunk` (at most 32 bytes) sent four times in a row.
  Script& ServerTimesFour(std::string_view chunk) {
    bytes_.push_back(static_cast<char>(((chunk.size() - 1) << 3) | 3));
    bytes_.append(chunk);
    return *this;
  }
  Script& Send(int recipients) {
    bytes_.push_back(static_cast<char>(4 | (recipients << 3)));
    return *this;
  }
  Script& BodySent() {
    bytes_.push_back(5);
    return *this;
  }
  Script& TlsUp() {
    bytes_.push_back(6 | 0x08);
    return *this;
  }
  Script& Timeout() {
    bytes_.push_back(6 | 0x10);
    return *this;
  }
  Script& Quit() {
    bytes_.push_back(6 | 0x20);
    return *this;
  }
  Script& PeerClosed() {
    bytes_.push_back(7 | 0x08);
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

std::vector<std::string> Seeds() {
  const std::string ehlo =
      "250-mx\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
      "250 ENHANCEDSTATUSCODES\r\n";
  std::vector<std::string> seeds;
  seeds.push_back(Script(1 | 4)
                      .Server("220 hi\r\n")
                      .Server(ehlo)
                      .Server("220 go\r\n")
                      .TlsUp()
                      .Server(ehlo)
                      .Send(3)
                      .Server("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n451 4.3.0 later\r\n354 go\r\n")
                      .BodySent()
                      .Server("250 2.0.0 queued\r\n")
                      .Send(1)
                      .Server("250 ok\r\n550 no\r\n354 go\r\n250 ok\r\n")
                      .Quit()
                      .Server("221 bye\r\n")
                      .bytes());
  seeds.push_back(Script(0)
                      .Server("220-a\r\n220 b\r\n")
                      .Server("502 what\r\n")
                      .Server("250 hello\r\n")
                      .Send(2)
                      .Server("250 ok\r\n")
                      .Server("250 ok\r\n")
                      .Server("452 4.5.3 too many\r\n")
                      .Server("354 go\r\n")
                      .Timeout()
                      .bytes());
  seeds.push_back(
      Script(2 | 4).Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 no\r\n").bytes());
  seeds.push_back(Script(1)
                      .Server("220 hi\r\n")
                      .Server(ehlo)
                      .Send(2)
                      .Server("250 ok\r\n250 ok\r\n")
                      .PeerClosed()
                      .bytes());
  // RFC 2920 §3.1 across transactions: message 2 sent while body 1 streams, 3 after body 2.
  seeds.push_back(Script(1)
                      .Server("220 hi\r\n")
                      .Server(ehlo)
                      .Send(1)
                      .Server("250 ok\r\n250 ok\r\n354 go\r\n")
                      .Send(2)
                      .BodySent()
                      .Server("250 ok 1\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n")
                      .BodySent()
                      .Send(1)
                      .Server("554 5.7.1 no 2\r\n250 ok\r\n250 ok\r\n354 go\r\n")
                      .BodySent()
                      .Send(3)
                      .Server("421 4.3.2 bye\r\n")
                      .bytes());
  seeds.push_back(Script(0).Server("554 5.3.2 no service\r\n221 bye\r\n").bytes());
  // A server that pushes bytes while the body streams, past reply_bytes_max (512 in the target).
  Script junk(0);
  junk.Server("220 hi\r\n").Server(ehlo).Send(2).Server("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  for (int i = 0; i < 6; ++i) junk.ServerTimesFour(std::string(32, 'j'));
  seeds.push_back(junk.BodySent().bytes());
  // A reply of many lines, longer than the outcome text bound.
  Script lines(0);
  lines.Server("220 hi\r\n")
      .Server(ehlo)
      .Send(1)
      .Server("250 ok\r\n250 ok\r\n354 go\r\n")
      .BodySent();
  for (int i = 0; i < 5; ++i) lines.Server("250-" + std::string(90, 'l') + "\r\n");
  seeds.push_back(lines.Server("250 done\r\n").bytes());
  seeds.push_back(
      Script(0).Server("220 hi\r\n").Server(ehlo).Send(1).Server("HTTP/1.0 200 OK\r\n").bytes());
  return seeds;
}

void RunOne(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(ClientSessionFuzzTest, SeedsReplay) {
  for (const std::string& seed : Seeds()) RunOne(seed);
}

TEST(ClientSessionFuzzTest, BoundedMutationLoop) {
  // Mutations: byte flips, inserts of reply fragments, deletions, splices of two seeds.
  static const char* const kFragments[] = {
      "250 ok\r\n",
      "354 go\r\n",
      "421 4.7.0 bye\r\n",
      "550 5.1.1 no\r\n",
      "451 4.3.0 x\r\n",
      "250-",
      "\r\n",
      "\n",
      "220 ",
      "252 x\r\n",
      "334 x\r\n",
      "999\r\n",
      "250 2.0.0\r\n",
  };
  const std::vector<std::string> seeds = Seeds();
  std::mt19937 rng(20260101);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  size_t runs = 0;
  while (std::chrono::steady_clock::now() < deadline && runs < 200000) {
    std::string input = seeds[rng() % seeds.size()];
    const int mutations = 1 + rng() % 6;
    for (int m = 0; m < mutations; ++m) {
      const size_t at = input.empty() ? 0 : rng() % input.size();
      switch (rng() % 5) {
        case 0:
          if (!input.empty()) input[at] = static_cast<char>(rng());
          break;
        case 1:
          input.insert(at, kFragments[rng() % (sizeof(kFragments) / sizeof(kFragments[0]))]);
          break;
        case 2:
          if (!input.empty()) input.erase(at, 1 + rng() % 8);
          break;
        case 3: {
          const std::string& other = seeds[rng() % seeds.size()];
          input = input.substr(0, at) + other.substr(std::min(other.size(), at));
          break;
        }
        case 4:
          input.insert(at, 1, static_cast<char>(rng() % 8 | (rng() % 32) << 3));
          break;
      }
    }
    RunOne(input);
    ++runs;
  }
  std::printf("mutation runs: %zu\n", runs);
  EXPECT_GT(runs, 100u);
}

}  // namespace
