// Fuzz target for what the event sinks read: journal lines (on-disk input), the Message-ID field
// of a message's header, cursor files (on disk), the status line of an endpoint's response
// (any server on the Internet), an event's JSON as the AMQP sink reads it (from the journal) and
// an AMQP URL (the config). The first byte picks the parser. Checks: fields found lie inside
// the input, a cursor read back formats and reads the same, and time and memory are linear in
// the input.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "relay/events/amqp_sink.h"
#include "relay/events/event_journal.h"
#include "relay/events/https_post.h"
#include "relay/events/journal_reader.h"
#include "relay/events/webhook_sender.h"
#include "tools/fuzz/fuzz.h"

namespace relay::events {
namespace {

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void FuzzEvents(std::string_view input) {
  if (input.empty()) return;
  const char which = input[0] % 7;
  input.remove_prefix(1);
  switch (which) {
    case 0: {
      JournalEvent e;
      if (ParseJournalLine(input, &e)) {
        FUZZ_CHECK(Inside(e.event, input) && Inside(e.tenant, input) && Inside(e.json, input));
        FUZZ_CHECK(!e.event.empty() && e.json.front() == '{' && e.json.back() == '}');
      }
      break;
    }
    case 1: {
      std::string storage;
      std::string_view id = FindMessageId(input, &storage);
      FUZZ_CHECK(id.size() <= 998);
      break;
    }
    case 2: {
      int code = ParseStatusLine(input);
      FUZZ_CHECK(code == -1 || (code >= 100 && code <= 999));
      break;
    }
    case 3: {
      absl::StatusOr<std::vector<Position>> cursor = ParseCursor(input);
      if (cursor.ok()) {
        FUZZ_CHECK(cursor->size() <= 256);
        absl::StatusOr<std::vector<Position>> again = ParseCursor(FormatCursor(*cursor));
        FUZZ_CHECK(again.ok() && *again == *cursor);
      }
      break;
    }
    case 4: {
      absl::StatusOr<Url> url = ParseUrl(input);
      if (url.ok()) {
        FUZZ_CHECK(!url->host.empty() && url->port != 0);
        // Both go on a request line or into a header: nothing that ends one.
        FUZZ_CHECK(url->host.find_first_of("\r\n /") == std::string::npos);
        FUZZ_CHECK(url->path.find_first_of("\r\n ") == std::string::npos);
      }
      break;
    }
    case 5: {
      const std::vector<AmqpEvent> events = SplitBatch(input, {0});
      FUZZ_CHECK(events.size() <= 1);
      for (const AmqpEvent& e : events) {
        FUZZ_CHECK(Inside(e.json, input) && Inside(e.id, input) && Inside(e.event, input) &&
                   Inside(e.tenant, input));
        // A topic exchange's two words, within AMQP's 255 bytes.
        const std::string key = RoutingKey(e.tenant, e.event);
        FUZZ_CHECK(!key.empty() && key.size() <= 255 &&
                   std::count(key.begin(), key.end(), '.') == 1 && key.front() != '.' &&
                   key.back() != '.');
      }
      break;
    }
    case 6: {
      absl::StatusOr<AmqpUrl> url = ParseAmqpUrl(input);
      if (url.ok()) FUZZ_CHECK(!url->host.empty() && url->port != 0 && !url->vhost.empty());
      break;
    }
  }
}

std::string ManyJournalFields(size_t bytes) {
  return std::string(1, '\0') + "1\tdelivered\t" + std::string(bytes, 'a') + "\t5\t{}";
}

std::string LongAmqpEvent(size_t bytes) {
  std::string s = std::string(1, '\5') + "{\"id\":\"0-1-0\",\"event\":\"bounced\",\"tenant\":\"";
  while (s.size() < bytes) s += "a.\\u00e9";
  return s + "\",\"reply\":{\"text\":[1,2]}}";
}

std::string LongHeader(size_t bytes) {
  std::string s(1, '\1');
  while (s.size() < bytes) s += "X-Filler: some value here\r\n";
  return s + "Message-ID: <x@y>\r\n\r\n";
}

std::string ManyCursorLines(size_t bytes) {
  std::string s(1, '\3');
  for (int i = 0; s.size() < bytes; ++i) s += std::to_string(i % 256) + " 12 345\n";
  return s;
}

}  // namespace
}  // namespace relay::events

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "events",
      .run = relay::events::FuzzEvents,
      // A cursor holds up to 256 positions (one per shard), and its text formats a line for
      // each, read back with a split per line; a Message-ID at most 998 bytes plus a
      // continuation line; the rest is views.
      .bounds = {.heap_peak_bytes = {65536, 8},
                 .heap_allocated_bytes = {131072, 64},
                 .allocations = {1024, 1}},
      .scaled = {{.name = "long journal line", .make = relay::events::ManyJournalFields},
                 {.name = "long header", .make = relay::events::LongHeader},
                 {.name = "many cursor lines", .make = relay::events::ManyCursorLines},
                 {.name = "long AMQP event", .make = relay::events::LongAmqpEvent}},
  };
  return target;
}
