// The shared fuzz harness: what a fuzz target defines, and the helpers it may call.
//
// A fuzz target is one .cc file that defines relay::fuzz::GetTarget(). relay_fuzz_test
// (tools/bazel/fuzz.bzl) builds that same file two ways:
//   - with the project's GCC, as a gtest (tools/fuzz/replay_driver.cc): every file of the
//     committed corpus, then seeded mutations of it for a bounded time, then the work-per-byte
//     check on the target's scaled inputs;
//   - with clang and libFuzzer (-fsanitize=fuzzer,address,undefined), through
//     tools/fuzz/libfuzzer_entry.cc, run briefly by `bazel test` and for long by hand
//     (tools/fuzz/run_long.sh).
// Both drivers measure every input the same way (tools/fuzz/measure.h) and fail when it holds or
// allocates more heap than the target's Bounds allow for its size: "bytes buffered" and, through
// the allocated bytes and the allocation count, a deterministic measure of work per input byte.
// The scaled inputs add a CPU-time check that catches superlinear work that allocates nothing.
//
// A failed invariant (FUZZ_CHECK) prints where and aborts: libFuzzer keeps the input as a crash
// file, the GCC driver has already written it to $TEST_UNDECLARED_OUTPUTS_DIR/last_input.
//
// Single-threaded: the drivers call one input at a time on one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace relay::fuzz {

// base + per_byte * (input bytes).
struct Linear {
  double base = 0;
  double per_byte = 0;
  double At(size_t input_bytes) const { return base + per_byte * static_cast<double>(input_bytes); }
};

// What one input may cost, as linear functions of its size. The GCC driver counts operator new
// and delete; the clang build counts every malloc (BoringSSL's too, through the sanitizer's
// allocation hooks), so a bound must hold for both.
struct Bounds {
  // The most heap the target holds at any moment while it runs the input, above what it held
  // when the input began: what it buffers.
  Linear heap_peak_bytes;
  // Every byte allocated while it runs, freed or not: copying work (a parser that copies the
  // rest of its input at every step allocates quadratically).
  Linear heap_allocated_bytes;
  // Allocations while it runs.
  Linear allocations;
};

// A generator of inputs of about `bytes` bytes that keep the parser busy to the end (a long tag
// list, many records): the work-per-byte check times one of n bytes against one of 8n bytes.
struct ScaledInput {
  const char* name;
  std::string (*make)(size_t bytes);
  // Set when the cost is known to grow faster than the input and is being fixed elsewhere: the
  // check then measures and prints the ratio without failing. Says where it is tracked.
  const char* known_superlinear = nullptr;
  // The largest input the parser takes (a DNS message: 65535 bytes); 0: no limit. The check
  // then compares bytes_max / 8 with bytes_max.
  size_t bytes_max = 0;
};

struct Target {
  const char* name;
  // Runs one input. Must not keep state from one input to the next that changes what it checks
  // (fixtures made by `init` are fine).
  void (*run)(std::string_view input);
  Bounds bounds;
  // Called once before the first input, not measured: keys, fixtures, a reactor.
  void (*init)() = nullptr;
  std::vector<ScaledInput> scaled;
};

// Defined by each fuzz target.
const Target& GetTarget();

// Prints "fuzz invariant violated at FILE:LINE: WHAT" (and `detail` if given) and aborts.
[[noreturn]] void Fail(const char* file, int line, const char* what, std::string_view detail = {});

#define FUZZ_CHECK(condition)                                              \
  do {                                                                     \
    if (!(condition)) ::relay::fuzz::Fail(__FILE__, __LINE__, #condition); \
  } while (0)

// As FUZZ_CHECK, with a string (expression) that explains the values involved.
#define FUZZ_CHECK_MSG(condition, detail)                                          \
  do {                                                                             \
    if (!(condition)) ::relay::fuzz::Fail(__FILE__, __LINE__, #condition, detail); \
  } while (0)

// Consumes an input from the front: structured choices (a configuration byte, a length) and
// pieces of text. Reads past the end give zeros and empty strings.
class InputReader {
 public:
  explicit InputReader(std::string_view data) : data_(data) {}

  bool empty() const { return data_.empty(); }
  size_t size() const { return data_.size(); }
  uint8_t Byte();
  bool Bool() { return Byte() & 1; }
  // A value in [0, n) from one or two bytes (n at most 65536); 0 when n is 0.
  uint32_t Below(uint32_t n);
  // The next `n` bytes (fewer at the end).
  std::string_view Take(size_t n);
  // Up to the next `separator` (consumed, not returned), or the rest.
  std::string_view Until(char separator);
  std::string_view Rest();

 private:
  std::string_view data_;
};

// A private directory for targets that parse files (users, config, spool segments), made once
// per process in /dev/shm when there is one (fsync is free there, and the fuzzer runs millions
// of inputs), removed with its files at exit. Aborts if it cannot be made.
const std::string& ScratchDirectory();
// Writes `contents` to `path` (replacing it); aborts on failure.
void WriteFile(const std::string& path, std::string_view contents);
// The contents of `path`; aborts if it cannot be read.
std::string ReadFile(const std::string& path);

// `unit` repeated until the result has at least `bytes` bytes, between `prefix` and `suffix`.
std::string Repeat(std::string_view prefix, std::string_view unit, std::string_view suffix,
                   size_t bytes);

}  // namespace relay::fuzz
