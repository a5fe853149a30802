// Bounded random fuzzing of the DNS parser inside `bazel test`: the seed messages, every
// truncation of them, and random mutations (bit flips, pointer bytes, length bytes, splices) for
// a fixed number of rounds with a fixed seed, so a failure reproduces. Run it under
// --config=asan and --config=ubsan.
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "dns/message.h"
#include "dns/message_fuzzer.h"
#include "gtest/gtest.h"

namespace dns {
namespace {

using Section = MessageBuilder::Section;

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds;
  {
    MessageBuilder b(1, MessageBuilder::kFlagResponse);
    b.AddQuestion("example.com", kTypeMx);
    b.AddMx(Section::kAnswer, "example.com", 300, 10, "mx1.example.com");
    b.AddMx(Section::kAnswer, "example.com", 300, 20, "mx2.mail.example.com");
    b.AddA(Section::kAdditional, "mx1.example.com", 300, "192.0.2.1");
    b.AddAaaa(Section::kAdditional, "mx2.mail.example.com", 300, "2001:db8::1");
    seeds.push_back(b.wire());
  }
  {
    MessageBuilder b(2, MessageBuilder::kFlagResponse);
    b.SetRcode(kRcodeNxDomain);
    b.AddQuestion("nope.example.com", kTypeA);
    b.AddSoa(Section::kAuthority, "example.com", 3600,
             SoaData{"ns.example.com", "hostmaster.example.com", 1, 2, 3, 4, 60});
    seeds.push_back(b.wire());
  }
  {
    MessageBuilder b(3, MessageBuilder::kFlagResponse);
    b.AddQuestion("alias.example.com", kTypeTxt);
    b.AddName(Section::kAnswer, "alias.example.com", kTypeCname, 60, "txt.example.com");
    b.AddTxt(Section::kAnswer, "txt.example.com", 60,
             {"v=DKIM1; k=rsa; p=", std::string(255, 'A')});
    b.AddName(Section::kAnswer, "25.2.0.192.in-addr.arpa", kTypePtr, 60, "mail.example.com");
    seeds.push_back(b.wire());
  }
  return seeds;
}

TEST(MessageFuzzTest, SeedsParse) {
  for (const std::string& s : Seeds()) {
    EXPECT_TRUE(FuzzOneMessage(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
}

TEST(MessageFuzzTest, RandomMutationsNeverCrash) {
  std::mt19937_64 rng(20240611);
  std::vector<std::string> seeds = Seeds();
  constexpr int kRoundsMax = 1000000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  int rounds = 0, parsed = 0;
  static constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80,
                                             0xC0, 0xC1, 0xFF, 0x0C, 0x0E, 0x10};
  for (; rounds < kRoundsMax; ++rounds) {
    if ((rounds & 1023) == 0 && std::chrono::steady_clock::now() > deadline) break;
    std::string m = seeds[rng() % seeds.size()];
    int mutations = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < mutations && !m.empty(); ++i) {
      size_t at = rng() % m.size();
      switch (rng() % 6) {
        case 0:
          m[at] = static_cast<char>(m[at] ^ (1 << (rng() % 8)));
          break;
        case 1:
          m[at] = static_cast<char>(kInteresting[rng() % sizeof(kInteresting)]);
          break;
        case 2:
          m.resize(at);
          break;
        case 3:
          m.insert(at, 1, static_cast<char>(rng()));
          break;
        case 4: {  // splice a slice of another seed
          const std::string& o = seeds[rng() % seeds.size()];
          size_t from = rng() % o.size();
          m.replace(at, rng() % 16, o.substr(from, rng() % 32));
          break;
        }
        case 5:  // a compression pointer to a random offset
          if (at + 1 < m.size()) {
            m[at] = static_cast<char>(0xC0 | (rng() % 2));
            m[at + 1] = static_cast<char>(rng());
          }
          break;
      }
    }
    parsed += FuzzOneMessage(reinterpret_cast<const uint8_t*>(m.data()), m.size());
  }
  // Both outcomes must be well represented, or the mutations are not exercising the parser.
  EXPECT_GT(rounds, 1000);
  EXPECT_GT(parsed, rounds / 50);
  EXPECT_LT(parsed, rounds);
  printf("fuzz rounds=%d parsed=%d\n", rounds, parsed);
}

}  // namespace
}  // namespace dns
