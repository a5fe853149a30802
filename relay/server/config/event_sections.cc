#include "relay/server/config/event_sections.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"
#include "relay/delivery/delivery_log.h"
#include "relay/events/https_post.h"

namespace relay::server::config {
namespace {

constexpr size_t kSecretBytesMin = 16;

std::string Under(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return (std::filesystem::path(dir) / path).lexically_normal().string();
}

bool IsEventName(std::string_view name) {
  for (auto e : {delivery::DeliveryEvent::kReceived, delivery::DeliveryEvent::kDelivered,
                 delivery::DeliveryEvent::kDeferred, delivery::DeliveryEvent::kBounced,
                 delivery::DeliveryEvent::kExpired, delivery::DeliveryEvent::kDsnSent,
                 delivery::DeliveryEvent::kDeleted, delivery::DeliveryEvent::kSuppressed,
                 delivery::DeliveryEvent::kComplained, delivery::DeliveryEvent::kUnsubscribed}) {
    if (delivery::DeliveryEventName(e) == name) return true;
  }
  return false;
}

absl::Status ReadSecret(const Section& t, const std::string& config_dir, std::string* secret) {
  if (t.Has("secret") == t.Has("secret_file")) {
    return t.TableError("needs exactly one of secret and secret_file");
  }
  if (t.Has("secret")) {
    RETURN_IF_ERROR(t.NonEmptyString("secret", secret));
  } else {
    std::string path;
    RETURN_IF_ERROR(t.NonEmptyString("secret_file", &path));
    path = Under(config_dir, path);
    std::ifstream in(path);
    if (!in) return t.Error("secret_file", absl::StrCat("cannot read ", path));
    std::stringstream text;
    text << in.rdbuf();
    *secret = std::string(absl::StripTrailingAsciiWhitespace(text.str()));
  }
  if (secret->size() < kSecretBytesMin) {
    return t.Error(t.Has("secret") ? "secret" : "secret_file",
                   absl::StrCat("a secret of at least ", kSecretBytesMin, " bytes is needed"));
  }
  return absl::OkStatus();
}

absl::StatusOr<events::WebhookOptions> ParseWebhook(const Section& t,
                                                    const std::string& config_dir) {
  RETURN_IF_ERROR(t.Known({"name", "url", "tenants", "events", "secret", "secret_file", "ca_file",
                           "batch_events_max", "batch_bytes_max", "batch_wait_ms", "timeout_ms",
                           "retry_initial_ms", "retry_ms_max"}));
  events::WebhookOptions w;
  for (std::string_view key : {"name", "url", "tenants"}) {
    if (!t.Has(key)) return t.Error(key, "is required");
  }
  RETURN_IF_ERROR(t.NonEmptyString("name", &w.name));
  for (char c : w.name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' && c != '-') {
      return t.Error("name", "may hold only a-z, 0-9, _ and -");
    }
  }
  if (w.name.size() > 64) return t.Error("name", "is longer than 64 characters");
  RETURN_IF_ERROR(t.NonEmptyString("url", &w.url));
  if (absl::StatusOr<events::Url> url = events::ParseUrl(w.url); !url.ok()) {
    return t.Error("url", std::string(url.status().message()));
  }
  RETURN_IF_ERROR(t.StringList("tenants", &w.tenants));
  if (w.tenants.empty()) return t.Error("tenants", "names no tenant (\"*\" for all)");
  for (std::string& tenant : w.tenants) tenant = absl::AsciiStrToLower(tenant);
  RETURN_IF_ERROR(t.StringList("events", &w.events));
  for (size_t i = 0; i < w.events.size(); ++i) {
    if (!IsEventName(w.events[i])) {
      return t.ItemError("events", i, absl::StrCat("\"", w.events[i], "\" is not an event"));
    }
  }
  RETURN_IF_ERROR(ReadSecret(t, config_dir, &w.secret));
  RETURN_IF_ERROR(t.String("ca_file", &w.ca_file));
  w.ca_file = Under(config_dir, w.ca_file);
  RETURN_IF_ERROR(t.Int("batch_events_max", &w.batch_events_max, 1, 100000));
  RETURN_IF_ERROR(t.Int("batch_bytes_max", &w.batch_bytes_max, 4096, int64_t{64} << 20));
  RETURN_IF_ERROR(t.Int("batch_wait_ms", &w.batch_wait_ms, 0, 600000));
  RETURN_IF_ERROR(t.Int("timeout_ms", &w.timeout_ms, 100, 600000));
  RETURN_IF_ERROR(t.Int("retry_initial_ms", &w.retry_initial_ms, 10, 3600000));
  RETURN_IF_ERROR(t.Int("retry_ms_max", &w.retry_ms_max, 10, 86400000));
  if (w.retry_ms_max < w.retry_initial_ms) {
    return t.Error("retry_ms_max", "is less than retry_initial_ms");
  }
  return w;
}

}  // namespace

absl::StatusOr<EventsSettings> ParseEvents(const Section& root, const std::string& config_dir) {
  EventsSettings s;
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table("events"));
  if (!t) return s;
  RETURN_IF_ERROR(
      t->Known({"dir", "file_bytes_max", "journal_bytes_max", "sync", "sync_ms", "webhook"}));
  bool with_queue = false;
  RETURN_IF_ERROR(t->Enum("sync", &with_queue, {{"interval", false}, {"with-queue", true}}));
  RETURN_IF_ERROR(t->Int("sync_ms", &s.sync_interval_ms, 1, 60000));
  if (with_queue) {
    if (t->Has("sync_ms")) return t->Error("sync_ms", "is for sync = \"interval\" only");
    s.sync_interval_ms = 0;
  }
  RETURN_IF_ERROR(t->String("dir", &s.dir));
  RETURN_IF_ERROR(t->Int("file_bytes_max", &s.file_bytes_max, 65536, int64_t{1} << 30));
  RETURN_IF_ERROR(t->Int("journal_bytes_max", &s.journal_bytes_max, 1 << 20, int64_t{1} << 50));
  ASSIGN_OR_RETURN(std::vector<Section> entries, t->Tables("webhook"));
  absl::flat_hash_set<std::string> names;
  for (const Section& entry : entries) {
    ASSIGN_OR_RETURN(events::WebhookOptions w, ParseWebhook(entry, config_dir));
    if (!names.insert(w.name).second) {
      return entry.Error("name", absl::StrCat("\"", w.name, "\" names another webhook too"));
    }
    s.webhooks.push_back(std::move(w));
  }
  return s;
}

}  // namespace relay::server::config
