#include "relay/server/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "relay/base/status_macros.h"
#include "relay/io/socket.h"
#include "relay/metrics/http_server.h"

namespace relay::server {
namespace {

std::string Where(const Config& c, const toml::node& node) {
  const toml::source_region& src = node.source();
  return absl::StrCat(c.path, ":", src.begin.line);
}

std::string Resolve(const Config& c, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(c.dir) / p).lexically_normal().string();
}

// Reads an optional key into `out`, checking its type and range.
template <typename T>
absl::Status ReadInt(const Config& c, const toml::table& t, const char* table_name,
                     const char* key, T* out, int64_t min, int64_t max) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  // value_exact: toml++ 3.3 converts a float to an integer by a cast that is undefined out of
  // range (1e77); an integer setting is written as one.
  std::optional<int64_t> v = node->value_exact<int64_t>();
  if (!v) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(c, *node), ": ", table_name, key, " must be an integer"));
  }
  if (*v < min || *v > max) {
    return absl::InvalidArgumentError(absl::StrCat(Where(c, *node), ": ", table_name, key,
                                                   " must be between ", min, " and ", max,
                                                   " (got ", *v, ")"));
  }
  *out = static_cast<T>(*v);
  return absl::OkStatus();
}

absl::Status ReadString(const Config& c, const toml::table& t, const char* table_name,
                        const char* key, std::string* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<std::string> v = node->value<std::string>();
  if (!v) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(c, *node), ": ", table_name, key, " must be a string"));
  }
  *out = *v;
  return absl::OkStatus();
}

absl::Status ReadBool(const Config& c, const toml::table& t, const char* table_name,
                      const char* key, bool* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<bool> v = node->value<bool>();
  if (!v) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(c, *node), ": ", table_name, key, " must be true or false"));
  }
  *out = *v;
  return absl::OkStatus();
}

absl::Status ReadStringList(const Config& c, const toml::table& t, const char* table_name,
                            const char* key, std::vector<std::string>* out) {
  const toml::node* node = t.get(key);
  if (node == nullptr) return absl::OkStatus();
  const toml::array* arr = node->as_array();
  if (arr == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(c, *node), ": ", table_name, key, " must be a list of strings"));
  }
  out->clear();
  for (const toml::node& item : *arr) {
    std::optional<std::string> v = item.value<std::string>();
    if (!v) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(c, item), ": ", table_name, key, " must be a list of strings"));
    }
    out->push_back(*v);
  }
  return absl::OkStatus();
}

// A [receive] action: "refuse", "quarantine-header" or "accept"; `two_way` allows only the first
// and the last.
absl::Status ReadAction(const Config& c, const toml::table& t, const char* table_name,
                        const char* key, bool two_way, receive::InboundAction* out) {
  std::string name;
  if (absl::Status s = ReadString(c, t, table_name, key, &name); !s.ok()) return s;
  if (t.get(key) == nullptr) return absl::OkStatus();
  std::optional<receive::InboundAction> a = receive::ParseInboundAction(name);
  if (!a || (two_way && *a == receive::InboundAction::kQuarantineHeader)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(c, *t.get(key)), ": ", table_name, key, " must be ",
        two_way ? "\"refuse\" or \"accept\"" : "\"refuse\", \"quarantine-header\" or \"accept\"",
        " (got \"", name, "\")"));
  }
  *out = *a;
  return absl::OkStatus();
}

absl::Status CheckKnownKeys(const Config& c, const toml::table& t, const char* table_name,
                            std::initializer_list<const char*> known) {
  for (const auto& [k, v] : t) {
    bool found = false;
    for (const char* name : known) found = found || k.str() == name;
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat(Where(c, v), ": unknown key ", table_name,
                                                     std::string(k.str())));
    }
  }
  return absl::OkStatus();
}

const toml::table* SubTable(const toml::table& root, const char* name) {
  const toml::node* n = root.get(name);
  return n == nullptr ? nullptr : n->as_table();
}

absl::Status ParseReceive(Config& c, const toml::table& t) {
  ReceiveSettings& r = c.receive;
  RETURN_IF_ERROR(CheckKnownKeys(
      c, t, "receive.",
      {"listen", "domains", "aliases_dir", "aliases", "alias_depth_max", "suffix_separators",
       "alias_targets_max", "srs_domain", "srs_secret", "srs_max_age_days", "spf", "dkim", "arc",
       "dmarc", "dmarc_reject", "dmarc_quarantine", "spf_fail_without_dkim", "checks_timeout_ms",
       "checks_queued_max"}));
  RETURN_IF_ERROR(ReadStringList(c, t, "receive.", "listen", &r.listen));
  RETURN_IF_ERROR(ReadStringList(c, t, "receive.", "domains", &r.domains));
  std::string aliases_dir = "aliases";
  RETURN_IF_ERROR(ReadString(c, t, "receive.", "aliases_dir", &aliases_dir));
  RETURN_IF_ERROR(
      ReadInt(c, t, "receive.", "alias_depth_max", &r.alias_depth_max, 1, 100));
  RETURN_IF_ERROR(ReadString(c, t, "receive.", "suffix_separators", &r.suffix_separators));
  RETURN_IF_ERROR(
      ReadInt(c, t, "receive.", "alias_targets_max", &r.alias_targets_max, 1, 100000));
  RETURN_IF_ERROR(ReadString(c, t, "receive.", "srs_domain", &r.srs_domain));
  r.srs_secret_path = "srs.secret";
  RETURN_IF_ERROR(ReadString(c, t, "receive.", "srs_secret", &r.srs_secret_path));
  RETURN_IF_ERROR(
      ReadInt(c, t, "receive.", "srs_max_age_days", &r.srs_max_age_days, 1, 365));
  RETURN_IF_ERROR(ReadBool(c, t, "receive.", "spf", &r.spf));
  RETURN_IF_ERROR(ReadBool(c, t, "receive.", "dkim", &r.dkim));
  RETURN_IF_ERROR(ReadBool(c, t, "receive.", "arc", &r.arc));
  RETURN_IF_ERROR(ReadBool(c, t, "receive.", "dmarc", &r.dmarc));
  RETURN_IF_ERROR(ReadAction(c, t, "receive.", "dmarc_reject", false, &r.policy.dmarc_reject));
  RETURN_IF_ERROR(
      ReadAction(c, t, "receive.", "dmarc_quarantine", false, &r.policy.dmarc_quarantine));
  receive::InboundAction spf_fail = r.policy.refuse_spf_fail_without_dkim
                                        ? receive::InboundAction::kRefuse
                                        : receive::InboundAction::kAccept;
  RETURN_IF_ERROR(ReadAction(c, t, "receive.", "spf_fail_without_dkim", true, &spf_fail));
  r.policy.refuse_spf_fail_without_dkim = spf_fail == receive::InboundAction::kRefuse;
  RETURN_IF_ERROR(
      ReadInt(c, t, "receive.", "checks_timeout_ms", &r.checks_timeout_ms, 100, 600000));
  RETURN_IF_ERROR(
      ReadInt(c, t, "receive.", "checks_queued_max", &r.checks_queued_max, 1, 100000));
  for (std::string& d : r.domains) {
    for (char& ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (d.empty() || d.find_first_of(" @/") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(c, *t.get("domains")), ": receive.domains: not a domain name: \"", d, "\""));
    }
  }
  const toml::table* files = nullptr;
  if (const toml::node* n = t.get("aliases")) {
    files = n->as_table();
    if (files == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(c, *n), ": receive.aliases must be a table of domain = \"file\""));
    }
    for (const auto& [k, v] : *files) {
      std::string domain(k.str());
      for (char& ch : domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (std::find(r.domains.begin(), r.domains.end(), domain) == r.domains.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(c, v), ": receive.aliases.", domain, " is not in receive.domains"));
      }
      if (!v.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(c, v), ": receive.aliases.", domain, " must be a file name"));
      }
    }
  }
  for (const std::string& d : r.domains) {
    std::string path = absl::StrCat(aliases_dir, "/", d);
    if (files != nullptr) {
      for (const auto& [k, v] : *files) {
        std::string key(k.str());
        for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (key == d) path = *v.value<std::string>();
      }
    }
    r.aliases_files.emplace_back(d, Resolve(c, path));
  }
  if (!r.listen.empty() && r.domains.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.path, ": receive.listen is set but receive.domains is empty (port 25 accepts mail "
        "only for local domains)"));
  }
  if (r.srs_domain.empty() && !r.domains.empty()) r.srs_domain = r.domains.front();
  for (char& ch : r.srs_domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  r.srs_secret_path = Resolve(c, r.srs_secret_path);
  return absl::OkStatus();
}

absl::Status Parse(const toml::table& root, Config& c) {
  RETURN_IF_ERROR(CheckKnownKeys(c, root, "",
                                     {"hostname", "shards", "spool_dir", "users", "control_socket",
                                      "submission",
                                      "tls", "limits", "auth", "queue", "dkim", "shutdown",
                                      "delivery", "retry", "shaping", "log", "metrics", "receive"}));
  RETURN_IF_ERROR(ReadString(c, root, "", "hostname", &c.hostname));
  RETURN_IF_ERROR(ReadInt(c, root, "", "shards", &c.shards, 0, 256));
  RETURN_IF_ERROR(ReadString(c, root, "", "spool_dir", &c.spool_dir));
  RETURN_IF_ERROR(ReadString(c, root, "", "users", &c.users_path));
  RETURN_IF_ERROR(ReadString(c, root, "", "control_socket", &c.control_socket_path));
  if (const toml::table* t = SubTable(root, "submission")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "submission.",
                                       {"listen", "listen_tls", "auth_requires_tls",
                                        "header_from"}));
    RETURN_IF_ERROR(ReadStringList(c, *t, "submission.", "listen", &c.submission_listen));
    RETURN_IF_ERROR(
        ReadStringList(c, *t, "submission.", "listen_tls", &c.submissions_listen));
    RETURN_IF_ERROR(
        ReadBool(c, *t, "submission.", "auth_requires_tls", &c.auth_requires_tls));
    std::string header_from = "owned";
    RETURN_IF_ERROR(ReadString(c, *t, "submission.", "header_from", &header_from));
    if (header_from != "owned" && header_from != "any") {
      return absl::InvalidArgumentError(absl::StrCat(
          c.path, ": submission.header_from must be \"owned\" or \"any\" (got \"", header_from,
          "\")"));
    }
    c.header_from_any = header_from == "any";
  }
  if (const toml::table* t = SubTable(root, "tls")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "tls.", {"cert", "key", "reload_check_ms"}));
    RETURN_IF_ERROR(ReadString(c, *t, "tls.", "cert", &c.tls_cert_path));
    RETURN_IF_ERROR(ReadString(c, *t, "tls.", "key", &c.tls_key_path));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "tls.", "reload_check_ms", &c.tls_reload_check_ms, 0, 86400000));
  }
  if (const toml::table* t = SubTable(root, "limits")) {
    SmtpLimits& l = c.smtp;
    RETURN_IF_ERROR(CheckKnownKeys(
        c, *t, "limits.",
        {"command_line_bytes_max", "data_line_bytes_max", "message_bytes_max", "recipients_max",
         "errors_max", "connections_max", "connections_per_ip_max", "greeting_timeout_ms",
         "command_timeout_ms", "data_timeout_ms", "session_timeout_ms", "command_deadline_ms",
         "idle_before_auth_ms", "stress_connections_percent", "stress_timeout_ms",
         "replies_unread_bytes_max", "input_held_bytes_max", "replies_unread_timeout_ms"}));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "command_line_bytes_max",
                                &l.command_line_bytes_max, 512, 1 << 20));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "data_line_bytes_max", &l.data_line_bytes_max,
                                1000, 1 << 24));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "message_bytes_max", &l.message_bytes_max,
                                1024, int64_t{1} << 32));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "limits.", "recipients_max", &l.recipients_max, 1, 100000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "errors_max", &l.errors_max, 1, 1000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "limits.", "connections_max", &l.connections_max, 1, 10000000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "connections_per_ip_max",
                                &l.connections_per_ip_max, 1, 10000000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "greeting_timeout_ms", &l.greeting_timeout_ms,
                                100, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "command_timeout_ms", &l.command_timeout_ms,
                                100, 86400000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "limits.", "data_timeout_ms", &l.data_timeout_ms, 100, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "session_timeout_ms", &l.session_timeout_ms,
                                100, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "command_deadline_ms", &l.command_deadline_ms,
                                100, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "idle_before_auth_ms", &l.idle_before_auth_ms,
                                100, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "stress_connections_percent",
                                &l.stress_connections_percent, 1, 100));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "limits.", "stress_timeout_ms", &l.stress_timeout_ms, 100, 86400000));
    // At least one multi-line EHLO reply and a pipelined batch of replies (RFC 2920).
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "replies_unread_bytes_max",
                                &l.replies_unread_bytes_max, 4096, 64 << 20));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "input_held_bytes_max",
                                &l.input_held_bytes_max, 16384, 1 << 30));
    RETURN_IF_ERROR(ReadInt(c, *t, "limits.", "replies_unread_timeout_ms",
                                &l.replies_unread_timeout_ms, 100, 86400000));
  }
  if (const toml::table* t = SubTable(root, "auth")) {
    AuthLimits& a = c.auth;
    RETURN_IF_ERROR(CheckKnownKeys(
        c, *t, "auth.",
        {"failures_before_delay", "failure_delay_ms", "failure_delay_max_ms",
         "failures_before_block", "user_failures_before_block", "failure_window_ms", "block_ms",
         "throttle_entries_max", "worker_threads", "checks_queued_max"}));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "failures_before_delay",
                                &a.failures_before_delay, 0, 1000000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "auth.", "failure_delay_ms", &a.failure_delay_ms, 0, 600000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "auth.", "failure_delay_max_ms", &a.failure_delay_max_ms, 0, 600000));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "failures_before_block",
                                &a.failures_before_block, 1, 1000000));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "user_failures_before_block",
                                &a.user_failures_before_block, 1, 1000000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "auth.", "failure_window_ms", &a.failure_window_ms, 1000, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "block_ms", &a.block_ms, 0, 86400000));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "throttle_entries_max", &a.throttle_entries_max,
                                100, 100000000));
    RETURN_IF_ERROR(ReadInt(c, *t, "auth.", "worker_threads", &a.worker_threads, 1, 64));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "auth.", "checks_queued_max", &a.checks_queued_max, 1, 1000000));
  }
  if (const toml::table* t = SubTable(root, "queue")) {
    QueueSettings& q = c.queue;
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "queue.",
                                       {"segment_bytes", "reserve_segments", "spool_bytes_max",
                                        "fsync", "syncs_in_flight_max", "outcome_sync_ms",
                                        "max_age_s"}));
    RETURN_IF_ERROR(ReadInt(c, *t, "queue.", "segment_bytes", &q.segment_bytes, 1 << 20,
                                int64_t{1} << 34));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "queue.", "reserve_segments", &q.reserve_segments, 0, 1024));
    RETURN_IF_ERROR(ReadInt(c, *t, "queue.", "spool_bytes_max", &q.spool_bytes_max, 0,
                                int64_t{1} << 50));
    RETURN_IF_ERROR(ReadBool(c, *t, "queue.", "fsync", &q.fsync));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "queue.", "syncs_in_flight_max", &q.syncs_in_flight_max, 1, 64));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "queue.", "outcome_sync_ms", &q.outcome_sync_ms, 0, 1000));
    RETURN_IF_ERROR(ReadInt(c, *t, "queue.", "max_age_s", &q.max_age_s, 60, 365 * 86400));
  }
  if (const toml::table* t = SubTable(root, "dkim")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "dkim.", {"key", "signing_threads"}));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "dkim.", "signing_threads", &c.dkim_signing_threads, 0, 256));
    if (const toml::node* keys = t->get("key")) {
      const toml::array* arr = keys->as_array();
      if (arr == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(c, *keys), ": dkim.key must be an array of tables ([[dkim.key]])"));
      }
      for (const toml::node& item : *arr) {
        const toml::table* kt = item.as_table();
        if (kt == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(Where(c, item), ": each [[dkim.key]] must be a table"));
        }
        DkimKeyConfig k;
        RETURN_IF_ERROR(CheckKnownKeys(c, *kt, "dkim.key.", {"domain", "selector", "key"}));
        RETURN_IF_ERROR(ReadString(c, *kt, "dkim.key.", "domain", &k.domain));
        RETURN_IF_ERROR(ReadString(c, *kt, "dkim.key.", "selector", &k.selector));
        RETURN_IF_ERROR(ReadString(c, *kt, "dkim.key.", "key", &k.key_path));
        if (k.domain.empty() || k.selector.empty() || k.key_path.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(c, item), ": [[dkim.key]] needs domain, selector and key"));
        }
        k.key_path = Resolve(c, k.key_path);
        c.dkim_keys.push_back(std::move(k));
      }
    }
  }
  if (const toml::table* t = SubTable(root, "delivery")) {
    DeliverySettings& d = c.delivery;
    RETURN_IF_ERROR(
        CheckKnownKeys(c, *t, "delivery.",
                       {"enabled", "dns_servers", "family", "mx_port", "idle_connection_ms",
                        "source_suspend_ms", "tls_verify", "tls_ca_file", "strategy", "source",
                        "reply_line_bytes_max", "reply_lines_max", "reply_bytes_max",
                        "outcome_retry_ms", "outcome_retry_max_ms", "unrecorded_outcomes_max"}));
    RETURN_IF_ERROR(ReadBool(c, *t, "delivery.", "enabled", &d.enabled));
    RETURN_IF_ERROR(ReadStringList(c, *t, "delivery.", "dns_servers", &d.dns_servers));
    std::string family;
    RETURN_IF_ERROR(ReadString(c, *t, "delivery.", "family", &family));
    if (!family.empty()) {
      if (family == "ipv4-first") {
        d.family = dns::FamilyPreference::kIpv4First;
      } else if (family == "ipv6-first") {
        d.family = dns::FamilyPreference::kIpv6First;
      } else if (family == "ipv4-only") {
        d.family = dns::FamilyPreference::kIpv4Only;
      } else if (family == "ipv6-only") {
        d.family = dns::FamilyPreference::kIpv6Only;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(c, *t->get("family")),
            ": delivery.family must be ipv4-first, ipv6-first, ipv4-only or ipv6-only"));
      }
    }
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "mx_port", &d.mx_port, 1, 65535));
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "idle_connection_ms", &d.idle_connection_ms,
                                0, 3600000));
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "source_suspend_ms", &d.source_suspend_ms,
                                1000, 86400000));
    RETURN_IF_ERROR(ReadBool(c, *t, "delivery.", "tls_verify", &d.tls_verify));
    RETURN_IF_ERROR(ReadString(c, *t, "delivery.", "tls_ca_file", &d.tls_ca_file));
    // RFC 5321 §4.5.3.1.5: a reply line may be 512 octets; a client must take at least that.
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "reply_line_bytes_max",
                                &d.reply_limits.reply_line_bytes_max, 512, 65536));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "delivery.", "reply_lines_max", &d.reply_limits.reply_lines_max, 1, 10000));
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "reply_bytes_max",
                                &d.reply_limits.reply_bytes_max, 512, 16 << 20));
    if (d.reply_limits.reply_bytes_max < d.reply_limits.reply_line_bytes_max) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(c, *t),
          ": delivery.reply_bytes_max must be at least delivery.reply_line_bytes_max (",
          d.reply_limits.reply_line_bytes_max, ")"));
    }
    RETURN_IF_ERROR(
        ReadInt(c, *t, "delivery.", "outcome_retry_ms", &d.outcome_retry_ms, 10, 3600000));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "delivery.", "outcome_retry_max_ms", &d.outcome_retry_max_ms, 10, 86400000));
    if (d.outcome_retry_max_ms < d.outcome_retry_ms) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(c, *t),
                       ": delivery.outcome_retry_max_ms must be at least "
                       "delivery.outcome_retry_ms (",
                       d.outcome_retry_ms, ")"));
    }
    RETURN_IF_ERROR(ReadInt(c, *t, "delivery.", "unrecorded_outcomes_max",
                                &d.unrecorded_outcomes_max, 1, 10000000));
    std::string strategy;
    RETURN_IF_ERROR(ReadString(c, *t, "delivery.", "strategy", &strategy));
    if (!strategy.empty()) {
      if (strategy == "round-robin") {
        d.strategy = delivery::EgressStrategy::kRoundRobin;
      } else if (strategy == "weighted") {
        d.strategy = delivery::EgressStrategy::kWeighted;
      } else if (strategy == "sticky") {
        d.strategy = delivery::EgressStrategy::kSticky;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(c, *t->get("strategy")),
                         ": delivery.strategy must be round-robin, weighted or sticky"));
      }
    }
    if (const toml::node* sources = t->get("source")) {
      const toml::array* arr = sources->as_array();
      if (arr == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(c, *sources), ": delivery.source must be an array of tables ([[delivery.source]])"));
      }
      for (const toml::node& item : *arr) {
        const toml::table* st = item.as_table();
        if (st == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(Where(c, item), ": each [[delivery.source]] must be a table"));
        }
        RETURN_IF_ERROR(CheckKnownKeys(c, *st, "delivery.source.",
                                           {"address", "ehlo_name", "weight", "prefix", "count"}));
        delivery::EgressSourceConfig sc;
        RETURN_IF_ERROR(ReadString(c, *st, "delivery.source.", "address", &sc.address));
        RETURN_IF_ERROR(ReadString(c, *st, "delivery.source.", "ehlo_name", &sc.ehlo_name));
        RETURN_IF_ERROR(ReadInt(c, *st, "delivery.source.", "weight", &sc.weight, 1, 1000000));
        RETURN_IF_ERROR(ReadString(c, *st, "delivery.source.", "prefix", &sc.prefix));
        RETURN_IF_ERROR(ReadInt(c, *st, "delivery.source.", "count", &sc.count, 0, 65536));
        if (sc.ehlo_name.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(c, item), ": each [[delivery.source]] needs the ehlo_name its PTR gives"));
        }
        d.sources.push_back(std::move(sc));
      }
    }
  }
  c.log.dir = "log";
  if (const toml::table* t = SubTable(root, "log")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "log.", {"dir", "rotate_bytes", "rotate_keep"}));
    RETURN_IF_ERROR(ReadString(c, *t, "log.", "dir", &c.log.dir));
    RETURN_IF_ERROR(
        ReadInt(c, *t, "log.", "rotate_bytes", &c.log.rotate_bytes, 0, int64_t{1} << 40));
    RETURN_IF_ERROR(ReadInt(c, *t, "log.", "rotate_keep", &c.log.rotate_keep, 1, 1000));
  }
  if (const toml::node* retry = root.get("retry")) {
    absl::StatusOr<delivery::RetryPolicy> parsed = delivery::ParseRetryPolicy(*retry);
    if (!parsed.ok()) return parsed.status();
    c.retry = std::move(*parsed);
  }
  if (const toml::node* shaping = root.get("shaping")) {
    absl::StatusOr<delivery::ShapingRules> parsed = delivery::ParseShapingRules(*shaping);
    if (!parsed.ok()) return parsed.status();
    c.shaping = std::make_shared<const delivery::ShapingRules>(std::move(*parsed));
  } else {
    c.shaping = std::make_shared<const delivery::ShapingRules>(delivery::ShapingRules::Shipped());
  }
  if (const toml::table* t = SubTable(root, "metrics")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "metrics.", {"listen", "allow_public"}));
    RETURN_IF_ERROR(ReadString(c, *t, "metrics.", "listen", &c.metrics.listen));
    RETURN_IF_ERROR(ReadBool(c, *t, "metrics.", "allow_public", &c.metrics.allow_public));
    if (!c.metrics.listen.empty()) {
      absl::StatusOr<io::SocketAddress> a = io::SocketAddress::Parse(c.metrics.listen);
      const toml::node* node = t->get("listen");
      if (!a.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(Where(c, *node), ": metrics.listen: ", a.status().message()));
      }
      // The endpoint has no authentication: it stays on loopback unless the operator says so.
      if (!c.metrics.allow_public && !metrics::IsLoopback(*a)) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(c, *node), ": metrics.listen ", c.metrics.listen,
            " is not a loopback address; set metrics.allow_public = true to serve it there"));
      }
    }
  }
  if (const toml::table* t = SubTable(root, "receive")) {
    RETURN_IF_ERROR(ParseReceive(c, *t));
  }
  if (const toml::table* t = SubTable(root, "shutdown")) {
    RETURN_IF_ERROR(CheckKnownKeys(c, *t, "shutdown.", {"grace_ms"}));
    RETURN_IF_ERROR(ReadInt(c, *t, "shutdown.", "grace_ms", &c.shutdown_grace_ms, 0, 3600000));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

std::string NodeText(const toml::node& node) {
  std::ostringstream out;
  node.visit([&out](const auto& n) { out << n; });
  return out.str();
}

void Diff(const toml::node* a, const toml::node* b, const std::string& key,
          std::vector<std::string>* changed) {
  if (a == nullptr || b == nullptr || a->type() != b->type()) {
    changed->push_back(key);
    return;
  }
  if (const toml::table* ta = a->as_table()) {
    const toml::table* tb = b->as_table();
    for (const auto& [k, v] : *ta) {
      std::string sub = key.empty() ? std::string(k.str()) : absl::StrCat(key, ".", std::string(k.str()));
      Diff(&v, tb->get(k.str()), sub, changed);
    }
    for (const auto& [k, v] : *tb) {
      if (ta->get(k.str()) == nullptr) {
        changed->push_back(key.empty() ? std::string(k.str()) : absl::StrCat(key, ".", std::string(k.str())));
      }
    }
    return;
  }
  const toml::array* aa = a->as_array();
  const toml::array* ab = b->as_array();
  if (aa != nullptr && aa->is_array_of_tables() && ab->is_array_of_tables() &&
      aa->size() == ab->size()) {
    for (size_t i = 0; i < aa->size(); ++i) {
      Diff(aa->get(i), ab->get(i), absl::StrCat(key, "[", i, "]"), changed);
    }
    return;
  }
  if (NodeText(*a) != NodeText(*b)) changed->push_back(key);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ChangedSettings(const std::string& before_text,
                                                         const std::string& after_text) {
  toml::table before, after;
  for (auto [text, table, name] : {std::tuple{&before_text, &before, "the running config"},
                                   std::tuple{&after_text, &after, "the file"}}) {
    try {
      *table = toml::parse(*text);
    } catch (const toml::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrCat(name, " does not parse: line ",
                                                     e.source().begin.line, ": ",
                                                     std::string(e.description())));
    }
  }
  std::vector<std::string> changed;
  Diff(&before, &after, "", &changed);
  return changed;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  Config c;
  c.path = path;
  c.dir = std::filesystem::absolute(path).parent_path().string();
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const toml::source_region& src = e.source();
    return absl::InvalidArgumentError(absl::StrCat(path, ":", src.begin.line, ":",
                                                   src.begin.column, ": ",
                                                   std::string(e.description())));
  }
  RETURN_IF_ERROR(Parse(root, c));
  c.retry.max_age_s = static_cast<int64_t>(c.queue.max_age_s);
  if (c.hostname.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": hostname is required"));
  }
  if (c.spool_dir.empty()) c.spool_dir = "spool";
  if (c.users_path.empty()) c.users_path = "users";
  if (c.control_socket_path.empty()) c.control_socket_path = "control.sock";
  c.control_socket_path = Resolve(c, c.control_socket_path);
  c.spool_dir = Resolve(c, c.spool_dir);
  c.users_path = Resolve(c, c.users_path);
  c.log.dir = Resolve(c, c.log.dir);
  c.tls_cert_path = Resolve(c, c.tls_cert_path);
  c.tls_key_path = Resolve(c, c.tls_key_path);
  if (c.submission_listen.empty() && c.submissions_listen.empty() && !c.receive.enabled()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no listener: set submission.listen, submission.listen_tls or receive.listen"));
  }
  if (c.tls_cert_path.empty() != c.tls_key_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tls.cert and tls.key go together"));
  }
  if (!c.submissions_listen.empty() && c.tls_cert_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": submission.listen_tls needs tls.cert and tls.key"));
  }
  // Port 25 alone needs no certificate: without one it offers neither STARTTLS nor AUTH.
  const bool submission = !c.submission_listen.empty() || !c.submissions_listen.empty();
  if (submission && c.auth_requires_tls && c.tls_cert_path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": AUTH requires TLS but no certificate is configured (tls.cert, tls.key)"));
  }
  return c;
}

}  // namespace relay::server
