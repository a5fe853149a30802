// Fuzz target for reading what comes back to a bounce domain (relay/feedback/returned_mail.h):
// anyone can send any message to a return path. The input is the message; it is read as sent to
// a real return path (its token made for victim@example.org), to the feedback-loop address and to
// an unsubscribe mailto. Checks: at most tokens_max items; an item's recipient is one its token
// verifies for (a report cannot name an address of its choosing); time and memory linear.
#include <string>
#include <string_view>

#include "relay/feedback/bounce_classifier.h"
#include "relay/feedback/returned_mail.h"
#include "tools/fuzz/fuzz.h"

namespace relay::feedback {
namespace {

struct Fixture {
  std::shared_ptr<const Verp> verp;
  std::shared_ptr<const BounceClassifier> classifier;
  std::unique_ptr<const Unsubscribe> unsubscribe;
  std::vector<std::string> to;
};
const Fixture* fixture = nullptr;

void Init() {
  static Fixture f;
  VerpOptions v;
  v.secrets = {"fuzz"};
  v.domains = {{"example.com", "bounce.example.com"}};
  f.verp = std::shared_ptr<const Verp>(std::move(*Verp::Make(v)));
  f.classifier = *BounceClassifier::Make(
      {BounceRule{BounceCategory::kBadMailbox, {}, {"5.1.1"}, {"no such user"}, "fuzz[0]"}});
  UnsubscribeOptions u;
  u.secrets = {"fuzz"};
  u.base_url = "https://u.example.com";
  f.unsubscribe = std::move(*Unsubscribe::Make(u, f.verp));
  f.to = {*f.verp->ReturnPath("news@example.com", "ab-0-1", 0, "victim@example.org")};
  fixture = &f;
}

void FuzzReturnedMail(std::string_view input) {
  const std::string loop = "bounces@bounce.example.com";
  const std::string fields =
      fixture->unsubscribe->HeaderFields("example.com", "victim@example.org");
  const size_t at = fields.find("mailto:") + 7;
  const std::string mailto = fields.substr(at, fields.find('?', at) - at);
  const ReturnedMailLimits limits;
  for (const std::vector<std::string>& to :
       {fixture->to, std::vector<std::string>{loop}, std::vector<std::string>{mailto}}) {
    const ReturnedMail mail = ReadReturnedMail(*fixture->verp, *fixture->classifier,
                                               fixture->unsubscribe.get(), input, "", to, limits);
    FUZZ_CHECK(mail.items.size() <= limits.tokens_max);
    FUZZ_CHECK(!mail.items.empty() || !mail.why.empty());
    for (const ReturnedItem& item : mail.items) {
      FUZZ_CHECK(item.tenant == "example.com");
      // Only the address the token (or the unsubscribe mailto) was made for.
      FUZZ_CHECK(item.recipient == "victim@example.org");
    }
  }
}

std::string ManyAddresses(size_t bytes) {
  return relay::fuzz::Repeat("From: MAILER-DAEMON@x\r\nSubject: Undelivered Mail\r\n\r\n",
                             "<someone@example.org>: host x said: 550 5.1.1 no such user\r\n", "",
                             bytes);
}

std::string ManyReturnPaths(size_t bytes) {
  return relay::fuzz::Repeat(
      "From: MAILER-DAEMON@x\r\nSubject: Undelivered Mail\r\n\r\n",
      "bounces+ab-0-1.0.aaaaaaaaaaaa@bounce.example.com victim@example.org\r\n", "", bytes);
}

}  // namespace
}  // namespace relay::feedback

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "returned_mail",
      .run = relay::feedback::FuzzReturnedMail,
      // Three reads of the report (each the parser's bounded copies) and the HMACs of at most
      // tokens_max tokens against at most addresses_max candidates.
      .bounds = {.heap_peak_bytes = {256 << 10, 16},
                 .heap_allocated_bytes = {1 << 20, 96},
                 .allocations = {8192, 2}},
      .init = relay::feedback::Init,
      .scaled = {{.name = "many addresses", .make = relay::feedback::ManyAddresses},
                 {.name = "many return paths", .make = relay::feedback::ManyReturnPaths}},
  };
  return target;
}
