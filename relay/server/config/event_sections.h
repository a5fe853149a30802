// [events]: the event journal and the sinks that take each tenant's events (relay/events): HTTPS
// webhooks and AMQP exchanges (RabbitMQ).
//
//   [events]
//   dir = ""                          # "": <spool_dir>/events
//   file_bytes_max = 8388608          # each journal file (per shard, made and reused ahead)
//   journal_bytes_max = 4294967296    # all files; past it the oldest go (events dropped, counted)
//   sync = "interval"                 # or "with-queue" (see below)
//   sync_ms = 100                     # interval: the journal's fdatasync at most this often
//   [[events.webhook]]
//   name = "app"                      # [a-z0-9_-]: the cursor file and the metrics label
//   url = "https://hooks.example.com/relay"
//   tenants = ["example.com"]         # sending domains whose events it gets; "*" for all
//   events = ["delivered", "bounced"] # optional: only these
//   secret_file = "webhook-app.secret"  # or secret = "..."; the HMAC-SHA256 key
//   ca_file = "/etc/ssl/certs/ca-certificates.crt"
//   batch_events_max = 500, batch_bytes_max = 1048576, batch_wait_ms = 1000
//   timeout_ms = 10000, retry_initial_ms = 1000, retry_ms_max = 300000
//   [[events.amqp]]                   # one message per event, "<tenant>.<event>" (amqp_sink.h)
//   name = "bus"                      # [a-z0-9_-], unique among all sinks
//   url = "amqp://relay@10.0.0.5:5672/mail"  # user:password@host:port/vhost; no amqps://
//   password_file = "amqp-bus.password"  # or the password in url; trailing white space dropped
//   tenants = ["*"], events = [...]   # as for a webhook
//   exchange = "relay.events"         # declared durable at connect (declare_exchange = true)
//   exchange_type = "topic"           # or "direct", "fanout", "headers"
//   declare_exchange = true           # false: it must exist (and may be an amq.* one)
//   timeout_ms = 10000                # connecting; a batch's publishes up to its last ack
//   heartbeat_s = 30                  # asked of the broker, which may lower it; 0: none
//   batch_events_max = 500, batch_bytes_max = 1048576, batch_wait_ms = 1000
//   retry_initial_ms = 1000, retry_ms_max = 300000
//
// sync: "with-queue" fdatasyncs the journal in each group commit of the queue, so an event is on
// disk no later than the outcome it describes, even across a power loss; it costs a second
// fdatasync per commit (bench/RESULTS.md). "interval" writes each event at once (into the
// page cache, which a crash of relayd does not lose) and fdatasyncs it on its own every sync_ms:
// a power loss or kernel crash may lose the last sync_ms of events.
//
// Without a sink there is no journal and no event costs anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/events/amqp_sink.h"
#include "relay/events/webhook_sender.h"
#include "relay/server/config/toml_section.h"

namespace relay::server::config {

struct EventsSettings {
  std::string dir;  // "": <spool_dir>/events (relative: under the config's directory)
  uint64_t file_bytes_max = 8 << 20;
  uint64_t journal_bytes_max = uint64_t{4} << 30;
  int sync_interval_ms = 100;  // 0: sync = "with-queue"
  std::vector<events::WebhookOptions> webhooks;
  std::vector<events::AmqpOptions> amqp;
  bool enabled() const { return !webhooks.empty() || !amqp.empty(); }
};

// The [events] table of `root`; relative secret_file, ca_file and password_file paths are read
// under `config_dir`.
absl::StatusOr<EventsSettings> ParseEvents(const Section& root, const std::string& config_dir);

}  // namespace relay::server::config
