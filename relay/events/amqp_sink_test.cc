#include "relay/events/amqp_sink.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <link.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace relay::events {
namespace {

using Clock = std::chrono::steady_clock;

// --- what needs no broker ----------------------------------------------------------------------

TEST(SplitBatch, FindsEachEventAndItsFields) {
  const std::vector<std::string> objects = {
      // A nested "event" is not the event's; a string holding what looks like a next event, and
      // a nested array of objects beginning with "id", do not split it.
      "{\"id\":\"0-1-0\",\"ts\":\"t\",\"event\":\"delivered\",\"tenant\":\"example.com\","
      "\"reply\":{\"event\":\"no\",\"text\":\"a \\\"quoted\\\" ,{\\\"id\\\":\\\" text\"},"
      "\"list\":[{\"id\":\"x\"},{\"id\":\"y\"}]}",
      "{\"id\":\"1-2-99\",\"event\":\"bounced\",\"sender\":\"\",\"tenant\":\"\"}",
      "{\"id\":\"0-1-200\",\"event\":\"dsn_sent\",\"text\":\"damaged, no end quote}",
      "{\"id\":\"0-1-300\",\"event\":\"deferred\"}",
  };
  std::string batch;
  std::vector<size_t> starts;
  for (const std::string& o : objects) {
    if (!batch.empty()) batch += ',';
    starts.push_back(batch.size());
    batch += o;
  }
  const std::vector<AmqpEvent> events = SplitBatch(batch, starts);
  ASSERT_EQ(events.size(), objects.size());
  for (size_t i = 0; i < objects.size(); ++i) EXPECT_EQ(events[i].json, objects[i]);
  EXPECT_EQ(events[0].id, "0-1-0");
  EXPECT_EQ(events[0].event, "delivered");
  EXPECT_EQ(events[0].tenant, "example.com");
  EXPECT_EQ(events[1].tenant, "");
  EXPECT_EQ(events[2].id, "0-1-200");
  EXPECT_EQ(events[2].event, "dsn_sent") << "the fields before the damage";
  EXPECT_EQ(events[3].id, "0-1-300") << "a damaged event leaves the next one whole";
  EXPECT_EQ(events[3].event, "deferred");
}

TEST(RoutingKey, HasExactlyTwoWords) {
  EXPECT_EQ(RoutingKey("example.com", "delivered"), "example_com.delivered");
  EXPECT_EQ(RoutingKey("", "dsn_sent"), "-.dsn_sent");
  EXPECT_EQ(RoutingKey("Ex.Ample\\\"x\\u00e9", "bounced"), "ex_ample_x__.bounced");
  EXPECT_EQ(RoutingKey("a*b#c d", ""), "a_b_c_d.-");
  const std::string key = RoutingKey(std::string(300, 'a'), "unsubscribed");
  EXPECT_EQ(key.size(), 255u);
  EXPECT_EQ(key.substr(key.size() - 13), ".unsubscribed");
}

TEST(JsonUnescape, DecodesEscapes) {
  EXPECT_EQ(JsonUnescape("a\\\"b\\\\c\\/d\\n\\t"), "a\"b\\c/d\n\t");
  EXPECT_EQ(JsonUnescape("\\u00e9\\u20ac"), "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(JsonUnescape("\\ud83d\\ude00"), "\xf0\x9f\x98\x80");
  EXPECT_EQ(JsonUnescape("\\ud83d!"), "\xef\xbf\xbd!") << "an unpaired surrogate";
  EXPECT_EQ(JsonUnescape("\\u12"),
            "\xef\xbf\xbd"
            "12");
}

TEST(ParseAmqpUrl, TakesAmqpAndRefusesAmqps) {
  auto u = ParseAmqpUrl("amqp://relay:s%40cret@10.0.0.5:5673/mail");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "10.0.0.5");
  EXPECT_EQ(u->port, 5673);
  EXPECT_EQ(u->user, "relay");
  EXPECT_EQ(u->password, "s@cret");
  EXPECT_TRUE(u->has_password);
  EXPECT_EQ(u->vhost, "mail");
  auto d = ParseAmqpUrl("amqp://relay@broker");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->port, 5672);
  EXPECT_EQ(d->vhost, "/");
  EXPECT_FALSE(d->has_password);
  EXPECT_EQ(ParseAmqpUrl("amqp://[::1]:5672/%2f")->vhost, "/");
  auto tls = ParseAmqpUrl("amqps://broker/");
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(std::string(tls.status().message()).find("BoringSSL"), std::string::npos);
  for (const char* bad :
       {"http://x/", "amqp://x/", "amqp://x:99999/", "amqp://x/a?b=c", "amqp://x/a/b"}) {
    EXPECT_FALSE(ParseAmqpUrl(bad).ok()) << bad;
  }
}

// librabbitmq comes from its static archive without its TLS members: OpenSSL 3 is not in the
// process, whose TLS is BoringSSL's alone (see amqp_sink.h for why the two cannot mix).
TEST(AmqpSink, LoadsNoOpenSsl3) {
  std::vector<std::string> loaded;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        static_cast<std::vector<std::string>*>(data)->push_back(info->dlpi_name);
        return 0;
      },
      &loaded);
  for (const std::string& name : loaded) {
    EXPECT_EQ(name.find("libssl.so.3"), std::string::npos) << name;
    EXPECT_EQ(name.find("libcrypto.so.3"), std::string::npos) << name;
    EXPECT_EQ(name.find("librabbitmq.so"), std::string::npos) << name;
  }
}

// --- a real broker -----------------------------------------------------------------------------

std::string Runfile(const std::string& path) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/" + std::getenv("TEST_WORKSPACE") + "/" + path;
}

// A private RabbitMQ node (tools/testing/local_rabbitmq.py serve), started on first use and shared
// by the tests of this binary; stopped when the binary exits (its input closes). A broker that
// does not start fails the tests that need it.
class Broker {
 public:
  static Broker& Get() {
    static Broker* broker = new Broker();
    return *broker;
  }
  bool ready() const { return port_ != 0; }
  int port() const { return port_; }
  std::string url() const {
    return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/%2f";
  }
  // "stop", "start", "ctl ARG...": true when the helper answers as it should.
  bool Command(const std::string& command) {
    const std::string line = command + "\n";
    if (::write(in_fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return false;
    }
    const std::string reply = ReadLine(180000);
    if (reply == "stopped" || reply == "started" || reply == "ok") return true;
    ADD_FAILURE() << command << ": " << reply;
    return false;
  }

 private:
  Broker() {
    const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/broker";
    std::filesystem::create_directories(dir);
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      const std::string script = Runfile("tools/testing/local_rabbitmq.py");
      ::execl("/usr/bin/python3", "python3", script.c_str(), "serve", dir.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_fd_ = in[1];
    out_fd_ = out[0];
    const std::string line = ReadLine(180000);
    if (line.rfind("ready ", 0) == 0) port_ = std::atoi(line.c_str() + 6);
  }
  ~Broker() = delete;  // lives to the end: the helper stops the node when its input closes

  std::string ReadLine(int timeout_ms) {
    const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const size_t eol = buffer_.find('\n');
      if (eol != std::string::npos) {
        std::string line = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{out_fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return "(timeout)";
      char buf[512];
      const ssize_t n = ::read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return "(the helper exited)";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::string buffer_;
};

// The test's own client (librabbitmq, as a consumer would use it): sets up queues and reads what
// the sink published.
class Client {
 public:
  struct Message {
    std::string routing_key, message_id, content_type, type, app_id, tenant_header, body;
    int delivery_mode = 0;
  };

  explicit Client(int port) : conn_(amqp_new_connection()) {
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    const timeval tv{10, 0};
    ok_ = amqp_socket_open_noblock(socket, "127.0.0.1", port, &tv) == AMQP_STATUS_OK &&
          amqp_login(conn_, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, "guest",
                     "guest")
                  .reply_type == AMQP_RESPONSE_NORMAL;
    if (ok_) {
      amqp_channel_open(conn_, 1);
      ok_ = Ok("channel.open");
    }
    EXPECT_TRUE(ok_) << "the test's client cannot reach the broker on port " << port;
  }
  ~Client() {
    if (ok_) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }

  void Exchange(const std::string& name) {
    amqp_exchange_declare(conn_, 1, amqp_cstring_bytes(name.c_str()), amqp_cstring_bytes("topic"),
                          0, 1, 0, 0, amqp_empty_table);
    Ok("exchange.declare " + name);
  }
  // A durable queue bound to `exchange` with "#"; `max_length` > 0 adds a length limit that
  // refuses publishes beyond it (x-overflow = reject-publish: a basic.nack for the publisher).
  void Queue(const std::string& name, const std::string& exchange, int max_length = 0) {
    amqp_table_entry_t args[2];
    args[0].key = amqp_cstring_bytes("x-max-length");
    args[0].value.kind = AMQP_FIELD_KIND_I32;
    args[0].value.value.i32 = max_length;
    args[1].key = amqp_cstring_bytes("x-overflow");
    args[1].value.kind = AMQP_FIELD_KIND_UTF8;
    args[1].value.value.bytes = amqp_cstring_bytes("reject-publish");
    amqp_queue_declare(conn_, 1, amqp_cstring_bytes(name.c_str()), 0, 1, 0, 0,
                       max_length > 0 ? amqp_table_t{2, args} : amqp_empty_table);
    Ok("queue.declare " + name);
    amqp_queue_bind(conn_, 1, amqp_cstring_bytes(name.c_str()),
                    amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes("#"),
                    amqp_empty_table);
    Ok("queue.bind " + name);
  }
  void DeleteQueue(const std::string& name) {
    amqp_queue_delete(conn_, 1, amqp_cstring_bytes(name.c_str()), 0, 0);
    Ok("queue.delete " + name);
  }
  // Every message in `queue`, taken (basic.get, no ack needed).
  std::vector<Message> Drain(const std::string& queue) {
    std::vector<Message> out;
    for (;;) {
      amqp_rpc_reply_t r = amqp_basic_get(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1);
      if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD) break;
      const auto* got = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
      Message m;
      m.routing_key = Str(got->routing_key);
      amqp_message_t message;
      if (amqp_read_message(conn_, 1, &message, 0).reply_type != AMQP_RESPONSE_NORMAL) break;
      const amqp_basic_properties_t& p = message.properties;
      if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) m.message_id = Str(p.message_id);
      if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) m.content_type = Str(p.content_type);
      if (p._flags & AMQP_BASIC_TYPE_FLAG) m.type = Str(p.type);
      if (p._flags & AMQP_BASIC_APP_ID_FLAG) m.app_id = Str(p.app_id);
      if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) m.delivery_mode = p.delivery_mode;
      if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p.headers.num_entries; ++i) {
          if (Str(p.headers.entries[i].key) == "tenant") {
            m.tenant_header = Str(p.headers.entries[i].value.value.bytes);
          }
        }
      }
      m.body = Str(message.body);
      amqp_destroy_message(&message);
      out.push_back(std::move(m));
      amqp_maybe_release_buffers(conn_);
    }
    return out;
  }

 private:
  static std::string Str(amqp_bytes_t b) { return std::string(static_cast<char*>(b.bytes), b.len); }
  bool Ok(const std::string& what) {
    const bool ok = amqp_get_rpc_reply(conn_).reply_type == AMQP_RESPONSE_NORMAL;
    EXPECT_TRUE(ok) << what;
    return ok;
  }

  amqp_connection_state_t conn_;
  bool ok_ = false;
};

delivery::DeliveryRecord Event(delivery::DeliveryEvent kind, const char* sender,
                               std::string_view reply_text = {}) {
  delivery::DeliveryRecord r;
  r.event = kind;
  r.time_unix_ms = 1700000000000;
  r.queue_id = "q";
  r.sender = sender;
  r.recipient = "r@example.org";
  r.reply_text = reply_text;
  return r;
}

template <typename Predicate>
bool WaitUntil(Predicate done, int seconds = 60) {
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(seconds);
  while (!done() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return done();
}

// A journal of one shard in a directory of the test's own.
struct Journal {
  explicit Journal(const std::string& name)
      : dir(std::string(std::getenv("TEST_TMPDIR")) + "/" + name) {
    std::filesystem::remove_all(dir);
    journal = std::move(*EventJournal::Open({.dir = dir}, &head));
    set = JournalSet{dir, {&head}};
  }
  std::string dir;
  JournalHead head;
  std::unique_ptr<EventJournal> journal;
  JournalSet set;
};

AmqpOptions Options(const std::string& name, const std::string& exchange) {
  AmqpOptions o;
  o.name = name;
  o.url = Broker::Get().url();
  o.tenants = {"*"};
  o.exchange = exchange;
  o.batch_wait_ms = 0;
  o.retry_initial_ms = 100;
  o.retry_ms_max = 200;
  o.timeout_ms = 5000;
  return o;
}

#define REQUIRE_BROKER() ASSERT_TRUE(Broker::Get().ready()) << "rabbitmq-server did not start"

TEST(AmqpSinkWithBroker, PublishesEachEventPersistentWithItsKeyAndId) {
  REQUIRE_BROKER();
  Journal j("publish");
  Client client(Broker::Get().port());
  client.Exchange("ex.publish");
  client.Queue("q.publish", "ex.publish");
  auto sink = AmqpSink::Create(Options("publish", "ex.publish"), &j.set);
  ASSERT_TRUE(sink.ok()) << sink.status();
  (*sink)->Start();
  j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  j.journal->Append(Event(delivery::DeliveryEvent::kBounced, "b@Other.Example"));
  j.journal->Append(Event(delivery::DeliveryEvent::kDsnSent, ""));   // tenant: the recipient's
  j.journal->Append(Event(delivery::DeliveryEvent::kDeferred, ""));  // no tenant
  j.journal->WriteAndPublish();
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().events_sent.load() == 4; }))
      << (*sink)->last_error();
  (*sink)->Stop();
  EXPECT_EQ((*sink)->stats().failures.load(), 0u) << (*sink)->last_error();
  EXPECT_EQ((*sink)->amqp_stats().unroutable_events.load(), 0u);
  EXPECT_EQ((*sink)->amqp_stats().connections.load(), 1u);
  const std::vector<Client::Message> got = client.Drain("q.publish");
  ASSERT_EQ(got.size(), 4u);
  const std::vector<std::string> keys = {"example_com.delivered", "other_example.bounced",
                                         "example_org.dsn_sent", "-.deferred"};
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].routing_key, keys[i]);
    EXPECT_EQ(got[i].delivery_mode, 2);
    EXPECT_EQ(got[i].content_type, "application/json");
    EXPECT_EQ(got[i].app_id, "relayd");
    EXPECT_FALSE(got[i].message_id.empty());
    EXPECT_EQ(got[i].body.rfind("{\"id\":\"" + got[i].message_id + "\",", 0), 0u) << got[i].body;
    EXPECT_EQ(got[i].body.back(), '}');
  }
  EXPECT_EQ(got[0].type, "delivered");
  EXPECT_EQ(got[1].tenant_header, "other.example");
  EXPECT_EQ(got[3].tenant_header, "");
}

TEST(AmqpSinkWithBroker, AnUnroutableEventIsTakenAndCounted) {
  REQUIRE_BROKER();
  Journal j("unroutable");
  auto sink = AmqpSink::Create(Options("unroutable", "ex.nobody"), &j.set);  // no queue bound
  ASSERT_TRUE(sink.ok()) << sink.status();
  (*sink)->Start();
  for (int i = 0; i < 3; ++i) {
    j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  }
  j.journal->WriteAndPublish();
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().events_sent.load() == 3; }))
      << (*sink)->last_error();
  EXPECT_EQ((*sink)->amqp_stats().unroutable_events.load(), 3u);
  EXPECT_EQ((*sink)->stats().failures.load(), 0u);
}

TEST(AmqpSinkWithBroker, ANackFailsTheBatchWhichIsSentAgain) {
  REQUIRE_BROKER();
  Journal j("nack");
  Client client(Broker::Get().port());
  client.Exchange("ex.nack");
  client.Queue("q.nack.small", "ex.nack", /*max_length=*/2);
  AmqpOptions o = Options("nack", "ex.nack");
  o.retry_initial_ms = 300;
  o.retry_ms_max = 300;
  auto sink = AmqpSink::Create(o, &j.set);
  ASSERT_TRUE(sink.ok()) << sink.status();
  for (int i = 0; i < 3; ++i) {
    j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  }
  j.journal->WriteAndPublish();
  (*sink)->Start();  // one batch of three: the queue takes two and refuses the third
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().failures.load() >= 1; }));
  EXPECT_NE((*sink)->last_error().find("basic.nack"), std::string::npos) << (*sink)->last_error();
  EXPECT_EQ((*sink)->stats().events_sent.load(), 0u);
  client.DeleteQueue("q.nack.small");
  client.Queue("q.nack", "ex.nack");
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().events_sent.load() == 3; }))
      << (*sink)->last_error();
  (*sink)->Stop();
  std::set<std::string> ids;
  for (const auto& m : client.Drain("q.nack")) ids.insert(m.message_id);
  EXPECT_EQ(ids.size(), 3u) << "the whole batch again, on a new connection";
  EXPECT_GE((*sink)->amqp_stats().connections.load(), 2u);
}

TEST(AmqpSinkWithBroker, ABrokerDownGetsEveryEventOnceBack) {
  REQUIRE_BROKER();
  Journal j("down");
  {
    Client client(Broker::Get().port());
    client.Exchange("ex.down");
    client.Queue("q.down", "ex.down");  // durable: it outlives the restart
  }
  auto sink = AmqpSink::Create(Options("down", "ex.down"), &j.set);
  ASSERT_TRUE(sink.ok()) << sink.status();
  (*sink)->Start();
  j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  j.journal->WriteAndPublish();
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().events_sent.load() == 1; }));
  ASSERT_TRUE(Broker::Get().Command("stop"));
  for (int i = 0; i < 5; ++i) {
    j.journal->Append(Event(delivery::DeliveryEvent::kBounced, "a@example.com"));
  }
  j.journal->WriteAndPublish();
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().failures.load() >= 3; }));
  EXPECT_NE((*sink)->last_error().find("cannot connect to 127.0.0.1"), std::string::npos)
      << (*sink)->last_error();
  EXPECT_EQ((*sink)->stats().events_sent.load(), 1u);
  ASSERT_TRUE(Broker::Get().Command("start"));
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().events_sent.load() == 6; }))
      << (*sink)->last_error();
  (*sink)->Stop();
  Client client(Broker::Get().port());
  const std::vector<Client::Message> got = client.Drain("q.down");
  std::set<std::string> ids;
  for (const auto& m : got) ids.insert(m.message_id);
  EXPECT_EQ(ids.size(), 6u) << "the one before and the five during the outage";
  EXPECT_EQ((*sink)->amqp_stats().connections.load(), 2u);
}

TEST(AmqpSinkWithBroker, NamesWhatTheBrokerRefused) {
  REQUIRE_BROKER();
  Journal j("refused");
  AmqpOptions missing = Options("missing", "ex.never.declared");
  missing.declare_exchange = false;
  AmqpOptions password = Options("password", "ex.password");
  password.password = "not-the-password";
  for (const auto& [options, want] : {std::pair{missing, std::string("404 NOT_FOUND")},
                                      std::pair{password, std::string("ACCESS_REFUSED")}}) {
    auto sink = AmqpSink::Create(options, &j.set);
    ASSERT_TRUE(sink.ok()) << sink.status();
    (*sink)->Start();
    j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
    j.journal->WriteAndPublish();
    EXPECT_TRUE(WaitUntil([&] { return (*sink)->stats().failures.load() >= 1; }));
    EXPECT_NE((*sink)->last_error().find(want), std::string::npos) << (*sink)->last_error();
    EXPECT_EQ((*sink)->stats().events_sent.load(), 0u);
  }
}

// A broker under a memory alarm blocks publishers: it stops reading their sockets, and a batch
// larger than the sockets' buffers leaves librabbitmq's send waiting with no deadline of its own.
// The guard ends it at timeout_ms, and Stop() is prompt.
TEST(AmqpSinkWithBroker, ABlockedBrokerCostsTimeoutMsNotForever) {
  REQUIRE_BROKER();
  Journal j("blocked");
  {
    Client client(Broker::Get().port());
    client.Exchange("ex.blocked");
    client.Queue("q.blocked", "ex.blocked");
  }
  AmqpOptions o = Options("blocked", "ex.blocked");
  o.timeout_ms = 3000;
  o.batch_events_max = 1000;
  o.batch_bytes_max = 64 << 20;
  constexpr int kEvents = 400;  // 24 MB: more than loopback's socket buffers hold
  const std::string big(60000, 'x');
  auto sink = AmqpSink::Create(o, &j.set);
  ASSERT_TRUE(sink.ok()) << sink.status();
  for (int i = 0; i < kEvents; ++i) {
    j.journal->Append(Event(delivery::DeliveryEvent::kDeferred, "a@example.com", big));
  }
  j.journal->WriteAndPublish();
  ASSERT_TRUE(Broker::Get().Command("ctl set_vm_memory_high_watermark 0"));
  const Clock::time_point start = Clock::now();
  (*sink)->Start();
  ASSERT_TRUE(WaitUntil([&] { return (*sink)->stats().failures.load() >= 1; }, 30));
  const auto first_failure_s =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
  EXPECT_LE(first_failure_s, 10) << "timeout_ms is 3 s";
  // Which call gave up first (the publish's guard, or the confirm wait) depends on how loaded the
  // machine is: the bound is the point, not the wording.
  EXPECT_FALSE((*sink)->last_error().empty());
  std::printf("blocked broker: %s\n", (*sink)->last_error().c_str());
  EXPECT_EQ((*sink)->stats().events_sent.load(), 0u);
  // Now the second attempt waits on the blocked broker; Stop() does not wait for it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const Clock::time_point stop = Clock::now();
  (*sink)->Stop();
  EXPECT_LT(Clock::now() - stop, std::chrono::milliseconds(1500));
  ASSERT_TRUE(Broker::Get().Command("ctl set_vm_memory_high_watermark 0.4"));
  // The same cursor: the whole batch again, now taken.
  sink->reset();
  auto again = AmqpSink::Create(o, &j.set);
  ASSERT_TRUE(again.ok()) << again.status();
  (*again)->Start();
  ASSERT_TRUE(WaitUntil([&] { return (*again)->stats().events_sent.load() == kEvents; }))
      << (*again)->last_error();
  (*again)->Stop();
  Client client(Broker::Get().port());
  std::set<std::string> ids;
  for (const auto& m : client.Drain("q.blocked")) ids.insert(m.message_id);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kEvents));
}

// A peer that takes the TCP connection and never says a word: the login waits up to timeout_ms,
// but Stop() ends the wait at once.
TEST(AmqpSink, StopDoesNotWaitForASilentBroker) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
  Journal j("silent");
  AmqpOptions o;
  o.name = "silent";
  o.url = "amqp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  o.tenants = {"*"};
  o.batch_wait_ms = 0;
  o.timeout_ms = 60000;
  auto sink = AmqpSink::Create(o, &j.set);
  ASSERT_TRUE(sink.ok()) << sink.status();
  (*sink)->Start();
  j.journal->Append(Event(delivery::DeliveryEvent::kDelivered, "a@example.com"));
  j.journal->WriteAndPublish();
  const int peer = ::accept(listener, nullptr, nullptr);  // the sink has connected
  ASSERT_GE(peer, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Clock::time_point stop = Clock::now();
  (*sink)->Stop();
  EXPECT_LT(Clock::now() - stop, std::chrono::milliseconds(1000));
  EXPECT_EQ((*sink)->stats().events_sent.load(), 0u);
  ::close(peer);
  ::close(listener);
}

}  // namespace
}  // namespace relay::events
