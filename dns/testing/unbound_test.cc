#include "dns/testing/unbound_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace dns::testing {

std::string* UnboundTest::skip_ = nullptr;
UnboundServer* UnboundTest::server_ = nullptr;
relay::io::Reactor* UnboundTest::reactor_ = nullptr;

void UnboundTest::StartUnbound(const std::string& zone_config) {
  absl::StatusOr<UnboundSuite> suite = StartUnboundSuite(zone_config);
  ASSERT_TRUE(suite.ok()) << suite.status();
  if (!suite->skip_reason.empty()) {
    skip_ = new std::string(suite->skip_reason);
    return;
  }
  server_ = suite->server.release();
  reactor_ = suite->reactor.release();
}

void UnboundTest::TearDownTestSuite() {
  delete reactor_;
  reactor_ = nullptr;
  delete server_;
  server_ = nullptr;
  delete skip_;
  skip_ = nullptr;
}

void UnboundTest::SetUp() {
  if (skip_ != nullptr) {
    printf("SKIP: %s\n", skip_->c_str());
    GTEST_SKIP() << *skip_;
  }
  ASSERT_NE(server_, nullptr) << "unbound did not start: see the suite's first failure";
  resolver_ = MakeResolver(server_->address());
}

void UnboundTest::TearDown() {
  resolver_.reset();
  for (int i = 0; i < 100 && reactor_ != nullptr && reactor_->retiring() > 0; ++i) {
    reactor_->RunOnce(10);
  }
}

std::unique_ptr<Resolver> UnboundTest::MakeResolver(const std::string& server, int timeout_ms,
                                                    int tries) {
  ResolverOptions o;
  o.servers = {server};
  o.timeout_ms = timeout_ms;
  o.tries = tries;
  return Resolver::Create(reactor_, o).value();
}

void UnboundTest::RunUntil(const bool* done, int64_t ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!*done && std::chrono::steady_clock::now() < deadline) reactor_->RunOnce(20);
}

SilentDnsServer::SilentDnsServer() {
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sin);
  EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len), 0);
  port_ = ntohs(sin.sin_port);
}

SilentDnsServer::~SilentDnsServer() { close(fd_); }

std::string SilentDnsServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

}  // namespace dns::testing
