// [feedback]: VERP return paths, so that bounces that come back later and complaints from
// feedback loops reach the relay on port 25 and are matched to their message and recipient
// (relay/feedback/verp.h, relay/feedback/report_parser.h).
//
//   [feedback]
//   secret_file = "feedback.secret"   # made by relayd when missing; one a line, the first signs
//   local_part = "bounces"            # bounces+TOKEN@bounce domain; bare: the feedback-loop
//   address suppress_complaints = true        # a complaint puts the recipient on the suppression
//   list
//   [[feedback.verp]]
//   domain = "example.com"            # the sending domain: its mail leaves with VERP return paths
//   bounce_domain = "bounce.example.com"  # its own; receives on port 25 ([receive] listen)
//
// Returned bounces join the suppression list in [suppression] bounce_categories, as bounces at
// delivery time do.
//
// [unsubscribe]: one-click unsubscribe (RFC 8058, relay/feedback/unsubscribe.h) for bulk mail.
//
//   [unsubscribe]
//   url = "https://unsubscribe.example.com"  # the links' origin; it must reach a listener
//   listen = ["0.0.0.0:443"]          # HTTPS with [tls] cert and key; plain HTTP only on
//                                     # loopback (a proxy in front terminates TLS)
//   bulk_users = ["news@example.com"] # every message of these users is bulk
//   bulk_header = "X-Relay-Bulk"      # or per message: this header (removed), any value but "no"
//
// A bulk message with one recipient gets List-Unsubscribe (the HTTPS link, and a mailto at the
// tenant's bounce domain when it has one) and List-Unsubscribe-Post, covered by its DKIM
// signature; a message the client gave a List-Unsubscribe of its own keeps it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/feedback/verp.h"
#include "relay/server/config/toml_section.h"

namespace relay::server::config {

struct FeedbackSettings {
  std::string secret_path;  // absolute
  std::string local_part = "bounces";
  bool suppress_complaints = true;
  std::vector<feedback::VerpDomain> verp;
  bool enabled() const { return !verp.empty(); }
};

struct UnsubscribeSettings {
  std::string url;  // "": off
  std::vector<std::string> listen;
  std::vector<std::string> bulk_users;  // lower-case
  std::string bulk_header = "X-Relay-Bulk";
  bool enabled() const { return !url.empty(); }
};

// The [unsubscribe] table of `root`.
absl::StatusOr<UnsubscribeSettings> ParseUnsubscribe(const Section& root);

// The [feedback] table of `root`; a relative secret_file is under `config_dir`. `local_domains`
// are port 25's own domains ([receive] domains), which no bounce domain may be.
absl::StatusOr<FeedbackSettings> ParseFeedback(const Section& root, const std::string& config_dir,
                                               const std::vector<std::string>& local_domains);

}  // namespace relay::server::config
