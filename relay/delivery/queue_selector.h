// Which queued mail an operator's request is about (relayctl queue retry|bounce|delete with
// --tenant, --campaign, --sender or --domain; issue 16): every condition given must hold.
//
// Tenant, campaign and sender select whole messages; a domain selects the pending recipients at
// that domain, so a message with recipients at several domains is bounced only for the one
// named, and deleted only when it has no pending recipient elsewhere. A retry is of the whole
// message (its other recipients are attempted early too, which costs nothing but an attempt).
//
// Pure data and matching; any thread. Parsing is linear in the request.
#pragma once

#include <cstdint>
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

  bool empty() const {
    return tenant.empty() && campaign.empty() && sender.empty() && domain.empty();
  }
  // Whether the message-level conditions hold for `info`.
  bool MatchesMessage(const queue::MessageInfo& info) const;
  // Whether recipient `index` of `info` is selected: pending, and at `domain` when one is given.
  bool MatchesRecipient(const queue::MessageInfo& info, uint32_t index) const;
  // "tenant shop, domain gmail.com": what the answer names.
  std::string Describe() const;
};

// Reads "--tenant T --campaign C --sender S --domain D" (any order, at least one, each at most
// once; each value xtext-encoded, RFC 3461 §4, so that it holds no space); an error names the
// word it cannot take.
absl::StatusOr<QueueSelector> ParseQueueSelector(const std::vector<std::string>& words);

// A request acts on at most this many messages per shard; the answer says when more remain, so
// that one request never holds a shard's thread for long.
inline constexpr size_t kSelectedMessagesMax = 20000;

}  // namespace relay::delivery
