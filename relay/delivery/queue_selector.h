// Which queued mail an operator's request is about (relayctl queue retry|bounce|delete with
// --tenant, --campaign, --sender, --domain or --site; issue 16): every condition given must hold.
//
// Tenant, campaign and sender select whole messages; a domain selects the pending recipients at
// that domain, and a site those at the domains whose MX answer led to it (an MX set, or the
// shaping rule it falls under: "google" takes in every Google Workspace domain), so a message
// with recipients at several domains is bounced only for those named, and deleted only when it
// has no pending recipient elsewhere. A retry is of the whole message (its other recipients are
// attempted early too, which costs nothing but an attempt).
//
// Only the running relay knows a domain's site: the caller gives `at_site`, its memory of the MX
// answers of this run (a domain not looked up since the start is not matched by a site).
//
// Pure data and matching; any thread. Parsing is linear in the request.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "queue/queue_index.h"

namespace relay::delivery {

struct QueueSelector {
  std::string tenant;    // queue::TenantOf, lower-case
  std::string campaign;  // exact
  std::string sender;    // an address (case-insensitive) or "@domain"
  std::string domain;    // a recipient domain, lower-case
  std::string site;      // an MX set or a shaping rule's name, lower-case
  // Whether mail to (lower-case) `domain` goes to `site`; unset: a site selects nothing.
  std::function<bool(std::string_view domain, std::string_view site)> at_site;

  bool empty() const {
    return tenant.empty() && campaign.empty() && sender.empty() && domain.empty() && site.empty();
  }
  // Whether the message-level conditions hold for `info`.
  bool MatchesMessage(const queue::MessageInfo& info) const;
  // Whether recipient `index` of `info` is selected: pending, at `domain` and at `site` when they
  // are given.
  bool MatchesRecipient(const queue::MessageInfo& info, uint32_t index) const;
  // "tenant shop, domain gmail.com": what the answer names.
  std::string Describe() const;
};

// Reads "--tenant T --campaign C --sender S --domain D --site S" (any order, at least one, each at
// most once; each value xtext-encoded, RFC 3461 §4, so that it holds no space); an error names the
// word it cannot take.
absl::StatusOr<QueueSelector> ParseQueueSelector(const std::vector<std::string>& words);

// A request acts on at most this many messages per shard; the answer says when more remain, so
// that one request never holds a shard's thread for long.
inline constexpr size_t kSelectedMessagesMax = 20000;

}  // namespace relay::delivery
