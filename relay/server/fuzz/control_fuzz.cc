// Fuzz target for the control protocol (relay/server/control.h): the request line a local
// client (relayctl) sends to the control socket. The harness frames the input as ServeOne does
// (the first line of what arrives, which can be at most kReadBytesMax long) and has it handled
// with no shard running, so that every request is parsed and refused or answered without
// touching a queue. Checks: one answer line, "ok: ..." only for "retry --all", a selector or
// "ready" (no shard: no queue), an answer naming
// the shard for a well-formed queue id, and an answer no longer than the request and a
// sentence.
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "relay/server/control.h"
#include "tools/fuzz/fuzz.h"

namespace relay::server {
namespace {

// Serve stops reading once it has a newline or kRequestBytesMax bytes, in reads of at most 256.
constexpr size_t kReadBytesMax = ControlSocket::kRequestBytesMax + 255;

void FuzzControl(std::string_view input) {
  input = input.substr(0, kReadBytesMax);
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return;  // "error: incomplete request"
  const std::string request(input.substr(0, newline));
  const std::string answer = ControlSocket::Handle(request, {}, nullptr);
  FUZZ_CHECK(answer.find('\n') == std::string::npos);
  FUZZ_CHECK(answer.substr(0, 4) == "ok: " || answer.substr(0, 7) == "error: ");
  FUZZ_CHECK(answer.size() <= request.size() + 120);
  // The words as Handle sees them: blanks of every kind stripped from both ends, split on spaces.
  const absl::string_view stripped = absl::StripAsciiWhitespace(request);
  const std::string_view line(stripped.data(), stripped.size());
  std::vector<std::string_view> words;
  for (size_t pos = 0; pos < line.size();) {
    const size_t space = line.find(' ', pos);
    const size_t end = space == std::string::npos ? line.size() : space;
    if (end > pos) words.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  if (answer.substr(0, 3) == "ok:") {
    // "retry --all", a selector (relay/delivery/queue_selector.h) or "ready": every shard
    // (none) said ok.
    FUZZ_CHECK((request.find("retry") != std::string::npos &&
                request.find("--all") != std::string::npos) ||
               (words.size() >= 3 && words[1].substr(0, 2) == "--") ||
               (words.size() == 1 && words[0] == "ready" && answer == "ok: "));
  }
  // A request of a known verb and a queue id of a plain hex shard is refused for that shard.
  if (words.size() == 2 && (words[0] == "retry" || words[0] == "bounce" || words[0] == "delete")) {
    const std::string_view id = words[1];
    const size_t first = id.find('-');
    const size_t second = first == std::string_view::npos ? first : id.find('-', first + 1);
    if (second != std::string_view::npos && id.find('-', second + 1) == std::string_view::npos &&
        second > first + 1 && second - first <= 3 &&
        id.substr(first + 1, second - first - 1).find_first_not_of("0123456789abcdef") ==
            std::string_view::npos) {
      FUZZ_CHECK_MSG(answer.find("which is not running") != std::string::npos, answer);
    }
  }
}

// A request of many spaces between its words (split, stripped).
std::string ManySpaces(size_t bytes) {
  const std::string id = "5f3a1c2b4d5e6-0-1a\n";
  return relay::fuzz::Repeat("retry", " ", id, bytes - id.size());
}

}  // namespace
}  // namespace relay::server

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "control_request",
      .run = relay::server::FuzzControl,
      // The request, its words and the answer; Handle splits an id on '-' into strings of 32
      // bytes each for as little as one byte ("retry ----"), twice that while the vector grows.
      .bounds = {.heap_peak_bytes = {16 << 10, 80},
                 .heap_allocated_bytes = {64 << 10, 160},
                 .allocations = {128, 0.5}},
      .scaled = {{.name = "many spaces",
                  .make = relay::server::ManySpaces,
                  .bytes_max = relay::server::kReadBytesMax}},
  };
  return target;
}
