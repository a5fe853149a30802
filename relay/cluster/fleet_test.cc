// The fleet against a real Redis: a redis-server started on a free loopback port for each test
// (and killed after it, whatever happened), and several Fleet objects standing for nodes.
#include "relay/cluster/fleet.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "gtest/gtest.h"
#include "relay/cluster/redis_link.h"

namespace relay::cluster {
namespace {

using namespace std::chrono_literals;

uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class RedisServer {
 public:
  explicit RedisServer(uint16_t port) : port_(port) { Start(); }
  ~RedisServer() { Kill(); }
  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      const std::string port = std::to_string(port_);
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning", nullptr);
      _exit(127);
    }
    // Up when it answers.
    RedisLink link(RedisLinkOptions{.address = {"127.0.0.1", port_}, .reconnect_ms = 0});
    for (int i = 0; i < 200; ++i) {
      if (link.Call({"PING"}).ok()) return;
      std::this_thread::sleep_for(25ms);
    }
    ADD_FAILURE() << "redis-server did not start on port " << port_;
  }
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  uint16_t port() const { return port_; }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

FleetOptions Options(uint16_t port, std::string node, uint32_t fleet_size) {
  FleetOptions o;
  o.redis.address = {"127.0.0.1", port};
  o.redis.reconnect_ms = 50;
  o.redis.connect_timeout_ms = 200;
  o.redis.command_timeout_ms = 500;
  o.node = std::move(node);
  o.fleet_size = fleet_size;
  o.sync_ms = 10;
  o.heartbeat_ms = 100;
  o.lease_ttl_ms = 2000;
  o.lease_linger_ms = 100;
  o.source_names = {"192.0.2.1", "192.0.2.2"};
  return o;
}

// Polls `f` until it is true or 5 s have passed.
template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 500; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

// Nodes a, b and c of a fleet of three, started.
std::vector<std::unique_ptr<Fleet>> ThreeNodes(uint16_t port) {
  std::vector<std::unique_ptr<Fleet>> nodes;
  for (const char* name : {"a", "b", "c"}) {
    nodes.push_back(*Fleet::Create(Options(port, name, 3), {}));
    nodes.back()->Start();
  }
  return nodes;
}

TEST(RedisAddressTest, Parses) {
  EXPECT_EQ(ParseRedisAddress("10.0.0.1:6380")->port, 6380);
  EXPECT_EQ(ParseRedisAddress("redis.internal")->host, "redis.internal");
  EXPECT_EQ(ParseRedisAddress("[::1]:7000")->host, "::1");
  EXPECT_FALSE(ParseRedisAddress("::1:7000").ok());
  EXPECT_FALSE(ParseRedisAddress("host:0").ok());
  EXPECT_FALSE(ParseRedisAddress(":6379").ok());
}

TEST(FleetTest, AFullMapForgetsPairsThatHoldNothing) {
  // Not started: the node keeps to its share, which needs no Redis.
  FleetOptions o = Options(1, "a", 1);
  o.keys_max = 2;
  auto node = *Fleet::Create(o, {});
  ASSERT_TRUE(node->TryLease("s|one", 5));
  ASSERT_TRUE(node->TryLease("s|two", 5));
  EXPECT_FALSE(node->TryLease("s|three", 5));  // both pairs hold a connection
  node->ReturnLease("s|one");
  EXPECT_TRUE(node->TryLease("s|three", 5));  // "one" holds nothing now: forgotten
  EXPECT_TRUE(node->TryToken("s|one", 10, 10));
  EXPECT_TRUE(node->TryToken("s|two", 10, 10));
  EXPECT_TRUE(node->TryToken("s|three", 10, 10));
}

TEST(FleetTest, LeasesHoldForTheFleet) {
  RedisServer redis(FreePort());
  std::vector<std::unique_ptr<Fleet>> nodes = ThreeNodes(redis.port());
  for (auto& n : nodes) ASSERT_TRUE(Eventually([&] { return n->stats().shared.load(); }));
  // Every node asks for connections until the fleet's 6 are out.
  int open[3] = {0, 0, 0};
  ASSERT_TRUE(Eventually([&] {
    for (int i = 0; i < 3; ++i) {
      while (nodes[i]->TryLease("192.0.2.1|mx.example", 6)) ++open[i];
    }
    return open[0] + open[1] + open[2] == 6;
  }));
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(nodes[i]->TryLease("192.0.2.1|mx.example", 6));
  // A returned lease goes to whoever asks, after the linger.
  int from = open[0] > 0 ? 0 : open[1] > 0 ? 1 : 2;
  nodes[from]->ReturnLease("192.0.2.1|mx.example");
  int to = (from + 1) % 3;
  EXPECT_TRUE(Eventually([&] { return nodes[to]->TryLease("192.0.2.1|mx.example", 6); }));
  // A node that dies without a word: its leases are free after lease_ttl_ms.
  int dead = open[0] > 0 ? 0 : 1;
  int dead_held = open[dead] - (dead == from ? 1 : 0);
  ASSERT_GT(dead_held, 0);
  nodes[dead].reset();  // Stop gives them back at once; the crash case is below
  int taken = 0;
  EXPECT_TRUE(Eventually([&] {
    while (nodes[2]->TryLease("192.0.2.1|mx.example", 6)) ++taken;
    return taken >= dead_held;
  }));
  EXPECT_EQ(taken, dead_held);
}

TEST(FleetTest, ACrashedNodesLeasesExpire) {
  RedisServer redis(FreePort());
  // The "crashed" node is a bare Redis client holding leases whose liveness key expires.
  RedisLink link(RedisLinkOptions{.address = {"127.0.0.1", redis.port()}});
  ASSERT_TRUE(link.Call({"HSET", "relay:lease:s|site", "ghost/1", "4"}).ok());
  ASSERT_TRUE(link.Call({"SET", "relay:live:ghost/1", "1", "PX", "300"}).ok());
  auto node = *Fleet::Create(Options(redis.port(), "a", 2), {});
  node->Start();
  ASSERT_TRUE(Eventually([&] { return node->stats().shared.load(); }));
  int got = 0;
  ASSERT_TRUE(Eventually([&] {
    while (node->TryLease("s|site", 5)) ++got;
    return got >= 1;
  }));
  EXPECT_EQ(got, 1);  // 4 of 5 held by the ghost while it lives
  EXPECT_TRUE(Eventually([&] {
    while (node->TryLease("s|site", 5)) ++got;
    return got == 5;
  }));
}

TEST(FleetTest, RateHoldsForTheFleetWithFewCalls) {
  RedisServer redis(FreePort());
  std::vector<std::unique_ptr<Fleet>> nodes = ThreeNodes(redis.port());
  for (auto& n : nodes) ASSERT_TRUE(Eventually([&] { return n->stats().shared.load(); }));
  // 50 a second, burst 10, for 2 s: at most 10 + 100 messages over the three.
  const auto start = std::chrono::steady_clock::now();
  int sent = 0;
  uint64_t trips_before = 0;
  for (auto& n : nodes) trips_before += n->stats().limit_commands.load();
  while (std::chrono::steady_clock::now() - start < 2s) {
    for (auto& n : nodes) {
      while (n->TryToken("192.0.2.1|mx.example", 50, 10)) ++sent;
    }
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_LE(sent, 110 + 10);  // tokens fetched just before the end count too
  uint64_t asks = 0;
  for (auto& n : nodes) asks += n->stats().limit_commands.load();
  asks -= trips_before;
  // Tokens come in batches: far fewer token requests than messages.
  EXPECT_LT(asks * 2, static_cast<uint64_t>(sent)) << asks << " token requests for " << sent;
  EXPECT_GE(sent, 80);
  uint64_t token_grants = 0;
  for (auto& n : nodes) token_grants += n->stats().tokens_granted.load();
  EXPECT_GE(token_grants, static_cast<uint64_t>(sent));
}

TEST(FleetTest, FallsBackToItsShareAndComesBack) {
  RedisServer redis(FreePort());
  auto node = *Fleet::Create(Options(redis.port(), "a", 3), {});
  node->Start();
  ASSERT_TRUE(Eventually([&] { return node->stats().shared.load(); }));
  redis.Kill();
  ASSERT_TRUE(Eventually([&] { return !node->stats().shared.load(); }));
  // Its share of 7 connections over 3 nodes: 3.
  int open = 0;
  while (node->TryLease("192.0.2.1|mx.example", 7)) ++open;
  EXPECT_EQ(open, 3);
  redis.Start();
  ASSERT_TRUE(Eventually([&] { return node->stats().shared.load(); }));
  // The three it holds were re-asserted: the fleet has 4 more to give.
  RedisLink link(RedisLinkOptions{.address = {"127.0.0.1", redis.port()}});
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<RedisReply> r =
        link.Call({"HGET", "relay:lease:192.0.2.1|mx.example", node->node_id()});
    return r.ok() && r->AsInteger() == 3;
  }));
  EXPECT_TRUE(Eventually([&] {
    while (node->TryLease("192.0.2.1|mx.example", 7)) ++open;
    return open == 7;
  }));
}

TEST(FleetTest, SuspensionsReachEveryNode) {
  RedisServer redis(FreePort());
  delivery::Suspensions board_a, board_b;
  auto a = *Fleet::Create(Options(redis.port(), "a", 2), {.board = &board_a});
  // Node b has the same sources at other indices: reply rules' keys name them by index.
  FleetOptions ob = Options(redis.port(), "b", 2);
  ob.source_names = {"192.0.2.2", "192.0.2.1"};
  auto b = *Fleet::Create(ob, {.board = &board_b});
  a->Start();
  b->Start();
  ASSERT_TRUE(Eventually([&] { return a->stats().shared.load() && b->stats().shared.load(); }));
  const int64_t until = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() +
                        600000;
  // A reply rule's suspension of source 1 (192.0.2.2) on node a.
  ASSERT_TRUE(board_a.Suspend({.key = "1|mx.example",
                               .until_unix_ms = until,
                               .reason = "421 4.7.28 rate limited",
                               .shard = 0}));
  ASSERT_TRUE(board_a.Suspend({.key = "*|gmail", .until_unix_ms = until, .reason = "operator"}));
  ASSERT_TRUE(Eventually([&] { return board_b.InForce(until - 600000).size() == 2; }));
  std::vector<delivery::Suspension> on_b = board_b.InForce(until - 600000);
  std::sort(on_b.begin(), on_b.end(), [](auto& x, auto& y) { return x.key < y.key; });
  EXPECT_EQ(on_b[0].key, "*|gmail");
  EXPECT_EQ(on_b[1].key, "0|mx.example");  // 192.0.2.2 is b's source 0
  EXPECT_EQ(on_b[1].reason, "421 4.7.28 rate limited");
  EXPECT_EQ(on_b[1].until_unix_ms, until);
  // Resumed on b: gone on a, and nothing echoes back.
  EXPECT_EQ(board_b.Resume("gmail"), 1u);
  EXPECT_TRUE(Eventually([&] { return board_a.InForce(until - 600000).size() == 1; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(board_a.InForce(until - 600000).size(), 1u);
  EXPECT_EQ(board_b.InForce(until - 600000).size(), 1u);
}

TEST(FleetTest, SuppressionsReachEveryNodeAndAStartingNodeReadsThemAll) {
  RedisServer redis(FreePort());
  const std::string dir = ::testing::TempDir() + "/fleet_suppression";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto list = [&](const char* name) {
    feedback::SuppressionListOptions o;
    o.path = dir + "/" + name + ".lmdb";
    o.map_bytes_max = 16 << 20;
    o.owner_from_directory = false;
    return *feedback::SuppressionList::Open(o);
  };
  auto list_a = list("a"), list_b = list("b"), list_c = list("c");
  auto a = *Fleet::Create(Options(redis.port(), "a", 3), {.suppression = list_a.get()});
  auto b = *Fleet::Create(Options(redis.port(), "b", 3), {.suppression = list_b.get()});
  a->Start();
  b->Start();
  ASSERT_TRUE(Eventually([&] { return a->stats().shared.load() && b->stats().shared.load(); }));
  feedback::SuppressionEntry e{.tenant = "example.com",
                               .address = "gone@example.net",
                               .reason = feedback::SuppressionReason::kBounce,
                               .category = "bad-mailbox",
                               .time_unix_ms = 1000};
  ASSERT_TRUE(list_a->Add(e).ok());
  ASSERT_TRUE(list_a->AddLater({.tenant = "example.com", .address = "later@example.net"}));
  EXPECT_TRUE(Eventually([&] {
    return list_b->Find("example.com", "gone@example.net")->has_value() &&
           list_b->Find("example.com", "later@example.net")->has_value();
  }));
  EXPECT_EQ((*list_b->Find("example.com", "gone@example.net"))->category, "bad-mailbox");
  // A node that starts later reads the hash whole.
  auto c = *Fleet::Create(Options(redis.port(), "c", 3), {.suppression = list_c.get()});
  c->Start();
  EXPECT_TRUE(
      Eventually([&] { return list_c->Find("example.com", "later@example.net")->has_value(); }));
  // A removal travels too.
  ASSERT_TRUE(*list_b->Remove("example.com", "gone@example.net"));
  EXPECT_TRUE(Eventually([&] {
    return !list_a->Find("example.com", "gone@example.net")->has_value() &&
           !list_c->Find("example.com", "gone@example.net")->has_value();
  }));
}

TEST(FleetTest, WarmupAllowanceHoldsForTheFleet) {
  RedisServer redis(FreePort());
  std::vector<std::unique_ptr<Fleet>> nodes = ThreeNodes(redis.port());
  for (auto& n : nodes) ASSERT_TRUE(Eventually([&] { return n->stats().shared.load(); }));
  const int64_t day = 20000;
  int sent = 0;
  // Each node sends what it may; over a few seconds of syncs the fleet reaches the allowance and
  // passes it by fewer than the fleet's size.
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 3s) {
    for (auto& n : nodes) {
      while (n->TakeWarmup("192.0.2.1|mx.example", 100, day)) ++sent;
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(sent, 97);
  EXPECT_LE(sent, 102);
}

TEST(FleetTest, TlsMemoryAndMtaStsPoliciesReachEveryNode) {
  RedisServer redis(FreePort());
  tlspolicy::TlsMemory memory_a({}), memory_b({}), memory_c({});
  tlspolicy::StsCache sts_a, sts_b, sts_c;
  auto a =
      *Fleet::Create(Options(redis.port(), "a", 3), {.tls_memory = &memory_a, .sts_cache = &sts_a});
  auto b =
      *Fleet::Create(Options(redis.port(), "b", 3), {.tls_memory = &memory_b, .sts_cache = &sts_b});
  a->Start();
  b->Start();
  ASSERT_TRUE(Eventually([&] { return a->stats().shared.load() && b->stats().shared.load(); }));
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  // A delivery over TLS on a: b must not send that domain plain text either.
  memory_a.Remember("tls.example", now_ms);
  tlspolicy::StsCacheEntry policy{
      .domain = "sts.example", .id = "20261208", .fetched_unix_s = now_ms / 1000};
  policy.policy.mode = tlspolicy::StsMode::kEnforce;
  policy.policy.max_age_s = 86400;
  policy.policy.mx = {"mx.sts.example"};
  sts_a.Store(policy);
  EXPECT_TRUE(Eventually([&] {
    return memory_b.Requires("tls.example", now_ms) && sts_b.Find("sts.example") != nullptr;
  }));
  ASSERT_NE(sts_b.Find("sts.example"), nullptr);
  EXPECT_EQ(sts_b.Find("sts.example")->id, "20261208");
  EXPECT_EQ(sts_b.Find("sts.example")->policy.mx, std::vector<std::string>{"mx.sts.example"});
  // A node that starts later reads both whole.
  auto c =
      *Fleet::Create(Options(redis.port(), "c", 3), {.tls_memory = &memory_c, .sts_cache = &sts_c});
  c->Start();
  EXPECT_TRUE(Eventually([&] {
    return memory_c.Requires("tls.example", now_ms) && sts_c.Find("sts.example") != nullptr;
  }));
  // The operator forgets the domain on b: a and c forget it too.
  EXPECT_TRUE(memory_b.Forget("tls.example"));
  EXPECT_TRUE(Eventually([&] {
    return !memory_a.Requires("tls.example", now_ms) && !memory_c.Requires("tls.example", now_ms);
  }));
}

TEST(FleetTest, StatusListsTheNodes) {
  RedisServer redis(FreePort());
  FleetOptions o = Options(redis.port(), "alpha", 2);
  o.status = [] { return std::string("\"queued\":7"); };
  auto a = *Fleet::Create(o, {});
  a->Start();
  ASSERT_TRUE(Eventually([&] { return a->stats().shared.load(); }));
  absl::StatusOr<std::string> status = a->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_NE(status->find("alpha\tup\t{"), std::string::npos) << *status;
  EXPECT_NE(status->find("\"queued\":7"), std::string::npos) << *status;
}

}  // namespace
}  // namespace relay::cluster
