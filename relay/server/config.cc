#include "relay/server/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "relay/base/status_macros.h"
#include "relay/io/socket.h"
#include "relay/metrics/http_server.h"
#include "relay/server/config/bounce_sections.h"
#include "relay/server/config/delivery_sections.h"
#include "relay/server/config/toml_section.h"
#include "relay/smtp/command.h"

namespace relay::server {
namespace {

using config::Section;

std::string Resolve(const Config& c, const std::string& p) {
  if (p.empty() || p.front() == '/') return p;
  return (std::filesystem::path(c.dir) / p).lexically_normal().string();
}

// The paths not set take their defaults; relative ones are made absolute under the config's
// directory (log.dir "" stays "": no delivery logs).
void ResolvePaths(Config& c) {
  if (c.spool_dir.empty()) c.spool_dir = "spool";
  if (c.users_path.empty()) c.users_path = "users";
  if (c.control_socket_path.empty()) c.control_socket_path = "control.sock";
  for (std::string* p : {&c.spool_dir, &c.users_path, &c.control_socket_path, &c.log.dir,
                         &c.tls_cert_path, &c.tls_key_path, &c.suppression.path, &c.events.dir}) {
    *p = Resolve(c, *p);
  }
  if (c.suppression.path.empty()) {
    c.suppression.path = (std::filesystem::path(c.spool_dir) / "suppression.mdb").string();
  }
  if (c.events.dir.empty()) c.events.dir = (std::filesystem::path(c.spool_dir) / "events").string();
}

// A [receive] action: "refuse", "quarantine-header" or "accept"; `two_way` allows only the first
// and the last.
absl::Status ReadAction(const Section& t, std::string_view key, bool two_way,
                        receive::InboundAction* out) {
  using receive::InboundAction;
  if (two_way) {
    return t.Enum(key, out,
                  {{"refuse", InboundAction::kRefuse}, {"accept", InboundAction::kAccept}});
  }
  return t.Enum(key, out,
                {{"refuse", InboundAction::kRefuse},
                 {"quarantine-header", InboundAction::kQuarantineHeader},
                 {"accept", InboundAction::kAccept}});
}

// [receive.aliases]: domain = "file", each domain one of receive.domains. Fills aliases_files
// for every domain (aliases_dir/DOMAIN unless named here).
absl::Status ReadAliasFiles(const Config& c, const Section& t, const std::string& aliases_dir,
                            ReceiveSettings& r) {
  // Linear in the config: a set of the domains, a map of the files named.
  const absl::flat_hash_set<std::string> domains(r.domains.begin(), r.domains.end());
  absl::flat_hash_map<std::string, std::string> named;  // lower-case domain -> file
  ASSIGN_OR_RETURN(std::optional<Section> files, t.Table("aliases"));
  if (files) {
    for (const std::string& key : files->Keys()) {
      std::string domain = absl::AsciiStrToLower(key);
      if (!domains.contains(domain)) return files->Error(key, "is not in receive.domains");
      std::string file;
      RETURN_IF_ERROR(files->NonEmptyString(key, &file));
      named.insert_or_assign(std::move(domain), std::move(file));
    }
  }
  for (const std::string& d : r.domains) {
    auto it = named.find(d);
    r.aliases_files.emplace_back(
        d, Resolve(c, it != named.end() ? it->second : absl::StrCat(aliases_dir, "/", d)));
  }
  return absl::OkStatus();
}

absl::Status ParseReceive(Config& c, const Section& t) {
  ReceiveSettings& r = c.receive;
  RETURN_IF_ERROR(t.Known({"listen", "domains", "aliases_dir", "aliases", "alias_depth_max",
                           "suffix_separators", "alias_targets_max", "srs_domain", "srs_secret",
                           "srs_age_days_max", "spf", "dkim", "arc", "dmarc", "dmarc_reject",
                           "dmarc_quarantine", "spf_fail_without_dkim", "checks_timeout_ms",
                           "checks_queued_max"}));
  RETURN_IF_ERROR(t.StringList("listen", &r.listen));
  RETURN_IF_ERROR(t.StringList("domains", &r.domains));
  for (size_t i = 0; i < r.domains.size(); ++i) {
    absl::AsciiStrToLower(&r.domains[i]);
    if (r.domains[i].empty() || r.domains[i].find_first_of(" @/") != std::string::npos) {
      return t.ItemError("domains", i, absl::StrCat("not a domain name: \"", r.domains[i], "\""));
    }
  }
  std::string aliases_dir = "aliases";
  RETURN_IF_ERROR(t.String("aliases_dir", &aliases_dir));
  RETURN_IF_ERROR(t.Int("alias_depth_max", &r.alias_depth_max, 1, 100));
  RETURN_IF_ERROR(t.String("suffix_separators", &r.suffix_separators));
  RETURN_IF_ERROR(t.Int("alias_targets_max", &r.alias_targets_max, 1, 100000));
  RETURN_IF_ERROR(t.String("srs_domain", &r.srs_domain));
  r.srs_secret_path = "srs.secret";
  RETURN_IF_ERROR(t.String("srs_secret", &r.srs_secret_path));
  RETURN_IF_ERROR(t.Int("srs_age_days_max", &r.srs_age_days_max, 1, 365));
  RETURN_IF_ERROR(t.Bool("spf", &r.spf));
  RETURN_IF_ERROR(t.Bool("dkim", &r.dkim));
  RETURN_IF_ERROR(t.Bool("arc", &r.arc));
  RETURN_IF_ERROR(t.Bool("dmarc", &r.dmarc));
  RETURN_IF_ERROR(ReadAction(t, "dmarc_reject", false, &r.policy.dmarc_reject));
  RETURN_IF_ERROR(ReadAction(t, "dmarc_quarantine", false, &r.policy.dmarc_quarantine));
  receive::InboundAction spf_fail = r.policy.refuse_spf_fail_without_dkim
                                        ? receive::InboundAction::kRefuse
                                        : receive::InboundAction::kAccept;
  RETURN_IF_ERROR(ReadAction(t, "spf_fail_without_dkim", true, &spf_fail));
  r.policy.refuse_spf_fail_without_dkim = spf_fail == receive::InboundAction::kRefuse;
  RETURN_IF_ERROR(t.Int("checks_timeout_ms", &r.checks_timeout_ms, 100, 600000));
  RETURN_IF_ERROR(t.Int("checks_queued_max", &r.checks_queued_max, 1, 100000));
  RETURN_IF_ERROR(ReadAliasFiles(c, t, aliases_dir, r));
  if (!r.listen.empty() && r.domains.empty()) {
    return t.Error("domains",
                   "is empty but receive.listen is set (port 25 accepts mail only for local "
                   "domains)");
  }
  if (r.srs_domain.empty() && !r.domains.empty()) r.srs_domain = r.domains.front();
  absl::AsciiStrToLower(&r.srs_domain);
  r.srs_secret_path = Resolve(c, r.srs_secret_path);
  return absl::OkStatus();
}

absl::Status ParseSubmission(Config& c, const Section& t) {
  RETURN_IF_ERROR(t.Known({"listen", "listen_tls", "auth_requires_tls", "header_from"}));
  RETURN_IF_ERROR(t.StringList("listen", &c.submission_listen));
  RETURN_IF_ERROR(t.StringList("listen_tls", &c.submissions_listen));
  RETURN_IF_ERROR(t.Bool("auth_requires_tls", &c.auth_requires_tls));
  return t.Enum("header_from", &c.header_from_any, {{"owned", false}, {"any", true}});
}

absl::Status ParseTls(Config& c, const Section& t) {
  RETURN_IF_ERROR(t.Known({"cert", "key", "reload_check_ms"}));
  RETURN_IF_ERROR(t.String("cert", &c.tls_cert_path));
  RETURN_IF_ERROR(t.String("key", &c.tls_key_path));
  return t.Int("reload_check_ms", &c.tls_reload_check_ms, 0, 86400000);
}

absl::Status ParseLimits(SmtpLimits& l, const Section& t) {
  RETURN_IF_ERROR(t.Known({"command_line_bytes_max",
                           "data_line_bytes_max",
                           "message_bytes_max",
                           "recipients_max",
                           "errors_max",
                           "connections_max",
                           "connections_per_ip_max",
                           "greeting_timeout_ms",
                           "command_timeout_ms",
                           "data_timeout_ms",
                           "session_timeout_ms",
                           "command_deadline_ms",
                           "idle_before_auth_ms",
                           "stress_connections_percent",
                           "stress_timeout_ms",
                           "replies_unread_bytes_max",
                           "input_held_bytes_max",
                           "replies_unread_timeout_ms",
                           "close_linger_ms",
                           "close_linger_bytes_max"}));
  constexpr int64_t kDayMs = 86400000;
  RETURN_IF_ERROR(t.Int("command_line_bytes_max", &l.command_line_bytes_max, 512, 1 << 20));
  RETURN_IF_ERROR(t.Int("data_line_bytes_max", &l.data_line_bytes_max, 1000, 1 << 24));
  RETURN_IF_ERROR(t.Int("message_bytes_max", &l.message_bytes_max, 1024, int64_t{1} << 32));
  RETURN_IF_ERROR(t.Int("recipients_max", &l.recipients_max, 1, 100000));
  RETURN_IF_ERROR(t.Int("errors_max", &l.errors_max, 1, 1000));
  RETURN_IF_ERROR(t.Int("connections_max", &l.connections_max, 1, 10000000));
  RETURN_IF_ERROR(t.Int("connections_per_ip_max", &l.connections_per_ip_max, 1, 10000000));
  RETURN_IF_ERROR(t.Int("greeting_timeout_ms", &l.greeting_timeout_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("command_timeout_ms", &l.command_timeout_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("data_timeout_ms", &l.data_timeout_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("session_timeout_ms", &l.session_timeout_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("command_deadline_ms", &l.command_deadline_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("idle_before_auth_ms", &l.idle_before_auth_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("stress_connections_percent", &l.stress_connections_percent, 1, 100));
  RETURN_IF_ERROR(t.Int("stress_timeout_ms", &l.stress_timeout_ms, 100, kDayMs));
  // At least one multi-line EHLO reply and a pipelined batch of replies (RFC 2920).
  RETURN_IF_ERROR(t.Int("replies_unread_bytes_max", &l.replies_unread_bytes_max, 4096, 64 << 20));
  RETURN_IF_ERROR(t.Int("input_held_bytes_max", &l.input_held_bytes_max, 16384, 1 << 30));
  RETURN_IF_ERROR(t.Int("replies_unread_timeout_ms", &l.replies_unread_timeout_ms, 100, kDayMs));
  RETURN_IF_ERROR(t.Int("close_linger_ms", &l.close_linger_ms, 0, 60000));
  return t.Int("close_linger_bytes_max", &l.close_linger_bytes_max, 0, 1 << 30);
}

absl::Status ParseAuth(AuthLimits& a, const Section& t) {
  RETURN_IF_ERROR(
      t.Known({"failures_before_delay", "failure_delay_ms", "failure_delay_ms_max",
               "failures_before_block", "user_failures_before_block", "failure_window_ms",
               "block_ms", "throttle_entries_max", "worker_threads", "checks_queued_max"}));
  RETURN_IF_ERROR(t.Int("failures_before_delay", &a.failures_before_delay, 0, 1000000));
  RETURN_IF_ERROR(t.Int("failure_delay_ms", &a.failure_delay_ms, 0, 600000));
  RETURN_IF_ERROR(t.Int("failure_delay_ms_max", &a.failure_delay_ms_max, 0, 600000));
  RETURN_IF_ERROR(t.Int("failures_before_block", &a.failures_before_block, 1, 1000000));
  RETURN_IF_ERROR(t.Int("user_failures_before_block", &a.user_failures_before_block, 1, 1000000));
  RETURN_IF_ERROR(t.Int("failure_window_ms", &a.failure_window_ms, 1000, 86400000));
  RETURN_IF_ERROR(t.Int("block_ms", &a.block_ms, 0, 86400000));
  RETURN_IF_ERROR(t.Int("throttle_entries_max", &a.throttle_entries_max, 100, 100000000));
  RETURN_IF_ERROR(t.Int("worker_threads", &a.worker_threads, 1, 64));
  return t.Int("checks_queued_max", &a.checks_queued_max, 1, 1000000);
}

absl::Status ParseQueue(QueueSettings& q, const Section& t) {
  RETURN_IF_ERROR(t.Known({"segment_bytes", "reserve_segments", "spool_bytes_max", "fsync",
                           "syncs_in_flight_max", "outcome_sync_ms", "message_age_s_max"}));
  RETURN_IF_ERROR(t.Int("segment_bytes", &q.segment_bytes, 1 << 20, int64_t{1} << 34));
  RETURN_IF_ERROR(t.Int("reserve_segments", &q.reserve_segments, 0, 1024));
  RETURN_IF_ERROR(t.Int("spool_bytes_max", &q.spool_bytes_max, 0, int64_t{1} << 50));
  RETURN_IF_ERROR(t.Bool("fsync", &q.fsync));
  RETURN_IF_ERROR(t.Int("syncs_in_flight_max", &q.syncs_in_flight_max, 1, 64));
  RETURN_IF_ERROR(t.Int("outcome_sync_ms", &q.outcome_sync_ms, 0, 1000));
  return t.Int("message_age_s_max", &q.message_age_s_max, 60, 365 * 86400);
}

absl::Status ParseDkim(Config& c, const Section& t) {
  RETURN_IF_ERROR(t.Known({"key", "signing_threads"}));
  RETURN_IF_ERROR(t.Int("signing_threads", &c.dkim_signing_threads, 0, 256));
  ASSIGN_OR_RETURN(std::vector<Section> keys, t.Tables("key"));
  for (const Section& kt : keys) {
    DkimKeyConfig k;
    RETURN_IF_ERROR(kt.Known({"domain", "selector", "key"}));
    RETURN_IF_ERROR(kt.String("domain", &k.domain));
    RETURN_IF_ERROR(kt.String("selector", &k.selector));
    RETURN_IF_ERROR(kt.String("key", &k.key_path));
    if (k.domain.empty() || k.selector.empty() || k.key_path.empty()) {
      return kt.TableError("[[dkim.key]] needs domain, selector and key");
    }
    k.key_path = Resolve(c, k.key_path);
    c.dkim_keys.push_back(std::move(k));
  }
  return absl::OkStatus();
}

// A label without spaces: the operator types it (relayctl queue rebind --pool P).
bool IsValidPoolName(std::string_view name) {
  return smtp::IsValidLabel(name) && name.find(' ') == std::string_view::npos;
}

absl::Status ReadStrategy(const Section& t, delivery::EgressStrategy* strategy) {
  return t.Enum("strategy", strategy,
                {{"round-robin", delivery::EgressStrategy::kRoundRobin},
                 {"weighted", delivery::EgressStrategy::kWeighted},
                 {"sticky", delivery::EgressStrategy::kSticky}});
}

// "2026-12-01" as days since 1970-01-01.
absl::Status ReadDay(const Section& t, std::string_view key, int64_t* day) {
  std::string text;
  RETURN_IF_ERROR(t.String(key, &text));
  if (text.empty()) return absl::OkStatus();
  absl::CivilDay civil;
  if (text.size() != 10 || !absl::ParseCivilTime(text, &civil)) {
    return t.Error(key, "must be a date, \"YYYY-MM-DD\"");
  }
  *day = civil - absl::CivilDay(1970, 1, 1);
  return absl::OkStatus();
}

absl::Status ParseSources(DeliverySettings& d, const Section& t) {
  ASSIGN_OR_RETURN(std::vector<Section> sources, t.Tables("source"));
  absl::flat_hash_set<std::string> names;
  for (const Section& st : sources) {
    RETURN_IF_ERROR(st.Known(
        {"name", "address", "ehlo_name", "weight", "prefix", "count", "warmup", "warmup_start"}));
    delivery::EgressSourceConfig sc;
    RETURN_IF_ERROR(st.String("name", &sc.name));
    RETURN_IF_ERROR(st.String("address", &sc.address));
    RETURN_IF_ERROR(st.String("ehlo_name", &sc.ehlo_name));
    RETURN_IF_ERROR(st.Int("weight", &sc.weight, 1, 1000000));
    RETURN_IF_ERROR(st.String("prefix", &sc.prefix));
    RETURN_IF_ERROR(st.Int("count", &sc.count, 0, 65536));
    std::vector<int64_t> warmup;
    if (st.Has("warmup")) {
      RETURN_IF_ERROR(st.IntList("warmup", &warmup, 0, 100000000, /*non_decreasing=*/false));
    }
    sc.warmup.assign(warmup.begin(), warmup.end());
    if (st.Has("warmup_start") != st.Has("warmup")) {
      return st.Has("warmup")
                 ? st.Error("warmup", "needs warmup_start = \"YYYY-MM-DD\", its first day")
                 : st.Error("warmup_start",
                            "goes with warmup = [messages per site on day 1, 2, ...]");
    }
    RETURN_IF_ERROR(ReadDay(st, "warmup_start", &sc.warmup_start_day));
    if (sc.ehlo_name.empty()) {
      return st.TableError("each [[delivery.source]] needs the ehlo_name its PTR gives");
    }
    if (!sc.name.empty() && !IsValidPoolName(sc.name)) {
      return st.Error("name", "must be letters, digits and -_+@:/. characters");
    }
    const std::string name = !sc.name.empty()     ? sc.name
                             : !sc.prefix.empty() ? sc.prefix
                                                  : sc.address;
    if (!name.empty() && !names.insert(name).second) {
      return st.Error(sc.name.empty() ? "address" : "name",
                      absl::StrCat("names source ", name, " a second time"));
    }
    d.sources.push_back(std::move(sc));
  }
  return absl::OkStatus();
}

// [[delivery.pool]] name, sources, strategy, and the tenants, (sending) domains and campaigns
// whose mail goes out of it.
absl::Status ParsePools(DeliverySettings& d, const Section& t) {
  ASSIGN_OR_RETURN(std::vector<Section> pools, t.Tables("pool"));
  absl::flat_hash_map<std::string, std::string>* routes[] = {
      &d.pool_routes.tenants, &d.pool_routes.domains, &d.pool_routes.campaigns};
  const std::string_view route_keys[] = {"tenants", "domains", "campaigns"};
  for (const Section& pt : pools) {
    RETURN_IF_ERROR(pt.Known({"name", "sources", "strategy", "tenants", "domains", "campaigns"}));
    delivery::EgressPoolConfig pool;
    RETURN_IF_ERROR(pt.NonEmptyString("name", &pool.name));
    if (!IsValidPoolName(pool.name)) {
      return pt.Error("name", "must be letters, digits and -_+@:/. characters");
    }
    RETURN_IF_ERROR(pt.StringList("sources", &pool.sources));
    if (pool.sources.empty()) return pt.Error("sources", "must name at least one source");
    if (pt.Has("strategy")) {
      delivery::EgressStrategy strategy = delivery::EgressStrategy::kRoundRobin;
      RETURN_IF_ERROR(ReadStrategy(pt, &strategy));
      pool.strategy = strategy;
    }
    for (size_t k = 0; k < 3; ++k) {
      std::vector<std::string> names;
      RETURN_IF_ERROR(pt.StringList(route_keys[k], &names));
      for (size_t i = 0; i < names.size(); ++i) {
        std::string name = k == 1 ? absl::AsciiStrToLower(names[i]) : names[i];
        auto [it, inserted] = routes[k]->try_emplace(name, pool.name);
        if (!inserted) {
          return pt.ItemError(route_keys[k], i,
                              absl::StrCat(name, " goes out of pool ", it->second, " already"));
        }
      }
    }
    d.pools.push_back(std::move(pool));
  }
  // The pools name sources that exist, once each.
  absl::StatusOr<delivery::Egress> egress =
      delivery::Egress::Create(d.sources, d.pools, d.strategy, "");
  if (!egress.ok()) return t.TableError(std::string(egress.status().message()));
  return absl::OkStatus();
}

absl::Status ParseDelivery(DeliverySettings& d, const Section& t) {
  RETURN_IF_ERROR(
      t.Known({"enabled", "dns_servers", "family", "mx_port", "idle_connection_ms",
               "source_suspend_ms", "tls_verify", "tls_ca_file", "strategy", "source",
               "reply_line_bytes_max", "reply_lines_max", "reply_bytes_max", "outcome_retry_ms",
               "outcome_retry_ms_max", "unrecorded_outcomes_max", "dsn_return_bytes_max", "pool"}));
  RETURN_IF_ERROR(t.Bool("enabled", &d.enabled));
  RETURN_IF_ERROR(t.StringList("dns_servers", &d.dns_servers));
  RETURN_IF_ERROR(t.Enum("family", &d.family,
                         {{"ipv4-first", dns::FamilyPreference::kIpv4First},
                          {"ipv6-first", dns::FamilyPreference::kIpv6First},
                          {"ipv4-only", dns::FamilyPreference::kIpv4Only},
                          {"ipv6-only", dns::FamilyPreference::kIpv6Only}}));
  RETURN_IF_ERROR(t.Int("mx_port", &d.mx_port, 1, 65535));
  RETURN_IF_ERROR(t.Int("idle_connection_ms", &d.idle_connection_ms, 0, 3600000));
  RETURN_IF_ERROR(t.Int("source_suspend_ms", &d.source_suspend_ms, 1000, 86400000));
  RETURN_IF_ERROR(t.Bool("tls_verify", &d.tls_verify));
  RETURN_IF_ERROR(t.String("tls_ca_file", &d.tls_ca_file));
  // RFC 5321 §4.5.3.1.5: a reply line may be 512 octets; a client must take at least that.
  smtp::ReplyLimits& rl = d.reply_limits;
  RETURN_IF_ERROR(t.Int("reply_line_bytes_max", &rl.reply_line_bytes_max, 512, 65536));
  RETURN_IF_ERROR(t.Int("reply_lines_max", &rl.reply_lines_max, 1, 10000));
  RETURN_IF_ERROR(t.Int("reply_bytes_max", &rl.reply_bytes_max, 512, 16 << 20));
  if (rl.reply_bytes_max < rl.reply_line_bytes_max) {
    return t.Error("reply_bytes_max",
                   absl::StrCat("must be at least delivery.reply_line_bytes_max (",
                                rl.reply_line_bytes_max, ")"));
  }
  RETURN_IF_ERROR(t.Int("outcome_retry_ms", &d.outcome_retry_ms, 10, 3600000));
  RETURN_IF_ERROR(t.Int("outcome_retry_ms_max", &d.outcome_retry_ms_max, 10, 86400000));
  if (d.outcome_retry_ms_max < d.outcome_retry_ms) {
    return t.Error(
        "outcome_retry_ms_max",
        absl::StrCat("must be at least delivery.outcome_retry_ms (", d.outcome_retry_ms, ")"));
  }
  RETURN_IF_ERROR(t.Int("unrecorded_outcomes_max", &d.unrecorded_outcomes_max, 1, 10000000));
  RETURN_IF_ERROR(t.Int("dsn_return_bytes_max", &d.dsn_return_bytes_max, 0, int64_t{1} << 32));
  RETURN_IF_ERROR(ReadStrategy(t, &d.strategy));
  RETURN_IF_ERROR(ParseSources(d, t));
  return ParsePools(d, t);
}

absl::Status ParseLog(LogSettings& l, const Section& t) {
  RETURN_IF_ERROR(t.Known({"dir", "rotate_bytes", "rotate_keep"}));
  RETURN_IF_ERROR(t.String("dir", &l.dir));
  RETURN_IF_ERROR(t.Int("rotate_bytes", &l.rotate_bytes, 0, int64_t{1} << 40));
  return t.Int("rotate_keep", &l.rotate_keep, 1, 1000);
}

absl::Status ParseSuppression(SuppressionSettings& s, const Section& t) {
  RETURN_IF_ERROR(t.Known({"enabled", "path", "map_bytes_max", "at_rcpt", "bounce_categories"}));
  RETURN_IF_ERROR(t.Bool("enabled", &s.enabled));
  RETURN_IF_ERROR(t.Enum("at_rcpt", &s.accept_suppressed, {{"refuse", false}, {"accept", true}}));
  RETURN_IF_ERROR(t.String("path", &s.path));
  RETURN_IF_ERROR(t.Int("map_bytes_max", &s.map_bytes_max, 1 << 20, int64_t{1} << 40));
  if (t.Has("bounce_categories")) {
    std::vector<std::string> names;
    RETURN_IF_ERROR(t.StringList("bounce_categories", &names));
    s.bounce_categories.clear();
    for (size_t i = 0; i < names.size(); ++i) {
      std::optional<feedback::BounceCategory> c = feedback::CategoryNamed(names[i]);
      if (!c) {
        return t.ItemError("bounce_categories", i,
                           absl::StrCat("\"", names[i], "\" is not a bounce category"));
      }
      s.bounce_categories.push_back(*c);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseTlsPolicy(TlsPolicySettings& p, const Section& t) {
  RETURN_IF_ERROR(
      t.Known({"downgrade_memory", "memory_days", "memory_domains_max", "mta_sts",
               "mta_sts_ca_file", "mta_sts_port", "mta_sts_recheck_s", "mta_sts_fetch_timeout_ms",
               "mta_sts_policies_max", "mta_sts_lookups_max", "dane", "dnssec_trust_ad", "reports",
               "report_interval_s", "report_domains_max", "report_organization", "report_contact",
               "report_from", "report_ca_file"}));
  RETURN_IF_ERROR(t.Bool("reports", &p.reports));
  RETURN_IF_ERROR(t.Int("report_interval_s", &p.report_interval_s, 1, 86400 * 7));
  RETURN_IF_ERROR(t.Int("report_domains_max", &p.report_domains_max, 1, 10000000));
  RETURN_IF_ERROR(t.String("report_organization", &p.report_organization));
  RETURN_IF_ERROR(t.String("report_contact", &p.report_contact));
  RETURN_IF_ERROR(t.String("report_from", &p.report_from));
  RETURN_IF_ERROR(t.String("report_ca_file", &p.report_ca_file));
  RETURN_IF_ERROR(t.Bool("dane", &p.dane));
  using TrustAd = TlsPolicySettings::TrustAd;
  RETURN_IF_ERROR(t.Enum("dnssec_trust_ad", &p.dnssec_trust_ad,
                         {{"auto", TrustAd::kAuto}, {"yes", TrustAd::kYes}, {"no", TrustAd::kNo}}));
  RETURN_IF_ERROR(t.Bool("downgrade_memory", &p.downgrade_memory));
  RETURN_IF_ERROR(t.Int("memory_days", &p.memory_days, 1, 3650));
  RETURN_IF_ERROR(t.Int("memory_domains_max", &p.memory_domains_max, 1, 10000000));
  RETURN_IF_ERROR(t.Bool("mta_sts", &p.mta_sts));
  RETURN_IF_ERROR(t.String("mta_sts_ca_file", &p.mta_sts_ca_file));
  RETURN_IF_ERROR(t.Int("mta_sts_port", &p.mta_sts_port, 1, 65535));
  RETURN_IF_ERROR(t.Int("mta_sts_recheck_s", &p.mta_sts_recheck_s, 1, 86400 * 7));
  RETURN_IF_ERROR(t.Int("mta_sts_fetch_timeout_ms", &p.mta_sts_fetch_timeout_ms, 100, 300000));
  RETURN_IF_ERROR(t.Int("mta_sts_lookups_max", &p.mta_sts_lookups_max, 1, 100000));
  return t.Int("mta_sts_policies_max", &p.mta_sts_policies_max, 1, 10000000);
}

absl::Status ParseMetrics(MetricsSettings& m, const Section& t) {
  RETURN_IF_ERROR(t.Known({"listen", "allow_public"}));
  RETURN_IF_ERROR(t.String("listen", &m.listen));
  RETURN_IF_ERROR(t.Bool("allow_public", &m.allow_public));
  if (m.listen.empty()) return absl::OkStatus();
  absl::StatusOr<io::SocketAddress> a = io::SocketAddress::Parse(m.listen);
  if (!a.ok()) return t.Error("listen", std::string(a.status().message()));
  // The endpoint has no authentication: it stays on loopback unless the operator says so.
  if (!m.allow_public && !metrics::IsLoopback(*a)) {
    return t.Error("listen", absl::StrCat(m.listen,
                                          " is not a loopback address; set "
                                          "metrics.allow_public = true to serve it there"));
  }
  return absl::OkStatus();
}

absl::Status ParseShutdown(Config& c, const Section& t) {
  RETURN_IF_ERROR(t.Known({"grace_ms"}));
  return t.Int("grace_ms", &c.shutdown_grace_ms, 0, 3600000);
}

// Runs `parse` on the sub-table `key` of `root` when it is there.
template <typename Parser>
absl::Status WithTable(const Section& root, std::string_view key, Parser parse) {
  ASSIGN_OR_RETURN(std::optional<Section> t, root.Table(key));
  return t ? parse(*t) : absl::OkStatus();
}

absl::Status Parse(const Section& root, Config& c) {
  RETURN_IF_ERROR(
      root.Known({"hostname",  "shards",    "spool_dir", "users",    "control_socket", "submission",
                  "tls",       "limits",    "auth",      "queue",    "dkim",           "shutdown",
                  "delivery",  "retry",     "shaping",   "bounces",  "suppression",    "log",
                  "metrics",   "receive",   "events",    "feedback", "unsubscribe",    "tenants",
                  "campaigns", "tls_policy", "cluster"}));
  RETURN_IF_ERROR(root.String("hostname", &c.hostname));
  RETURN_IF_ERROR(root.Int("shards", &c.shards, 0, 256));
  RETURN_IF_ERROR(root.String("spool_dir", &c.spool_dir));
  RETURN_IF_ERROR(root.String("users", &c.users_path));
  RETURN_IF_ERROR(root.String("control_socket", &c.control_socket_path));
  RETURN_IF_ERROR(
      WithTable(root, "submission", [&](const Section& t) { return ParseSubmission(c, t); }));
  RETURN_IF_ERROR(WithTable(root, "tls", [&](const Section& t) { return ParseTls(c, t); }));
  RETURN_IF_ERROR(
      WithTable(root, "limits", [&](const Section& t) { return ParseLimits(c.smtp, t); }));
  RETURN_IF_ERROR(WithTable(root, "auth", [&](const Section& t) { return ParseAuth(c.auth, t); }));
  RETURN_IF_ERROR(
      WithTable(root, "queue", [&](const Section& t) { return ParseQueue(c.queue, t); }));
  RETURN_IF_ERROR(WithTable(root, "dkim", [&](const Section& t) { return ParseDkim(c, t); }));
  RETURN_IF_ERROR(
      WithTable(root, "delivery", [&](const Section& t) { return ParseDelivery(c.delivery, t); }));
  c.log.dir = "log";
  RETURN_IF_ERROR(WithTable(root, "log", [&](const Section& t) { return ParseLog(c.log, t); }));
  RETURN_IF_ERROR(WithTable(root, "retry", [&](const Section& t) -> absl::Status {
    ASSIGN_OR_RETURN(c.retry, config::ParseRetry(t));
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(delivery::ShapingRules shaping,
                   config::ParseShaping(root, config::ShippedShapingRules()));
  c.shaping = std::make_shared<const delivery::ShapingRules>(std::move(shaping));
  ASSIGN_OR_RETURN(c.bounces, config::ParseBounces(root));
  RETURN_IF_ERROR(
      WithTable(root, "metrics", [&](const Section& t) { return ParseMetrics(c.metrics, t); }));
  RETURN_IF_ERROR(WithTable(root, "receive", [&](const Section& t) { return ParseReceive(c, t); }));
  RETURN_IF_ERROR(WithTable(root, "suppression",
                            [&](const Section& t) { return ParseSuppression(c.suppression, t); }));
  RETURN_IF_ERROR(WithTable(root, "tls_policy",
                            [&](const Section& t) { return ParseTlsPolicy(c.tls_policy, t); }));
  ASSIGN_OR_RETURN(c.events, config::ParseEvents(root, c.dir));
  ASSIGN_OR_RETURN(c.tenants, config::ParseTenants(root));
  ASSIGN_OR_RETURN(c.cluster, config::ParseCluster(root, c.dir));
  ASSIGN_OR_RETURN(c.feedback, config::ParseFeedback(root, c.dir, c.receive.domains));
  for (const feedback::VerpDomain& d : c.feedback.verp) {
    if (d.bounce_domain == c.receive.srs_domain) {
      return absl::InvalidArgumentError(absl::StrCat(
          c.path, ": bounce domain ", d.bounce_domain,
          " is also [receive] srs_domain: SRS bounces would be taken for VERP reports"));
    }
    if (!absl::EndsWith(d.bounce_domain, absl::StrCat(".", d.domain))) {
      c.notices.push_back(
          absl::StrCat(c.path, ": bounce domain ", d.bounce_domain, " is not under ", d.domain,
                       ": SPF of the return path will not align with the From domain for DMARC "
                       "(RFC 7489 §3.1.2)"));
    }
  }
  ASSIGN_OR_RETURN(c.unsubscribe, config::ParseUnsubscribe(root));
  if (c.feedback.enabled() && !c.receive.enabled()) {
    return absl::InvalidArgumentError(
        absl::StrCat(c.path,
                     ": [[feedback.verp]] needs [receive] listen: bounces and complaints come back "
                     "to the bounce domain on port 25"));
  }
  return WithTable(root, "shutdown", [&](const Section& t) { return ParseShutdown(c, t); });
}

// Settings renamed so that the unit comes last (message_age_s_max, not max_age_s). A file with an
// old name still loads: the setting is read under its new name and a notice says so.
struct RenamedSetting {
  std::string_view table, old_key, new_key;
};
constexpr RenamedSetting kRenamedSettings[] = {
    {"queue", "max_age_s", "message_age_s_max"},
    {"receive", "srs_max_age_days", "srs_age_days_max"},
    {"auth", "failure_delay_max_ms", "failure_delay_ms_max"},
    {"delivery", "outcome_retry_max_ms", "outcome_retry_ms_max"},
};

// Moves every old name in `doc` to its new one (both given is an error) and notes each.
absl::Status ReadOldNames(const std::string& path, toml::table& doc,
                          std::vector<std::string>* notices) {
  for (const RenamedSetting& r : kRenamedSettings) {
    toml::table* t = doc[r.table].as_table();
    toml::node* old_value = t == nullptr ? nullptr : t->get(r.old_key);
    if (old_value == nullptr) continue;
    const Section section(path, std::string(r.table), *t);
    const std::string new_name = absl::StrCat(std::string(r.table), ".", std::string(r.new_key));
    if (t->contains(r.new_key)) {
      return section.Error(r.old_key, absl::StrCat("is the old name of ", new_name,
                                                   ", which is set too; remove this one"));
    }
    notices->push_back(std::string(
        section.Error(r.old_key, absl::StrCat("is an old name; read as ", new_name)).message()));
    t->insert_or_assign(r.new_key, std::move(*old_value));
    t->erase(r.old_key);
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
      std::string sub =
          key.empty() ? std::string(k.str()) : absl::StrCat(key, ".", std::string(k.str()));
      Diff(&v, tb->get(k.str()), sub, changed);
    }
    for (const auto& [k, v] : *tb) {
      if (ta->get(k.str()) == nullptr) {
        changed->push_back(key.empty() ? std::string(k.str())
                                       : absl::StrCat(key, ".", std::string(k.str())));
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
  ASSIGN_OR_RETURN(toml::table doc, config::ParseFile(path));
  RETURN_IF_ERROR(ReadOldNames(path, doc, &c.notices));
  const Section root(path, "", doc);
  RETURN_IF_ERROR(Parse(root, c));
  c.retry.message_age_s_max = static_cast<int64_t>(c.queue.message_age_s_max);
  if (c.hostname.empty()) return root.Error("hostname", "is required");
  ResolvePaths(c);
  if (c.submission_listen.empty() && c.submissions_listen.empty() && !c.receive.enabled()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no listener: set submission.listen, submission.listen_tls or receive.listen"));
  }
  for (const std::string& listen : c.unsubscribe.listen) {
    // RFC 8058 §3.1: the link is HTTPS. Without a certificate only a proxy on this host, which
    // terminates TLS, may reach the endpoint.
    absl::StatusOr<io::SocketAddress> a = io::SocketAddress::Parse(listen);
    if (!a.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": unsubscribe.listen \"", listen, "\": ", a.status().message()));
    }
    if (c.tls_cert_path.empty() && !metrics::IsLoopback(*a)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": unsubscribe.listen \"", listen,
          "\" needs tls.cert and tls.key (HTTPS; plain HTTP only on a loopback address)"));
    }
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

Config DefaultConfig(const std::string& dir, const std::string& hostname) {
  Config c;
  c.dir = dir;
  c.hostname = hostname;
  c.log.dir = "log";
  ResolvePaths(c);
  c.shaping = std::make_shared<const delivery::ShapingRules>(config::ShippedShapingRules());
  c.bounces = config::ShippedBounceClassifier();
  c.retry.message_age_s_max = static_cast<int64_t>(c.queue.message_age_s_max);
  return c;
}

}  // namespace relay::server
