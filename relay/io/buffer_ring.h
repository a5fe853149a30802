// A provided-buffer ring (IORING_REGISTER_PBUF_RING) for multishot recv: the kernel picks a
// buffer only when data arrives, so an idle connection holds no receive buffer at all.
//
// Reactor thread only. The handler of a recv completion gets the buffer id from the CQE flags
// (BufferId()), consumes the bytes, and gives the buffer back with Recycle() before the turn
// ends. When every buffer is out, multishot recvs end with -ENOBUFS and their owners re-arm.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "relay/io/reactor.h"

namespace relay::io {

class BufferRing {
 public:
  // `count` must be a power of two (at most 32768); `buffer_bytes` is the size of each buffer.
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(Reactor* reactor, uint16_t group_id,
                                                            uint32_t count,
                                                            uint32_t buffer_bytes);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  static bool HasBuffer(uint32_t cqe_flags) { return cqe_flags & IORING_CQE_F_BUFFER; }
  static uint16_t BufferId(uint32_t cqe_flags) { return cqe_flags >> IORING_CQE_BUFFER_SHIFT; }

  char* Buffer(uint16_t id) { return base_ + static_cast<size_t>(id) * buffer_bytes_; }
  // Returns buffer `id` to the kernel.
  void Recycle(uint16_t id);

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_bytes() const { return buffer_bytes_; }
  uint32_t count() const { return count_; }

 private:
  BufferRing() = default;

  Reactor* reactor_ = nullptr;
  io_uring_buf_ring* ring_ = nullptr;
  size_t ring_bytes_ = 0;
  char* base_ = nullptr;  // count_ * buffer_bytes_ bytes
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_bytes_ = 0;
  int mask_ = 0;
};

}  // namespace relay::io
