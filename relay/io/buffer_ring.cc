#include "relay/io/buffer_ring.h"

#include <sys/mman.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace relay::io {

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(Reactor* reactor,
                                                               uint16_t group_id, uint32_t count,
                                                               uint32_t buffer_bytes) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768) {
    return absl::InvalidArgumentError("buffer ring size must be a power of two up to 32768");
  }
  std::unique_ptr<BufferRing> br(new BufferRing());
  br->reactor_ = reactor;
  br->group_id_ = group_id;
  br->count_ = count;
  br->buffer_bytes_ = buffer_bytes;
  br->ring_bytes_ = count * sizeof(io_uring_buf);
  void* ring_mem = mmap(nullptr, br->ring_bytes_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_mem == MAP_FAILED) return absl::ResourceExhaustedError("mmap of buffer ring failed");
  br->ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  size_t data_bytes = static_cast<size_t>(count) * buffer_bytes;
  void* data = mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
  if (data == MAP_FAILED) {
    munmap(ring_mem, br->ring_bytes_);
    br->ring_ = nullptr;
    return absl::ResourceExhaustedError("mmap of receive buffers failed");
  }
  br->base_ = static_cast<char*>(data);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(ring_mem);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(reactor->ring(), &reg, 0);
  if (rc < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("io_uring_register_buf_ring: ", std::strerror(-rc)));
  }
  io_uring_buf_ring_init(br->ring_);
  br->mask_ = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br->ring_, br->Buffer(i), buffer_bytes, i, br->mask_, i);
  }
  io_uring_buf_ring_advance(br->ring_, count);
  return br;
}

BufferRing::~BufferRing() {
  if (ring_ != nullptr) {
    io_uring_unregister_buf_ring(reactor_->ring(), group_id_);
    munmap(ring_, ring_bytes_);
  }
  if (base_ != nullptr) munmap(base_, static_cast<size_t>(count_) * buffer_bytes_);
}

void BufferRing::Recycle(uint16_t id) {
  io_uring_buf_ring_add(ring_, Buffer(id), buffer_bytes_, id, mask_, 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace relay::io
