// Bounded random fuzzing of the DMARC record parser inside `bazel test`: the seed records and
// random mutations of them (byte flips, separators, tags, splices, truncations) for a fixed time
// with a fixed seed, so a failure reproduces. Run it under --config=asan and --config=ubsan.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/receive/dmarc_record_fuzzer.h"

namespace relay::receive {
namespace {

const std::vector<std::string>& Seeds() {
  static const std::vector<std::string> seeds = {
      "v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com",
      "v=DMARC1; p=quarantine; rua=mailto:a@example.com,mailto:b@example.net!10m; pct=25",
      "v=DMARC1;p=reject;sp=quarantine;adkim=s;aspf=s;pct=0;fo=1;rf=afrf;ri=86400",
      "v = DMARC1 ;\tp = REJECT ; ruf=mailto:f@example.org",
      "v=DMARC1; rua=mailto:reports@example.com",
      "v=DMARC1; p=bogus; sp=; pct=101; adkim=x",
  };
  return seeds;
}

bool ParseOne(const std::string& s) {
  return FuzzOneDmarcRecord(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(DmarcRecordFuzzTest, SeedsParse) {
  int parsed = 0;
  for (const std::string& s : Seeds()) parsed += ParseOne(s);
  EXPECT_EQ(parsed, 5);  // all but the last
}

TEST(DmarcRecordFuzzTest, RandomMutationsNeverBreakTheInvariants) {
  std::mt19937_64 rng(7489);
  const std::vector<std::string>& seeds = Seeds();
  const std::string tokens[] = {
      ";",       "=",      " ",    "\t",      "v=DMARC1", "p=reject", "sp=",  "pct=",
      "adkim=s", "aspf=r", "rua=", "mailto:", ",",        "!10m",     "\r\n", std::string(1, '\0'),
      "\xff"};
  constexpr int kRoundsMax = 2000000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int rounds = 0, parsed = 0;
  for (; rounds < kRoundsMax; ++rounds) {
    if ((rounds & 1023) == 0 && std::chrono::steady_clock::now() > deadline) break;
    std::string m = seeds[rng() % seeds.size()];
    int mutations = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < mutations; ++i) {
      size_t at = m.empty() ? 0 : rng() % (m.size() + 1);
      switch (rng() % 5) {
        case 0:
          if (at < m.size()) m[at] = static_cast<char>(rng());
          break;
        case 1:
          m.insert(at, tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))]);
          break;
        case 2:
          if (at < m.size()) m.erase(at, 1 + rng() % 8);
          break;
        case 3: {  // a slice of another seed
          const std::string& o = seeds[rng() % seeds.size()];
          m.insert(at, o.substr(rng() % o.size(), rng() % 24));
          break;
        }
        case 4:  // repetition, towards the size limit
          if (m.size() < 3000) m += m.substr(at);
          break;
      }
    }
    parsed += ParseOne(m);
  }
  // Both outcomes well represented, or the mutations are not exercising the parser.
  EXPECT_GT(rounds, 1000);
  EXPECT_GT(parsed, rounds / 50);
  EXPECT_LT(parsed, rounds);
  printf("dmarc record fuzz: rounds=%d parsed=%d\n", rounds, parsed);
}

}  // namespace
}  // namespace relay::receive
