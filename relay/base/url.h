// URLs the relay sends requests to (webhooks, TLS reports): "https://host[:port][/path]", or
// http:// to a loopback address. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace relay {

struct Url {
  bool tls = true;
  std::string host;  // without brackets for an IPv6 literal
  uint16_t port = 443;
  std::string path = "/";
};
// "https://host[:port][/path]" (or http:// to a loopback address); an error names the problem.
// Linear in `text`; its host cannot end a header line (letters, digits, '.', '-', '_', ':').
absl::StatusOr<Url> ParseUrl(std::string_view text);

// Whether `host` is an IPv4 address in 127/8 or the IPv6 loopback, as text.
bool IsLoopbackHost(const std::string& host);

}  // namespace relay
