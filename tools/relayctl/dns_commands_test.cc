// relayctl's DNS commands against a real unbound on loopback (dns/testing/unbound_server.h).
#include "tools/relayctl/dns_commands.h"

#include <cstdio>
#include <string>
#include <vector>

#include "dns/testing/unbound_server.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace relay::relayctl {
namespace {

class DnsCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(dns::testing::UnboundServer::Available())
        << "unbound is not installed (Debian package unbound)";
    if (absl::Status probe = relay::io::Reactor::ProbeKernel(); !probe.ok()) {
      skip_ = new std::string(probe.message());
      return;
    }
    auto server =
        dns::testing::UnboundServer::Start(dns::testing::TempDir(), dns::testing::TestZones());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }
  static void TearDownTestSuite() { delete server_; }
  void SetUp() override {
    if (skip_ != nullptr) {
      printf("SKIP: %s\n", skip_->c_str());
      GTEST_SKIP() << *skip_;
    }
    ASSERT_NE(server_, nullptr) << "unbound did not start: see the suite's first failure";
  }

  // Runs `command` with `args` plus --server; returns the exit code, `out` gets stdout.
  int Run(int (*command)(int, char**, FILE*), std::vector<std::string> args, std::string* out) {
    args.push_back("--server");
    args.push_back(server_->address());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    int rc = command(static_cast<int>(argv.size()), argv.data(), f);
    fclose(f);
    out->assign(buf, len);
    free(buf);
    return rc;
  }

  static std::string* skip_;
  static dns::testing::UnboundServer* server_;
};

std::string* DnsCommandsTest::skip_ = nullptr;
dns::testing::UnboundServer* DnsCommandsTest::server_ = nullptr;

TEST_F(DnsCommandsTest, Mx) {
  std::string out;
  EXPECT_EQ(Run(DnsMxCommand, {"dns-mx", "deadhost.test", "--family", "ipv4-only"}, &out), 0);
  EXPECT_EQ(out, "site a.mx.test,nowhere.mx.test\n10 a.mx.test 127.0.0.1\n");
  EXPECT_EQ(Run(DnsMxCommand, {"dns-mx", "nomx.test"}, &out), 0);
  EXPECT_EQ(out, "site nomx.test (implicit MX)\n0 nomx.test ::10\n0 nomx.test 127.0.0.10\n");
  EXPECT_EQ(Run(DnsMxCommand, {"dns-mx", "nullmx.test"}, &out), 1);
  EXPECT_EQ(Run(DnsMxCommand, {"dns-mx", "x.refused.test"}, &out), 3);
  EXPECT_EQ(Run(DnsMxCommand, {"dns-mx", "mx.test", "--family", "ipv5"}, &out), 2);
}

TEST_F(DnsCommandsTest, Txt) {
  std::string out;
  EXPECT_EQ(Run(DnsTxtCommand, {"dns-txt", "txt.test"}, &out), 0);
  EXPECT_EQ(out, std::string(200, 'a') + std::string(200, 'b') + std::string(100, 'c') + "\n");
  EXPECT_EQ(Run(DnsTxtCommand, {"dns-txt", "nothing.test"}, &out), 1);
}

TEST_F(DnsCommandsTest, Ptr) {
  std::string out;
  EXPECT_EQ(Run(DnsPtrCommand, {"dns-ptr", "2001:db8::25"}, &out), 0);
  EXPECT_EQ(out, "mail6.test confirmed\n");
  EXPECT_EQ(Run(DnsPtrCommand, {"dns-ptr", "192.0.2.26"}, &out), 1);
  EXPECT_EQ(out, "liar.test NOT-CONFIRMED\n");
}

}  // namespace
}  // namespace relay::relayctl
