#include "relay/base/url.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "relay/base/sv.h"

namespace relay {

bool IsLoopbackHost(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

absl::StatusOr<Url> ParseUrl(std::string_view text) {
  Url url;
  absl::string_view rest = Sv(text);
  if (absl::ConsumePrefix(&rest, "https://")) {
    url.tls = true;
    url.port = 443;
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    url.tls = false;
    url.port = 80;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("\"", Sv(text), "\" is not an https:// URL"));
  }
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) url.path = std::string(rest.substr(slash));
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError("a URL here carries no user name or password");
  }
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) return absl::InvalidArgumentError("unclosed [ in URL");
    url.host = std::string(authority.substr(0, close));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("text after ] in URL");
    }
    port_text = after;
  } else {
    size_t colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) return absl::InvalidArgumentError("URL without a host");
  // The host goes into a request's Host field and the TLS name: a name or an address literal,
  // nothing that could end a header line.
  for (char c : url.host) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' &&
        c != '_') {
      return absl::InvalidArgumentError("a URL's host may hold letters, digits, '.', '-' and ':'");
    }
  }
  if (!port_text.empty()) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port \"", port_text, "\" in URL"));
    }
    url.port = static_cast<uint16_t>(port);
  }
  for (char c : url.path) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError("white space or a control character in the URL's path");
    }
  }
  if (!url.tls && !IsLoopbackHost(url.host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("http:// only to a loopback address (got ", url.host,
                     "); use https:// so the endpoint's certificate is checked"));
  }
  return url;
}

}  // namespace relay
