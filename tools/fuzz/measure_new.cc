// Heap counting for the GCC replay test: the global operator new and delete, every form of them,
// replaced by malloc and free with the block's usable size counted. Linked only into that test
// (never into the clang build, where AddressSanitizer provides operator new).
#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <new>

#include "tools/fuzz/measure.h"

namespace {

void* Allocate(size_t bytes, bool nothrow) {
  void* p = std::malloc(bytes == 0 ? 1 : bytes);
  if (p == nullptr) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  relay::fuzz::CountAllocation(malloc_usable_size(p));
  return p;
}

void* AllocateAligned(size_t bytes, std::align_val_t align, bool nothrow) {
  void* p = nullptr;
  const size_t a = std::max(static_cast<size_t>(align), sizeof(void*));
  if (posix_memalign(&p, a, bytes == 0 ? 1 : bytes) != 0) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  relay::fuzz::CountAllocation(malloc_usable_size(p));
  return p;
}

void Release(void* p) {
  if (p == nullptr) return;
  relay::fuzz::CountFree(malloc_usable_size(p));
  std::free(p);
}

}  // namespace

void* operator new(size_t n) { return Allocate(n, false); }
void* operator new[](size_t n) { return Allocate(n, false); }
void* operator new(size_t n, const std::nothrow_t&) noexcept { return Allocate(n, true); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return Allocate(n, true); }
void* operator new(size_t n, std::align_val_t a) { return AllocateAligned(n, a, false); }
void* operator new[](size_t n, std::align_val_t a) { return AllocateAligned(n, a, false); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateAligned(n, a, true);
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateAligned(n, a, true);
}

void operator delete(void* p) noexcept { Release(p); }
void operator delete[](void* p) noexcept { Release(p); }
void operator delete(void* p, size_t) noexcept { Release(p); }
void operator delete[](void* p, size_t) noexcept { Release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Release(p); }
void operator delete(void* p, std::align_val_t) noexcept { Release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Release(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { Release(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { Release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { Release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { Release(p); }
