// Fuzz target for the head of an HTTP answer (relay/tlspolicy/https_get.h), which any server
// behind mta-sts.<domain> writes. Checks: a head that
// parses has a three-digit status, a body start inside the input just after a blank line, a
// lower-case Content-Type without parameters or spaces at its ends, and a Content-Length that is -1
// or not negative; time and memory linear in the input.
#include <string>
#include <string_view>

#include "relay/tlspolicy/https_get.h"
#include "tools/fuzz/fuzz.h"

namespace relay::tlspolicy {
namespace {

void FuzzHttpHead(std::string_view input) {
  int code = 0;
  std::string type;
  size_t body = 0;
  int64_t length = 0;
  if (!ParseHttpResponseHead(input, &code, &type, &body, &length)) return;
  FUZZ_CHECK(code >= 100 && code <= 999);
  FUZZ_CHECK(body >= 4 && body <= input.size() && input.substr(body - 4, 4) == "\r\n\r\n");
  FUZZ_CHECK(type.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ;") == std::string::npos);
  FUZZ_CHECK(type.empty() || (type.front() != ' ' && type.back() != ' '));
  FUZZ_CHECK(length >= -1);
}

std::string ManyHeaders(size_t bytes) {
  return relay::fuzz::Repeat("HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "\r\n", bytes);
}

std::string OneLongHeader(size_t bytes) {
  return "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(bytes, 'a') + "\r\n\r\n";
}

}  // namespace
}  // namespace relay::tlspolicy

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "http_response_head",
      .run = relay::tlspolicy::FuzzHttpHead,
      // The Content-Type's lower-case copy at most (the last one seen).
      .bounds = {.heap_peak_bytes = {4096, 2},
                 .heap_allocated_bytes = {8192, 4},
                 .allocations = {64, 0.5}},
      .scaled = {{.name = "many headers", .make = relay::tlspolicy::ManyHeaders},
                 {.name = "one long header", .make = relay::tlspolicy::OneLongHeader}},
  };
  return target;
}
