// The per-shard event loop over one io_uring.
//
// Ownership: a caller owns each Completion it submits; the Completion's address is the SQE's
// user_data, so steady state allocates nothing per I/O. A Completion must stay alive until its
// final CQE (for multishot operations, the one without IORING_CQE_F_MORE) has been delivered;
// Completion::in_flight() says whether that is still to come. Objects that own completions are
// retired through RetireWhenIdle(), which frees them only once none of their operations is in
// flight (after cancelling is the owner's job).
//
// Each loop turn: submit pending SQEs and wait (bounded by the nearest timer), reap every
// available completion, advance the CQ once, then run the completion handlers in order, the due
// timers, the posted tasks, the end-of-turn hooks (the queue's group commit submits its fdatasync
// there) and the deferred deletes. Handlers never run recursively inside a submission.
//
// Threading: everything here is called on the reactor's own thread, except Wake() and
// RunInLoop(), which any thread may call.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <functional>
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relay/base/clock.h"
#include "relay/io/timer_wheel.h"

namespace relay::io {

class Reactor;

// One submitted operation. The handler receives the CQE's res (bytes or -errno) and flags.
class Completion {
 public:
  using Handler = std::function<void(int result, uint32_t flags)>;
  Completion() = default;
  explicit Completion(Handler handler) : handler_(std::move(handler)) {}
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;
  ~Completion();

  void set_handler(Handler handler) { handler_ = std::move(handler); }
  bool in_flight() const { return in_flight_; }

 private:
  friend class Reactor;
  Handler handler_;
  bool in_flight_ = false;
};

// An object that owns completions and is destroyed through Reactor::RetireWhenIdle().
class IoObject {
 public:
  virtual ~IoObject() = default;
  // True when no operation of this object is in flight any more.
  virtual bool Idle() const = 0;
};

struct ReactorOptions {
  unsigned sq_entries = 4096;
  unsigned cq_entries = 65536;
  Clock* clock = nullptr;  // RealClock when null
};

class Reactor {
 public:
  // Checks that the kernel has every io_uring operation and feature the relay uses; the error
  // names what is missing.
  static absl::Status ProbeKernel();
  static absl::StatusOr<std::unique_ptr<Reactor>> Create(const ReactorOptions& options);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Returns an SQE to fill; when the submission queue is full the pending entries are submitted
  // first to make room (never fails). The caller must set user_data via Arm().
  io_uring_sqe* GetSqe();
  // Ties `sqe` to `completion` (marks it in flight).
  void Arm(io_uring_sqe* sqe, Completion* completion);

  // Convenience wrappers; each marks `c` in flight. Buffers and addresses are read by the kernel
  // when the ring is submitted, later than the call: they must stay valid until `c` completes.
  void Accept(int fd, Completion* c, bool multishot);
  void RecvMultishot(int fd, uint16_t buffer_group, Completion* c);
  void Recv(int fd, void* buf, size_t len, Completion* c);
  void Send(int fd, const void* buf, size_t len, Completion* c, int flags = MSG_NOSIGNAL);
  void Writev(int fd, const struct iovec* iov, unsigned count, Completion* c);
  void Connect(int fd, const struct sockaddr* addr, socklen_t len, Completion* c);
  void PollAdd(int fd, uint32_t events, Completion* c);
  void Read(int fd, void* buf, unsigned len, uint64_t offset, Completion* c);
  void Fsync(int fd, bool datasync, Completion* c);
  // Cancels every operation whose user_data is `target`; the cancel's own completion is ignored.
  void Cancel(Completion* target);
  // Closes `fd` asynchronously; the result is ignored.
  void Close(int fd);

  // Timers on this reactor's wheel, in milliseconds of the reactor's clock.
  TimerWheel& timers() { return timers_; }
  int64_t NowMs() const { return clock_->MonotonicMillis(); }
  Clock* clock() const { return clock_; }

  // Runs `task` on this thread after the current batch of completion handlers.
  void Post(std::function<void()> task) { posted_.push_back(std::move(task)); }
  // Any thread: runs `task` on the reactor's thread soon (wakes it if it sleeps).
  void RunInLoop(std::function<void()> task);
  // Any thread: interrupts a wait.
  void Wake();
  // Runs at the end of every loop turn, after handlers and posted tasks.
  void AddTurnEndHook(std::function<void()> hook) { turn_end_hooks_.push_back(std::move(hook)); }
  // Frees `object` at the end of a turn once object->Idle().
  void RetireWhenIdle(std::unique_ptr<IoObject> object);

  // One loop turn; waits at most `wait_ms_max` (-1: until a completion or the next timer).
  void RunOnce(int wait_ms_max = -1);
  // Loops until Stop() (from this thread, or via RunInLoop from another).
  void Run();
  void Stop() { stop_ = true; }
  bool stopping() const { return stop_; }

  io_uring* ring() { return &ring_; }
  // Submits pending SQEs without waiting; returns how many the kernel took.
  int SubmitPending();

  // Counters for metrics and benchmarks.
  uint64_t completions_handled() const { return completions_handled_; }
  uint64_t loop_turns() const { return loop_turns_; }
  size_t retiring() const { return retiring_.size(); }

 private:
  Reactor(Clock* clock);
  void ArmWakeRead();
  void DrainCrossThread();

  io_uring ring_{};
  Clock* clock_;
  TimerWheel timers_;
  bool stop_ = false;
  std::vector<io_uring_cqe> batch_;  // copied CQEs of the current turn
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> running_;
  std::vector<std::function<void()>> turn_end_hooks_;
  std::vector<std::unique_ptr<IoObject>> retiring_;
  // Cross-thread wake-up: an eventfd with a read always in flight.
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  Completion wake_read_;
  std::mutex cross_mu_;
  std::vector<std::function<void()>> cross_tasks_;  // guarded by cross_mu_
  std::atomic<bool> cross_pending_{false};
  uint64_t completions_handled_ = 0;
  uint64_t loop_turns_ = 0;
};

}  // namespace relay::io
