// Crash test: a child process (crash_child) appends and acknowledges records as fast as it can
// while this test SIGKILLs it at random moments. After each kill the spool is recovered here and
// checked: every acknowledged message is present and intact (unless the child had started to
// finalize it), every acknowledged final outcome holds, and every message recovery returns is
// intact byte for byte, acknowledged or not.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"
#include "queue/crash_body.h"
#include "queue/spool.h"
#include "relay/base/log.h"

namespace queue {
namespace {

std::string g_child_path;

struct Child {
  pid_t pid = -1;
  int out_fd = -1;
};

Child Spawn(const std::string& dir, uint64_t seed) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string seed_text = std::to_string(seed);
    ::execl(g_child_path.c_str(), g_child_path.c_str(), dir.c_str(), seed_text.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads the pipe until `deadline` (or EOF), appending to `buffer`.
void Drain(int fd, std::string* buffer, std::chrono::steady_clock::time_point deadline) {
  char chunk[65536];
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    int wait_ms = deadline <= now ? 0
                                  : static_cast<int>(std::chrono::duration_cast<
                                                         std::chrono::milliseconds>(deadline - now)
                                                         .count());
    struct pollfd p = {fd, POLLIN, 0};
    int r = ::poll(&p, 1, wait_ms);
    if (r <= 0) return;
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n <= 0) return;
    buffer->append(chunk, static_cast<size_t>(n));
  }
}

TEST(CrashTest, AcknowledgedRecordsSurviveSigkill) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/crash-spool";
  std::mt19937_64 rng(12345);
  constexpr int kKills = 60;
  const auto started = std::chrono::steady_clock::now();
  const auto budget = std::chrono::seconds(40);

  absl::flat_hash_map<MessageId, uint64_t> acked;     // id -> body seed
  absl::flat_hash_set<MessageId> finalizing;          // F seen
  absl::flat_hash_set<MessageId> final_acked;         // D seen
  uint64_t unacked_recovered_total = 0;
  uint64_t recovered_total = 0;
  int kills = 0;
  for (; kills < kKills && std::chrono::steady_clock::now() - started < budget; ++kills) {
    Child child = Spawn(dir, rng());
    std::string buffer;
    if (rng() % 8 == 0) {
      // Now and then kill it early: during recovery, segment creation or its first appends.
      Drain(child.out_fd, &buffer,
            std::chrono::steady_clock::now() + std::chrono::milliseconds(rng() % 30));
    } else {
      // Otherwise let it recover first (on a loaded machine that can take a while), then run.
      const auto ready_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (buffer.find("R\n") == std::string::npos &&
             std::chrono::steady_clock::now() < ready_deadline) {
        Drain(child.out_fd, &buffer,
              std::chrono::steady_clock::now() + std::chrono::milliseconds(5));
      }
      const auto run_ms = std::chrono::milliseconds(5 + rng() % 60);
      Drain(child.out_fd, &buffer, std::chrono::steady_clock::now() + run_ms);
    }
    ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
    // A child that exited by itself failed.
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with status " << WEXITSTATUS(status);
    Drain(child.out_fd, &buffer, std::chrono::steady_clock::now());
    ::close(child.out_fd);

    // Only complete lines count: a line cut by the kill was not acknowledged.
    std::istringstream lines(buffer.substr(0, buffer.rfind('\n') + 1));
    std::string kind, id_text;
    while (lines >> kind) {
      if (kind == "R") continue;
      lines >> id_text;
      auto id = MessageId::Parse(id_text);
      ASSERT_TRUE(id.ok()) << id.status();
      if (kind == "A") {
        uint64_t n;
        lines >> n;
        acked[*id] = n;
      } else if (kind == "F") {
        finalizing.insert(*id);
      } else if (kind == "D") {
        final_acked.insert(*id);
      } else {
        FAIL() << "bad line kind " << kind;
      }
    }

    SpoolOptions options;
    options.directory = dir;
    options.segment_bytes = 256 << 10;
    options.reserve_segments = 2;
    // Verification only: the child's own recovery syncs what it finds.
    options.fsync = false;
    RecoveryReport report;
    auto spool = Spool::Open(options, &report);
    ASSERT_TRUE(spool.ok()) << spool.status();
    // SIGKILL leaves the page cache intact: nothing may look damaged.
    ASSERT_TRUE(report.corruptions.empty()) << report.corruptions[0].ToStatus();
    for (const auto& [id, n] : acked) {
      const MessageInfo* info = (*spool)->Find(id);
      if (info == nullptr) {
        ASSERT_TRUE(finalizing.contains(id)) << "acknowledged message lost: " << id.ToString();
        continue;
      }
      ASSERT_FALSE(final_acked.contains(id)) << "final message came back: " << id.ToString();
    }
    for (MessageId id : final_acked) {
      ASSERT_EQ((*spool)->Find(id), nullptr) << "final message came back: " << id.ToString();
    }
    uint64_t unacked = 0;
    uint64_t recovered = 0;
    (*spool)->ForEachMessage([&](const MessageInfo& info) {
      ++recovered;
      // Every recovered message is intact, acknowledged or not.
      const std::string sender(info.sender);
      ASSERT_EQ(sender.rfind("n", 0), 0u) << sender;
      const uint64_t n = std::strtoull(sender.c_str() + 1, nullptr, 10);
      ASSERT_EQ(sender, SenderFor(n));
      ASSERT_EQ(info.message, BodyFor(n)) << info.id.ToString();
      ASSERT_EQ(info.recipients.size(), 2u);
      auto it = acked.find(info.id);
      if (it == acked.end()) {
        ++unacked;
        acked[info.id] = n;  // recovered now means durable from here on
      } else {
        ASSERT_EQ(it->second, n);
      }
    });
    unacked_recovered_total += unacked;
    recovered_total += recovered;
    // Forget what is gone for good.
    for (auto it = acked.begin(); it != acked.end();) {
      auto next = std::next(it);
      if ((*spool)->Find(it->first) == nullptr) acked.erase(it);
      it = next;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("crash test: %d kills in %.1f s; %llu messages recovered in total, of which %llu "
              "were never acknowledged (in flight at the kill) and came back intact\n",
              kills, seconds, static_cast<unsigned long long>(recovered_total),
              static_cast<unsigned long long>(unacked_recovered_total));
  EXPECT_GE(kills, 50) << "too few kills in the time budget";
  EXPECT_GT(final_acked.size(), 0u);
}

}  // namespace
}  // namespace queue

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: crash_test PATH_TO_CRASH_CHILD\n");
    return 2;
  }
  queue::g_child_path = argv[1];
  relay::SetLogLevel(relay::LogLevel::kError);
  return RUN_ALL_TESTS();
}
