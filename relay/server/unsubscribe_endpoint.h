// The one-click unsubscribe endpoint (RFC 8058) behind the links of relay/feedback/unsubscribe.h,
// served by an HttpServer (relay/metrics/http_server.h) of its own, over HTTPS.
//
//   POST <link> with a body holding List-Unsubscribe=One-Click (RFC 8058 §3.1, form-urlencoded
//        or multipart/form-data): the address joins the tenant's suppression list (reason
//        "unsubscribe", committed before the answer) and an "unsubscribed" event is recorded;
//        200 again for an address already on the list, without a second event.
//   GET or HEAD <link>: a page with a button that sends that POST. A GET unsubscribes nobody:
//        link scanners and previews fetch every URL of a message (RFC 8058 §1).
//   Anything else: 404 for a link that does not verify (forged, another secret), 400 for a POST
//        without the one-click body, 405 for another method.
//
// Runs on the HTTP server's thread; the suppression list is thread-safe, and `unsubscribed`
// hands the event to a shard.
#pragma once

#include <cstdint>
#include <functional>

#include "relay/feedback/suppression_list.h"
#include "relay/feedback/unsubscribe.h"
#include "relay/metrics/http_server.h"

namespace relay::server {

struct UnsubscribeEndpoint {
  const feedback::Unsubscribe* links = nullptr;
  feedback::SuppressionList* suppression = nullptr;  // null: 503, nothing can be recorded
  std::function<void(const feedback::Unsubscription&)> unsubscribed;
};

metrics::HttpResponse ServeUnsubscribe(const metrics::HttpRequest& request,
                                       const UnsubscribeEndpoint& endpoint, int64_t now_unix_ms);

}  // namespace relay::server
