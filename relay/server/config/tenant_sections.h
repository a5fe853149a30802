// [[tenants]] and [campaigns]: whose a submitted message is, which campaign it belongs to and how
// urgent it is (issue 16). All three are fixed at acceptance and stored with the message
// (queue::MessageAttributes).
//
//   [[tenants]]
//   name = "shop"                        # letters, digits, '-', '_', '.'; lower-cased
//   users = ["news@shop.example", "app"] # authenticated users whose mail is this tenant's
//   domains = ["shop.example"]           # and mail whose MAIL FROM domain is one of these
//   priority = "bulk"                    # its mail's class: "transactional", "normal", "bulk"
//   priority_max = "normal"              # the highest a message may ask for (X-Relay-Priority);
//                                        # default: `priority`, so a message can only go lower
//   weight = 1                           # its share of a busy site against other tenants
//
//   [campaigns]
//   header = "X-Relay-Campaign"          # the client names the campaign in this field (removed)
//   priority_header = "X-Relay-Priority" # or a message's class, overriding its tenant's (removed)
//
// Tenant names follow the campaigns' rules but hold no '.', so that none is mistaken for a
// sending domain (the tenant of mail of no named tenant), and are not "none" or "other" (metrics
// labels).
//
// A message's tenant is the one that lists its user, else the one that lists its sender's
// domain, else none: then the sending domain is its tenant, as it was before tenants had names,
// so the suppression lists, VERP tokens, unsubscribe links and event subscriptions keyed by
// sending domain keep working unchanged for a relay without [[tenants]]. A user or a domain
// belongs to one tenant at most. The campaign may also come as the MAIL parameter XCAMPAIGN=
// (relay/smtp/command.h), which the header overrides.
//
// Read once at load; the lookup (Find) is const and safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "queue/record_format.h"
#include "relay/server/config/toml_section.h"
#include "relay/smtp/command.h"

namespace relay::server::config {

struct Tenant {
  std::string name;
  std::vector<std::string> users;    // normalized as the users file does (domain lower-cased)
  std::vector<std::string> domains;  // lower-case
  queue::Priority priority = queue::Priority::kNormal;
  queue::Priority priority_max = queue::Priority::kNormal;
  uint32_t weight = 1;
};

// The class a message of `tenant` (null: no named tenant, whose mail is normal at most) gets when
// it asks for `asked`: at most the tenant's priority_max, so that a client cannot lift its own
// newsletter above other tenants' mail.
queue::Priority AllowedPriority(const Tenant* tenant, queue::Priority asked);

// Tenant and campaign names: 1 to kNameBytesMax of letters, digits, '-', '_', '.', ' ', '+',
// '@', ':' and '/' (what a campaign tool writes: "spring-2027/a"); never a control character
// (smtp::IsValidLabel, which the XCAMPAIGN parameter is held to as well).
inline constexpr size_t kNameBytesMax = smtp::kLabelBytesMax;
inline constexpr size_t kTenantsMax = 1000;
bool IsValidName(std::string_view name);

class TenantSettings {
 public:
  const std::vector<Tenant>& tenants() const { return tenants_; }
  // The tenant of mail from `user` ("" when not authenticated) with MAIL FROM domain
  // `sender_domain` (lower-case); null when no tenant names either.
  const Tenant* Find(std::string_view user, std::string_view sender_domain) const;
  // The tenant named `name`; null when none is.
  const Tenant* Named(std::string_view name) const;

  std::string campaign_header = "X-Relay-Campaign";
  std::string priority_header = "X-Relay-Priority";

 private:
  friend absl::StatusOr<TenantSettings> ParseTenants(const Section& root);
  std::vector<Tenant> tenants_;
  absl::flat_hash_map<std::string, size_t> by_user_;
  absl::flat_hash_map<std::string, size_t> by_domain_;
  absl::flat_hash_map<std::string, size_t> by_name_;
};

// The [[tenants]] array and the [campaigns] table of `root`.
absl::StatusOr<TenantSettings> ParseTenants(const Section& root);

// "transactional", "normal", "bulk" (any case, surrounding blanks ignored); nullopt otherwise.
std::optional<queue::Priority> PriorityNamed(std::string_view text);

}  // namespace relay::server::config
