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

// The [feedback] table of `root`; a relative secret_file is under `config_dir`. `local_domains`
// are port 25's own domains ([receive] domains), which no bounce domain may be.
absl::StatusOr<FeedbackSettings> ParseFeedback(const Section& root, const std::string& config_dir,
                                               const std::vector<std::string>& local_domains);

}  // namespace relay::server::config
