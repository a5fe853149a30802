// Heap counting for the clang libFuzzer build: AddressSanitizer calls these hooks on every
// malloc and free (operator new included), so BoringSSL's allocations count as well.
#include <sanitizer/allocator_interface.h>

#include "tools/fuzz/measure.h"

namespace {

void OnMalloc(const volatile void*, size_t bytes) { relay::fuzz::CountAllocation(bytes); }

void OnFree(const volatile void* p) {
  // Called before the block is released, so its size is still known.
  relay::fuzz::CountFree(__sanitizer_get_allocated_size(const_cast<const void*>(p)));
}

const int installed = __sanitizer_install_malloc_and_free_hooks(OnMalloc, OnFree);

}  // namespace
