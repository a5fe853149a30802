#include "dns/reverse_check.h"

#include <arpa/inet.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dns {
namespace {

// The address in canonical text form, so that "2001:DB8::0:25" matches "2001:db8::25".
std::string CanonicalIp(std::string_view ip) {
  std::string text(ip);
  unsigned char buf[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN] = {};
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, text.c_str(), buf) == 1 &&
        inet_ntop(family, buf, out, sizeof(out)) != nullptr) {
      return out;
    }
  }
  return text;
}

struct ReverseJoin {
  std::string ip;
  ReverseCheckResult result;
  std::vector<DnsStatus> failures;
  int outstanding = 0;
  std::function<void(ReverseCheckResult)> callback;
  // The forward lookups; they die with the join, which the PTR callback keeps alive.
  std::vector<QueryHandle> forward;
  QueryHandle ptr;
  // The caller's handle: once cancelled, nothing is delivered.
  std::shared_ptr<internal::Token> token;
  bool done = false;

  void Finish() {
    if (done) return;
    done = true;
    if (token->cancelled) return;
    if (!result.confirmed_names.empty()) {
      result.status = DnsStatus::Ok();
    } else {
      result.status = DnsStatus::Permanent(
          Reason::kNoData, absl::StrCat("no PTR name of ", ip, " resolves back to it (PTR: ",
                                        absl::StrJoin(result.ptr_names, ", "), ")"));
      for (const DnsStatus& f : failures) {
        if (f.transient()) result.status = f;
      }
    }
    auto cb = std::move(callback);
    cb(std::move(result));
  }
};

}  // namespace

QueryHandle CheckReverse(Resolver* resolver, std::string_view ip,
                         std::function<void(ReverseCheckResult)> callback) {
  auto join = std::make_shared<ReverseJoin>();
  join->ip = CanonicalIp(ip);
  join->callback = std::move(callback);
  join->token = std::make_shared<internal::Token>();
  // The inner lookups report to `join`, which delivers only while the caller's token stands.
  join->ptr = resolver->LookupPtr(ip, [resolver, join](PtrResult ptr) {
    if (join->token->cancelled) return;
    if (!ptr.status.ok()) {
      join->result.status = ptr.status;
      join->done = true;
      auto cb = std::move(join->callback);
      cb(std::move(join->result));
      return;
    }
    join->result.ptr_names = ptr.names;
    join->result.forward.resize(ptr.names.size());
    join->outstanding = static_cast<int>(ptr.names.size());
    for (size_t i = 0; i < ptr.names.size(); ++i) {
      const std::string& name = ptr.names[i];
      join->forward.push_back(resolver->ResolveAddresses(
          name, FamilyPreference::kIpv6First, [join, name, i](AddressResult a) {
            ForwardAnswer& answer = join->result.forward[i];
            answer.name = name;
            answer.status = a.status;
            bool confirmed = false;
            for (const relay::io::SocketAddress& addr : a.addresses) {
              answer.addresses.push_back(addr.IpString());
              confirmed |= answer.addresses.back() == join->ip;
            }
            if (confirmed) join->result.confirmed_names.push_back(name);
            if (!a.status.ok()) join->failures.push_back(a.status);
            if (--join->outstanding == 0) join->Finish();
          }));
    }
  });
  return QueryHandle(join->token);
}

}  // namespace dns
