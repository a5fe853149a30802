// relayctl's requests to a running relayd, through its control socket (relay/server/control.h):
//
//   relayctl queue retry ID|--all [--config PATH | --config-dir DIR | --socket PATH]
//   relayctl queue bounce ID      [--config PATH | --config-dir DIR | --socket PATH]
//   relayctl queue delete ID      [--config PATH | --config-dir DIR | --socket PATH]
//   relayctl reload               [--config PATH | --config-dir DIR | --socket PATH]
//
// The socket is the config's control_socket (PATH, or DIR/relayd.toml; default
// /etc/relay/relayd.toml), unless --socket names one: the relay of that configuration, not every
// relayd on the host (as `kill -HUP $(pidof relayd)` would). Prints relayd's answer; exit 0 when
// it starts with "ok", 1 otherwise (or when relayd cannot be reached), 2 for usage errors.
#pragma once

#include <string>
#include <string_view>

namespace relay::relayctl {

// argv[0] is the verb (retry, bounce or delete).
int QueueControlCommand(int argc, char** argv);
// `relayctl queue suspend WHAT [--for DURATION] [--reason TEXT]`, `queue resume WHAT`,
// `queue rebind WHAT --pool POOL [--for DURATION] [--reason TEXT]`, `queue unbind WHAT`,
// `queue suspensions`: argv[0] is the verb. WHAT: a SITE, or --site, --domain, --source, --tenant
// or --campaign with its value. DURATION: seconds, or with s, m, h or d; none: until resumed
// (unbound).
int QueueSuspendCommand(int argc, char** argv);
// `relayctl queue ready`: the running relay's ready queues, one row per (site, source) with the
// shards' shares summed: jobs waiting, connections open and allowed, the message rate, and a
// suspension or backoff in force.
int QueueReadyCommand(int argc, char** argv);
// The table for the "ready" answer's entries (relay/server/shard.h), for tests.
std::string FormatReadyTable(std::string_view entries);
// `relayctl queue summary --by site|source [--top N]`: argv[0] is "summary". The running relay's
// recipients in ready queues and on connections by site or egress source, with bytes and age
// buckets (the table of the offline summary, relay/delivery/queue_shape.h).
int QueueShapeCommand(int argc, char** argv);
// `relayctl tls forget DOMAIN`, `relayctl tls list`: the running relay's TLS downgrade memory
// (relay/tlspolicy/tls_memory.h). argv[0] is "tls".
int TlsCommand(int argc, char** argv);
// The table for the "tls list" answer ("N remembered; DOMAIN DAY; ..."), for tests.
std::string FormatTlsList(std::string_view answer);
// reload: the certificate, the users and the aliases read again, the delivery logs reopened, the
// DKIM keys, shaping rules, tenants, limits and egress pools of relayd.toml applied; the answer
// says what was reloaded and which other edits of relayd.toml need a restart.
int ReloadCommand(int argc, char** argv);
// relayctl cluster status: the nodes of the running relay's fleet ([cluster]), as Redis knows
// them: each one's name, whether it is up, its load and queue.
int ClusterCommand(int argc, char** argv);

}  // namespace relay::relayctl
