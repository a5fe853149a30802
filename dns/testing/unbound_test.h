// A gtest fixture for suites that resolve names against unbound (dns/testing/unbound_server.h):
// the server, with the zones the suite gives, and one reactor shared by the suite's tests; a
// resolver aimed at the server for each test; and a DNS server that never answers, for the
// timeout cases. A missing kernel feature skips every test with its reason; a missing unbound, or
// one that does not start, fails them.
//
//   class MyTest : public dns::testing::UnboundTest {
//    protected:
//     static void SetUpTestSuite() { StartUnbound(zones); }
//   };
//
// Test-only; the test's thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dns/resolver.h"
#include "dns/testing/unbound_server.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace dns::testing {

class UnboundTest : public ::testing::Test {
 protected:
  // From the suite's SetUpTestSuite.
  static void StartUnbound(const std::string& zone_config);
  static void TearDownTestSuite();

  // Skips the test when the suite must, else makes resolver_.
  void SetUp() override;
  // Drops resolver_ and lets the reactor retire what it held.
  void TearDown() override;

  std::unique_ptr<Resolver> MakeResolver(const std::string& server, int timeout_ms = 1000,
                                         int tries = 2);
  // Runs the reactor until `*done` or `ms` have passed.
  static void RunUntil(const bool* done, int64_t ms);

  static std::string* skip_;
  static UnboundServer* server_;
  static relay::io::Reactor* reactor_;
  std::unique_ptr<Resolver> resolver_;
};

// A UDP socket on 127.0.0.1 that reads nothing: every query sent to address() times out.
class SilentDnsServer {
 public:
  SilentDnsServer();
  ~SilentDnsServer();
  SilentDnsServer(const SilentDnsServer&) = delete;
  SilentDnsServer& operator=(const SilentDnsServer&) = delete;
  // "127.0.0.1:PORT", the form ResolverOptions::servers takes.
  std::string address() const;

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace dns::testing
