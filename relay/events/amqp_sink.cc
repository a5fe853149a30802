#include "relay/events/amqp_sink.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "relay/base/check.h"
#include "relay/base/log.h"
#include "relay/base/sv.h"

namespace relay::events {
namespace {

using Clock = std::chrono::steady_clock;

constexpr amqp_channel_t kChannel = 1;
constexpr int kFrameBytesMax = AMQP_DEFAULT_FRAME_SIZE;  // 128 KiB; a longer body takes frames
constexpr int kSliceMs = 100;  // a wait for acknowledgements looks at stopping() this often
constexpr size_t kRoutingKeyBytesMax = 255;  // AMQP 0-9-1 shortstr
constexpr size_t kEventWordBytesMax = 64;
constexpr int kCloseTimeoutMs = 1000;  // the polite connection.close when the sink ends

amqp_bytes_t Bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string_view View(amqp_bytes_t b) {
  return std::string_view(static_cast<const char*>(b.bytes), b.len);
}

timeval ToTimeval(int64_t ms) {
  ms = std::max<int64_t>(ms, 0);
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

int64_t MsUntil(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

// What a broker's close (connection.close or channel.close) says: "404 NOT_FOUND - no exchange".
std::string CloseText(const amqp_method_t& method) {
  if (method.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(method.decoded);
    return absl::StrCat("the broker closed the connection: ", m->reply_code, " ",
                        Sv(View(m->reply_text)));
  }
  if (method.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(method.decoded);
    return absl::StrCat("the broker closed the channel: ", m->reply_code, " ",
                        Sv(View(m->reply_text)));
  }
  return absl::StrCat("unexpected method 0x", absl::Hex(method.id));
}

// An RPC's outcome as a Status: OK, or what went wrong, `doing` first.
absl::Status RpcStatus(const amqp_rpc_reply_t& r, std::string_view doing) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return absl::OkStatus();
    case AMQP_RESPONSE_NONE:
      return absl::UnavailableError(absl::StrCat(Sv(doing), ": no reply"));
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return absl::UnavailableError(
          absl::StrCat(Sv(doing), ": ", amqp_error_string2(r.library_error)));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      return absl::UnavailableError(absl::StrCat(Sv(doing), ": ", CloseText(r.reply)));
  }
  return absl::UnavailableError(
      absl::StrCat(Sv(doing), ": reply type ", static_cast<int>(r.reply_type)));
}

// The index of the '"' that closes the string opening at `open`, or npos.
size_t StringEnd(std::string_view json, size_t open) {
  for (size_t i = open + 1; i < json.size(); ++i) {
    if (json[i] == '\\') {
      ++i;
    } else if (json[i] == '"') {
      return i;
    }
  }
  return std::string_view::npos;
}

// The top-level string fields a message needs, read in one pass; a damaged object gives the
// fields found before the damage.
AmqpEvent ReadEvent(std::string_view json) {
  AmqpEvent e;
  e.json = json;
  int depth = 0;
  bool want_key = false;  // the next string at depth 1 is a key
  bool have_key = false;
  std::string_view key;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      const size_t end = StringEnd(json, i);
      if (end == std::string_view::npos) break;
      const std::string_view text = json.substr(i + 1, end - i - 1);
      if (depth == 1 && want_key) {
        key = text;
        have_key = true;
        want_key = false;
      } else if (depth == 1 && have_key) {
        if (key == "id") e.id = text;
        if (key == "event") e.event = text;
        if (key == "tenant") e.tenant = text;
        have_key = false;
      }
      i = end;
    } else if (c == '{' || c == '[') {
      if (++depth == 1) want_key = true;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      want_key = true;
      have_key = false;
    }
  }
  return e;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The 4 hex digits at s[at..at+4), or -1.
int32_t Hex4(std::string_view s, size_t at) {
  if (at + 4 > s.size()) return -1;
  int32_t v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = s[i];
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// A routing key's word: a-z, 0-9, '-' and '_' kept (A-Z lowered), any other byte '_', "-" when
// empty, at most `bytes_max` bytes.
std::string Word(std::string_view text, size_t bytes_max) {
  std::string w;
  for (char c : text.substr(0, bytes_max)) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool kept = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    w += kept ? c : '_';
  }
  return w.empty() ? "-" : w;
}

}  // namespace

// A field table's UTF-8 entry; `value` must outlive the table's use.
amqp_table_entry_t Utf8Entry(const char* key, const std::string& value) {
  amqp_table_entry_t e;
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = Bytes(value);
  return e;
}

std::string JsonUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        int32_t cp = Hex4(s, i + 1);
        if (cp < 0) {
          AppendUtf8(0xFFFD, &out);
          break;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 2 < s.size() && s[i + 1] == '\\' &&
            s[i + 2] == 'u') {
          const int32_t low = Hex4(s, i + 3);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          }
        }
        AppendUtf8(cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : static_cast<uint32_t>(cp), &out);
        break;
      }
      default:  // '"', '\\', '/', and anything a writer should not have escaped
        out += c;
    }
  }
  return out;
}

std::vector<AmqpEvent> SplitBatch(std::string_view batch, const std::vector<size_t>& starts) {
  std::vector<AmqpEvent> events;
  events.reserve(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) {
    // Up to the comma before the next event's '{'.
    const size_t end = i + 1 < starts.size() ? starts[i + 1] - 1 : batch.size();
    if (starts[i] >= end || end > batch.size()) break;
    events.push_back(ReadEvent(batch.substr(starts[i], end - starts[i])));
  }
  return events;
}

std::string RoutingKey(std::string_view tenant, std::string_view event) {
  const std::string e = Word(JsonUnescape(event), kEventWordBytesMax);
  return absl::StrCat(Word(JsonUnescape(tenant), kRoutingKeyBytesMax - 1 - e.size()), ".", e);
}

absl::StatusOr<AmqpUrl> ParseAmqpUrl(std::string_view url) {
  if (url.rfind("amqps://", 0) == 0) {
    return absl::InvalidArgumentError(
        "amqps:// is not offered: librabbitmq's TLS is OpenSSL 3, the relay's is BoringSSL; reach "
        "the broker on loopback, a private network or a tunnel, with amqp://");
  }
  if (url.rfind("amqp://", 0) != 0) {
    return absl::InvalidArgumentError("is not an amqp://user:password@host:port/vhost URL");
  }
  // amqp_parse_url writes into its argument and points into it.
  std::string text(url);
  amqp_connection_info info;
  if (amqp_parse_url(text.data(), &info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError("is not an amqp://user:password@host:port/vhost URL");
  }
  AmqpUrl out;
  out.host = info.host;
  out.port = static_cast<uint16_t>(info.port);
  out.vhost = info.vhost;
  out.user = info.user;
  out.password = info.password;
  // A password is there when the userinfo (before an '@' that comes before any '/') has a ':'.
  const std::string_view rest = url.substr(7);
  const size_t at = rest.find('@');
  out.has_password = at != std::string_view::npos && at < rest.find('/') &&
                     rest.substr(0, at).find(':') != std::string_view::npos;
  if (out.host.empty() || out.port == 0) {
    return absl::InvalidArgumentError("names no host and port");
  }
  if (out.vhost.empty()) {
    return absl::InvalidArgumentError(
        "names the empty vhost (\"amqp://host/\"); leave the path out or write %2f for \"/\"");
  }
  return out;
}

// librabbitmq's connection state, closed (the socket too) when this is destroyed.
struct AmqpSink::Connection {
  Connection() : state(amqp_new_connection()) {}
  ~Connection() {
    if (state != nullptr) amqp_destroy_connection(state);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t state;
  int fd = -1;
  uint64_t next_tag = 1;  // the next publish's delivery tag (confirm mode numbers from 1)
  std::string blocked;    // the broker's reason while it blocks publishers (connection.blocked)
};

// Shuts a socket down (shutdown(2): every poll, send and recv on it returns at once) when its
// deadline passes or (unless told otherwise) the sink is stopping. librabbitmq sends without a
// deadline (an RPC's timeout covers its reply only); this bounds them. Arm and Disarm are called
// by the thread that owns the connection; the socket is never closed while armed.
class AmqpSink::Guard {
 public:
  explicit Guard(const std::atomic<bool>* stopping) : stopping_(stopping) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Guard() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      exit_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  void Arm(int fd, Clock::time_point deadline, bool end_on_stop = true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fd_ = fd;
      deadline_ = deadline;
      end_on_stop_ = end_on_stop;
      fired_ = false;
    }
    wake_.notify_all();
  }
  // Ends the watch; true when the socket was shut down.
  bool Disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    fd_ = -1;
    return fired_;
  }

 private:
  void Run() {
    SetThreadLogTag("amqp-guard");
    std::unique_lock<std::mutex> lock(mu_);
    while (!exit_) {
      if (fd_ < 0) {
        wake_.wait(lock);
        continue;
      }
      if ((end_on_stop_ && stopping_->load()) || Clock::now() >= deadline_) {
        ::shutdown(fd_, SHUT_RDWR);
        fired_ = true;
        fd_ = -1;
        continue;
      }
      // Stop() sets the flag without waking this thread: look at it every kSliceMs.
      wake_.wait_until(lock,
                       std::min(deadline_, Clock::now() + std::chrono::milliseconds(kSliceMs)));
    }
  }

  const std::atomic<bool>* const stopping_;
  std::mutex mu_;
  std::condition_variable wake_;
  int fd_ = -1;
  Clock::time_point deadline_;
  bool end_on_stop_ = true;
  bool fired_ = false;
  bool exit_ = false;
  std::thread thread_;
};

absl::StatusOr<std::unique_ptr<AmqpSink>> AmqpSink::Create(AmqpOptions options,
                                                           const JournalSet* journals) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl(options.url);
  if (!url.ok()) return absl::InvalidArgumentError(absl::StrCat("url ", url.status().message()));
  if (!options.password.empty()) url->password = options.password;
  std::unique_ptr<AmqpSink> sink(new AmqpSink(std::move(options), std::move(*url), journals));
  if (absl::Status s = sink->LoadCursor(); !s.ok()) return s;
  return sink;
}

AmqpSink::AmqpSink(AmqpOptions options, AmqpUrl url, const JournalSet* journals)
    : EventSink(options, journals),
      options_(std::move(options)),
      url_(std::move(url)),
      guard_(std::make_unique<Guard>(&stopping())) {}

AmqpSink::~AmqpSink() {
  Stop();  // the sink's thread is gone: conn_ is this thread's now
  if (conn_ != nullptr) {
    // A polite close, so that the broker logs no "unexpectedly closed"; bounded, and the socket
    // is closed whatever the broker says.
    const int close_ms = std::min(options_.timeout_ms, kCloseTimeoutMs);
    const timeval tv = ToTimeval(close_ms);
    amqp_set_rpc_timeout(conn_->state, &tv);
    guard_->Arm(conn_->fd, Clock::now() + std::chrono::milliseconds(close_ms),
                /*end_on_stop=*/false);
    (void)amqp_connection_close(conn_->state, AMQP_REPLY_SUCCESS);
    guard_->Disarm();
    conn_.reset();
  }
}

void AmqpSink::Drop() { conn_.reset(); }

absl::Status AmqpSink::Connect() {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  const std::string where = absl::StrCat(url_.host, ":", url_.port);
  auto c = std::make_unique<Connection>();
  if (c->state == nullptr) return absl::InternalError("no memory for a connection");
  amqp_socket_t* socket = amqp_tcp_socket_new(c->state);
  if (socket == nullptr) return absl::InternalError("no memory for a socket");
  const timeval tv = ToTimeval(options_.timeout_ms);
  if (int rc = amqp_socket_open_noblock(socket, url_.host.c_str(), url_.port, &tv);
      rc != AMQP_STATUS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", where, ": ", amqp_error_string2(rc)));
  }
  c->fd = amqp_socket_get_sockfd(socket);
  guard_->Arm(c->fd, deadline);
  absl::Status s = [&]() -> absl::Status {
    const timeval left = ToTimeval(MsUntil(deadline));
    amqp_set_handshake_timeout(c->state, &left);
    amqp_set_rpc_timeout(c->state, &left);
    // Named in the broker's connection list; and asks for connection.blocked notices, which
    // then name the alarm in the error of a batch the broker does not take.
    const std::string name = absl::StrCat("relayd event sink ", options_.name);
    amqp_table_entry_t capabilities[1];
    capabilities[0].key = amqp_cstring_bytes("connection.blocked");
    capabilities[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    capabilities[0].value.value.boolean = 1;
    amqp_table_entry_t properties[2];
    properties[0] = Utf8Entry("connection_name", name);
    properties[1].key = amqp_cstring_bytes("capabilities");
    properties[1].value.kind = AMQP_FIELD_KIND_TABLE;
    properties[1].value.value.table = amqp_table_t{1, capabilities};
    const amqp_table_t table{2, properties};
    if (absl::Status l = RpcStatus(
            amqp_login_with_properties(c->state, url_.vhost.c_str(), 0, kFrameBytesMax,
                                       options_.heartbeat_s, &table, AMQP_SASL_METHOD_PLAIN,
                                       url_.user.c_str(), url_.password.c_str()),
            absl::StrCat("logging in to ", where, " as ", url_.user, ", vhost ", url_.vhost));
        !l.ok()) {
      return l;
    }
    amqp_channel_open(c->state, kChannel);
    if (absl::Status o = RpcStatus(amqp_get_rpc_reply(c->state), "opening a channel"); !o.ok()) {
      return o;
    }
    if (options_.declare_exchange) {
      amqp_exchange_declare(c->state, kChannel, Bytes(options_.exchange),
                            Bytes(options_.exchange_type), /*passive=*/0, /*durable=*/1,
                            /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
      if (absl::Status d = RpcStatus(amqp_get_rpc_reply(c->state),
                                     absl::StrCat("declaring the ", options_.exchange_type,
                                                  " exchange ", options_.exchange));
          !d.ok()) {
        return d;
      }
    }
    amqp_confirm_select(c->state, kChannel);
    return RpcStatus(amqp_get_rpc_reply(c->state), "turning on publisher confirms");
  }();
  if (guard_->Disarm()) {
    s = stopping() ? absl::CancelledError("stopping")
                   : absl::DeadlineExceededError(
                         absl::StrCat("connecting to ", where, ": no answer within ",
                                      options_.timeout_ms, " ms (timeout_ms)"));
  }
  if (!s.ok()) return s;
  amqp_maybe_release_buffers(c->state);
  conn_ = std::move(c);
  amqp_stats_.connections.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status AmqpSink::Deliver(std::string_view events, size_t count) {
  const std::vector<AmqpEvent> split = SplitBatch(events, batch_starts());
  EXPECT_OR_COUNT(split.size() == count);
  if (conn_ == nullptr) {
    if (absl::Status s = Connect(); !s.ok()) return s;
  }
  absl::Status s = Publish(split);
  if (!s.ok()) Drop();
  return s;
}

absl::Status AmqpSink::Publish(const std::vector<AmqpEvent>& events) {
  Connection* c = conn_.get();
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  guard_->Arm(c->fd, deadline);
  const uint64_t first = c->next_tag;
  absl::Status s = [&]() -> absl::Status {
    for (const AmqpEvent& e : events) {
      if (stopping()) return absl::CancelledError("stopping");
      const std::string key = RoutingKey(e.tenant, e.event);
      const std::string tenant = JsonUnescape(e.tenant);
      const std::string event = JsonUnescape(e.event).substr(0, kEventWordBytesMax);
      amqp_table_entry_t headers[2];
      headers[0] = Utf8Entry("tenant", tenant);
      headers[1] = Utf8Entry("event", event);
      amqp_basic_properties_t p;
      std::memset(&p, 0, sizeof(p));
      p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                 AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
      p.content_type = amqp_cstring_bytes("application/json");
      p.delivery_mode = 2;  // persistent
      p.type = Bytes(event);
      p.app_id = amqp_cstring_bytes("relayd");
      p.headers = amqp_table_t{2, headers};
      if (!e.id.empty() && e.id.size() <= kRoutingKeyBytesMax) {
        p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        p.message_id = Bytes(e.id);
      }
      if (int rc = amqp_basic_publish(c->state, kChannel, Bytes(options_.exchange), Bytes(key),
                                      /*mandatory=*/1, /*immediate=*/0, &p, Bytes(e.json));
          rc != AMQP_STATUS_OK) {
        return absl::UnavailableError(absl::StrCat("publishing: ", amqp_error_string2(rc)));
      }
      ++c->next_tag;
    }
    // Every message is out; now every acknowledgement, tags first .. next_tag - 1.
    std::vector<bool> acked(events.size());
    size_t acked_count = 0;
    size_t unacked_from = 0;  // every message before this index is acknowledged
    auto ack = [&](size_t i) {
      if (acked[i]) return;
      acked[i] = true;
      ++acked_count;
    };
    while (acked_count < events.size()) {
      if (stopping()) return absl::CancelledError("stopping");
      const int64_t left_ms = MsUntil(deadline);
      if (left_ms <= 0) {
        return absl::DeadlineExceededError(absl::StrCat(
            events.size() - acked_count, " of ", events.size(),
            " messages not acknowledged within ", options_.timeout_ms, " ms (timeout_ms)",
            c->blocked.empty() ? "" : "; the broker blocks publishers: ", c->blocked));
      }
      const timeval tv = ToTimeval(std::min<int64_t>(left_ms, kSliceMs));
      amqp_frame_t frame;
      const int rc = amqp_simple_wait_frame_noblock(c->state, &frame, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) continue;
      if (rc != AMQP_STATUS_OK) {
        return absl::UnavailableError(
            absl::StrCat("waiting for acknowledgements: ", amqp_error_string2(rc)));
      }
      // The header and body frames of a returned message follow its basic.return: skipped.
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      const amqp_method_t& m = frame.payload.method;
      switch (m.id) {
        case AMQP_BASIC_ACK_METHOD: {
          // A tag outside this batch's is a broker's mistake: ignored, the batch then times out.
          const auto* a = static_cast<const amqp_basic_ack_t*>(m.decoded);
          if (a->delivery_tag < first) break;
          const uint64_t last = std::min<uint64_t>(a->delivery_tag - first, events.size() - 1);
          if (a->multiple) {
            for (size_t i = unacked_from; i <= last; ++i) ack(i);
          } else if (a->delivery_tag - first < events.size()) {
            ack(last);
          }
          while (unacked_from < events.size() && acked[unacked_from]) ++unacked_from;
          break;
        }
        case AMQP_BASIC_NACK_METHOD: {
          const auto* n = static_cast<const amqp_basic_nack_t*>(m.decoded);
          const uint64_t tag = n->delivery_tag;
          return absl::UnavailableError(
              absl::StrCat("the broker refused (basic.nack) ",
                           tag >= first && tag < first + events.size()
                               ? absl::StrCat("event ", Sv(events[tag - first].id))
                               : absl::StrCat("delivery tag ", tag),
                           n->multiple ? " and those before it" : "",
                           ": a queue bound to the exchange refuses messages (a length limit with "
                           "x-overflow = reject-publish?)"));
        }
        case AMQP_BASIC_RETURN_METHOD:
          // Unroutable: its ack follows, and then it counts as taken (see the header).
          amqp_stats_.unroutable_events.fetch_add(1, std::memory_order_relaxed);
          break;
        case AMQP_CONNECTION_BLOCKED_METHOD:
          c->blocked =
              std::string(View(static_cast<const amqp_connection_blocked_t*>(m.decoded)->reason));
          if (c->blocked.empty()) c->blocked = "(no reason given)";
          break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
          c->blocked.clear();
          break;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
          return absl::UnavailableError(CloseText(m));
        default:
          break;
      }
    }
    return absl::OkStatus();
  }();
  if (guard_->Disarm() && !s.ok()) {
    s = stopping() ? absl::CancelledError("stopping")
                   : absl::DeadlineExceededError(absl::StrCat(
                         "the broker took no batch of ", events.size(), " messages within ",
                         options_.timeout_ms, " ms (timeout_ms)",
                         c->blocked.empty() ? "" : "; it blocks publishers: ", c->blocked));
  }
  amqp_maybe_release_buffers(c->state);
  return s;
}

void AmqpSink::Idle() {
  if (conn_ == nullptr) return;
  // Heartbeats both ways, and whatever the broker said meanwhile (a close when it shuts down),
  // without waiting for anything to come: a zero timeout. A heartbeat's send is guarded too.
  guard_->Arm(conn_->fd, Clock::now() + std::chrono::milliseconds(options_.timeout_ms));
  std::string lost;
  for (;;) {
    const timeval zero{0, 0};
    amqp_frame_t frame;
    const int rc = amqp_simple_wait_frame_noblock(conn_->state, &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) break;
    if (rc != AMQP_STATUS_OK) {
      lost = absl::StrCat("connection to ", url_.host, ":", url_.port, " lost while idle (",
                          amqp_error_string2(rc), ")");
      break;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    const amqp_method_t& m = frame.payload.method;
    if (m.id == AMQP_CONNECTION_CLOSE_METHOD || m.id == AMQP_CHANNEL_CLOSE_METHOD) {
      lost = CloseText(m);
      break;
    }
    if (m.id == AMQP_CONNECTION_BLOCKED_METHOD) {
      conn_->blocked =
          std::string(View(static_cast<const amqp_connection_blocked_t*>(m.decoded)->reason));
      LogWarning() << "event sink " << options_.name
                   << ": the broker blocks publishers: " << conn_->blocked;
    } else if (m.id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
      conn_->blocked.clear();
    }
  }
  guard_->Disarm();
  if (!lost.empty()) {
    if (!stopping()) {
      LogInfo() << "event sink " << options_.name << ": " << lost
                << "; the next batch opens a new connection";
    }
    Drop();
    return;
  }
  amqp_maybe_release_buffers(conn_->state);
}

}  // namespace relay::events
