#include "tools/relayctl/dns_commands.h"

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dns/resolver.h"
#include "dns/reverse_check.h"
#include "relay/io/reactor.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitPermanent = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTransient = 3;
// Enough for c-ares' tries (timeout doubling per round) to run out first.
constexpr int kWaitMs = 30000;

struct Args {
  std::string subject;
  std::vector<std::string> servers;
  dns::FamilyPreference family = dns::FamilyPreference::kIpv6First;
};

bool ParseArgs(int argc, char** argv, bool allow_family, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--server" && i + 1 < argc) {
      args->servers.push_back(argv[++i]);
    } else if (allow_family && a == "--family" && i + 1 < argc) {
      std::string_view f = argv[++i];
      if (f == "ipv6-first") {
        args->family = dns::FamilyPreference::kIpv6First;
      } else if (f == "ipv4-first") {
        args->family = dns::FamilyPreference::kIpv4First;
      } else if (f == "ipv4-only") {
        args->family = dns::FamilyPreference::kIpv4Only;
      } else if (f == "ipv6-only") {
        args->family = dns::FamilyPreference::kIpv6Only;
      } else {
        std::fprintf(stderr, "relayctl %s: unknown family %s\n", argv[0], argv[i]);
        return false;
      }
    } else if (!a.empty() && a[0] != '-' && args->subject.empty()) {
      args->subject = std::string(a);
    } else {
      std::fprintf(stderr, "relayctl %s: unexpected argument %s\n", argv[0], argv[i]);
      return false;
    }
  }
  if (args->subject.empty()) {
    std::fprintf(stderr, "relayctl %s: missing name\n", argv[0]);
    return false;
  }
  return true;
}

// A reactor and a resolver for one command.
struct Session {
  std::unique_ptr<relay::io::Reactor> reactor;
  std::unique_ptr<dns::Resolver> resolver;

  bool Open(const Args& args, const char* command) {
    relay::io::ReactorOptions reactor_options;
    reactor_options.sq_entries = 64;
    reactor_options.cq_entries = 256;
    auto r = relay::io::Reactor::Create(reactor_options);
    if (!r.ok()) {
      std::fprintf(stderr, "relayctl %s: %s\n", command, std::string(r.status().message()).c_str());
      return false;
    }
    reactor = *std::move(r);
    dns::ResolverOptions options;
    options.servers = args.servers;
    auto res = dns::Resolver::Create(reactor.get(), options);
    if (!res.ok()) {
      std::fprintf(stderr, "relayctl %s: %s\n", command,
                   std::string(res.status().message()).c_str());
      return false;
    }
    resolver = *std::move(res);
    return true;
  }
  void RunUntil(const bool& done) {
    int64_t deadline = reactor->NowMs() + kWaitMs;
    while (!done && reactor->NowMs() < deadline) reactor->RunOnce(100);
  }
  ~Session() {
    resolver.reset();
    for (int i = 0; i < 100 && reactor != nullptr && reactor->retiring() > 0; ++i) {
      reactor->RunOnce(10);
    }
  }
};

int Fail(const char* command, const dns::DnsStatus& status) {
  std::fprintf(stderr, "relayctl %s: %s\n", command, status.ToString().c_str());
  return status.transient() ? kExitTransient : kExitPermanent;
}

}  // namespace

int DnsMxCommand(int argc, char** argv, FILE* out) {
  Args args;
  if (!ParseArgs(argc, argv, /*allow_family=*/true, &args)) return kExitUsage;
  Session session;
  if (!session.Open(args, argv[0])) return kExitTransient;
  dns::MxResult result;
  bool done = false;
  dns::QueryHandle h = session.resolver->ResolveMx(args.subject, args.family, [&](dns::MxResult r) {
    result = std::move(r);
    done = true;
  });
  session.RunUntil(done);
  if (!done) return Fail(argv[0], dns::DnsStatus::Transient(dns::Reason::kTimeout, "no answer"));
  if (!result.status.ok()) return Fail(argv[0], result.status);
  std::fprintf(out, "site %s%s\n", result.site.c_str(), result.implicit_mx ? " (implicit MX)" : "");
  for (const dns::Candidate& c : result.candidates) {
    std::fprintf(out, "%u %s %s\n", c.preference, c.host.c_str(), c.address.IpString().c_str());
  }
  return kExitOk;
}

int DnsTxtCommand(int argc, char** argv, FILE* out) {
  Args args;
  if (!ParseArgs(argc, argv, /*allow_family=*/false, &args)) return kExitUsage;
  Session session;
  if (!session.Open(args, argv[0])) return kExitTransient;
  dns::TxtResult result;
  bool done = false;
  dns::QueryHandle h = session.resolver->LookupTxt(args.subject, [&](dns::TxtResult r) {
    result = std::move(r);
    done = true;
  });
  session.RunUntil(done);
  if (!done) return Fail(argv[0], dns::DnsStatus::Transient(dns::Reason::kTimeout, "no answer"));
  if (!result.status.ok()) return Fail(argv[0], result.status);
  for (const dns::TxtRecord& r : result.records) std::fprintf(out, "%s\n", r.joined.c_str());
  return kExitOk;
}

int DnsPtrCommand(int argc, char** argv, FILE* out) {
  Args args;
  if (!ParseArgs(argc, argv, /*allow_family=*/false, &args)) return kExitUsage;
  Session session;
  if (!session.Open(args, argv[0])) return kExitTransient;
  dns::ReverseCheckResult result;
  bool done = false;
  dns::QueryHandle h =
      dns::CheckReverse(session.resolver.get(), args.subject, [&](dns::ReverseCheckResult r) {
        result = std::move(r);
        done = true;
      });
  session.RunUntil(done);
  if (!done) return Fail(argv[0], dns::DnsStatus::Transient(dns::Reason::kTimeout, "no answer"));
  for (const std::string& name : result.ptr_names) {
    bool confirmed = false;
    for (const std::string& c : result.confirmed_names) confirmed |= c == name;
    std::fprintf(out, "%s %s\n", name.c_str(), confirmed ? "confirmed" : "NOT-CONFIRMED");
  }
  if (!result.status.ok()) return Fail(argv[0], result.status);
  return kExitOk;
}

}  // namespace relay::relayctl
