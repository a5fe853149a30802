#include "relay/server/unsubscribe_endpoint.h"

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "relay/base/log.h"

namespace relay::server {
namespace {

metrics::HttpResponse Text(int status, std::string body) {
  metrics::HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string HtmlEscaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// RFC 8058 §3.1: the body is the key/value pair "List-Unsubscribe=One-Click", sent as
// application/x-www-form-urlencoded or as a multipart/form-data field of that name.
bool IsOneClickBody(std::string_view body) {
  if (body.find("List-Unsubscribe=One-Click") != std::string_view::npos) return true;
  return body.find("name=\"List-Unsubscribe\"") != std::string_view::npos &&
         body.find("One-Click") != std::string_view::npos;
}

metrics::HttpResponse ConfirmationPage(const metrics::HttpRequest& request,
                                       const feedback::Unsubscription& who) {
  metrics::HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  const std::string path = HtmlEscaped(request.target.substr(0, request.target.find('?')));
  r.body = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>"
      "<body>\n<p>Stop mail from ",
      HtmlEscaped(who.tenant), " to ", HtmlEscaped(who.address),
      "?</p>\n<form method=\"post\" action=\"", path,
      "\">\n<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n"
      "<button type=\"submit\">Unsubscribe</button>\n</form>\n</body></html>\n");
  return r;
}

}  // namespace

metrics::HttpResponse ServeUnsubscribe(const metrics::HttpRequest& request,
                                       const UnsubscribeEndpoint& endpoint, int64_t now_unix_ms) {
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (!get && request.method != "POST") {
    metrics::HttpResponse r = Text(405, "method not allowed\n");
    r.allow = "GET, HEAD, POST";
    return r;
  }
  std::optional<feedback::Unsubscription> who = endpoint.links->FromPath(request.target);
  if (!who) return Text(404, "unknown link\n");
  if (get) return ConfirmationPage(request, *who);
  if (!IsOneClickBody(request.body)) {
    return Text(400, "a one-click unsubscribe posts List-Unsubscribe=One-Click (RFC 8058)\n");
  }
  if (endpoint.suppression == nullptr) {
    return Text(503, "the suppression list is off ([suppression] enabled = false)\n");
  }
  absl::StatusOr<std::optional<feedback::SuppressionEntry>> found =
      endpoint.suppression->Find(who->tenant, who->address);
  if (found.ok() && found->has_value()) {
    return Text(200, absl::StrCat(who->address, " is unsubscribed from ", who->tenant, "\n"));
  }
  feedback::SuppressionEntry entry;
  entry.tenant = who->tenant;
  entry.address = who->address;
  entry.reason = feedback::SuppressionReason::kUnsubscribe;
  entry.time_unix_ms = now_unix_ms;
  entry.detail = "one-click unsubscribe (RFC 8058)";
  if (absl::Status added = endpoint.suppression->Add(entry); !added.ok()) {
    LogWarning() << "unsubscribe: " << who->address << " of " << who->tenant
                 << " could not be recorded: " << added;
    return Text(503, "could not record the unsubscribe now; try again later\n");
  }
  LogInfo() << "unsubscribe: " << who->address << " from " << who->tenant << " (one-click)";
  if (endpoint.unsubscribed) endpoint.unsubscribed(*who);
  return Text(200, absl::StrCat(who->address, " is unsubscribed from ", who->tenant, "\n"));
}

}  // namespace relay::server
