// Which submitted messages are bulk, for one-click unsubscribe ([unsubscribe],
// relay/feedback/unsubscribe.h): every message of a user named in bulk_users, and any message
// that carries the marker field (bulk_header, "X-Relay-Bulk" by default) with a value other than
// "no". The marker is the client's word to the relay, not the receiver's business: it is removed
// before the message is signed and queued.
//
// Pure computation over the header section, linear in it; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace relay::server {

struct BulkMarks {
  bool marked = false;                        // the marker field says bulk
  bool has_list_unsubscribe = false;          // the client wrote its own List-Unsubscribe
  std::optional<std::string> without_marker;  // the message less every marker field, if it had one
};

BulkMarks ReadBulkMarks(std::string_view message, std::string_view marker_field);

}  // namespace relay::server
