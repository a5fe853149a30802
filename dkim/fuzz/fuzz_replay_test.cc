// Runs the DKIM fuzz target under Bazel (GCC has no libFuzzer): first every file of the committed
// corpus, then random mutations of them for a bounded time (DKIM_FUZZ_SECONDS, default 15).
#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> LoadCorpus() {
  std::vector<std::string> corpus;
  const std::string dir_path = "dkim/fuzz/corpus";
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) return corpus;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir_path + "/" + e->d_name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    corpus.push_back(ss.str());
  }
  closedir(dir);
  return corpus;
}

int RunOne(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

TEST(DkimFuzzTest, ReplayCorpus) {
  std::vector<std::string> corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 5u) << "corpus missing";
  for (const std::string& input : corpus) EXPECT_EQ(RunOne(input), 0);
}

TEST(DkimFuzzTest, BoundedRandomMutations) {
  std::vector<std::string> corpus = LoadCorpus();
  ASSERT_FALSE(corpus.empty());
  double seconds = 15;
  if (const char* s = std::getenv("DKIM_FUZZ_SECONDS")) seconds = std::atof(s);
  const char interesting[] = {'\r', '\n', ' ', '\t', ':', ';', '=', '@', '<', '>', '(', ')',
                              '"', '\\', '\0', '\x80', '\xff', 'a', 'F'};
  const std::string tokens[] = {"\r\n", "\r\n\r\n", "\r\n ", "From: ", "DKIM-Signature: ",
                                "b=", "bh=", "h=from:", "v=1; ", "a=ed25519-sha256; "};
  std::mt19937_64 rng(8463);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string input = corpus[rng() % corpus.size()];
    int mutations = 1 + rng() % 8;
    for (int m = 0; m < mutations; ++m) {
      size_t pos = input.empty() ? 0 : rng() % (input.size() + 1);
      switch (rng() % 5) {
        case 0:  // flip a byte
          if (!input.empty() && pos < input.size()) input[pos] = static_cast<char>(rng());
          break;
        case 1:  // insert an interesting byte
          input.insert(pos, 1, interesting[rng() % sizeof(interesting)]);
          break;
        case 2:  // insert a token
          input.insert(pos, tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))]);
          break;
        case 3:  // erase a range
          if (pos < input.size()) input.erase(pos, 1 + rng() % 16);
          break;
        case 4: {  // splice from another corpus entry
          const std::string& other = corpus[rng() % corpus.size()];
          size_t from = other.empty() ? 0 : rng() % other.size();
          input.insert(pos, other.substr(from, rng() % 64));
          break;
        }
      }
    }
    ASSERT_EQ(RunOne(input), 0);
    ++runs;
  }
  printf("dkim fuzz: %llu random inputs in %.0f s\n", static_cast<unsigned long long>(runs),
         seconds);
  EXPECT_GT(runs, 0u);
}

}  // namespace
