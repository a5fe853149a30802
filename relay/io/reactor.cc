#include "relay/io/reactor.h"

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "relay/base/check.h"
#include "relay/base/log.h"

namespace relay::io {

// A user_data of 0 marks an SQE whose completion nobody waits for (cancel, close).
constexpr uint64_t kIgnoredUserData = 0;

Completion::~Completion() {
  // Destroying a completion the kernel still holds would let a later CQE write through a dangling
  // pointer.
  CHECK(!in_flight_);
}

absl::Status Reactor::ProbeKernel() {
  io_uring ring;
  int rc = io_uring_queue_init(8, &ring, 0);
  if (rc < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("io_uring is not available: io_uring_queue_init: ", std::strerror(-rc),
                     rc == -EPERM ? " (io_uring may be disabled: sysctl kernel.io_uring_disabled, "
                                    "or a seccomp policy)"
                                  : ""));
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  std::vector<std::string> missing;
  if (probe == nullptr) {
    missing.push_back("IORING_REGISTER_PROBE");
  } else {
    struct Needed {
      int op;
      const char* name;
    };
    static constexpr Needed kNeeded[] = {
        {IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_RECV, "RECV"},
        {IORING_OP_SEND, "SEND"},         {IORING_OP_WRITEV, "WRITEV"},
        {IORING_OP_CONNECT, "CONNECT"},   {IORING_OP_POLL_ADD, "POLL_ADD"},
        {IORING_OP_FSYNC, "FSYNC"},       {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
        {IORING_OP_CLOSE, "CLOSE"},       {IORING_OP_READ, "READ"},
        {IORING_OP_PROVIDE_BUFFERS, "PROVIDE_BUFFERS"},
    };
    for (const Needed& n : kNeeded) {
      if (!io_uring_opcode_supported(probe, n.op)) missing.push_back(n.name);
    }
    io_uring_free_probe(probe);
  }
  // Provided buffer rings (5.19) carry multishot recv; multishot accept is the same vintage.
  if (missing.empty()) {
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, 4096) == 0) {
      io_uring_buf_reg reg{};
      reg.ring_addr = reinterpret_cast<uint64_t>(mem);
      reg.ring_entries = 8;
      reg.bgid = 1;
      int r = io_uring_register_buf_ring(&ring, &reg, 0);
      if (r < 0) {
        missing.push_back(absl::StrCat("provided buffer rings (IORING_REGISTER_PBUF_RING: ",
                                       std::strerror(-r), "; needs Linux 5.19)"));
      } else {
        io_uring_unregister_buf_ring(&ring, 1);
      }
      free(mem);
    }
  }
  io_uring_queue_exit(&ring);
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this kernel's io_uring lacks what the relay needs: ", absl::StrJoin(missing, ", ")));
  }
  return absl::OkStatus();
}

Reactor::Reactor(Clock* clock) : clock_(clock), timers_(clock->MonotonicMillis()) {}

absl::StatusOr<std::unique_ptr<Reactor>> Reactor::Create(const ReactorOptions& options) {
  Clock* clock = options.clock != nullptr ? options.clock : RealClock::Get();
  std::unique_ptr<Reactor> reactor(new Reactor(clock));
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
                 IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = options.cq_entries;
  int rc = io_uring_queue_init_params(options.sq_entries, &reactor->ring_, &params);
  if (rc == -EINVAL) {
    // Older kernels lack DEFER_TASKRUN / SINGLE_ISSUER (6.1): run without them.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = options.cq_entries;
    rc = io_uring_queue_init_params(options.sq_entries, &reactor->ring_, &params);
  }
  if (rc == -ENOMEM) {
    // Newer kernels charge ring memory to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
    struct rlimit limit {};
    getrlimit(RLIMIT_MEMLOCK, &limit);
    return absl::FailedPreconditionError(absl::StrCat(
        "io_uring_queue_init_params: ", std::strerror(-rc), " (a ring of ", options.sq_entries,
        " + ", options.cq_entries, " entries counts against the locked-memory limit, now ",
        limit.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                        : absl::StrCat(limit.rlim_cur >> 10, " KiB"),
        ", shared by all of this user's processes: raise it, e.g. LimitMEMLOCK= in the systemd "
        "unit or ulimit -l)"));
  }
  if (rc < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("io_uring_queue_init_params: ", std::strerror(-rc)));
  }
  if (!(params.features & IORING_FEAT_EXT_ARG)) {
    return absl::FailedPreconditionError("io_uring lacks IORING_FEAT_EXT_ARG (needs Linux 5.11)");
  }
  reactor->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (reactor->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  reactor->batch_.reserve(1024);
  Reactor* self = reactor.get();
  reactor->wake_read_.set_handler([self](int result, uint32_t) {
    if (result == -ECANCELED) return;  // the reactor is shutting down
    self->DrainCrossThread();
    self->ArmWakeRead();
  });
  reactor->ArmWakeRead();
  return reactor;
}

Reactor::~Reactor() {
  // Only the reactor's own wake-up read may still be outstanding; owners of everything else are
  // gone, so no hook or posted task may run from here on.
  turn_end_hooks_.clear();
  posted_.clear();
  if (wake_read_.in_flight()) {
    Cancel(&wake_read_);
    // Give the cancellation a bounded number of turns to come back.
    for (int i = 0; i < 100 && wake_read_.in_flight(); ++i) RunOnce(10);
  }
  // Objects still retiring (a resolver's socket watches, say, whose owner was destroyed just
  // before) have cancelled operations whose completions are on their way: let them arrive.
  for (int i = 0; i < 200 && !retiring_.empty(); ++i) RunOnce(10);
  if (!retiring_.empty()) {
    LogError() << retiring_.size() << " objects still had operations in flight at shutdown";
  }
  io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  retiring_.clear();
}

void Reactor::ArmWakeRead() { Read(wake_fd_, &wake_value_, sizeof(wake_value_), 0, &wake_read_); }

io_uring_sqe* Reactor::GetSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    // Full submission queue: hand what is queued to the kernel and try again.
    int rc = io_uring_submit(&ring_);
    if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) {
      LogError() << "io_uring_submit while the SQ is full: " << std::strerror(-rc);
    }
    if (rc == -EBUSY || rc == -EAGAIN) {
      // The CQ is backed up: let the kernel flush overflowed entries on the next wait.
      io_uring_get_events(&ring_);
    }
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void Reactor::Arm(io_uring_sqe* sqe, Completion* completion) {
  DCHECK(!completion->in_flight_);
  completion->in_flight_ = true;
  io_uring_sqe_set_data(sqe, completion);
}

void Reactor::Accept(int fd, Completion* c, bool multishot) {
  io_uring_sqe* sqe = GetSqe();
  if (multishot) {
    io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  } else {
    io_uring_prep_accept(sqe, fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  }
  Arm(sqe, c);
}

void Reactor::RecvMultishot(int fd, uint16_t buffer_group, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffer_group;
  Arm(sqe, c);
}

void Reactor::Recv(int fd, void* buf, size_t len, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recv(sqe, fd, buf, len, 0);
  Arm(sqe, c);
}

void Reactor::Send(int fd, const void* buf, size_t len, Completion* c, int flags) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_send(sqe, fd, buf, len, flags);
  Arm(sqe, c);
}

void Reactor::Writev(int fd, const struct iovec* iov, unsigned count, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_writev(sqe, fd, iov, count, 0);
  Arm(sqe, c);
}

void Reactor::Connect(int fd, const struct sockaddr* addr, socklen_t len, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_connect(sqe, fd, addr, len);
  Arm(sqe, c);
}

void Reactor::PollAdd(int fd, uint32_t events, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_poll_add(sqe, fd, events);
  Arm(sqe, c);
}

void Reactor::Read(int fd, void* buf, unsigned len, uint64_t offset, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_read(sqe, fd, buf, len, offset);
  Arm(sqe, c);
}

void Reactor::Fsync(int fd, bool datasync, Completion* c) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
  Arm(sqe, c);
}

void Reactor::Cancel(Completion* target) {
  if (!target->in_flight_) return;
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel(sqe, target, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, kIgnoredUserData);
}

void Reactor::Close(int fd) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_close(sqe, fd);
  io_uring_sqe_set_data64(sqe, kIgnoredUserData);
}

int Reactor::SubmitPending() { return io_uring_submit(&ring_); }

void Reactor::RunInLoop(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(cross_mu_);
    cross_tasks_.push_back(std::move(task));
  }
  if (!cross_pending_.exchange(true)) Wake();
}

void Reactor::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  (void)n;  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway
}

void Reactor::DrainCrossThread() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(cross_mu_);
    tasks.swap(cross_tasks_);
    cross_pending_.store(false);
  }
  for (auto& t : tasks) posted_.push_back(std::move(t));
}

void Reactor::RetireWhenIdle(std::unique_ptr<IoObject> object) {
  retiring_.push_back(std::move(object));
}

void Reactor::RunOnce(int wait_ms_max) {
  ++loop_turns_;
  int64_t now = NowMs();
  int64_t wait_ms = wait_ms_max;
  int64_t next_timer = timers_.NextWakeMs();
  if (next_timer >= 0) {
    int64_t until = std::max<int64_t>(0, next_timer - now);
    wait_ms = wait_ms < 0 ? until : std::min(wait_ms, until);
  }
  if (!posted_.empty() || stop_) wait_ms = 0;

  io_uring_cqe* cqe = nullptr;
  if (wait_ms < 0) {
    io_uring_submit_and_wait(&ring_, 1);
  } else if (wait_ms == 0) {
    io_uring_submit(&ring_);
    if (io_uring_cq_ready(&ring_) == 0) io_uring_get_events(&ring_);
  } else {
    __kernel_timespec ts;
    ts.tv_sec = wait_ms / 1000;
    ts.tv_nsec = (wait_ms % 1000) * 1000000;
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }

  // The wait may have lasted long (no timer armed: an idle metrics thread sleeps for minutes).
  // Handlers that arm a deadline count from now, not from the last Advance.
  timers_.Observe(NowMs());

  // Reap everything available, then advance the CQ once.
  batch_.clear();
  unsigned head;
  unsigned count = 0;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    batch_.push_back(*cqe);
    ++count;
  }
  io_uring_cq_advance(&ring_, count);

  for (const io_uring_cqe& c : batch_) {
    if (c.user_data == kIgnoredUserData) continue;
    auto* completion = reinterpret_cast<Completion*>(static_cast<uintptr_t>(c.user_data));
    if (!(c.flags & IORING_CQE_F_MORE)) completion->in_flight_ = false;
    ++completions_handled_;
    completion->handler_(c.res, c.flags);
  }

  timers_.Advance(NowMs());

  // Posted tasks may post more; bound each turn to what was there at its start plus one round.
  for (int round = 0; round < 2 && !posted_.empty(); ++round) {
    running_.swap(posted_);
    for (auto& task : running_) task();
    running_.clear();
  }

  for (auto& hook : turn_end_hooks_) hook();

  if (!retiring_.empty()) {
    size_t kept = 0;
    for (size_t i = 0; i < retiring_.size(); ++i) {
      if (!retiring_[i]->Idle()) {
        retiring_[kept++] = std::move(retiring_[i]);
      }
    }
    retiring_.resize(kept);
  }
}

void Reactor::Run() {
  while (!stop_) RunOnce();
}

}  // namespace relay::io
