// Fuzz target for VERP return paths (relay/feedback/verp.h): any client on port 25 may name any
// address of a bounce domain at RCPT, and any report may quote one. The input is an address,
// then optionally 0x1f and a recipient to verify it against. Checks: what parses has a tenant
// of the configuration, a queue id of hex and dashes and a 12-character MAC; a return path the
// relay makes parses back to the same token and verifies for its recipient only; time and
// memory linear in the input.
#include <string>
#include <string_view>

#include "relay/feedback/verp.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

const Verp* verp = nullptr;

void Init() {
  static const std::unique_ptr<const Verp> made = [] {
    VerpOptions o;
    o.secrets = {"fuzz-secret", "older"};
    o.domains = {{"example.com", "bounce.example.com"}, {"b.test", "r.b.test"}};
    return std::move(*Verp::Make(o));
  }();
  verp = made.get();
}

void FuzzVerp(std::string_view input) {
  const size_t sep = input.find('\x1f');
  const std::string_view address = input.substr(0, sep);
  const std::string_view recipient =
      sep == std::string_view::npos ? std::string_view() : input.substr(sep + 1);
  std::optional<VerpToken> token = verp->ParseAddress(address);
  if (token) {
    FUZZ_CHECK(token->tenant == "example.com" || token->tenant == "b.test");
    FUZZ_CHECK(token->mac.size() == 12 && !token->queue_id.empty());
    for (char c : token->queue_id)
      FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-');
    verp->Verifies(*token, recipient);
    // The return path made for this token's message and the recipient reads back the same.
    std::optional<std::string> made =
        verp->ReturnPath("x@" + token->tenant, token->queue_id, token->recipient_index, recipient);
    if (made && !recipient.empty()) {
      std::optional<VerpToken> again = verp->ParseAddress(*made);
      FUZZ_CHECK(again && again->queue_id == token->queue_id &&
                 again->recipient_index == token->recipient_index);
      FUZZ_CHECK(verp->Verifies(*again, recipient));
    }
  }
}

std::string LongLocalPart(size_t bytes) {
  return "bounces+" + std::string(bytes, 'a') + "@bounce.example.com\x1fu@example.org";
}

std::string LongRecipient(size_t bytes) {
  return "bounces+ab-0-1.0.aaaaaaaaaaaa@bounce.example.com\x1f" + std::string(bytes, 'r');
}

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "verp",
      .run = relay::feedback::FuzzVerp,
      // Lower-cased copies of the fields and the MAC's input: a few copies of the input.
      .bounds = {.heap_peak_bytes = {4096, 8},
                 .heap_allocated_bytes = {16384, 24},
                 .allocations = {128, 0}},
      .init = relay::feedback::Init,
      .scaled = {{.name = "long local part", .make = relay::feedback::LongLocalPart},
                 {.name = "long recipient", .make = relay::feedback::LongRecipient}},
  };
  return target;
}
