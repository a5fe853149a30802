// Heap accounting for one fuzz input, shared by both drivers. The counting itself lives in one of
// two files, never both in a binary: measure_new.cc replaces the global operator new and delete
// (the GCC replay test), measure_hooks.cc installs the sanitizer's allocation hooks (the clang
// libFuzzer build, where ASan owns operator new). Only the calling thread's allocations between
// BeginMeasure and EndMeasure count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/fuzz/fuzz.h"

namespace relay::fuzz {

struct HeapUse {
  int64_t peak_bytes = 0;       // most bytes live at once, above the level at BeginMeasure
  int64_t allocated_bytes = 0;  // sum of every allocation's size
  int64_t allocations = 0;
};

void BeginMeasure();
HeapUse EndMeasure();

// Runs `target` on `input` and measures it.
HeapUse RunMeasured(const Target& target, std::string_view input);

// Empty when `use` is within `bounds` for an input of `input_bytes`; else which bound was
// exceeded, with the figures.
std::string CheckBounds(const Bounds& bounds, size_t input_bytes, const HeapUse& use);

// For the two counting implementations: called on every allocation and free of `bytes`.
void CountAllocation(size_t bytes);
void CountFree(size_t bytes);

}  // namespace relay::fuzz
