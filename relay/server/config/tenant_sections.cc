#include "relay/server/config/tenant_sections.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"
#include "relay/server/users.h"
#include "relay/smtp/command.h"

namespace relay::server::config {
namespace {

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A field name as RFC 5322 §3.6.8 has it: printable ASCII but the colon.
bool IsFieldName(std::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  for (char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

absl::Status ParseTenant(const Section& e, Tenant* t) {
  RETURN_IF_ERROR(e.Known({"name", "users", "domains", "priority", "priority_max", "weight"}));
  if (!e.Has("name")) return e.Error("name", "is required");
  RETURN_IF_ERROR(e.NonEmptyString("name", &t->name));
  absl::AsciiStrToLower(&t->name);
  if (!IsValidName(t->name) || t->name.find('.') != std::string::npos) {
    return e.Error("name", absl::StrCat("must be 1 to ", kNameBytesMax,
                                        " letters, digits and -_+@:/ characters (no dot: a "
                                        "name with one reads as a sending domain)"));
  }
  if (t->name == "none" || t->name == "other") {
    return e.Error("name", "\"none\" and \"other\" are metrics labels of their own");
  }
  RETURN_IF_ERROR(e.StringList("users", &t->users));
  for (std::string& u : t->users) u = NormalizeUserName(Absl(u));
  RETURN_IF_ERROR(e.StringList("domains", &t->domains));
  for (std::string& d : t->domains) absl::AsciiStrToLower(&d);
  if (t->users.empty() && t->domains.empty()) {
    return e.Error("users", "a tenant needs users or domains (or both)");
  }
  for (const auto& [key, out] :
       {std::pair{"priority", &t->priority}, std::pair{"priority_max", &t->priority_max}}) {
    if (key == std::string_view("priority_max")) t->priority_max = t->priority;
    if (!e.Has(key)) continue;
    std::string text;
    RETURN_IF_ERROR(e.String(key, &text));
    std::optional<queue::Priority> named = PriorityNamed(text);
    if (!named) return e.Error(key, "must be \"transactional\", \"normal\" or \"bulk\"");
    *out = *named;
  }
  if (queue::PriorityRank(t->priority_max) < queue::PriorityRank(t->priority)) {
    return e.Error("priority_max", "is below priority");
  }
  return e.Int("weight", &t->weight, 1, 1000);
}

}  // namespace

bool IsValidName(std::string_view name) { return smtp::IsValidLabel(name); }

queue::Priority AllowedPriority(const Tenant* tenant, queue::Priority asked) {
  const queue::Priority max = tenant != nullptr ? tenant->priority_max : queue::Priority::kNormal;
  return queue::PriorityRank(asked) > queue::PriorityRank(max) ? max : asked;
}

std::optional<queue::Priority> PriorityNamed(std::string_view text) {
  absl::string_view t = absl::StripAsciiWhitespace(Absl(text));
  if (absl::EqualsIgnoreCase(t, "transactional")) return queue::Priority::kTransactional;
  if (absl::EqualsIgnoreCase(t, "normal")) return queue::Priority::kNormal;
  if (absl::EqualsIgnoreCase(t, "bulk")) return queue::Priority::kBulk;
  return std::nullopt;
}

const Tenant* TenantSettings::Find(std::string_view user, std::string_view sender_domain) const {
  if (tenants_.empty()) return nullptr;
  if (!user.empty()) {
    auto it = by_user_.find(NormalizeUserName(Absl(user)));
    if (it != by_user_.end()) return &tenants_[it->second];
  }
  auto it = by_domain_.find(Absl(sender_domain));
  return it == by_domain_.end() ? nullptr : &tenants_[it->second];
}

const Tenant* TenantSettings::Named(std::string_view name) const {
  auto it = by_name_.find(Absl(name));
  return it == by_name_.end() ? nullptr : &tenants_[it->second];
}

absl::StatusOr<TenantSettings> ParseTenants(const Section& root) {
  TenantSettings s;
  ASSIGN_OR_RETURN(std::vector<Section> entries, root.Tables("tenants"));
  if (entries.size() > kTenantsMax) {
    return entries[kTenantsMax].Error("name", absl::StrCat("more than ", kTenantsMax, " tenants"));
  }
  for (const Section& e : entries) {
    Tenant t;
    RETURN_IF_ERROR(ParseTenant(e, &t));
    const size_t index = s.tenants_.size();
    if (!s.by_name_.emplace(t.name, index).second) {
      return e.Error("name", absl::StrCat("\"", t.name, "\" names another tenant too"));
    }
    for (const std::string& u : t.users) {
      if (!s.by_user_.emplace(u, index).second) {
        return e.Error("users", absl::StrCat("user \"", u, "\" belongs to another tenant"));
      }
    }
    for (const std::string& d : t.domains) {
      if (!s.by_domain_.emplace(d, index).second) {
        return e.Error("domains", absl::StrCat("domain \"", d, "\" belongs to another tenant"));
      }
    }
    s.tenants_.push_back(std::move(t));
  }
  ASSIGN_OR_RETURN(std::optional<Section> c, root.Table("campaigns"));
  if (c) {
    RETURN_IF_ERROR(c->Known({"header", "priority_header"}));
    RETURN_IF_ERROR(c->NonEmptyString("header", &s.campaign_header));
    RETURN_IF_ERROR(c->NonEmptyString("priority_header", &s.priority_header));
    for (const auto& [key, value] : {std::pair{"header", &s.campaign_header},
                                     std::pair{"priority_header", &s.priority_header}}) {
      if (!IsFieldName(*value)) return c->Error(key, "is not a header field name");
    }
    if (absl::EqualsIgnoreCase(s.campaign_header, s.priority_header)) {
      return c->Error("priority_header", "must differ from header");
    }
  }
  return s;
}

}  // namespace relay::server::config
