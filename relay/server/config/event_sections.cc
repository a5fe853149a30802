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

// The keys every kind of sink has (name, tenants, events, the batch bounds, the retry): read here,
// listed in each kind's Known().
absl::Status ParseSinkOptions(const Section& t, events::SinkOptions* o) {
  for (std::string_view key : {"name", "tenants"}) {
    if (!t.Has(key)) return t.Error(key, "is required");
  }
  RETURN_IF_ERROR(t.NonEmptyString("name", &o->name));
  for (char c : o->name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_' && c != '-') {
      return t.Error("name", "may hold only a-z, 0-9, _ and -");
    }
  }
  if (o->name.size() > 64) return t.Error("name", "is longer than 64 characters");
  RETURN_IF_ERROR(t.StringList("tenants", &o->tenants));
  if (o->tenants.empty()) return t.Error("tenants", "names no tenant (\"*\" for all)");
  for (std::string& tenant : o->tenants) tenant = absl::AsciiStrToLower(tenant);
  RETURN_IF_ERROR(t.StringList("events", &o->events));
  for (size_t i = 0; i < o->events.size(); ++i) {
    if (!IsEventName(o->events[i])) {
      return t.ItemError("events", i, absl::StrCat("\"", o->events[i], "\" is not an event"));
    }
  }
  RETURN_IF_ERROR(t.Int("batch_events_max", &o->batch_events_max, 1, 100000));
  RETURN_IF_ERROR(t.Int("batch_bytes_max", &o->batch_bytes_max, 4096, int64_t{64} << 20));
  RETURN_IF_ERROR(t.Int("batch_wait_ms", &o->batch_wait_ms, 0, 600000));
  RETURN_IF_ERROR(t.Int("retry_initial_ms", &o->retry_initial_ms, 10, 3600000));
  RETURN_IF_ERROR(t.Int("retry_ms_max", &o->retry_ms_max, 10, 86400000));
  if (o->retry_ms_max < o->retry_initial_ms) {
    return t.Error("retry_ms_max", "is less than retry_initial_ms");
  }
  return absl::OkStatus();
}

absl::StatusOr<events::WebhookOptions> ParseWebhook(const Section& t,
                                                    const std::string& config_dir) {
  RETURN_IF_ERROR(t.Known({"name", "url", "tenants", "events", "secret", "secret_file", "ca_file",
                           "batch_events_max", "batch_bytes_max", "batch_wait_ms", "timeout_ms",
                           "retry_initial_ms", "retry_ms_max"}));
  events::WebhookOptions w;
  RETURN_IF_ERROR(ParseSinkOptions(t, &w));
  if (!t.Has("url")) return t.Error("url", "is required");
  RETURN_IF_ERROR(t.NonEmptyString("url", &w.url));
  if (absl::StatusOr<events::Url> url = events::ParseUrl(w.url); !url.ok()) {
    return t.Error("url", std::string(url.status().message()));
  }
  RETURN_IF_ERROR(ReadSecret(t, config_dir, &w.secret));
  RETURN_IF_ERROR(t.String("ca_file", &w.ca_file));
  w.ca_file = Under(config_dir, w.ca_file);
  RETURN_IF_ERROR(t.Int("timeout_ms", &w.timeout_ms, 100, 600000));
  return w;
}

// An exchange name RabbitMQ takes: letters, digits, '-', '_', '.' and ':', up to 255 bytes.
bool IsExchangeName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  }
  return true;
}

absl::StatusOr<events::AmqpOptions> ParseAmqp(const Section& t, const std::string& config_dir) {
  RETURN_IF_ERROR(
      t.Known({"name", "url", "tenants", "events", "password_file", "exchange", "exchange_type",
               "declare_exchange", "batch_events_max", "batch_bytes_max", "batch_wait_ms",
               "timeout_ms", "heartbeat_s", "retry_initial_ms", "retry_ms_max"}));
  events::AmqpOptions a;
  RETURN_IF_ERROR(ParseSinkOptions(t, &a));
  if (!t.Has("url")) return t.Error("url", "is required");
  RETURN_IF_ERROR(t.NonEmptyString("url", &a.url));
  absl::StatusOr<events::AmqpUrl> url = events::ParseAmqpUrl(a.url);
  if (!url.ok()) return t.Error("url", std::string(url.status().message()));
  if (t.Has("password_file")) {
    // The config is kept in git; the password need not be.
    if (url->has_password) {
      return t.Error("password_file", "and a password in url: give one of them");
    }
    std::string path;
    RETURN_IF_ERROR(t.NonEmptyString("password_file", &path));
    path = Under(config_dir, path);
    std::ifstream in(path);
    if (!in) return t.Error("password_file", absl::StrCat("cannot read ", path));
    std::stringstream text;
    text << in.rdbuf();
    a.password = std::string(absl::StripTrailingAsciiWhitespace(text.str()));
    if (a.password.empty()) return t.Error("password_file", absl::StrCat(path, " is empty"));
  }
  RETURN_IF_ERROR(t.String("exchange", &a.exchange));
  if (!IsExchangeName(a.exchange)) {
    return t.Error("exchange", "may hold only letters, digits, -, _, . and : (1 to 255 of them)");
  }
  RETURN_IF_ERROR(t.Enum(
      "exchange_type", &a.exchange_type,
      {{"topic", "topic"}, {"direct", "direct"}, {"fanout", "fanout"}, {"headers", "headers"}}));
  RETURN_IF_ERROR(t.Bool("declare_exchange", &a.declare_exchange));
  if (a.declare_exchange && a.exchange.rfind("amq.", 0) == 0) {
    return t.Error("exchange",
                   "amq.* names are the broker's own: set declare_exchange = false "
                   "to publish to one");
  }
  RETURN_IF_ERROR(t.Int("timeout_ms", &a.timeout_ms, 100, 600000));
  RETURN_IF_ERROR(t.Int("heartbeat_s", &a.heartbeat_s, 0, 3600));
  return a;
}

}  // namespace

absl::StatusOr<EventsSettings> ParseEvents(const Section& root, const std::string& config_dir) {
  EventsSettings s;
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table("events"));
  if (!t) return s;
  RETURN_IF_ERROR(t->Known(
      {"dir", "file_bytes_max", "journal_bytes_max", "sync", "sync_ms", "webhook", "amqp"}));
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
  // Names are unique across kinds: each names a cursor file and a metrics label.
  absl::flat_hash_set<std::string> names;
  ASSIGN_OR_RETURN(std::vector<Section> webhooks, t->Tables("webhook"));
  for (const Section& entry : webhooks) {
    ASSIGN_OR_RETURN(events::WebhookOptions w, ParseWebhook(entry, config_dir));
    if (!names.insert(w.name).second) {
      return entry.Error("name", absl::StrCat("\"", w.name, "\" names another sink too"));
    }
    s.webhooks.push_back(std::move(w));
  }
  ASSIGN_OR_RETURN(std::vector<Section> exchanges, t->Tables("amqp"));
  for (const Section& entry : exchanges) {
    ASSIGN_OR_RETURN(events::AmqpOptions a, ParseAmqp(entry, config_dir));
    if (!names.insert(a.name).second) {
      return entry.Error("name", absl::StrCat("\"", a.name, "\" names another sink too"));
    }
    s.amqp.push_back(std::move(a));
  }
  return s;
}

}  // namespace relay::server::config
