// A real DNS server for tests and benchmarks: Debian's unbound, started on 127.0.0.1 and a free
// port with a configuration in a temporary directory, answering only from local data (no
// recursion, no network). Stopped when the object is destroyed.
//
// Test-only. Construct and destroy on one thread; the server runs as a child process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "relay/io/reactor.h"

namespace dns::testing {

inline constexpr char kUnboundPath[] = "/usr/sbin/unbound";

class UnboundServer {
 public:
  // `zone_config` holds unbound "server:" lines (local-zone / local-data ...). `dir` must exist.
  static absl::StatusOr<std::unique_ptr<UnboundServer>> Start(const std::string& dir,
                                                              const std::string& zone_config);
  ~UnboundServer();
  UnboundServer(const UnboundServer&) = delete;
  UnboundServer& operator=(const UnboundServer&) = delete;

  static bool Available();
  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT", the form ResolverOptions::servers takes.
  std::string address() const;

 private:
  UnboundServer() = default;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// What a test suite against unbound needs: the server with `zone_config` and a small reactor for
// the resolver, or why the suite must skip (io_uring missing: the kernel lacks it), in skip_reason.
// An error when unbound is not installed or does not start.
struct UnboundSuite {
  std::unique_ptr<UnboundServer> server;
  std::unique_ptr<relay::io::Reactor> reactor;
  std::string skip_reason;
};
absl::StatusOr<UnboundSuite> StartUnboundSuite(const std::string& zone_config);

// The zones the dns tests and benchmarks use (see the .cc for what each name shows).
std::string TestZones();

// The directory for temporary files: $TEST_TMPDIR, else a fresh directory under /tmp.
std::string TempDir();

}  // namespace dns::testing
