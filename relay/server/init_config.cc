#include "relay/server/init_config.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "relay/base/status_macros.h"
#include "relay/delivery/retry.h"
#include "relay/delivery/shaping.h"
#include "relay/server/config.h"
#include "relay/server/config/delivery_sections.h"
#include "relay/server/users.h"
#include "relay/tls/self_signed.h"

namespace relay::server {
namespace {

namespace fs = std::filesystem;

constexpr mode_t kSecretMode = 0600;  // private keys, the SRS secret
constexpr char kSrsSecretName[] = "srs.secret";
// 192 bits: SRS's HMAC key (postsrsd makes 18 random bytes; more costs nothing).
constexpr size_t kSrsSecretBytes = 24;
constexpr mode_t kConfigMode = 0640;
constexpr char kConfigName[] = "relayd.toml";
constexpr size_t kPasswordChars = 20;

// The one template of relayd.toml. Tests and tools edit the text written by exact replacement
// (tools/testing/relayd_process.py: 'shards = 0', 'mx_port = 25', ...): change a key's line only
// together with every user of it. The values are filled in from the settings' own defaults.
constexpr char kTemplate[] = R"(# relayd configuration for mail from ${domain}.
# Relative paths are relative to this file. Every limit has a name here; the values shown are the
# defaults. `relayctl dns-records --config THIS_FILE` prints the DNS records it needs and
# `relayctl check-dns --config THIS_FILE` checks them.

# Name used in the greeting, in Received headers, and in EHLO for sources without their own.
# The MX of ${domain} points here.
hostname = "${hostname}"
# Worker threads, each with its own io_uring, listeners and queue partition. 0: one per core.
shards = 0
# The durable queue. Under systemd it must be one of the unit's ReadWritePaths.
spool_dir = "${spool_dir}"
# Users allowed to submit: `relayctl user-add USER --allow @${domain} --config-dir DIR`.
users = "users"
# Where `relayctl queue retry|bounce|delete` reaches the running relay (mode 0600).
control_socket = "${control_socket}"

[submission]
# Port 587 style: STARTTLS, then AUTH (RFC 6409).
listen = ${submission_listen}
# Port 465 style: implicit TLS (RFC 8314 §3.3).
listen_tls = ${submissions_listen}
auth_requires_tls = true
# The message's From: must be an address the user may send as (like MAIL FROM): "owned" refuses
# any other with 550 5.7.1; "any" accepts it and signs with the envelope sender's domain only,
# never with the key of the From domain, which the user does not own.
header_from = "owned"

[tls]
# A SELF-SIGNED certificate for the hostname, made at init so that TLS works from the first
# start (relayd makes one the same way when these files are missing): mail clients that verify
# will refuse it until you bring a real one. Put a certificate from a CA (ACME: acme.sh or certbot
# with tools/service/acme-reload-hook) in these files and send SIGHUP: new connections get it,
# existing ones keep the old one.
cert = "tls/cert.pem"
key = "tls/key.pem"
# How often the files are checked for a new certificate; 0: only on SIGHUP.
reload_check_ms = ${tls_reload_check_ms}

[limits]
command_line_bytes_max = ${command_line_bytes_max}
data_line_bytes_max = ${data_line_bytes_max}
message_bytes_max = ${message_bytes_max}
recipients_max = ${recipients_max}
errors_max = ${errors_max}
# Each connection is a descriptor: keep connections_max + ~1000 under the open-files limit.
connections_max = ${connections_max}
# Per client: an IPv4 address, or an IPv6 /64 (one subscriber holds a whole /64); the AUTH
# throttle below counts clients the same way.
connections_per_ip_max = ${connections_per_ip_max}
greeting_timeout_ms = ${greeting_timeout_ms}
# Idle, waiting for the next command (RFC 5321 §4.5.3.2.7); before AUTH on submission, at most
# idle_before_auth_ms.
command_timeout_ms = ${command_timeout_ms}
idle_before_auth_ms = ${idle_before_auth_ms}
# Deadlines that arriving bytes do not extend: a command line from its first byte to its CRLF, a
# DATA body or BDAT chunk from its start to its end. A client dripping bytes is cut at these.
command_deadline_ms = ${command_deadline_ms}
data_timeout_ms = ${data_timeout_ms}
# Stress mode (as Postfix's): while a shard holds stress_connections_percent of its share of
# connections_max, the greeting, idle and command limits shrink to stress_timeout_ms.
stress_connections_percent = ${stress_connections_percent}
stress_timeout_ms = ${stress_timeout_ms}
session_timeout_ms = ${session_timeout_ms}
# Replies the client has not read yet (plaintext and TLS). Above this the relay stops reading from
# it (a client pipelining commands without reading its replies). Input that had already arrived
# is held up to input_held_bytes_max (beyond: 421 and close), and a client that leaves its
# replies unread for replies_unread_timeout_ms is dropped.
replies_unread_bytes_max = ${replies_unread_bytes_max}
input_held_bytes_max = ${input_held_bytes_max}
replies_unread_timeout_ms = ${replies_unread_timeout_ms}
# Closing after the last reply, the relay reads and discards what the client still sends for up
# to close_linger_ms and close_linger_bytes_max, so that the 421 or 221 is not lost to a reset
# (0: close at once).
close_linger_ms = ${close_linger_ms}
close_linger_bytes_max = ${close_linger_bytes_max}

[auth]
# Failed AUTH is counted per client (an IPv4 address or an IPv6 /64) and per client and user
# name, each count over failure_window_ms from its first failure (fail2ban's findtime). After
# failures_before_delay failures of a client each AUTH reply to it is delayed; at
# failures_before_block (all user names together) the client is refused for block_ms, its new
# connections too; at user_failures_before_block one user name is refused from that client for
# block_ms. A success clears only that user's count there, not the client's.
failures_before_delay = ${failures_before_delay}
failure_delay_ms = ${failure_delay_ms}
failure_delay_ms_max = ${failure_delay_ms_max}
failures_before_block = ${failures_before_block}
user_failures_before_block = ${user_failures_before_block}
failure_window_ms = ${failure_window_ms}
block_ms = ${block_ms}
# Clients and (client, user) pairs remembered at most (~200 bytes each); the oldest go first.
throttle_entries_max = ${throttle_entries_max}
# Password checks (scrypt, ~140 ms each) run on worker_threads threads. At most checks_queued_max
# wait for one; beyond that AUTH gets 454 4.7.0 at once and the client may try again.
worker_threads = ${auth_worker_threads}
checks_queued_max = ${auth_checks_queued_max}

[queue]
segment_bytes = ${segment_bytes}
reserve_segments = ${reserve_segments}
# 0: limited by the disk only.
spool_bytes_max = ${spool_bytes_max}
# Never set to false in production: a 250 reply would no longer mean the message is on disk.
fsync = true
# Group commits (fdatasync batches) in flight at once. With 1, a message that arrives just after a
# batch began waits for the rest of it and a whole next one; with 2 or more, a new batch starts
# at once and the wait is about one fdatasync.
syncs_in_flight_max = ${syncs_in_flight_max}
# How long a delivery outcome (delivered, deferred, bounced) may wait for a group commit to cover
# it before one starts for it alone: more means fewer fdatasyncs while only deliveries run, less
# means fewer messages delivered twice if the machine loses power. 0: a sync at once.
outcome_sync_ms = ${outcome_sync_ms}
message_age_s_max = ${message_age_s_max}

[shutdown]
# SIGTERM: stop accepting, let sessions finish this long. The unit's TimeoutStopSec is above it.
grace_ms = ${grace_ms}

[delivery]
# false: accept and queue only.
enabled = true
# DNS servers for MX lookups ("127.0.0.1:53", "[::1]:53"); empty: /etc/resolv.conf. check-dns
# asks these too.
dns_servers = []
# ipv4-first, ipv6-first, ipv4-only or ipv6-only. IPv6 delivery to Gmail needs a PTR for every
# source address whose name resolves back to it.
family = "ipv4-first"
mx_port = 25
idle_connection_ms = ${idle_connection_ms}
source_suspend_ms = ${source_suspend_ms}
# What a receiving MX may make one connection hold, in every state: one reply line, the lines of
# one reply, and the bytes of one reply, which is also the most held from the MX at any time
# (while a body is sent replies are not read). More is a protocol error: the connection ends and
# the recipients not yet answered are deferred (421 4.5.0). Towards the MX, at most one body write
# of 256 KiB is in flight, under data_block_timeout_ms ([[shaping]] below).
reply_line_bytes_max = ${reply_line_bytes_max}
reply_lines_max = ${reply_lines_max}
reply_bytes_max = ${reply_bytes_max}
# An outcome the spool cannot record (disk full, I/O error) waits in memory and is appended again
# after outcome_retry_ms, doubling up to outcome_retry_ms_max; its recipient is not attempted again
# (and a bounce's DSN not sent) until then. No new delivery starts while unrecorded_outcomes_max
# outcomes wait.
outcome_retry_ms = ${outcome_retry_ms}
outcome_retry_ms_max = ${outcome_retry_ms_max}
unrecorded_outcomes_max = ${unrecorded_outcomes_max}
# DSNs (RFC 3461): clients may ask with NOTIFY, RET, ENVID and ORCPT, which are kept with the
# message and passed on to an MX that offers DSN. A failure DSN for RET=FULL returns the whole
# message up to this size, its headers beyond.
dsn_return_bytes_max = ${dsn_return_bytes_max}
# Verify MX certificates against tls_ca_file (most MX hosts do not have publicly trusted ones).
tls_verify = false
tls_ca_file = "${tls_ca_file}"
# round-robin, weighted or sticky (one source per destination site).
strategy = "round-robin"
# The egress sources: each source address with the EHLO name its PTR gives (and a `name`).
${sources}
# Named pools: a tenant, sending domain or campaign goes out of its own sources; other mail out of
# the pool named "default", or of every source when there is none. A new address warms up: a
# source's `warmup = [50, 100, 500, 1000, 5000]` is what it may send to one site on its 1st, 2nd,
# ... day from `warmup_start = "YYYY-MM-DD"` (UTC), no limit after; the rest goes out of the
# pool's other sources, or waits. `relayctl queue rebind` moves mail to another pool at run time.
# [[delivery.pool]]
# name = "bulk"
# sources = ["192.0.2.11"]   # [[delivery.source]] names or addresses
# strategy = "weighted"
# tenants = ["newsletter"]
# domains = ["news.${domain}"]
# campaigns = ["black-friday"]

[tls_policy]
# Downgrade memory: a recipient domain that took mail over TLS gets no plain text for
# memory_days after its latest TLS delivery (a stripped STARTTLS defers instead). relayctl tls
# list shows the domains, relayctl tls forget DOMAIN allows plain text again.
downgrade_memory = true
memory_days = 90
memory_domains_max = 200000
# MTA-STS (RFC 8461): each domain's policy is discovered before its mail goes out and cached for
# its max_age in the spool; in enforce mode mail goes only over TLS with a certificate valid for
# an MX the policy lists. Policy servers' certificates must lead to mta_sts_ca_file ("": the
# system store).
mta_sts = true
mta_sts_ca_file = ""
mta_sts_recheck_s = 3600
mta_sts_fetch_timeout_ms = 30000
mta_sts_policies_max = 100000
# Policy lookups in flight per shard; past it, mail goes by the cached policy (or none).
mta_sts_lookups_max = 100
# DANE (RFC 7672): an MX host whose TLSA records are DNSSEC-validated gets TLS authenticated by
# them, or no mail (for that host DANE outranks MTA-STS). The validation is the resolver's: its
# AD bit counts when dnssec_trust_ad = "yes", or "auto" and every [delivery] dns_servers entry
# is on loopback (a validating unbound beside the relay), or none is named and
# /etc/resolv.conf has "options trust-ad".
dane = true
dnssec_trust_ad = "auto"
# TLS reporting (RFC 8460): sessions with domains that have an MTA-STS or DANE policy are counted
# per UTC day (report_interval_s) and each domain that publishes an _smtp._tls record gets the
# day's report, by mail through the queue or by HTTPS POST. Report mail comes from report_from,
# by default tls-reports@${hostname}.
reports = true
report_interval_s = 86400
report_domains_max = 10000
report_organization = ""
report_contact = ""
report_from = ""
# The CA bundle report servers' certificates must lead to ("": the system store).
report_ca_file = ""
[log]
# The delivery log: one JSON object per line per event (received, delivered, deferred, bounced,
# dsn_sent), one file per shard (delivery-<shard>.log). Rotated by size, and reopened on SIGHUP
# (tools/service/relayd.logrotate). Under systemd: a ReadWritePaths entry. "" turns it off.
dir = "${log_dir}"
rotate_bytes = ${rotate_bytes}
rotate_keep = ${rotate_keep}

[metrics]
# Prometheus metrics at GET /metrics and a health check at GET /healthz (200 "ok", or 503 with
# the reason: a shard stopped or stalled, the spool not writable). "" turns the endpoint off.
# It has no authentication: a non-loopback address is refused unless allow_public = true.
# When the port is taken the relay starts all the same, without the endpoint, and says so.
listen = "${metrics_listen}"
allow_public = false

[retry]
# Waits after the 1st, 2nd, ... failed attempt; the last repeats until queue.message_age_s_max.
intervals_s = [${intervals_s}]
jitter_fraction = ${jitter_fraction}
# Tell the sender once, with a "delayed" DSN (RFC 3464), when a message is still being retried
# this long after it arrived (0: never, like Postfix's default).
delay_warning_s = ${delay_warning_s}

# Shaping: the rules shipped for the large receivers, in force without any [[shaping]] entry.
# An entry with the same name changes only the fields it sets.
${shaping}
# Bounce categories: every deferral and bounce gets one (bad-mailbox, inactive-mailbox,
# bad-domain, quota, no-answer-from-host, bad-connection, routing, protocol, policy, spam-block,
# spam-content, virus, auth-failure, rate-limited, too-large, invalid-sender, message-expired,
# other), in the delivery log ("category"), the DSN (X-Bounce-Category) and the metrics
# (relay_recipient_failures_total). The shipped rules know the large receivers' replies; rules
# here are tried first (the first that matches wins): codes, enhanced (C.S.D, "*" for any part)
# and text (RE2 patterns, case-insensitive), each optional, all given must hold.
# [[bounces.rule]]
# category = "spam-block"
# codes = [550]
# text = ['blocked by our partner list']
# The suppression list: a recipient that bounces in one of bounce_categories joins the list of
# the message's sending domain (the domain of MAIL FROM), and the next RCPT to it is refused with
# 550 5.7.1 and the reason. `relayctl suppress` adds, removes, lists, exports and imports (CSV).
# [suppression]
# enabled = true
# path = "spool/suppression.mdb"
# bounce_categories = ["bad-mailbox", "inactive-mailbox"]
# Events: every line of the delivery log, with its tenant (the sending domain) and Message-ID,
# kept in a journal beside the queue (sync = "interval": fdatasynced every sync_ms; "with-queue":
# in each group commit, safe across a power loss too) and POSTed as JSON batches to each webhook
# whose tenants it concerns ("*" for all), signed X-Relay-Signature: sha256=HMAC-SHA256(secret,
# "<X-Relay-Timestamp>.<body>"), retried until a 2xx: at least once, across restarts.
# [events]
# sync = "interval"
# sync_ms = 100
# journal_bytes_max = 4294967296
# [[events.webhook]]
# name = "app"
# url = "https://hooks.example.com/relay"
# tenants = ["${domain}"]
# secret_file = "webhook-app.secret"
# events = ["delivered", "bounced", "expired", "suppressed"]
# Or (and) to a RabbitMQ exchange: each event one persistent message with routing key
# "<tenant>.<event>" (dots in the tenant written "_": "example_com.bounced"), message_id the
# event's id, published with confirms and retried until the broker acknowledges it. No amqps://:
# keep the broker on loopback or a private network (or reach it through a tunnel).
# [[events.amqp]]
# name = "bus"
# url = "amqp://relay@127.0.0.1:5672/%2f"
# password_file = "amqp-bus.password"
# tenants = ["*"]
# exchange = "relay.events"
# exchange_type = "topic"
# declare_exchange = true
# timeout_ms = 10000
# heartbeat_s = 30
# A fleet: nodes that share one Redis share each receiver's connection and rate limits per
# (source, site), warm-up counts, suspensions and the suppression list (README, "Running a
# fleet"). Without Redis a node keeps to 1/fleet_size of each limit until it answers again.
# [cluster]
# redis = "127.0.0.1:6379"
# node = ""                      # this node's name in the fleet; "": the host name
# fleet_size = 3                 # required: the nodes sharing this Redis
# key_prefix = "${cluster_key_prefix}"
# sync_ms = ${cluster_sync_ms}
# heartbeat_ms = ${cluster_heartbeat_ms}
# lease_ttl_ms = ${cluster_lease_ttl_ms}
# token_batch_ms = ${cluster_token_batch_ms}
# pending_changes_max = ${cluster_pending_changes_max}

# Receiving on port 25 for your own domains, forwarding by alias (one file per domain in
# aliases_dir, chasquid's format: "user: target, target", "*: target" for a catch-all). Forwarded
# mail gets an SRS envelope sender, Authentication-Results and an ARC set signed with the
# domain's [[dkim.key]]. Reloaded on SIGHUP.
# DMARC (RFC 7489) of the From domain is evaluated from SPF and DKIM (dmarc needs both on) and
# applied at the end of DATA, since a forwarder that accepted failing mail would only bounce it
# later, to a sender who may be forged: a failure under p=reject is refused with 550 5.7.1
# (dmarc_reject: "refuse", "quarantine-header" to forward it marked X-Spam-Flag: YES, or
# "accept"), one under p=quarantine is marked (dmarc_quarantine, the same choices), and SPF fail
# with no DKIM signature that verifies is refused (spf_fail_without_dkim: "refuse" or "accept").
# The DKIM verification, ARC validation and ARC seal of a received message run on the worker
# threads of [dkim] below, not on the shard that talks to the client; at most checks_queued_max
# of them wait for a thread (all shards together), beyond which a message is refused for now
# (451 4.3.2) and its sender tries again later.
# [receive]
# listen = ["0.0.0.0:25", "[::]:25"]
# domains = ["${domain}"]
# aliases_dir = "aliases"
# srs_domain = "${domain}"
# srs_secret = "srs.secret"      # made by init; one secret a line, the first signs
# srs_age_days_max = ${srs_age_days_max}
# spf = true
# dkim = true
# arc = true
# dmarc = ${dmarc}
# dmarc_reject = "${dmarc_reject}"
# dmarc_quarantine = "${dmarc_quarantine}"
# spf_fail_without_dkim = "${spf_fail_without_dkim}"
# suffix_separators = "${suffix_separators}"
# alias_depth_max = ${alias_depth_max}
# alias_targets_max = ${alias_targets_max}
# checks_timeout_ms = ${checks_timeout_ms}
# checks_queued_max = ${receive_checks_queued_max}

# Returned bounces and complaints (needs [receive] listen): mail from a domain with a bounce
# domain leaves one transaction per recipient, each with its own return path
# bounces+TOKEN@bounce_domain (an HMAC names the message and recipient); DSNs, bounce texts and
# ARF complaints that come back there are matched, logged as bounced or complained events, and
# put the address on the suppression list (bounces in [suppression] bounce_categories).
# Publish the bounce domain's MX and SPF (`relayctl dns-records`).
# [feedback]
# secret_file = "feedback.secret"   # made at first start; one secret a line, the first signs
# suppress_complaints = true
# [[feedback.verp]]
# domain = "${domain}"
# bounce_domain = "bounce.${domain}"

# One-click unsubscribe (RFC 8058) for bulk mail: a message of a bulk user, or with the header
# X-Relay-Bulk: yes (removed), for one recipient, gets List-Unsubscribe (an HTTPS link to this
# relay, and a mailto at the bounce domain) and List-Unsubscribe-Post, signed by DKIM. The relay
# serves the links on listen (HTTPS, the [tls] certificate); a one-click POST puts the address on
# the suppression list. url's host must name this server in DNS and in the certificate.
# [unsubscribe]
# url = "https://${hostname}"
# listen = ["0.0.0.0:443", "[::]:443"]
# bulk_users = ["news@${domain}"]

# Tenants: the senders sharing this relay, by authenticated user or sending domain. Each
# message is stored with its tenant, its campaign (named by the client in the header below,
# removed before signing, or with MAIL FROM:<...> XCAMPAIGN=name) and its class; the delivery
# log, events, DSNs, metrics and `relayctl queue` name them. At a busy site transactional mail
# goes before normal before bulk (a message may say X-Relay-Priority: bulk, also removed; never
# above its tenant's priority_max, by default its priority), and tenants share the site by
# weight. A message of no tenant belongs to its sending domain (normal at most).
# [[tenants]]
# name = "shop"
# domains = ["${domain}"]
# priority = "transactional"
# weight = 1
# [[tenants]]
# name = "newsletter"
# users = ["news@${domain}"]
# priority = "bulk"
# [campaigns]
# header = "X-Relay-Campaign"
# priority_header = "X-Relay-Priority"

# DKIM (RFC 6376, RFC 8463). Signatures, and port 25's checks and seals, are computed by a pool of
# threads beside the shards (0: one per online core).
# [dkim]
# signing_threads = ${signing_threads}
${dkim_keys})";

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string QuotedList(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const std::string& s : items) q.push_back(Quoted(s));
  return absl::StrCat("[", absl::StrJoin(q, ", "), "]");
}

// The shipped shaping rules as commented [[shaping]] entries, so the operator sees the values in
// force and the syntax to change them.
std::string ShippedShapingComment() {
  const delivery::ShapingRules& shipped = config::ShippedShapingRules();
  const delivery::ShapingRule& d = shipped.default_rule();
  const delivery::DeliveryTimeouts& t = d.timeouts;
  std::string out = absl::StrCat(
      "# [[shaping]]\n# name = ", Quoted(d.name), "\n# connections_max = ", d.connections_max,
      "\n# messages_per_connection_max = ", d.messages_per_connection_max,
      "\n# 0: no limit (messages_burst 0: as many as messages_per_second).",
      "\n# messages_per_second = ", d.messages_per_second,
      "\n# messages_burst = ", d.messages_burst,
      "\n# connections_per_minute = ", d.connections_per_minute, "\n# tls = \"",
      std::string(delivery::TlsPolicyName(d.tls)), "\"",
      "\n# Next message's MAIL/RCPT/DATA behind the previous body (RFC 2920 §3.1); false for a\n"
      "# receiver that mishandles it.\n# pipeline_transactions = ",
      d.pipeline_transactions ? "true" : "false",
      "\n# Deadlines for the MX, RFC 5321 §4.5.3.2: each runs from the command, body write or\n"
      "# handshake it covers, and bytes arriving do not extend it (a reply dripped byte by byte "
      "is\n"
      "# cut at its deadline).\n# connect_timeout_ms = ",
      t.connect_ms, "\n# greeting_timeout_ms = ", t.greeting_ms,
      "\n# command_timeout_ms = ", t.command_ms, "\n# data_init_timeout_ms = ", t.data_init_ms,
      "\n# data_block_timeout_ms = ", t.data_block_ms,
      "\n# data_done_timeout_ms = ", t.data_done_ms,
      "\n# tls_handshake_timeout_ms = ", t.tls_handshake_ms, "\n");
  for (const delivery::ShapingRuleSpec& s : shipped.specs()) {
    absl::StrAppend(&out, "#\n# [[shaping]]\n# name = ", Quoted(s.name), "\n");
    if (!s.domains.empty()) absl::StrAppend(&out, "# domains = ", QuotedList(s.domains), "\n");
    if (!s.mx_suffixes.empty()) {
      absl::StrAppend(&out, "# mx_suffixes = ", QuotedList(s.mx_suffixes), "\n");
    }
    if (s.connections_max) absl::StrAppend(&out, "# connections_max = ", *s.connections_max, "\n");
    if (s.messages_per_connection_max) {
      absl::StrAppend(&out, "# messages_per_connection_max = ", *s.messages_per_connection_max,
                      "\n");
    }
    if (s.messages_per_second) {
      absl::StrAppend(&out, "# messages_per_second = ", *s.messages_per_second, "\n");
    }
    if (s.messages_burst) absl::StrAppend(&out, "# messages_burst = ", *s.messages_burst, "\n");
    if (s.connections_per_minute) {
      absl::StrAppend(&out, "# connections_per_minute = ", *s.connections_per_minute, "\n");
    }
    if (s.tls)
      absl::StrAppend(&out, "# tls = \"", std::string(delivery::TlsPolicyName(*s.tls)), "\"\n");
  }
  return out;
}

std::string SourcesText(const InitOptions& o) {
  if (o.sources.empty()) {
    return "# None: the kernel chooses the source address and EHLO uses hostname.\n"
           "# [[delivery.source]]\n"
           "# address = \"192.0.2.10\"\n"
           "# ehlo_name = \"mail1.example.com\"\n"
           "# [[delivery.source]]\n"
           "# prefix = \"2001:db8:25::/64\"   # with `ip -6 route add local 2001:db8:25::/64 dev "
           "lo`\n"
           "# count = 16\n"
           "# ehlo_name = \"mail{n}.example.com\"\n";
  }
  std::string out;
  for (const delivery::EgressSourceConfig& s : o.sources) {
    absl::StrAppend(&out, "[[delivery.source]]\n");
    if (s.prefix.empty()) {
      absl::StrAppend(&out, "address = ", Quoted(s.address),
                      "\n# Its PTR must name ehlo_name, and ehlo_name must resolve back to it.\n");
    } else {
      // relay/delivery/egress.h: "{n}" in the name is replaced by n, else the name is "<n>.name".
      std::string named = s.ehlo_name.find("{n}") == std::string::npos
                              ? absl::StrCat("<n>.", s.ehlo_name)
                              : absl::StrReplaceAll(s.ehlo_name, {{"{n}", "<n>"}});
      absl::StrAppend(
          &out, "# An AnyIP prefix: route it locally with\n#   ip -6 route add local ", s.prefix,
          " dev lo\n# The relay sends from the first `count` addresses of it (prefix "
          "+ 1, + 2, ...), each\n# with EHLO name ",
          named, "; each needs a PTR naming it and an AAAA back.\nprefix = ", Quoted(s.prefix),
          "\ncount = ", s.count, "\n");
    }
    absl::StrAppend(&out, "ehlo_name = ", Quoted(s.ehlo_name), "\n");
    if (s.weight != 1) absl::StrAppend(&out, "weight = ", s.weight, "\n");
  }
  return out;
}

std::string DkimKeysText(const InitOptions& o, const std::vector<InitKey>& keys) {
  if (keys.empty()) {
    std::string example = absl::StrCat("keys/", o.domain, ".relay.pem");
    return absl::StrCat(
        "# No key: mail leaves unsigned. Make one in this directory with\n"
        "#   relayctl dkim-keygen --domain ",
        o.domain, " --selector relay --algo rsa2048 \\\n#     --out ", example,
        "\n# publish the TXT record it prints, and name the key here:\n"
        "# [[dkim.key]]\n# domain = ",
        Quoted(o.domain), "\n# selector = \"relay\"\n# key = ", Quoted(example), "\n");
  }
  std::string out = absl::StrCat(
      "#\n# The keys below sign every message from @", o.domain,
      ".\n# Their public halves are the <selector>._domainkey TXT records that `relayctl "
      "dns-records`\n# prints. An RSA and an Ed25519 key together are dual signing: receivers "
      "that know\n# Ed25519 use it, the others RSA. To rotate, add a key with a new selector, "
      "publish it,\n# wait a day, then remove the old one.\n");
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : "\n", "[[dkim.key]]\ndomain = ", Quoted(o.domain),
                    "\nselector = ", Quoted(keys[i].selector), "\nkey = ", Quoted(keys[i].path),
                    "\n");
  }
  return out;
}

std::string AliasesText(const std::string& domain) {
  return absl::StrCat(
      "# Aliases of ", domain, ", read when [receive] in relayd.toml lists it (chasquid's format):\n",
      "#   user: target, target      mail to user@", domain, " goes to each target\n",
      "#   *: target                 everything else (a catch-all)\n",
      "# Reloaded by `relayctl reload`. Before turning receiving on, give these two a target:\n",
      "# postmaster (RFC 5321 requires it) and ", kDmarcReportsLocalPart,
      ", where the DMARC record init printed\n",
      "# (rua=mailto:", kDmarcReportsLocalPart, "@", domain, ") sends the daily reports.\n",
      "# postmaster: you@example.net\n",
      "# ", kDmarcReportsLocalPart, ": you@example.net\n");
}

absl::Status WriteNewFile(const fs::path& path, absl::string_view contents, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path.string()));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return absl::ErrnoToStatus(e, absl::StrCat("cannot write ", path.string()));
    }
    done += static_cast<size_t>(n);
  }
  // The mode asked for, whatever the umask.
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    return absl::ErrnoToStatus(e, absl::StrCat("cannot write ", path.string()));
  }
  if (close(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path.string()));
  }
  return absl::OkStatus();
}

// Creates `path` with `mode` unless it is already a directory.
absl::Status MakeDirectory(const fs::path& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0 || (errno == EEXIST && fs::is_directory(path))) {
    if (chmod(path.c_str(), mode) == 0) return absl::OkStatus();
  }
  return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path.string()));
}

int CurrentYear() {
  time_t now = time(nullptr);
  struct tm tm;
  gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

std::string RandomHex(size_t bytes_count) {
  std::vector<uint8_t> bytes(bytes_count);
  RAND_bytes(bytes.data(), bytes.size());
  std::string out;
  for (uint8_t b : bytes) absl::StrAppend(&out, absl::Hex(b, absl::kZeroPad2));
  return out;
}

std::string RandomPassword() {
  // No 0/O, 1/l/I: the password is read off a terminal once and typed elsewhere.
  static constexpr char kAlphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  uint8_t bytes[kPasswordChars];
  RAND_bytes(bytes, sizeof(bytes));
  std::string out;
  for (uint8_t b : bytes) out += kAlphabet[b % (sizeof(kAlphabet) - 1)];
  return out;
}

absl::StatusOr<InitKey> WriteKey(const fs::path& root, const InitOptions& o,
                                 dkim::KeyAlgorithm algorithm, int year) {
  InitKey k;
  k.algorithm = algorithm;
  k.selector = absl::StrCat(algorithm == dkim::KeyAlgorithm::kRsaSha256 ? "rsa" : "ed", year);
  k.path = absl::StrCat("keys/", o.domain, ".", k.selector, ".pem");
  k.owner = absl::StrCat(k.selector, "._domainkey.", o.domain);
  ASSIGN_OR_RETURN(dkim::PrivateKey key, dkim::PrivateKey::Generate(algorithm, kInitRsaBits));
  ASSIGN_OR_RETURN(std::string pem, key.ToPem());
  RETURN_IF_ERROR(WriteNewFile(root / k.path, pem, kSecretMode));
  k.record = key.PublicKeyRecord();
  return k;
}

}  // namespace

std::string InitConfigText(const InitOptions& o, const std::vector<InitKey>& keys) {
  const SmtpLimits l;
  const AuthLimits a;
  const QueueSettings q;
  const DeliverySettings d;
  const LogSettings log;
  const ReceiveSettings r;
  const cluster::FleetOptions fleet;
  const delivery::RetryPolicy retry;
  const Config c;
  const std::vector<std::pair<absl::string_view, std::string>> values = {
      {"${domain}", o.domain},
      {"${hostname}", o.hostname},
      {"${spool_dir}", o.spool_dir},
      {"${control_socket}", o.control_socket},
      {"${submission_listen}", QuotedList(o.submission_listen)},
      {"${submissions_listen}", QuotedList(o.submissions_listen)},
      {"${tls_reload_check_ms}", absl::StrCat(c.tls_reload_check_ms)},
      {"${command_line_bytes_max}", absl::StrCat(l.command_line_bytes_max)},
      {"${data_line_bytes_max}", absl::StrCat(l.data_line_bytes_max)},
      {"${message_bytes_max}", absl::StrCat(l.message_bytes_max)},
      {"${recipients_max}", absl::StrCat(l.recipients_max)},
      {"${errors_max}", absl::StrCat(l.errors_max)},
      {"${connections_max}", absl::StrCat(l.connections_max)},
      {"${connections_per_ip_max}", absl::StrCat(l.connections_per_ip_max)},
      {"${greeting_timeout_ms}", absl::StrCat(l.greeting_timeout_ms)},
      {"${command_timeout_ms}", absl::StrCat(l.command_timeout_ms)},
      {"${data_timeout_ms}", absl::StrCat(l.data_timeout_ms)},
      {"${session_timeout_ms}", absl::StrCat(l.session_timeout_ms)},
      {"${command_deadline_ms}", absl::StrCat(l.command_deadline_ms)},
      {"${idle_before_auth_ms}", absl::StrCat(l.idle_before_auth_ms)},
      {"${stress_connections_percent}", absl::StrCat(l.stress_connections_percent)},
      {"${stress_timeout_ms}", absl::StrCat(l.stress_timeout_ms)},
      {"${replies_unread_bytes_max}", absl::StrCat(l.replies_unread_bytes_max)},
      {"${input_held_bytes_max}", absl::StrCat(l.input_held_bytes_max)},
      {"${replies_unread_timeout_ms}", absl::StrCat(l.replies_unread_timeout_ms)},
      {"${close_linger_ms}", absl::StrCat(l.close_linger_ms)},
      {"${close_linger_bytes_max}", absl::StrCat(l.close_linger_bytes_max)},
      {"${failures_before_delay}", absl::StrCat(a.failures_before_delay)},
      {"${failure_delay_ms}", absl::StrCat(a.failure_delay_ms)},
      {"${failure_delay_ms_max}", absl::StrCat(a.failure_delay_ms_max)},
      {"${failures_before_block}", absl::StrCat(a.failures_before_block)},
      {"${user_failures_before_block}", absl::StrCat(a.user_failures_before_block)},
      {"${throttle_entries_max}", absl::StrCat(a.throttle_entries_max)},
      {"${auth_checks_queued_max}", absl::StrCat(a.checks_queued_max)},
      {"${failure_window_ms}", absl::StrCat(a.failure_window_ms)},
      {"${block_ms}", absl::StrCat(a.block_ms)},
      {"${auth_worker_threads}", absl::StrCat(a.worker_threads)},
      {"${segment_bytes}", absl::StrCat(q.segment_bytes)},
      {"${reserve_segments}", absl::StrCat(q.reserve_segments)},
      {"${spool_bytes_max}", absl::StrCat(q.spool_bytes_max)},
      {"${syncs_in_flight_max}", absl::StrCat(q.syncs_in_flight_max)},
      {"${outcome_sync_ms}", absl::StrCat(q.outcome_sync_ms)},
      {"${message_age_s_max}", absl::StrCat(q.message_age_s_max)},
      {"${grace_ms}", absl::StrCat(c.shutdown_grace_ms)},
      {"${idle_connection_ms}", absl::StrCat(d.idle_connection_ms)},
      {"${source_suspend_ms}", absl::StrCat(d.source_suspend_ms)},
      {"${reply_line_bytes_max}", absl::StrCat(d.reply_limits.reply_line_bytes_max)},
      {"${reply_lines_max}", absl::StrCat(d.reply_limits.reply_lines_max)},
      {"${reply_bytes_max}", absl::StrCat(d.reply_limits.reply_bytes_max)},
      {"${outcome_retry_ms}", absl::StrCat(d.outcome_retry_ms)},
      {"${outcome_retry_ms_max}", absl::StrCat(d.outcome_retry_ms_max)},
      {"${unrecorded_outcomes_max}", absl::StrCat(d.unrecorded_outcomes_max)},
      {"${dsn_return_bytes_max}", absl::StrCat(d.dsn_return_bytes_max)},
      {"${tls_ca_file}", d.tls_ca_file},
      {"${sources}", SourcesText(o)},
      {"${log_dir}", o.log_dir},
      {"${rotate_bytes}", absl::StrCat(log.rotate_bytes)},
      {"${rotate_keep}", absl::StrCat(log.rotate_keep)},
      {"${metrics_listen}", o.metrics_listen},
      {"${intervals_s}", absl::StrJoin(retry.intervals_s, ", ")},
      {"${jitter_fraction}", absl::StrCat(retry.jitter_fraction)},
      {"${delay_warning_s}", absl::StrCat(retry.delay_warning_s)},
      {"${shaping}", ShippedShapingComment()},
      {"${srs_age_days_max}", absl::StrCat(r.srs_age_days_max)},
      {"${suffix_separators}", r.suffix_separators},
      {"${alias_depth_max}", absl::StrCat(r.alias_depth_max)},
      {"${alias_targets_max}", absl::StrCat(r.alias_targets_max)},
      {"${checks_timeout_ms}", absl::StrCat(r.checks_timeout_ms)},
      {"${receive_checks_queued_max}", absl::StrCat(r.checks_queued_max)},
      {"${dmarc}", r.dmarc ? "true" : "false"},
      {"${dmarc_reject}", receive::InboundActionName(r.policy.dmarc_reject)},
      {"${dmarc_quarantine}", receive::InboundActionName(r.policy.dmarc_quarantine)},
      {"${spf_fail_without_dkim}", r.policy.refuse_spf_fail_without_dkim ? "refuse" : "accept"},
      {"${signing_threads}", absl::StrCat(c.dkim_signing_threads)},
      {"${cluster_key_prefix}", fleet.key_prefix},
      {"${cluster_sync_ms}", absl::StrCat(fleet.sync_ms)},
      {"${cluster_heartbeat_ms}", absl::StrCat(fleet.heartbeat_ms)},
      {"${cluster_lease_ttl_ms}", absl::StrCat(fleet.lease_ttl_ms)},
      {"${cluster_token_batch_ms}", absl::StrCat(fleet.token_batch_ms)},
      {"${cluster_pending_changes_max}", absl::StrCat(fleet.pending_changes_max)},
      {"${dkim_keys}", DkimKeysText(o, keys)},
  };
  return absl::StrReplaceAll(kTemplate, values);
}

absl::StatusOr<InitResult> InitDirectory(const std::string& dir, const InitOptions& o) {
  if (o.domain.empty() || o.hostname.empty()) {
    return absl::InvalidArgumentError("init needs a domain and a hostname");
  }
  for (size_t i = 0; i < o.dkim_algorithms.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (o.dkim_algorithms[i] == o.dkim_algorithms[j]) {
        return absl::InvalidArgumentError("init makes one DKIM key per algorithm");
      }
    }
  }
  const fs::path root(dir);
  std::error_code ec;
  const bool exists = fs::exists(root, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat(dir, ": ", ec.message()));
  if (fs::exists(root / kConfigName, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat(dir, " already holds a configuration; not overwriting it"));
  }
  if (exists && o.refuse_earlier_init) {
    // Half of an earlier init (a crash, a key that failed) is not mixed with a new one.
    for (const char* name : {"keys", "tls", "users", kSrsSecretName}) {
      if (fs::exists(root / name, ec)) {
        return absl::AlreadyExistsError(
            absl::StrCat(dir, " already holds ", name, " from an earlier init; not touching it"));
      }
    }
  }
  if (!exists && root.has_parent_path()) fs::create_directories(root.parent_path(), ec);
  RETURN_IF_ERROR(MakeDirectory(root, o.dir_mode));

  InitResult result;
  if (!o.dkim_algorithms.empty()) {
    RETURN_IF_ERROR(MakeDirectory(root / "keys", o.dir_mode));
    const int year = o.year != 0 ? o.year : CurrentYear();
    for (dkim::KeyAlgorithm algorithm : o.dkim_algorithms) {
      ASSIGN_OR_RETURN(InitKey key, WriteKey(root, o, algorithm, year));
      result.keys.push_back(std::move(key));
    }
  }

  RETURN_IF_ERROR(MakeDirectory(root / "tls", o.dir_mode));
  const fs::path cert = root / "tls" / "cert.pem";
  const fs::path cert_key = root / "tls" / "key.pem";
  const bool has_cert = fs::exists(cert, ec);
  const bool has_cert_key = fs::exists(cert_key, ec);
  if (has_cert != has_cert_key) {
    return absl::FailedPreconditionError(
        absl::StrCat((has_cert ? cert : cert_key).string(),
                     " is there without its other half; not touching it"));
  }
  if (!has_cert) {
    RETURN_IF_ERROR(
        tls::GenerateSelfSignedCertificate(o.hostname, cert.string(), cert_key.string()));
  }

  // The SRS secret (relay/receive/srs.h) is made here, not at first start: under the shipped unit
  // the configuration directory is read-only to relayd, which could not create it then.
  const fs::path srs_secret = root / kSrsSecretName;
  if (!fs::exists(srs_secret, ec)) {
    RETURN_IF_ERROR(WriteNewFile(srs_secret, absl::StrCat(RandomHex(kSrsSecretBytes), "\n"),
                                 kSecretMode));
  }

  // The aliases of the mail domain, for when [receive] is turned on: postmaster (RFC 5321 §4.5.1)
  // and the address the printed DMARC record sends reports to must reach someone.
  RETURN_IF_ERROR(MakeDirectory(root / "aliases", o.dir_mode));
  const fs::path aliases = root / "aliases" / o.domain;
  if (!fs::exists(aliases, ec)) {
    RETURN_IF_ERROR(WriteNewFile(aliases, AliasesText(o.domain), kConfigMode));
  }

  if (!o.first_user.empty()) {
    ASSIGN_OR_RETURN(std::shared_ptr<UserDb> users, UserDb::LoadOrEmpty((root / "users").string()));
    result.password = RandomPassword();
    RETURN_IF_ERROR(users->Add(o.first_user, result.password, {absl::StrCat("@", o.domain)}));
    RETURN_IF_ERROR(users->Save());
  }

  const fs::path config_path = root / kConfigName;
  RETURN_IF_ERROR(WriteNewFile(config_path, InitConfigText(o, result.keys), kConfigMode));
  // What relayd will read: a template that stopped loading must fail here, not at first start.
  absl::StatusOr<Config> loaded = LoadConfig(config_path.string());
  if (!loaded.ok()) {
    return absl::InternalError(
        absl::StrCat("the config written does not load: ", loaded.status().message()));
  }
  result.config_path = config_path.string();
  return result;
}

}  // namespace relay::server
