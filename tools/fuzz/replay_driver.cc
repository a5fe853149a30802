// The GCC side of every relay fuzz target (tools/fuzz/fuzz.h), as a gtest:
//   CorpusReplays       every committed corpus file, each within the target's heap bounds;
//   BoundedMutations    seeded mutations of the corpus (byte flips, the target's dictionary
//                       tokens, erasures, duplications, splices) for a bounded time, each within
//                       the bounds: a failure reproduces with the same seed and binary;
//   WorkPerByteScales   each scaled input at n bytes and at 8n bytes: the CPU time may grow by
//                       at most kTimeRatioMax, and both stay within the heap bounds.
// Flags (set by relay_fuzz_test): --dict=FILE (libFuzzer dictionary format), --max_len=BYTES,
// --seconds=S (RELAY_FUZZ_SECONDS overrides it), then the corpus files. A crash or a failed
// FUZZ_CHECK leaves the input in $TEST_UNDECLARED_OUTPUTS_DIR/last_input.
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "tools/fuzz/fuzz.h"
#include "tools/fuzz/measure.h"

namespace relay::fuzz {
namespace {

// A linear parser's time grows 8x from n to 8n bytes, a quadratic one's 64x. 24 leaves room for
// cache effects and a noisy shared machine (each time is the least of several tries of CPU time,
// which another process's load barely moves) while a quadratic cost cannot pass.
constexpr double kTimeRatioMax = 24;
// The small input grows from this size until one run takes kSmallRunSecondsMin of CPU, so that
// the fixed cost of a run does not hide the growth. Work too cheap to reach it at
// kScaledBytesMax is compared as if it had taken that long: below it, cache misses on the input
// itself move the ratio more than the parser does, and a quadratic parser is slower than that.
// A parser whose input is capped lower (ScaledInput::bytes_max) is timed over enough repeated
// runs to reach it instead, since its inputs cannot grow.
constexpr size_t kScaledBytesStart = 4096;
constexpr size_t kScaledBytesMax = 1 << 20;
constexpr double kSmallRunSecondsMin = 0.002;

struct Options {
  std::vector<std::string> corpus_paths;
  std::string dict_path;
  size_t max_len = 4096;
  double seconds = 5;
};

Options& Flags() {
  static Options* options = new Options();
  return *options;
}

// The input being run, for the crash handler.
const char* current_input = nullptr;
size_t current_size = 0;
char saved_path[4096] = "";

void SaveInputOnCrash(int sig) {
  if (saved_path[0] != '\0' && current_input != nullptr) {
    const int fd = ::open(saved_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      size_t done = 0;
      while (done < current_size) {
        const ssize_t n = ::write(fd, current_input + done, current_size - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      ::close(fd);
      static const char kNote[] = "fuzz: the input that failed is in ";
      (void)!::write(2, kNote, sizeof(kNote) - 1);
      (void)!::write(2, saved_path, std::strlen(saved_path));
      (void)!::write(2, "\n", 1);
    }
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void InstallCrashHandler() {
  if (const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR")) {
    std::snprintf(saved_path, sizeof(saved_path), "%s/last_input", dir);
  } else {
    std::snprintf(saved_path, sizeof(saved_path), "/tmp/relay_fuzz_last_input");
  }
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, SaveInputOnCrash);
}

std::vector<std::string> LoadCorpus() {
  std::vector<std::string> corpus;
  for (const std::string& path : Flags().corpus_paths) corpus.push_back(ReadFile(path));
  return corpus;
}

// libFuzzer's dictionary format: one `"token"` (optionally `name="token"`) per line, with \\,
// \" and \xNN escapes; # starts a comment.
std::vector<std::string> LoadDictionary(const std::string& path) {
  std::vector<std::string> tokens;
  if (path.empty()) return tokens;
  std::istringstream lines(ReadFile(path));
  std::string line;
  while (std::getline(lines, line)) {
    const size_t open = line.find('"');
    const size_t close = line.rfind('"');
    if (line.empty() || line[0] == '#' || open == std::string::npos || close <= open) continue;
    std::string token;
    for (size_t i = open + 1; i < close; ++i) {
      if (line[i] != '\\' || i + 1 >= close) {
        token += line[i];
      } else if (line[i + 1] == 'x' && i + 3 < close) {
        token += static_cast<char>(std::stoi(line.substr(i + 2, 2), nullptr, 16));
        i += 3;
      } else {
        token += line[++i];
      }
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// Runs one input measured and checks it against the bounds. Returns the problem, if any.
std::string RunAndCheck(const std::string& input, HeapUse* use_out = nullptr) {
  current_input = input.data();
  current_size = input.size();
  const Target& target = GetTarget();
  const HeapUse use = RunMeasured(target, input);
  current_input = nullptr;
  if (use_out != nullptr) *use_out = use;
  return CheckBounds(target.bounds, input.size(), use);
}

std::string Printable(std::string_view s, size_t bytes_max = 200) {
  std::string out;
  for (unsigned char c : s.substr(0, bytes_max)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  if (s.size() > bytes_max) out += "...";
  return out;
}

void SaveInput(const std::string& input, const char* name) {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::binary) << input;
  std::fprintf(stderr, "fuzz: input saved to %s\n", path.c_str());
}

class Mutator {
 public:
  Mutator(std::vector<std::string> pool, std::vector<std::string> tokens, size_t max_len)
      : pool_(std::move(pool)), tokens_(std::move(tokens)), max_len_(max_len), rng_(20240613) {}

  std::string Next() {
    std::string s = pool_[rng_() % pool_.size()];
    const int steps = 1 + static_cast<int>(rng_() % 6);
    for (int i = 0; i < steps; ++i) Mutate(s);
    if (s.size() > max_len_) s.resize(max_len_);
    return s;
  }

  // Keeps some mutants as seeds, so that mutations stack up.
  void MaybeKeep(std::string input) {
    if (rng_() % 64 == 0 && pool_.size() < 4096) pool_.push_back(std::move(input));
  }

 private:
  void Mutate(std::string& s) {
    static constexpr char kInteresting[] = {'\0', '\r', '\n', ' ', '\t',   ':',    ';',   '=', '@',
                                            '.',  ',',  '<',  '>', '"',    '\\',   '%',   '{', '}',
                                            '[',  ']',  '#',  '-', '\x7f', '\x80', '\xff'};
    const size_t pos = s.empty() ? 0 : rng_() % (s.size() + 1);
    switch (rng_() % 9) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng_() % s.size()] ^= static_cast<char>(1u << (rng_() % 8));
        break;
      case 1:  // an interesting byte in place of one
        if (!s.empty()) s[rng_() % s.size()] = kInteresting[rng_() % sizeof(kInteresting)];
        break;
      case 2:  // insert an interesting byte
        s.insert(pos, 1, kInteresting[rng_() % sizeof(kInteresting)]);
        break;
      case 3:  // insert a dictionary token (a random byte without a dictionary)
        if (tokens_.empty()) {
          s.insert(pos, 1, static_cast<char>(rng_()));
        } else {
          s.insert(pos, tokens_[rng_() % tokens_.size()]);
        }
        break;
      case 4:  // replace a span with a token
        if (!tokens_.empty() && pos < s.size()) {
          s.replace(pos, 1 + rng_() % 8, tokens_[rng_() % tokens_.size()]);
        }
        break;
      case 5:  // erase a span
        if (pos < s.size()) s.erase(pos, 1 + rng_() % 16);
        break;
      case 6:  // duplicate a span
        if (pos < s.size()) s.insert(pos, s.substr(pos, 1 + rng_() % 64));
        break;
      case 7: {  // splice a span of another input
        const std::string& other = pool_[rng_() % pool_.size()];
        if (!other.empty()) s.insert(pos, other.substr(rng_() % other.size(), 1 + rng_() % 64));
        break;
      }
      case 8:  // random byte
        if (!s.empty()) s[rng_() % s.size()] = static_cast<char>(rng_());
        break;
    }
  }

  std::vector<std::string> pool_;
  std::vector<std::string> tokens_;
  size_t max_len_;
  std::mt19937_64 rng_;
};

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The heap figures per input byte, for the log.
std::string PerByte(const HeapUse& use, size_t bytes) {
  char text[160];
  const double n = static_cast<double>(std::max<size_t>(bytes, 1));
  std::snprintf(text, sizeof(text), "heap peak %.1f, allocated %.1f, allocations %.3f per byte",
                static_cast<double>(use.peak_bytes) / n,
                static_cast<double>(use.allocated_bytes) / n,
                static_cast<double>(use.allocations) / n);
  return text;
}

// The least CPU time of `tries` runs of `input` (each the mean of `repeats` runs), the first
// one measured against the bounds.
double LeastCpuSeconds(const std::string& input, int tries, int repeats, std::string* problem,
                       HeapUse* use) {
  double least = 1e300;
  for (int i = 0; i < tries; ++i) {
    const double start = ThreadCpuSeconds();
    for (int r = 0; r < repeats; ++r) {
      if (i == 0 && r == 0) {
        *problem = RunAndCheck(input, use);
      } else {
        GetTarget().run(input);
      }
    }
    least = std::min(least, (ThreadCpuSeconds() - start) / repeats);
  }
  return least;
}

TEST(Fuzz, CorpusReplays) {
  const std::vector<std::string> corpus = LoadCorpus();
  ASSERT_GE(corpus.size(), 3u) << "a fuzz target needs a seed corpus of a few files";
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string problem = RunAndCheck(corpus[i]);
    EXPECT_TRUE(problem.empty()) << Flags().corpus_paths[i] << ": " << problem;
  }
}

TEST(Fuzz, BoundedMutations) {
  const std::vector<std::string> corpus = LoadCorpus();
  ASSERT_FALSE(corpus.empty());
  double seconds = Flags().seconds;
  if (const char* env = std::getenv("RELAY_FUZZ_SECONDS")) seconds = std::atof(env);
  Mutator mutator(corpus, LoadDictionary(Flags().dict_path), Flags().max_len);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  // The largest share of each bound any input used, for the log: how close the bounds are.
  const Bounds& bounds = GetTarget().bounds;
  double peak_share = 0, allocated_share = 0, allocations_share = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 64; ++i, ++runs) {
      std::string input = mutator.Next();
      HeapUse use;
      const std::string problem = RunAndCheck(input, &use);
      const size_t n = input.size();
      peak_share = std::max(peak_share, use.peak_bytes / bounds.heap_peak_bytes.At(n));
      allocated_share =
          std::max(allocated_share, use.allocated_bytes / bounds.heap_allocated_bytes.At(n));
      allocations_share = std::max(allocations_share, use.allocations / bounds.allocations.At(n));
      if (!problem.empty()) {
        SaveInput(input, "bounds_exceeded");
        FAIL() << GetTarget().name << ": bounds exceeded on " << input.size()
               << " bytes: " << problem << "\n  input: " << Printable(input);
      }
      mutator.MaybeKeep(std::move(input));
    }
  }
  std::printf(
      "%s: %llu mutated inputs in %.0f s; the most used of each bound: heap peak %.0f%%, "
      "allocated %.0f%%, allocations %.0f%%\n",
      GetTarget().name, static_cast<unsigned long long>(runs), seconds, 100 * peak_share,
      100 * allocated_share, 100 * allocations_share);
  EXPECT_GT(runs, 0u);
}

TEST(Fuzz, WorkPerByteScales) {
  const Target& target = GetTarget();
  if (target.scaled.empty()) GTEST_SKIP() << "no scaled inputs";
  for (const ScaledInput& scaled : target.scaled) {
    // The small input grows until it takes long enough to time, up to an eighth of the most the
    // parser takes.
    const size_t bytes_max = scaled.bytes_max != 0 ? scaled.bytes_max / 8 : kScaledBytesMax;
    size_t bytes = std::min(kScaledBytesStart, bytes_max);
    std::string problem;
    std::string small;
    double small_s = 0;
    HeapUse small_use, big_use;
    for (;;) {
      small = scaled.make(bytes);
      small_s = LeastCpuSeconds(small, 5, 1, &problem, &small_use);
      ASSERT_TRUE(problem.empty())
          << scaled.name << " at " << small.size() << " bytes: " << problem;
      std::printf("  %s at %zu bytes: %s\n", scaled.name, small.size(),
                  PerByte(small_use, small.size()).c_str());
      if (small_s >= kSmallRunSecondsMin || bytes >= bytes_max) break;
      bytes = std::min(2 * bytes, bytes_max);
    }
    int repeats = 1;
    if (small_s < kSmallRunSecondsMin && scaled.bytes_max != 0) {
      repeats = static_cast<int>(std::min(10000.0, kSmallRunSecondsMin / std::max(small_s, 1e-7)));
      small_s = LeastCpuSeconds(small, 5, repeats, &problem, &small_use);
    }
    const std::string big = scaled.make(8 * bytes);
    const double big_s = LeastCpuSeconds(big, 3, repeats, &problem, &big_use);
    ASSERT_TRUE(problem.empty()) << scaled.name << " at " << big.size() << " bytes: " << problem;
    const double ratio = big_s / (repeats > 1 ? small_s : std::max(small_s, kSmallRunSecondsMin));
    std::printf(
        "%s / %s: %zu bytes %.3f ms, %zu bytes %.3f ms (mean of %d): x%.1f%s%s\n  %s\n  %s\n",
        target.name, scaled.name, small.size(), small_s * 1e3, big.size(), big_s * 1e3, repeats,
        ratio, scaled.known_superlinear != nullptr ? "; known superlinear: " : "",
        scaled.known_superlinear != nullptr ? scaled.known_superlinear : "",
        PerByte(small_use, small.size()).c_str(), PerByte(big_use, big.size()).c_str());
    if (scaled.known_superlinear == nullptr) {
      EXPECT_LE(ratio, kTimeRatioMax)
          << scaled.name << ": CPU time grew " << ratio << "x from " << small.size() << " to "
          << big.size() << " bytes (" << small_s * 1e3 << " ms to " << big_s * 1e3
          << " ms): work per input byte is not bounded";
    }
  }
}

}  // namespace
}  // namespace relay::fuzz

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  relay::fuzz::Options& flags = relay::fuzz::Flags();
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, 7) == "--dict=") {
      flags.dict_path = std::string(arg.substr(7));
    } else if (arg.substr(0, 10) == "--max_len=") {
      flags.max_len = std::stoul(std::string(arg.substr(10)));
    } else if (arg.substr(0, 10) == "--seconds=") {
      flags.seconds = std::atof(std::string(arg.substr(10)).c_str());
    } else {
      flags.corpus_paths.emplace_back(arg);
    }
  }
  relay::fuzz::InstallCrashHandler();
  // Freed memory stays in the process: otherwise each run of a large scaled input maps fresh
  // pages and pays a page fault per 4 KiB in its CPU time, which grows faster than the input
  // once the heap outgrows what malloc keeps, and the timing would measure the kernel.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const relay::fuzz::Target& target = relay::fuzz::GetTarget();
  if (target.init != nullptr) target.init();
  return RUN_ALL_TESTS();
}
