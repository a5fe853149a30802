// Fuzz target for the HTTP endpoints' request head and body (relay/metrics/http_server.h): bytes from
// any client that reaches the port. The input's first byte picks how the rest arrives in pieces
// (1 to 256 bytes each); the harness reads them the way HttpServer's connection does: append,
// look for the blank line in what is new (RequestHeadEnded), parse the head once it is there,
// answer 431 once kRequestBytesMax is reached without it. Checks:
//   - RequestHeadEnded, looking at the new bytes only, agrees with a search of the whole buffer
//     and with ParseRequestHead; the result does not depend on where the pieces ended
//     (parsing the whole input gives the same), and it is 400 or a method and a target that
//     starts with '/' and holds no space, CR or LF;
//   - the response is one of the statuses the server serves, its Content-Length is its body's
//     size, HEAD gets no body, and nothing from the request reaches its header;
//   - the buffer never passes kRequestBytesMax by more than one piece.
#include <string>
#include <string_view>

#include "relay/metrics/http_server.h"
#include "tools/fuzz/fuzz.h"

namespace relay::metrics {
namespace {

constexpr size_t kPieceBytesMax = 256;

void CheckResponse(std::string_view method, std::string_view target) {
  HttpHandlers handlers;
  handlers.metrics = [] { return std::string("relay_up 1\n"); };
  handlers.health = [] { return std::string(); };
  const HttpResponse response = Route(method, target, handlers);
  FUZZ_CHECK(response.status == 200 || response.status == 404 || response.status == 405 ||
             response.status == 503);
  const bool head = method == "HEAD";
  const std::string wire = SerializeResponse(response, head);
  const size_t end = wire.find("\r\n\r\n");
  FUZZ_CHECK(end != std::string::npos);
  const std::string_view header = std::string_view(wire).substr(0, end + 2);
  FUZZ_CHECK(header.find("Content-Length: " + std::to_string(response.body.size()) + "\r\n") !=
             std::string_view::npos);
  FUZZ_CHECK(wire.size() == end + 4 + (head ? 0 : response.body.size()));
  if (target.size() > 8) FUZZ_CHECK(header.find(target) == std::string_view::npos);
}

// The whole request (head and body) as ParseRequest reads it: the same method and target, a
// body no longer than the buffer allows, or a status the server answers with.
void CheckWholeRequest(std::string_view buffer, std::string_view method, std::string_view target) {
  HttpRequest request;
  int error = -1;
  if (!ParseRequest(buffer, HttpServer::kRequestBytesMax, &request, &error)) return;  // body due
  if (error != 0) {
    FUZZ_CHECK(error == 400 || error == 411 || error == 413);
    return;
  }
  FUZZ_CHECK(request.method == method && request.target == target);
  FUZZ_CHECK(request.body.size() <= buffer.size() && request.content_type.size() <= 256);
}

void FuzzHttpRequest(std::string_view input) {
  if (input.empty()) return;
  uint32_t rng = static_cast<uint8_t>(input[0]) * 2654435761u + 1;
  const bool single_bytes = input[0] == 0;
  std::string_view rest = input.substr(1);
  std::string request;
  while (!rest.empty()) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    const size_t n = std::min(rest.size(), single_bytes ? 1 : 1 + rng % kPieceBytesMax);
    const size_t searched = request.size();
    request.append(rest.substr(0, n));
    rest.remove_prefix(n);
    std::string method, target;
    int error = -1;
    // Only the new bytes are searched, as the server does; the whole buffer is checked once,
    // below (checking it on every piece would make the harness itself quadratic).
    if (!RequestHeadEnded(request, searched)) {
      if (request.size() >= HttpServer::kRequestBytesMax) break;  // 431
      FUZZ_CHECK(request.size() < HttpServer::kRequestBytesMax + kPieceBytesMax);
      continue;
    }
    FUZZ_CHECK(!RequestHeadEnded(std::string_view(request).substr(0, searched), 0));
    FUZZ_CHECK(ParseRequestHead(request, &method, &target, &error));
    std::string whole_method, whole_target;
    int whole_error = -1;
    FUZZ_CHECK(ParseRequestHead(input.substr(1), &whole_method, &whole_target, &whole_error));
    FUZZ_CHECK(whole_error == error);
    if (error != 0) {
      FUZZ_CHECK(error == 400);
      return;
    }
    FUZZ_CHECK(whole_method == method && whole_target == target);
    FUZZ_CHECK(!method.empty() && !target.empty() && target[0] == '/');
    FUZZ_CHECK((method + target).find_first_of(" \r\n") == std::string::npos);
    CheckResponse(method, target);
    CheckWholeRequest(request, method, target);
    return;
  }
  std::string method, target;
  int error = -1;
  FUZZ_CHECK(!RequestHeadEnded(request, 0));
  FUZZ_CHECK(!ParseRequestHead(request, &method, &target, &error));
}

// A head of many header lines, arriving a byte at a time.
std::string ManyHeaderLines(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\0GET /metrics HTTP/1.1\r\n", 25),
                             "X-Forwarded-For: 192.0.2.1\r\n", "\r\n", bytes);
}

// A long request line, arriving in pieces.
std::string LongTarget(size_t bytes) {
  return relay::fuzz::Repeat("\x07GET /metrics?", "a=1&", " HTTP/1.1\r\nHost: x\r\n\r\n", bytes);
}

}  // namespace
}  // namespace relay::metrics

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "http_request_head",
      .run = relay::metrics::FuzzHttpRequest,
      // The request buffer (at most kRequestBytesMax and a piece), the parts of the first line
      // and the response.
      .bounds = {.heap_peak_bytes = {16 << 10, 4},
                 .heap_allocated_bytes = {64 << 10, 16},
                 .allocations = {256, 0.5}},
      .scaled = {{.name = "many header lines, a byte at a time",
                  .make = relay::metrics::ManyHeaderLines,
                  .bytes_max = relay::metrics::HttpServer::kRequestBytesMax},
                 {.name = "long request line",
                  .make = relay::metrics::LongTarget,
                  .bytes_max = relay::metrics::HttpServer::kRequestBytesMax}},
  };
  return target;
}
