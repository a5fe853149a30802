// The libFuzzer entry points for a relay fuzz target (tools/fuzz/fuzz.h): each input runs
// measured, and one over the target's bounds aborts like a failed invariant, so libFuzzer keeps
// it as a crash file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/fuzz/fuzz.h"
#include "tools/fuzz/measure.h"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const relay::fuzz::Target& target = relay::fuzz::GetTarget();
  if (target.init != nullptr) target.init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const relay::fuzz::Target& target = relay::fuzz::GetTarget();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const relay::fuzz::HeapUse use = relay::fuzz::RunMeasured(target, input);
  const std::string problem = relay::fuzz::CheckBounds(target.bounds, size, use);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz bounds exceeded by %s on %zu bytes: %s\n", target.name, size,
                 problem.c_str());
    std::abort();
  }
  return 0;
}
