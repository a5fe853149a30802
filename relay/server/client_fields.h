// The header fields a submitting client writes for the relay, not for the receiver: the bulk
// marker ([unsubscribe] bulk_header, "X-Relay-Bulk"), the campaign and the priority class
// ([campaigns] header and priority_header, "X-Relay-Campaign" and "X-Relay-Priority"). They are
// the client's word to the relay: each is read and removed before the message is signed and
// queued, so the receiver never sees them.
//
// Pure computation over the header section, linear in it (the names are a handful); any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relay::server {

// A value longer than this is cut here (RFC 5322 §2.1.1: a line is at most 998 characters).
inline constexpr size_t kClientFieldValueBytesMax = 1000;

struct ClientFields {
  // Parallel to the names asked for: the value of the last field of that name, unfolded, blanks
  // around it removed; nullopt when the message has none.
  std::vector<std::optional<std::string>> values;
  bool has_list_unsubscribe = false;  // the client wrote its own List-Unsubscribe
  // The message has `TLS-Required: No` (RFC 8689 §5): its sender lets the destination's TLS
  // policies go. The field stays in the message (it is for every hop).
  bool tls_required_no = false;
  // The message less every field of the names asked for, if it had one.
  std::optional<std::string> without_fields;
};

// Reads and removes the fields named `names` (case-insensitive) from the header section of
// `message`. An empty name asks for nothing.
ClientFields ReadClientFields(std::string_view message, const std::vector<std::string_view>& names);

// Whether a bulk marker's value says bulk: any value but "no".
bool SaysBulk(std::string_view value);

}  // namespace relay::server
