#include "relay/server/config/feedback_sections.h"

#include <algorithm>
#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"
#include "relay/feedback/unsubscribe.h"

namespace relay::server::config {
namespace {

bool IsDomainName(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' ||
      d.find('.') == std::string_view::npos) {
    return false;
  }
  for (char c : d) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return d.find("..") == std::string_view::npos;
}

}  // namespace

absl::StatusOr<FeedbackSettings> ParseFeedback(const Section& root, const std::string& config_dir,
                                               const std::vector<std::string>& local_domains) {
  FeedbackSettings s;
  s.secret_path = "feedback.secret";
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table("feedback"));
  if (t) {
    RETURN_IF_ERROR(t->Known({"secret_file", "local_part", "suppress_complaints", "verp"}));
    RETURN_IF_ERROR(t->NonEmptyString("secret_file", &s.secret_path));
    RETURN_IF_ERROR(t->NonEmptyString("local_part", &s.local_part));
    RETURN_IF_ERROR(t->Bool("suppress_complaints", &s.suppress_complaints));
    ASSIGN_OR_RETURN(std::vector<Section> entries, t->Tables("verp"));
    for (const Section& e : entries) {
      RETURN_IF_ERROR(e.Known({"domain", "bounce_domain"}));
      feedback::VerpDomain d;
      for (std::string_view key : {"domain", "bounce_domain"}) {
        if (!e.Has(key)) return e.Error(key, "is required");
      }
      RETURN_IF_ERROR(e.NonEmptyString("domain", &d.domain));
      RETURN_IF_ERROR(e.NonEmptyString("bounce_domain", &d.bounce_domain));
      absl::AsciiStrToLower(&d.domain);
      absl::AsciiStrToLower(&d.bounce_domain);
      for (const auto& [key, value] :
           {std::pair{"domain", &d.domain}, std::pair{"bounce_domain", &d.bounce_domain}}) {
        if (!IsDomainName(*value)) return e.Error(key, "is not a domain name");
      }
      if (std::find(local_domains.begin(), local_domains.end(), d.bounce_domain) !=
          local_domains.end()) {
        return e.Error("bounce_domain",
                       "is one of [receive] domains: it needs a domain of its own");
      }
      s.verp.push_back(std::move(d));
    }
  }
  if (s.secret_path.front() != '/') {
    s.secret_path = (std::filesystem::path(config_dir) / s.secret_path).lexically_normal().string();
  }
  feedback::VerpOptions check;
  check.secrets = {"x"};
  check.local_part = s.local_part;
  check.domains = s.verp;
  if (absl::StatusOr<std::unique_ptr<const feedback::Verp>> v = feedback::Verp::Make(check);
      !v.ok()) {
    return t->TableError(std::string(v.status().message()));
  }
  return s;
}

absl::StatusOr<UnsubscribeSettings> ParseUnsubscribe(const Section& root) {
  UnsubscribeSettings s;
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table("unsubscribe"));
  if (!t) return s;
  RETURN_IF_ERROR(t->Known({"url", "listen", "bulk_users", "bulk_header"}));
  if (!t->Has("url")) return t->Error("url", "is required");
  RETURN_IF_ERROR(t->NonEmptyString("url", &s.url));
  RETURN_IF_ERROR(t->StringList("listen", &s.listen));
  RETURN_IF_ERROR(t->StringList("bulk_users", &s.bulk_users));
  for (std::string& u : s.bulk_users) absl::AsciiStrToLower(&u);
  RETURN_IF_ERROR(t->NonEmptyString("bulk_header", &s.bulk_header));
  for (char c : s.bulk_header) {
    // RFC 5322 §3.6.8: a field name is printable ASCII but ':'.
    if (c <= ' ' || c > '~' || c == ':') return t->Error("bulk_header", "is not a field name");
  }
  feedback::UnsubscribeOptions check;
  check.secrets = {"x"};
  check.base_url = s.url;
  if (auto u = feedback::Unsubscribe::Make(check, nullptr); !u.ok()) {
    return t->Error("url", std::string(u.status().message()));
  }
  return s;
}

}  // namespace relay::server::config
