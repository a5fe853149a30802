// An AMQP 0-9-1 exchange (RabbitMQ) as an event sink (event_sink.h). Each event of a batch becomes
// one message, published to `exchange` with
//
//   routing key  "<tenant>.<event>", e.g. "example_com.bounced": exactly two words for a topic
//                exchange, so a queue binds "example_com.*" for a tenant or "*.bounced" for a kind.
//                In the tenant (a sending domain) every byte that is not a-z, 0-9, '-' or '_' is
//                written '_' (upper case is lowered); the null sender's events, which have no
//                tenant, get "-"; a tenant is cut so that the key stays within AMQP's 255 bytes.
//   body         the event's JSON object, {"id":"<shard>-<seq>-<offset>","ts":...,"event":...}
//   properties   delivery_mode 2 (persistent), content_type "application/json", message_id the
//                event's id (the same on every retry, so a consumer drops repeats), type the event,
//                app_id "relayd", headers {"tenant": the exact tenant, "event": the event} (what a
//                headers exchange routes on)
//
// on a channel in confirm mode (RabbitMQ's publisher confirms), mandatory set. A batch is taken
// once the broker has acknowledged (basic.ack, one by one or "multiple") every message of it. A
// basic.nack (a queue refused it, e.g. x-overflow = reject-publish), a channel or connection the
// broker closes, a socket error, or an acknowledgement missing after timeout_ms fails the batch:
// the connection is dropped and the base class sends the same batch again, on a new connection,
// after its backoff. A message can thus reach a queue twice, never zero times once the cursor
// has passed it: at least once.
//
// An unroutable message (no queue bound for its key) comes back as basic.return before its ack.
// It counts as taken: the broker accepted it, where it goes is the broker's configuration, and
// sending it again would not route it. It is counted in AmqpStats::unroutable_events (a metric)
// so that an operator sees events going nowhere.
//
// Waits. Opening a connection (TCP, login, channel, exchange declaration, confirm mode) is bounded
// by timeout_ms, and so is each batch from its first publish to its last acknowledgement.
// librabbitmq waits for a socket to take a publish's bytes without any deadline (a broker under
// a memory or disk alarm stops reading from publishers' sockets), so a guard thread shuts the
// socket down when a deadline passes, and at once when Stop() is called: no wait outlives its
// bound, and a stopping relay does not wait on the broker. A host name in the URL is resolved
// with getaddrinfo(3) on the sink's thread, outside these bounds: give an address, or a name in
// /etc/hosts. Between batches the sink's thread serves heartbeats (heartbeat_s, 0 for none) every
// 100 ms, so an idle connection stays open and one the broker closed is noticed before the next
// batch needs it.
//
// No TLS to the broker: "amqps://" is refused. The relay's TLS is BoringSSL; librabbitmq's is
// built on OpenSSL 3, and the two cannot share a process: BoringSSL is loaded first and its
// symbols are unversioned, so the dynamic linker binds OpenSSL 3's versioned references, even
// libssl.so.3's calls into itself, to BoringSSL (LD_DEBUG=bindings shows it). The relay links
// librabbitmq's static archive, whose TLS members nothing pulls in, so OpenSSL 3 is not loaded at
// all (//tools/bazel:rabbitmq; amqp_sink_test checks it). A fleet's broker sits on loopback or a
// private network; across anything else, carry the connection in a tunnel (WireGuard, or an
// stunnel client listening on loopback).
//
// Contract: Deliver and Idle run on the sink's own thread (the base class's); stats() and
// amqp_stats() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/events/event_sink.h"

namespace relay::events {

struct AmqpOptions : SinkOptions {
  // "amqp://user:password@host:port/vhost" (RFC 3986 percent-escapes in each part; no vhost
  // part: "/", which is written %2f). Defaults: guest, guest, port 5672.
  std::string url;
  std::string
      password;  // when not empty, used instead of the URL's ([[events.amqp]] password_file)
  std::string exchange = "relay.events";
  std::string exchange_type = "topic";  // topic, direct, fanout or headers
  bool declare_exchange = true;         // declare it (durable) at each connect
  int timeout_ms = 10000;               // opening a connection; one batch's publishes and acks
  int heartbeat_s = 30;                 // asked of the broker, which may lower it; 0: none
};

// The parts of an AMQP URL, percent-escapes decoded.
struct AmqpUrl {
  std::string host;
  uint16_t port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";
  bool has_password = false;  // the URL gave one (user:password@)
};
// Parses `url` with librabbitmq's own parser (amqp_parse_url). Refuses amqps:// (see above), a
// query or fragment, and an empty vhost ("amqp://host/" names the vhost "", which no broker has;
// "amqp://host" or "amqp://host/%2f" is "/").
absl::StatusOr<AmqpUrl> ParseAmqpUrl(std::string_view url);

// One event of a batch as published: views into the batch.
struct AmqpEvent {
  std::string_view json;    // the whole object
  std::string_view id;      // its "id", "" when it has none
  std::string_view event;   // its "event" value as written (JSON-escaped), "" when none
  std::string_view tenant;  // its "tenant" value as written, "" when none (or empty)
};
// The events of a batch (event_sink.h: JSON objects separated by commas), each beginning at its
// offset in `starts` (EventSink::batch_starts()), so that no event's text, damaged or not, decides
// where another begins. Linear in `batch`.
std::vector<AmqpEvent> SplitBatch(std::string_view batch, const std::vector<size_t>& starts);
// "<tenant>.<event>" as described above, from the JSON-escaped values of AmqpEvent.
std::string RoutingKey(std::string_view tenant, std::string_view event);
// A JSON string's content (without its quotes) decoded: escapes resolved, \u escapes written as
// UTF-8 (an unpaired surrogate as U+FFFD).
std::string JsonUnescape(std::string_view escaped);

struct AmqpStats {
  std::atomic<uint64_t> unroutable_events{0};  // returned (basic.return), then acknowledged
  std::atomic<uint64_t> connections{0};        // opened (login, channel, confirm mode done)
};

class AmqpSink : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<AmqpSink>> Create(AmqpOptions options,
                                                          const JournalSet* journals);
  ~AmqpSink() override;

  const AmqpOptions& options() const { return options_; }
  const AmqpStats& amqp_stats() const { return amqp_stats_; }

 protected:
  absl::Status Deliver(std::string_view events, size_t count) override;
  void Idle() override;

 private:
  class Guard;
  struct Connection;
  AmqpSink(AmqpOptions options, AmqpUrl url, const JournalSet* journals);

  // Opens conn_: TCP, login, channel 1, the exchange, confirm mode.
  absl::Status Connect();
  // Publishes `events` on conn_ and waits for every acknowledgement.
  absl::Status Publish(const std::vector<AmqpEvent>& events);
  // Closes conn_ without waiting (the socket is closed; the broker sees the TCP close).
  void Drop();

  const AmqpOptions options_;
  const AmqpUrl url_;
  AmqpStats amqp_stats_;
  std::unique_ptr<Connection> conn_;  // null while not connected
  std::unique_ptr<Guard> guard_;
};

}  // namespace relay::events
