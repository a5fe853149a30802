// Drives the libFuzzer entry point under the project's normal compiler: every file of the
// committed corpus, then a bounded, seeded mutation loop (SMTP_FUZZ_SECONDS, default 15). A
// failed invariant aborts with the input saved to $TEST_UNDECLARED_OUTPUTS_DIR for replay.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string CorpusDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "relay/smtp/fuzz_corpus";
  return std::string(srcdir) + "/" + workspace + "/relay/smtp/fuzz_corpus";
}

std::vector<std::string> LoadCorpus() {
  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(CorpusDir())) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    corpus.push_back(buffer.str());
  }
  return corpus;
}

void RunOne(const std::string& input) {
  // Saved first, so that an abort leaves the input behind.
  if (const char* out = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    std::ofstream(std::string(out) + "/last_input", std::ios::binary) << input;
  }
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// Pieces that steer mutations towards the interesting parts of the protocol.
const char* const kTokens[] = {
    "\r\n",
    "\n",
    "\r",
    "\r\n.\r\n",
    "\n.\n",
    ".",
    "..",
    "EHLO a.b\r\n",
    "MAIL FROM:<a@b.c>\r\n",
    "RCPT TO:<d@e.f>\r\n",
    "DATA\r\n",
    "BDAT 3\r\n",
    "BDAT 0 LAST\r\n",
    "STARTTLS\r\n",
    "AUTH PLAIN\r\n",
    "AUTH LOGIN ",
    "AGFsaWNlAHNlY3JldA==\r\n",
    "*\r\n",
    "RSET\r\n",
    "QUIT\r\n",
    " SIZE=",
    " SMTPUTF8",
    "\"",
    "<>",
    "\xc3\xa9",
};

std::string Mutate(const std::vector<std::string>& corpus, std::mt19937& rng) {
  std::string s = corpus[rng() % corpus.size()];
  const int steps = 1 + rng() % 6;
  for (int i = 0; i < steps; ++i) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 7) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng() % s.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // insert a token
        s.insert(pos, kTokens[rng() % (sizeof(kTokens) / sizeof(kTokens[0]))]);
        break;
      case 2:  // erase a span
        if (pos < s.size()) s.erase(pos, 1 + rng() % 16);
        break;
      case 3: {  // splice another input's span
        const std::string& other = corpus[rng() % corpus.size()];
        const size_t from = other.empty() ? 0 : rng() % other.size();
        s.insert(pos, other.substr(from, 1 + rng() % 64));
        break;
      }
      case 4:  // duplicate a span
        if (pos < s.size()) s.insert(pos, s.substr(pos, 1 + rng() % 32));
        break;
      case 5:  // change the configuration or seed bytes
        if (s.size() >= 2) s[rng() % 2] = static_cast<char>(rng());
        break;
      case 6:  // random byte
        s.insert(pos, 1, static_cast<char>(rng()));
        break;
    }
  }
  if (s.size() > 8192) s.resize(8192);
  return s;
}

TEST(ServerSessionFuzz, CorpusReplays) {
  const std::vector<std::string> corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 10u);
  for (const std::string& input : corpus) RunOne(input);
}

TEST(ServerSessionFuzz, BoundedMutationLoop) {
  const std::vector<std::string> corpus = LoadCorpus();
  ASSERT_FALSE(corpus.empty());
  const char* env = std::getenv("SMTP_FUZZ_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 15.0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::mt19937 rng(20231218);  // fixed: a failure reproduces
  uint64_t runs = 0;
  std::vector<std::string> pool = corpus;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 100; ++i) {
      std::string input = Mutate(pool, rng);
      RunOne(input);
      ++runs;
      // Keep some mutants as new seeds so that mutations stack up.
      if (rng() % 50 == 0 && pool.size() < 4096) pool.push_back(std::move(input));
    }
  }
  std::printf("mutation loop: %llu inputs in %.0f s\n", static_cast<unsigned long long>(runs),
              seconds);
  EXPECT_GT(runs, 0u);
}

}  // namespace
