// dns/spf.h against an SPF implementation nobody here wrote: Debian's python3-spf (pyspf), both
// asking the same unbound on loopback about every name of dns/spf_test_zones.h from a set of
// client addresses. Every result must agree, but for the deliberate differences listed below.
#include "dns/spf.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dns/resolver.h"
#include "dns/spf_test_zones.h"
#include "dns/testing/unbound_server.h"
#include "gtest/gtest.h"
#include "relay/io/reactor.h"

namespace dns {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kOracle[] = "dns/spf_pyspf_check.py";

bool PyspfAvailable() {
  std::string cmd = absl::StrCat(kPython, " -c 'import spf, dns.resolver' 2>/dev/null");
  return access(kPython, X_OK) == 0 && std::system(cmd.c_str()) == 0;
}

TEST(SpfPyspfTest, SameResultsAsPyspf) {
  ASSERT_TRUE(testing::UnboundServer::Available() && PyspfAvailable())
      << "needs unbound and python3-spf (Debian packages unbound, python3-spf)";
  absl::Status probe = relay::io::Reactor::ProbeKernel();
  if (!probe.ok()) {
    printf("SKIP: %s\n", std::string(probe.message()).c_str());
    GTEST_SKIP();
  }
  std::string dir = testing::TempDir();
  auto server = testing::UnboundServer::Start(dir, spf_testing::SuiteZones());
  ASSERT_TRUE(server.ok()) << server.status();
  relay::io::ReactorOptions reactor_options;
  reactor_options.sq_entries = 256;
  reactor_options.cq_entries = 1024;
  auto reactor = relay::io::Reactor::Create(reactor_options);
  ASSERT_TRUE(reactor.ok()) << reactor.status();
  ResolverOptions options;
  options.servers = {(*server)->address()};
  auto resolver = Resolver::Create(reactor->get(), options);
  ASSERT_TRUE(resolver.ok()) << resolver.status();
  SpfEvaluator evaluator(reactor->get(), resolver->get());

  const std::vector<std::string> ips = {
      "192.0.2.5",           "192.0.2.10",   "192.0.2.65",    "192.0.2.129", "192.0.2.140",
      "198.51.100.1",        "10.0.0.4",     "192.168.15.15", "192.0.2.77",  "2001:db8:aaaa:5::1",
      "2001:db8:bbbb:1::99", "2001:db8::25",
  };
  struct Case {
    std::string ip, sender;
    SpfOutcome ours;
  };
  std::vector<Case> cases;
  for (const std::string& domain : spf_testing::SuiteDomains()) {
    for (const std::string& ip : ips) {
      cases.push_back(Case{ip, absl::StrCat("joel@", domain), {}});
    }
  }
  // Ours, all at once on the reactor.
  auto ours_start = std::chrono::steady_clock::now();
  int outstanding = static_cast<int>(cases.size());
  std::vector<QueryHandle> handles;
  for (Case& c : cases) {
    SpfRequest request;
    request.ip = c.ip;
    request.sender = c.sender;
    request.domain = c.sender.substr(c.sender.find('@') + 1);
    request.helo = "mx.client.example";
    handles.push_back(evaluator.CheckHost(request, [&c, &outstanding](SpfOutcome o) {
      c.ours = std::move(o);
      --outstanding;
    }));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (outstanding > 0 && std::chrono::steady_clock::now() < deadline) {
    (*reactor)->RunOnce(20);
  }
  ASSERT_EQ(outstanding, 0);
  auto ours_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - ours_start)
                     .count();
  auto theirs_start = std::chrono::steady_clock::now();

  // pyspf's, one process for all of them.
  std::string cases_path = absl::StrCat(dir, "/spf-cases.txt");
  {
    std::ofstream out(cases_path);
    for (const Case& c : cases) out << c.ip << " " << c.sender << " mx.client.example\n";
  }
  std::string cmd =
      absl::StrCat(kPython, " ", kOracle, " ", (*server)->port(), " ", cases_path, " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::vector<std::string> theirs;
  char line[4096];
  while (fgets(line, sizeof(line), pipe) != nullptr) {
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    theirs.push_back(s);
  }
  int status = pclose(pipe);
  auto theirs_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - theirs_start)
                       .count();
  printf("ours: %zu checks in %lld ms; pyspf: %lld ms\n", cases.size(),
         static_cast<long long>(ours_ms), static_cast<long long>(theirs_ms));
  ASSERT_EQ(status, 0) << absl::StrJoin(theirs, "\n");
  ASSERT_EQ(theirs.size(), cases.size()) << absl::StrJoin(theirs, "\n");

  // Where we part from pyspf on purpose. Each must show up, and nothing else may differ.
  struct Known {
    const char* sender;
    const char* ours;
    const char* pyspf;
    const char* why;
    int seen = 0;
  } known[] = {
      // §4.6.4 limits "terms" whose lookups are void. We count the term's own query (the MX
      // query of "mx"); pyspf counts every empty answer, also the AAAA lookups of MX hosts
      // that only have A records, so an IPv6 client of a domain whose three MX hosts lack
      // AAAA gets permerror from it.
      {"joel@mxzero.example.net", "fail", "permerror",
       "void lookups counted per term, not per MX host address lookup"},
      // §7.1: transformers = *DIGIT [ "r" ]; pyspf also takes "r" before the digits.
      {"joel@badmacro.example.net", "permerror", "fail", "%{ir4} is not in the grammar"},
  };
  int differences = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::string ours = SpfResultName(c.ours.result);
    if (ours == theirs[i]) continue;
    ++differences;
    bool expected = false;
    for (Known& k : known) {
      if (c.sender == k.sender && ours == k.ours && theirs[i] == k.pyspf) {
        expected = true;
        ++k.seen;
      }
    }
    if (expected) continue;
    ADD_FAILURE() << c.sender << " from " << c.ip << ": ours " << ours << " (" << c.ours.mechanism
                  << c.ours.problem << "), pyspf " << theirs[i];
  }
  for (const Known& k : known) EXPECT_GT(k.seen, 0) << k.sender << ": " << k.why;
  std::map<std::string, int> by_result;
  for (const std::string& r : theirs) ++by_result[r];
  std::string spread;
  for (const auto& [r, n] : by_result) absl::StrAppend(&spread, " ", r, "=", n);
  printf("%zu checks compared with pyspf, %d known differences; pyspf's results:%s\n", cases.size(),
         differences, spread.c_str());
  // Every result of RFC 7208 §2.6 is among the compared ones, so agreement means something.
  EXPECT_EQ(by_result.size(), 7u) << spread;
  handles.clear();
  resolver->reset();
  for (int i = 0; i < 100 && (*reactor)->retiring() > 0; ++i) (*reactor)->RunOnce(10);
}

}  // namespace
}  // namespace dns
