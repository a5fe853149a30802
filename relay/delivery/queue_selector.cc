#include "relay/delivery/queue_selector.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "relay/smtp/command.h"

namespace relay::delivery {
namespace {

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The domain of `address` (after its last '@'), "" when it has none.
std::string_view DomainPart(std::string_view address) {
  const size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

}  // namespace

bool QueueSelector::MatchesMessage(const queue::MessageInfo& info) const {
  if (!tenant.empty() && queue::TenantOf(info.attributes, info.sender) != tenant) return false;
  if (!campaign.empty() && info.attributes.campaign != campaign) return false;
  if (!sender.empty()) {
    if (sender[0] == '@') {
      if (!absl::EqualsIgnoreCase(Absl(DomainPart(info.sender)), Absl(sender).substr(1))) {
        return false;
      }
    } else if (!absl::EqualsIgnoreCase(Absl(info.sender), sender)) {
      return false;
    }
  }
  return true;
}

bool QueueSelector::MatchesRecipient(const queue::MessageInfo& info, uint32_t index) const {
  const queue::RecipientState& r = info.recipients[index];
  if (r.status != queue::RecipientStatus::kPending) return false;
  if (!domain.empty() && !absl::EqualsIgnoreCase(Absl(DomainPart(r.address)), domain)) {
    return false;
  }
  if (site.empty()) return true;
  if (!at_site) return false;
  const std::string lower = absl::AsciiStrToLower(Absl(DomainPart(r.address)));
  return at_site(lower, site);
}

std::string QueueSelector::Describe() const {
  std::vector<std::string> parts;
  for (const auto& [name, value] :
       {std::pair{"tenant", &tenant}, std::pair{"campaign", &campaign},
        std::pair{"sender", &sender}, std::pair{"domain", &domain}, std::pair{"site", &site}}) {
    if (!value->empty()) parts.push_back(absl::StrCat(name, " ", *value));
  }
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<QueueSelector> ParseQueueSelector(const std::vector<std::string>& words) {
  QueueSelector s;
  if (words.empty()) return absl::InvalidArgumentError("a selector is required");
  for (size_t i = 0; i < words.size(); i += 2) {
    std::string* field = words[i] == "--tenant"     ? &s.tenant
                         : words[i] == "--campaign" ? &s.campaign
                         : words[i] == "--sender"   ? &s.sender
                         : words[i] == "--domain"   ? &s.domain
                         : words[i] == "--site"     ? &s.site
                                                    : nullptr;
    if (field == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown ", words[i]));
    if (i + 1 >= words.size() || words[i + 1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(words[i], " needs a value"));
    }
    if (!field->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(words[i], " given twice"));
    }
    // Values are xtext on the control socket (RFC 3461 §4): "news+20letter" for "news letter".
    if (!smtp::DecodeXtext(words[i + 1], field) || field->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(words[i], ": not xtext: ", words[i + 1]));
    }
  }
  absl::AsciiStrToLower(&s.tenant);
  absl::AsciiStrToLower(&s.domain);
  absl::AsciiStrToLower(&s.site);
  return s;
}

}  // namespace relay::delivery
