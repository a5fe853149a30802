// Fuzz target for one-click unsubscribe links (relay/feedback/unsubscribe.h): anyone can request
// any path of the HTTPS endpoint and name any address of a bounce domain. The input is a path,
// or (first byte 'm') a mailto address. Checks: what a path yields verifies and names a tenant
// and an address; a link made for it reads back the same; time and memory linear.
#include <string>
#include <string_view>

#include "relay/feedback/unsubscribe.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

const Unsubscribe* unsubscribe = nullptr;

void Init() {
  static const std::unique_ptr<const Unsubscribe> made = [] {
    VerpOptions v;
    v.secrets = {"fuzz"};
    v.domains = {{"example.com", "bounce.example.com"}};
    UnsubscribeOptions o;
    o.secrets = {"fuzz"};
    o.base_url = "https://u.example.com";
    return std::move(*Unsubscribe::Make(o, std::shared_ptr<const Verp>(std::move(*Verp::Make(v)))));
  }();
  unsubscribe = made.get();
}

void FuzzUnsubscribe(std::string_view input) {
  if (!input.empty() && input[0] == 'm') {
    std::optional<UnsubscribeToken> token = unsubscribe->ParseMailto(input.substr(1));
    if (token) {
      FUZZ_CHECK(token->tenant == "example.com" && token->mac.size() == 16);
      unsubscribe->Verifies(*token, "a@b.test");
    }
    return;
  }
  std::optional<Unsubscription> s = unsubscribe->FromPath(input);
  if (!s) return;
  FUZZ_CHECK(!s->tenant.empty() && s->address.find('@') != std::string::npos);
  const std::string url = unsubscribe->Url(s->tenant, s->address);
  std::optional<Unsubscription> again = unsubscribe->FromPath(url.substr(url.find("/u/")));
  FUZZ_CHECK(again && again->tenant == s->tenant && again->address == s->address);
}

std::string LongAddress(size_t bytes) {
  return "/u/example.com/" + Base64Url(std::string(bytes, 'a') + "@b") + "/aaaaaaaaaaaaaaaa";
}

std::string LongMailto(size_t bytes) {
  return "munsubscribe+" + std::string(bytes, 'a') + "@bounce.example.com";
}

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "unsubscribe",
      .run = relay::feedback::FuzzUnsubscribe,
      // The decoded address and lower-cased copies: a few copies of the input.
      .bounds = {.heap_peak_bytes = {8192, 8},
                 .heap_allocated_bytes = {32768, 24},
                 .allocations = {128, 0}},
      .init = relay::feedback::Init,
      .scaled = {{.name = "long address", .make = relay::feedback::LongAddress},
                 {.name = "long mailto", .make = relay::feedback::LongMailto}},
  };
  return target;
}
