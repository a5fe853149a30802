// The relay's configuration: one TOML file, with the users file, key files and certificates
// beside it. Relative paths in the file are relative to the file's own directory.
//
// Load() validates everything it can without touching the network and names the file, the key and
// the problem in its error. The loaded Config is immutable and shared read-only by all shards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dns/mx.h"
#include "relay/delivery/egress.h"
#include "relay/delivery/retry.h"
#include "relay/delivery/shaping.h"
#include "relay/feedback/bounce_classifier.h"
#include "relay/receive/dmarc.h"
#include "relay/server/config/cluster_section.h"
#include "relay/server/config/event_sections.h"
#include "relay/server/config/feedback_sections.h"
#include "relay/server/config/tenant_sections.h"
#include "relay/smtp/client_reply.h"

namespace relay::server {

// Limits of the SMTP server, each with the reply it causes (see relay/smtp/server_session.h).
struct SmtpLimits {
  // RFC 5321 §4.5.3.1.4's 512 (CRLF included), plus the 500 octets DSN's ORCPT may add to a RCPT
  // command (RFC 3461 §4).
  uint32_t command_line_bytes_max = 1024;
  uint32_t data_line_bytes_max = 1000;         // RFC 5322 §2.1.1: 998 + CRLF
  uint64_t message_bytes_max = 36700160;       // 35 MiB, advertised in SIZE
  uint32_t recipients_max = 1000;              // RFC 5321 §4.5.3.1.8 asks for at least 100
  uint32_t errors_max = 10;                    // then 421 and close
  // In total, all shards. Each connection is a descriptor: keep this plus ~1,000 under the hard
  // RLIMIT_NOFILE (20,000 on many VMs).
  uint32_t connections_max = 16000;
  uint32_t connections_per_ip_max = 500;        // per client: IPv4 address or IPv6 /64
  uint32_t greeting_timeout_ms = 300000;       // RFC 5321 §4.5.3.2 (server side: 5 minutes)
  uint32_t command_timeout_ms = 300000;        // idle, waiting for a command: RFC 5321 §4.5.3.2.7
  // Deadlines that arriving bytes do not extend: a client dripping a byte at a time holds a
  // connection no longer than these. A command line, from its first byte to its CRLF; a DATA
  // body or BDAT chunk, from its start to its end.
  uint32_t command_deadline_ms = 60000;
  uint32_t data_timeout_ms = 600000;           // a DATA block may take up to 10 minutes
  // Submission sessions not yet authenticated wait this long at most for their next command.
  uint32_t idle_before_auth_ms = 60000;
  // Postfix's stress mode: while a shard holds this share of its connections, the greeting, idle
  // and command limits above shrink to stress_timeout_ms, freeing slots held by idle clients.
  uint32_t stress_connections_percent = 80;
  uint32_t stress_timeout_ms = 10000;
  uint32_t session_timeout_ms = 3600000;       // whole connection
  // Replies not yet taken by the client (plaintext and TLS records). Above it the connection stops
  // reading: a client that pipelines commands without reading the replies (EHLO costs twice its
  // size in reply) cannot make the relay buffer for it.
  uint32_t replies_unread_bytes_max = 65536;
  // Input that had already arrived when reading stopped (the kernel fills receive buffers ahead
  // of the loop), kept until the replies are read. A client that has more than this in flight
  // while it reads nothing is closed: RFC 2920 §3.1 has the client read as it pipelines.
  uint32_t input_held_bytes_max = 1 << 20;
  // How long the client may leave replies unread above replies_unread_bytes_max before it is
  // dropped.
  uint32_t replies_unread_timeout_ms = 60000;
  // Closing after the last reply (421, 221): the relay ends its side after the replies (FIN) and
  // reads and discards what the client still sends for at most this long, or until it closes;
  // closing with client bytes unread would reset the connection and the kernel would drop the
  // replies not yet delivered, the 421 first. 0: close at once. At most close_linger_bytes_max
  // are read that way: a client that floods rather than reads is then reset.
  uint32_t close_linger_ms = 2000;
  uint32_t close_linger_bytes_max = 8 << 20;
};

// AUTH throttling (relay/server/auth_throttle.h). A client is an IPv4 address or an IPv6 /64
// (relay/server/client_key.h).
struct AuthLimits {
  uint32_t failures_before_delay = 3;          // per client, within the window
  uint32_t failure_delay_ms = 1000;            // per failure beyond failures_before_delay
  uint32_t failure_delay_ms_max = 10000;
  uint32_t failures_before_block = 10;         // per client, all user names together
  uint32_t user_failures_before_block = 5;     // per client and user name
  uint32_t failure_window_ms = 600000;
  uint32_t block_ms = 900000;
  uint32_t throttle_entries_max = 100000;      // clients + (client, user) pairs remembered
  uint32_t worker_threads = 1;                 // scrypt runs off the shard threads
  // Password checks waiting for a worker; beyond, AUTH gets 454 4.7.0 at once.
  uint32_t checks_queued_max = 128;
};

struct QueueSettings {
  uint64_t segment_bytes = 64ull << 20;
  uint32_t reserve_segments = 2;
  uint64_t spool_bytes_max = 0;                // 0: limited by the disk only
  bool fsync = true;                           // false is for benchmarks only
  uint32_t syncs_in_flight_max = 2;            // group commits in flight at once
  // A delivery outcome waits at most this long for a group commit to cover it (queue/spool.h).
  uint32_t outcome_sync_ms = 5;
  uint64_t message_age_s_max = 5 * 24 * 3600;
};

struct DkimKeyConfig {
  std::string domain;
  std::string selector;
  std::string key_path;
};

struct DeliverySettings {
  bool enabled = true;                         // false: accept and queue only
  std::vector<std::string> dns_servers;        // "127.0.0.1:53"; empty: /etc/resolv.conf
  dns::FamilyPreference family = dns::FamilyPreference::kIpv4First;
  uint16_t mx_port = 25;                       // tests point delivery at loopback sinks
  uint32_t idle_connection_ms = 5000;          // keep an idle connection this long for reuse
  uint32_t source_suspend_ms = 300000;         // after the kernel refused a source address
  bool tls_verify = false;                     // verify MX certificates (system CA store)
  std::string tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  delivery::EgressStrategy strategy = delivery::EgressStrategy::kRoundRobin;
  std::vector<delivery::EgressSourceConfig> sources;  // empty: the kernel's choice
  // [[delivery.pool]]: named sets of sources, and which mail goes out of each (egress.h).
  std::vector<delivery::EgressPoolConfig> pools;
  delivery::PoolRoutes pool_routes;
  // What an MX may make one connection hold: reply_line_bytes_max, reply_lines_max and
  // reply_bytes_max (relay/smtp/client_reply.h). More is a protocol error that ends the session.
  smtp::ReplyLimits reply_limits;
  // An outcome the spool refused is appended again after outcome_retry_ms, doubling up to
  // outcome_retry_ms_max; no new delivery starts while unrecorded_outcomes_max wait.
  uint32_t outcome_retry_ms = 1000;
  uint32_t outcome_retry_ms_max = 60000;
  uint32_t unrecorded_outcomes_max = 1000;
  // A failure DSN for a message sent with RET=FULL (RFC 3461 §4.3) returns the whole message up
  // to this size, its header section beyond (Postfix's bounce_size_limit).
  uint64_t dsn_return_bytes_max = 1 << 20;
};

struct LogSettings {
  std::string dir;                             // delivery-<shard>.log files; "" disables them
  uint64_t rotate_bytes = 256ull << 20;        // rotate a shard's file at this size (0: never)
  uint32_t rotate_keep = 5;
};

// The HTTP endpoint for Prometheus (GET /metrics) and health checks (GET /healthz).
struct MetricsSettings {
  std::string listen;                          // "127.0.0.1:9587"; "" disables the endpoint
  bool allow_public = false;                   // accept a non-loopback listen address
};

// [suppression]: the addresses each sending domain must not mail again (relay/feedback/
// suppression_list.h), checked at RCPT on the submission ports.
struct SuppressionSettings {
  bool enabled = true;
  std::string path;                            // "": <spool_dir>/suppression.mdb
  uint64_t map_bytes_max = uint64_t{1} << 30;  // the file's mapping: about 4M entries
  // A recipient that bounces for good in one of these categories joins the list.
  // At RCPT, a suppressed recipient is refused (550 5.7.1 with the reason), or taken and
  // reported: not queued, a "suppressed" line in the delivery log, the message queued for the
  // others (250 without a queue id when none is left).
  bool accept_suppressed = false;  // at_rcpt = "refuse" | "accept"
  // Not bad-domain by default: NXDOMAIN from a resolver that cannot see a domain (a wrong
  // [delivery] dns_servers, a sandbox without DNS) would otherwise suppress every address it
  // touched, and a domain's mail setup can be repaired.
  std::vector<feedback::BounceCategory> bounce_categories = {
      feedback::BounceCategory::kBadMailbox, feedback::BounceCategory::kInactiveMailbox};
};

// [tls_policy]: what makes outbound TLS mandatory for a destination (issue 17).
struct TlsPolicySettings {
  // Downgrade memory (relay/tlspolicy/tls_memory.h): a domain that took mail over TLS gets no
  // plain text afterwards, for memory_days after its latest TLS delivery.
  bool downgrade_memory = true;
  uint32_t memory_days = 90;
  uint32_t memory_domains_max = 200000;
  // MTA-STS (RFC 8461; relay/tls_policy): each recipient domain's policy is discovered before its
  // mail goes out (the TXT record checked at most every mta_sts_recheck_s per domain and shard,
  // the policy fetched over HTTPS when its id changed) and cached for its max_age in
  // <spool>/mta-sts. mta_sts_ca_file: the CA bundle policy servers' certificates must lead to
  // ("": the system store); mta_sts_port: where policies are fetched (443; tests use another).
  bool mta_sts = true;
  std::string mta_sts_ca_file;
  uint32_t mta_sts_port = 443;
  uint32_t mta_sts_recheck_s = 3600;
  uint32_t mta_sts_fetch_timeout_ms = 30000;
  uint32_t mta_sts_policies_max = 100000;
  // Discoveries (TXT lookup, then maybe a fetch) in flight per shard; past it the cache answers.
  uint32_t mta_sts_lookups_max = 100;
  // DANE (RFC 7672): an MX host whose TLSA records are DNSSEC-validated gets TLS authenticated by
  // them, or no mail. Validation is the resolver's: its AD bit counts only when dnssec_trust_ad
  // says so: kAuto when every [delivery] dns_servers entry is on loopback, or none is named and
  // /etc/resolv.conf has `options trust-ad` (dns::AdTrustedByDefault).
  enum class TrustAd { kAuto, kYes, kNo };
  bool dane = true;
  TrustAd dnssec_trust_ad = TrustAd::kAuto;
  // TLS reporting (RFC 8460; relay/tlspolicy/tls_report.h): sessions with destinations that have
  // an MTA-STS or DANE policy are counted per domain over report_interval_s (UTC days by
  // default; kept in <spool>/tls-reports across restarts), and each domain that publishes an
  // _smtp._tls record gets the window's report, by mail through the queue or HTTPS POST (the
  // server's certificate leading to report_ca_file, "": the system store). The report names
  // report_organization ("": the hostname) and report_contact ("": postmaster@hostname); mail
  // comes from report_from ("": tls-reports@hostname).
  bool reports = true;
  uint32_t report_interval_s = 86400;
  uint32_t report_domains_max = 10000;
  std::string report_organization;
  std::string report_contact;
  std::string report_from;
  std::string report_ca_file;
};

// Port 25: mail for the relay's own domains, forwarded by alias (relay/receive/aliases.h).
struct ReceiveSettings {
  std::vector<std::string> listen;             // empty: no port-25 listener
  std::vector<std::string> domains;            // the local domains, lower-case
  // (domain, aliases file) for each local domain: receive.aliases.<domain>, else
  // <aliases_dir>/<domain>.
  std::vector<std::pair<std::string, std::string>> aliases_files;
  uint32_t alias_depth_max = 10;
  std::string suffix_separators = "+";         // "user+tag" -> "user"
  uint32_t alias_targets_max = 100;
  std::string srs_domain;                      // default: the first local domain
  std::string srs_secret_path;                 // one secret per line, the first signs
  uint32_t srs_age_days_max = 21;
  bool spf = true;                             // evaluate SPF (RFC 7208) of MAIL FROM / HELO
  bool dkim = true;                            // verify DKIM signatures of received mail
  bool arc = true;                             // validate the ARC chain and seal forwarded mail
  // Evaluate DMARC (RFC 7489) of the From domain; needs spf and dkim (off without them).
  bool dmarc = true;
  // dmarc_reject, dmarc_quarantine and spf_fail_without_dkim: what happens to mail that fails
  // (relay/receive/dmarc.h). Not for authenticated clients.
  receive::InboundPolicy policy;
  // At end of DATA, how long the SPF, DKIM and DMARC checks may still take; then temperror.
  uint32_t checks_timeout_ms = 20000;
  // DKIM/ARC verifications and ARC seals waiting for a worker thread ([dkim] signing_threads),
  // all shards together; a message that finds them full gets 451 4.3.2.
  uint32_t checks_queued_max = 64;
  bool enabled() const { return !listen.empty(); }
};

struct Config {
  std::string path;                            // the file it was loaded from
  // What the operator should know about the file that is not an error (a setting given by its
  // old name), one line each in the form of an error; relayd logs them at start.
  std::vector<std::string> notices;
  std::string dir;                             // its directory
  std::string hostname;                        // EHLO / greeting / Received "by"
  uint32_t shards = 0;                         // 0: one per online core
  std::string spool_dir;
  std::vector<std::string> submission_listen;  // STARTTLS then AUTH (587)
  std::vector<std::string> submissions_listen; // implicit TLS (465)
  std::string tls_cert_path;
  std::string tls_key_path;
  std::string users_path;
  std::string control_socket_path;             // relayctl queue retry|bounce|delete
  bool auth_requires_tls = true;
  // [submission] header_from: "owned" (false) refuses a message whose From: address the user may
  // not send as (550 5.7.1); "any" (true) accepts it and signs with the envelope sender's domain,
  // never the From domain's key: a signature aligned with a domain the user does not own would
  // pass DMARC for it.
  bool header_from_any = false;
  SmtpLimits smtp;
  AuthLimits auth;
  QueueSettings queue;
  std::vector<DkimKeyConfig> dkim_keys;
  uint32_t dkim_signing_threads = 0;           // signatures off the shard threads; 0: one per core
  DeliverySettings delivery;
  LogSettings log;
  MetricsSettings metrics;
  SuppressionSettings suppression;
  TlsPolicySettings tls_policy;
  config::EventsSettings events;  // [events] (config/event_sections.h)
  config::FeedbackSettings feedback;  // [feedback] (config/feedback_sections.h)
  config::UnsubscribeSettings unsubscribe;  // [unsubscribe] (config/feedback_sections.h)
  config::TenantSettings tenants;           // [[tenants]], [campaigns] (config/tenant_sections.h)
  config::ClusterSettings cluster;          // [cluster] (config/cluster_section.h)
  ReceiveSettings receive;
  std::shared_ptr<const delivery::ShapingRules> shaping;  // shipped defaults + [[shaping]]
  // [[bounces.rule]] then the shipped bounce rules (config/bounce_sections.h).
  std::shared_ptr<const feedback::BounceClassifier> bounces;
  delivery::RetryPolicy retry;
  uint32_t shutdown_grace_ms = 10000;
  uint32_t tls_reload_check_ms = 60000;        // re-read the certificate when its file changed
};

// Reads and validates `path`. A new, commented file comes from relay/server/init_config.h.
absl::StatusOr<Config> LoadConfig(const std::string& path);

// The configuration a relayd.toml in `dir` naming only `hostname` gives: every default, the
// spool, users, control socket and delivery logs under `dir`, the shipped shaping rules, no
// listener. Tests build on it as data (then set the listeners, limits and keys they need).
Config DefaultConfig(const std::string& dir, const std::string& hostname);

// The settings whose values differ between two texts of a config file, as dotted keys
// ("metrics.listen", "dkim.key[1].selector"; a table added or removed whole is its own key),
// sorted within each table. Comments and layout do not count. An error names the text that does
// not parse. SIGHUP does not re-read relayd.toml: it reports these as needing a restart.
absl::StatusOr<std::vector<std::string>> ChangedSettings(const std::string& before_text,
                                                         const std::string& after_text);

}  // namespace relay::server
