#include "relay/cluster/fleet.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "relay/base/clock.h"
#include "relay/base/json.h"
#include "relay/base/log.h"
#include "relay/base/replace_file.h"
#include "relay/base/sv.h"

namespace relay::cluster {
namespace {

// Grants up to ARGV[3] leases of KEYS[1] to node ARGV[1] under the limit ARGV[2], counting the
// fields of live nodes only (ARGV[4] .. node is a node's liveness key); the fields of silent
// nodes go. A request that gets fewer than it asked for counts in the field "~starved", which the
// nodes holding more than their share watch (they give connections back then). Reads keys it is
// not given: a standalone Redis (or one hash slot), as documented.
constexpr char kLeaseScript[] = R"lua(
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  local n = fields[i]
  if n == '~starved' then
  elseif n ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. n) == 0 then
    redis.call('HDEL', KEYS[1], n)
  else
    total = total + tonumber(fields[i + 1])
  end
end
local want = tonumber(ARGV[3])
local got = math.min(want, tonumber(ARGV[2]) - total)
if got < 0 then got = 0 end
if got > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], got) end
if got < want then redis.call('HINCRBY', KEYS[1], '~starved', 1) end
redis.call('PEXPIRE', KEYS[1], 86400000)
return got
)lua";

// A token bucket in KEYS[1] (t: Redis's time of the last take in ms, n: tokens), ARGV[1] tokens
// a second up to ARGV[2]; takes up to ARGV[3]. Returns {taken, ms until the rest of ARGV[3]
// would be there}: a node short of tokens asks again for a whole batch, not for each token.
// Redis's clock, so that the nodes' clocks do not matter.
constexpr char kRateScript[] = R"lua(
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 't', 'n')
local last = tonumber(v[1])
local tokens = tonumber(v[2])
if last == nil or tokens == nil then
  last = now
  tokens = burst
end
if now > last then tokens = math.min(burst, tokens + (now - last) * rate / 1000) end
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 't', now, 'n', tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
local wait = 0
if got < want then wait = math.ceil((want - got - tokens) * 1000 / rate) end
return {got, wait}
)lua";

// A lease request that got none waits this long, doubling while the fleet has none to give.
// Deletes the fields of KEYS[1] named in ARGV (field, value pairs) whose value is still the one
// given.
constexpr char kDeleteIfUnchangedScript[] = R"lua(
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
)lua";

constexpr int64_t kLeaseStarvedMs = 50;
constexpr int64_t kLeaseStarvedMsMax = 250;
constexpr int64_t kWarmupSyncMs = 1000;
constexpr int64_t kWarmupKeyTtlMs = int64_t{2} * 86400 * 1000;
constexpr int64_t kCursorSaveMs = 1000;
constexpr int kStreamReadMax = 1000;  // change stream entries read a round
constexpr int kScanCount = 1000;      // suppression entries read a round in a full read

// "ms-seq" stream IDs in order.
bool StreamIdBefore(std::string_view a, std::string_view b) {
  auto parse = [](std::string_view id) {
    std::pair<uint64_t, uint64_t> v{0, 0};
    const size_t dash = id.find('-');
    absl::SimpleAtoi(absl::string_view(id.data(), std::min(dash, id.size())), &v.first);
    if (dash != std::string_view::npos) {
      absl::SimpleAtoi(absl::string_view(id.data() + dash + 1, id.size() - dash - 1), &v.second);
    }
    return v;
  };
  return parse(a) < parse(b);
}

uint32_t ShareOf(uint32_t limit, uint32_t fleet_size) {
  if (limit == 0) return 0;
  return std::max<uint32_t>(1, (limit + fleet_size - 1) / fleet_size);
}

std::string SuspensionLine(const delivery::Suspension& s) {
  std::string text = delivery::FormatSuspensionsFile({s});
  const size_t nl = text.find('\n');  // past the file's header line
  text.erase(0, nl + 1);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

const char* StateHash(StateKind kind) {
  switch (kind) {
    case StateKind::kSuspension:
      return "suspensions";
    case StateKind::kSuppression:
      return "suppression";
    case StateKind::kTlsMemory:
      return "tls-memory";
    case StateKind::kStsPolicy:
      return "mta-sts";
  }
  return "";
}

void AppendChangeCommands(std::string_view key_prefix, std::string_view writer, StateKind kind,
                          bool removed, const std::string& key, const std::string& value,
                          size_t stream_max, std::vector<RedisLink::Command>* out) {
  const std::string prefix(key_prefix);
  const std::string hash = prefix + StateHash(kind);
  std::string type(1, static_cast<char>(kind));
  if (removed) {
    out->push_back({"HDEL", hash, key});
    type += "-";
  } else {
    out->push_back({"HSET", hash, key, value});
  }
  out->push_back({"XADD", prefix + "changes", "MAXLEN", "~", std::to_string(stream_max), "*", "n",
                  std::string(writer), "t", type, "k", key, "v", removed ? "" : value});
}

SuppressionPublisher::SuppressionPublisher(const FleetOptions& options)
    : options_(options), link_(options.redis) {
  writer_ = absl::StrCat("relayctl/", getpid());
}

void SuppressionPublisher::Add(const feedback::SuppressionEntry& e, bool removed) {
  absl::StatusOr<std::string> key = feedback::EntryKey(e.tenant, e.address);
  if (!key.ok()) return;
  AppendChangeCommands(options_.key_prefix, writer_, StateKind::kSuppression, removed, *key,
                       removed ? "" : feedback::EncodeEntryValue(e), options_.changes_stream_max,
                       &commands_);
  if (++changes_ >= kBatch) Send();
}

void SuppressionPublisher::Send() {
  if (commands_.empty()) return;
  if (status_.ok()) {
    absl::StatusOr<std::vector<RedisReply>> replies = link_.Pipeline(commands_);
    if (!replies.ok()) {
      status_ = replies.status();
    } else {
      for (const RedisReply& r : *replies) {
        if (r.is_error() && status_.ok()) status_ = absl::InternalError("redis: " + r.str);
      }
      if (status_.ok()) sent_ += changes_;
    }
  }
  commands_.clear();
  changes_ = 0;
}

absl::Status SuppressionPublisher::Finish() {
  Send();
  return status_;
}

absl::StatusOr<std::unique_ptr<Fleet>> Fleet::Create(FleetOptions options, State state) {
  if (options.fleet_size == 0) return absl::InvalidArgumentError("[cluster] fleet_size is 0");
  if (options.node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    options.node = host;
  }
  for (char c : options.node) {
    if (c <= ' ' || c == '/' || c == '|' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("[cluster] node \"", options.node, "\": no spaces, '/' or '|'"));
    }
  }
  return std::unique_ptr<Fleet>(new Fleet(std::move(options), state));
}

Fleet::Fleet(FleetOptions options, State state)
    : options_(std::move(options)),
      board_(state.board),
      suppression_(state.suppression),
      tls_memory_(state.tls_memory),
      sts_cache_(state.sts_cache) {
  std::random_device rd;
  node_id_ = absl::StrCat(options_.node, "/", absl::Hex(rd() ^ (uint64_t{rd()} << 32)));
  for (size_t i = 0; i < options_.source_names.size(); ++i) {
    source_index_[options_.source_names[i]] = static_cast<int>(i);
  }
  link_ = std::make_unique<RedisLink>(options_.redis);
  if (!options_.cursor_path.empty()) {
    absl::StatusOr<std::string> saved = ReadStateFile(options_.cursor_path);
    if (saved.ok()) {
      std::string id(absl::StripAsciiWhitespace(*saved));
      if (!id.empty() && id.size() < 64 &&
          id.find_first_not_of("0123456789-") == std::string::npos) {
        saved_stream_id_ = id;
      }
    }
  }
  if (board_ != nullptr) {
    board_->SetListener(
        [this](const delivery::Suspension& s, bool removed) { OnBoardChange(s, removed); });
  }
  if (suppression_ != nullptr) {
    suppression_->SetListener([this](const feedback::SuppressionEntry& e, bool removed) {
      OnSuppressionChange(e, removed);
    });
  }
  if (tls_memory_ != nullptr) {
    tls_memory_->SetListener([this](const tlspolicy::TlsMemoryEntry& e, bool forgotten) {
      Queue({.kind = StateKind::kTlsMemory,
             .removed = forgotten,
             .key = e.domain,
             .value = forgotten ? "" : std::to_string(e.day)});
    });
  }
  if (sts_cache_ != nullptr) {
    sts_cache_->SetListener([this](const tlspolicy::StsCacheEntry& e) {
      std::string line = tlspolicy::FormatStsCacheFile({e});
      // The file's one entry line, past its header.
      const size_t nl = line.find('\n');
      if (nl != std::string::npos && line[0] == '#') line.erase(0, nl + 1);
      while (!line.empty() && line.back() == '\n') line.pop_back();
      Queue({.kind = StateKind::kStsPolicy, .key = e.domain, .value = std::move(line)});
    });
  }
}

Fleet::~Fleet() {
  Stop();
  if (board_ != nullptr) board_->SetListener(nullptr);
  if (suppression_ != nullptr) suppression_->SetListener(nullptr);
  if (tls_memory_ != nullptr) tls_memory_->SetListener(nullptr);
  if (sts_cache_ != nullptr) sts_cache_->SetListener(nullptr);
}

int64_t Fleet::NowMs() { return RealClock::Get()->MonotonicMillis(); }

int64_t Fleet::NowUnixMs() { return static_cast<int64_t>(RealClock::Get()->WallSeconds() * 1000); }

void Fleet::Start() {
  started_unix_ms_ = NowUnixMs();
  thread_ = std::thread([this] { Run(); });
}

void Fleet::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

// --- the shards' side ---

bool Fleet::TryLease(std::string_view key, uint32_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Sv(key));
  if (it == leases_.end()) {
    if (leases_.size() >= options_.keys_max) ForgetIdleKeys();
    if (leases_.size() >= options_.keys_max) return false;
    it = leases_.emplace(std::string(key), Lease{}).first;
  }
  Lease& l = it->second;
  l.limit = limit;
  // Without Redis, for a while after it came back (the other nodes re-assert what they opened
  // meanwhile, which Redis did not see), and while other nodes are refused leases this node
  // holds more than its share of, it keeps to its share.
  const int64_t now = NowMs();
  if (!shared_.load(std::memory_order_relaxed) || now < settle_until_ms_ ||
      now < l.contended_until_ms) {
    if (l.in_use >= ShareOf(limit, options_.fleet_size)) return false;
    ++l.in_use;
    return true;
  }
  if (l.in_use < l.held && l.in_use < limit) {
    ++l.in_use;
    return true;
  }
  ++l.wanted;
  kicked_ = true;
  wake_.notify_one();
  return false;
}

void Fleet::ForgetIdleKeys() {
  // Pairs that hold nothing are forgotten (a later use starts them afresh); what holds leases,
  // tokens or an unsynced warm-up count stays.
  const int64_t day = NowUnixMs() / delivery::kDayMs;
  absl::erase_if(leases_, [](const auto& kv) {
    return kv.second.in_use == 0 && kv.second.held == 0 && kv.second.wanted == 0;
  });
  absl::erase_if(tokens_,
                 [](const auto& kv) { return kv.second.tokens == 0 && kv.second.wanted == 0; });
  absl::erase_if(warmups_,
                 [day](const auto& kv) { return kv.second.day != day || kv.second.unsynced == 0; });
}

bool Fleet::ReleaseOverShare(std::string_view key, uint32_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Sv(key));
  if (it == leases_.end() || it->second.in_use <= ShareOf(limit, options_.fleet_size)) {
    return false;
  }
  const int64_t now = NowMs();
  if (shared_.load(std::memory_order_relaxed) && now >= settle_until_ms_ &&
      now >= it->second.contended_until_ms) {
    return false;
  }
  // Counted down now, not when the connection closes: connections that reach the decision at
  // once do not all quit.
  --it->second.in_use;
  return true;
}

void Fleet::ReturnLease(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(Sv(key));
  if (it != leases_.end() && it->second.in_use > 0) --it->second.in_use;
}

bool Fleet::TryToken(std::string_view key, uint32_t per_second, uint32_t burst) {
  if (per_second == 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(Sv(key));
  if (it == tokens_.end()) {
    if (tokens_.size() >= options_.keys_max) ForgetIdleKeys();
    if (tokens_.size() >= options_.keys_max) return false;
    it = tokens_.emplace(std::string(key), Tokens{}).first;
  }
  Tokens& t = it->second;
  const int64_t now = NowMs();
  if (burst == 0) burst = per_second;
  if (t.per_second != per_second || t.burst != burst) {
    t.per_second = per_second;
    t.burst = burst;
    t.local.reset();
  }
  if (!shared_.load(std::memory_order_relaxed)) {
    if (t.local == nullptr) {
      t.local = std::make_unique<delivery::TokenBucket>(
          static_cast<double>(per_second) / options_.fleet_size,
          ShareOf(burst, options_.fleet_size), now);
    }
    return t.local->TryTake(1, now);
  }
  if (t.tokens > 0 && now - t.fetched_ms <= options_.token_ttl_ms) {
    --t.tokens;
    return true;
  }
  t.tokens = 0;
  ++t.wanted;
  kicked_ = true;
  wake_.notify_one();
  return false;
}

void Fleet::ReturnToken(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(Sv(key));
  if (it == tokens_.end()) return;
  if (shared_.load(std::memory_order_relaxed)) {
    ++it->second.tokens;
  }
  // A local bucket's token is not given back: the share is an upper bound, not a count.
}

bool Fleet::TakeWarmup(std::string_view key, int64_t allowance, int64_t day) {
  if (allowance < 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = warmups_.find(Sv(key));
  if (it == warmups_.end()) {
    if (warmups_.size() >= options_.keys_max) ForgetIdleKeys();
    if (warmups_.size() >= options_.keys_max) return false;
    it = warmups_.emplace(std::string(key), Warmup{}).first;
  }
  Warmup& w = it->second;
  if (w.day != day) w = Warmup{.day = day};
  w.allowance = allowance;
  // This node's share of what the fleet had left at its last sync, rounded up. The count does not
  // see the other nodes' messages since their syncs: nodes sending at once can pass the
  // allowance by about a share each (fleet.h).
  const int64_t left = allowance - w.fleet_count;
  const int64_t share = left <= 0 ? 0 : (left + options_.fleet_size - 1) / options_.fleet_size;
  if (w.unsynced >= share) {
    if (share > 0 || left > 0) {
      kicked_ = true;
      wake_.notify_one();
    }
    return false;
  }
  ++w.unsynced;
  if (w.unsynced >= share) {
    kicked_ = true;  // the share is spent: sync now to learn what the fleet has left
    wake_.notify_one();
  }
  return true;
}

void Fleet::GiveBackWarmup(std::string_view key, int64_t day) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = warmups_.find(Sv(key));
  if (it != warmups_.end() && it->second.day == day) --it->second.unsynced;
}

// --- changes made here ---

void Fleet::Queue(Change change) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (changes_.size() >= options_.pending_changes_max) {
      stats_.changes_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    changes_.push_back(std::move(change));
    kicked_ = true;
  }
  wake_.notify_one();
}

std::string Fleet::FleetKey(std::string_view local_key) const {
  // Reply rules' keys name a source by its index here: "<index>|site", "backoff:<index>|site".
  std::string_view prefix;
  std::string_view rest = local_key;
  if (rest.substr(0, delivery::kBackoffPrefix.size()) == delivery::kBackoffPrefix) {
    prefix = delivery::kBackoffPrefix;
    rest.remove_prefix(prefix.size());
  }
  const size_t bar = rest.find('|');
  if (bar == std::string_view::npos || rest.substr(0, bar) == delivery::kAnySource) {
    return std::string(local_key);
  }
  int index = -1;
  if (!absl::SimpleAtoi(absl::string_view(rest.data(), bar), &index) || index < 0 ||
      static_cast<size_t>(index) >= options_.source_names.size()) {
    return std::string(local_key);
  }
  return absl::StrCat(std::string(prefix), "src=", options_.source_names[index], "|",
                      std::string(rest.substr(bar + 1)));
}

std::string Fleet::LocalKey(std::string_view fleet_key) const {
  std::string_view prefix;
  std::string_view rest = fleet_key;
  if (rest.substr(0, delivery::kBackoffPrefix.size()) == delivery::kBackoffPrefix) {
    prefix = delivery::kBackoffPrefix;
    rest.remove_prefix(prefix.size());
  }
  if (rest.substr(0, 4) != "src=") return std::string(fleet_key);
  rest.remove_prefix(4);
  const size_t bar = rest.find('|');
  if (bar == std::string_view::npos) return "";
  auto it = source_index_.find(Sv(rest.substr(0, bar)));
  if (it == source_index_.end()) return "";  // a source this node does not have
  return absl::StrCat(std::string(prefix), it->second, "|", std::string(rest.substr(bar + 1)));
}

void Fleet::OnBoardChange(const delivery::Suspension& s, bool removed) {
  Change c{.kind = StateKind::kSuspension, .removed = removed, .key = FleetKey(s.key)};
  if (!removed) {
    delivery::Suspension fleet = s;
    fleet.key = c.key;
    c.value = SuspensionLine(fleet);
  }
  Queue(std::move(c));
}

void Fleet::OnSuppressionChange(const feedback::SuppressionEntry& e, bool removed) {
  absl::StatusOr<std::string> key = feedback::EntryKey(e.tenant, e.address);
  if (!key.ok()) return;
  Change c{.kind = StateKind::kSuppression, .removed = removed, .key = std::move(*key)};
  if (!removed) c.value = feedback::EncodeEntryValue(e);
  Queue(std::move(c));
}

// --- the agent ---

void Fleet::Run() {
  int64_t last_round_ms = -1;
  for (;;) {
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.sync_ms),
                     [&] { return stopping_ || kicked_; });
      stopping = stopping_;
      kicked_ = false;
    }
    int64_t now = NowMs();
    // Shards told no in a burst ask together: at most one round every 2 ms.
    if (!stopping && last_round_ms >= 0 && now - last_round_ms < 2) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2 - (now - last_round_ms)));
      now = NowMs();
    }
    last_round_ms = now;
    if (stopping) break;
    Round(now);
  }
  // The last round: send what is queued, let the fleet have this node's leases now rather than
  // after lease_ttl_ms.
  if (shared_.load() || link_->connected()) {
    Round(NowMs());
    std::vector<RedisLink::Command> bye;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, l] : leases_) bye.push_back({"HDEL", K("lease:" + key), node_id_});
    }
    bye.push_back({"DEL", K("live:" + node_id_)});
    bye.push_back({"DEL", K("node:" + options_.node)});
    (void)link_->Pipeline(bye);
  }
  SaveCursor();
  link_->Close();
}

void Fleet::Fallback(const absl::Status& why) {
  announced_down_ = true;
  shared_.store(false);
  stats_.shared.store(false);
  stats_.redis_failures.fetch_add(1, std::memory_order_relaxed);
  LogWarning() << "cluster: Redis " << options_.redis.address.host << ":"
               << options_.redis.address.port << " unreachable (" << why.message()
               << "): this node keeps to its share (1/" << options_.fleet_size
               << ") of every limit until it answers";
}

bool Fleet::Round(int64_t now) {
  // Each part of the round adds its commands and how to take their replies.
  std::vector<RedisLink::Command> commands;
  std::vector<std::function<void(const RedisReply&)>> handlers;
  auto add = [&](RedisLink::Command c, std::function<void(const RedisReply&)> h = nullptr) {
    commands.push_back(std::move(c));
    handlers.push_back(std::move(h));
  };
  if (!link_->connected()) {
    // Connect first (at most once per reconnect_ms), so that a Redis that is down costs nothing
    // more.
    absl::StatusOr<RedisReply> ping = link_->Call({"PING"});
    if (!ping.ok()) {
      if (shared_.load() || !announced_down_) Fallback(ping.status());
      return false;
    }
  }
  // A new connection (the first, or after a failure): Redis may have restarted or this node been
  // away, so leases are re-asserted, the stream place checked and the suspensions read whole.
  const bool reconnected = link_->connections() != link_connections_;

  std::vector<Change> sending;
  struct LeaseAsk {
    std::string key;
    uint32_t want;
  };
  std::vector<LeaseAsk> lease_asks;
  std::vector<std::pair<std::string, uint32_t>> lease_sets;  // key -> held after this round
  std::vector<std::pair<std::string, uint32_t>> token_asks;
  std::vector<std::pair<std::string, int64_t>> warmup_syncs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!changes_.empty() && sending.size() < 1000) {
      sending.push_back(std::move(changes_.front()));
      changes_.pop_front();
    }
    // What Redis is told a node holds is set here, under the lock, before the reply: a lower
    // count is never sent while shards take leases against a higher one (held only shrinks
    // early, the safe direction).
    auto set_held = [&](const std::string& key, Lease& l) {
      l.held = l.in_use;
      l.surplus_since_ms = -1;
      lease_sets.push_back({key, l.held});
    };
    for (auto& [key, l] : leases_) {
      if (reconnected) {
        // Redis may have lost everything (a restart) or this node was away: what it holds is what
        // its connections use. Pairs that hold nothing cost no command.
        if (l.in_use > 0 || l.held > 0) set_held(key, l);
        continue;
      }
      // Connections opened on the share (while settling or contended) without a lease of Redis:
      // Redis learns of them at once.
      if (l.in_use > l.held) {
        set_held(key, l);
        continue;
      }
      bool asked = false;
      if (l.wanted > 0 && now >= l.next_ask_ms) {
        const uint32_t room = l.limit > l.held ? l.limit - l.held : 0;
        const uint32_t want = std::min(l.wanted, room);
        l.wanted = 0;
        if (want > 0) {
          lease_asks.push_back({key, want});
          asked = true;
        }
      }
      if (asked || l.held <= l.in_use) {
        if (l.held <= l.in_use) l.surplus_since_ms = -1;
        continue;
      }
      // Unused leases go back after the linger, or at once while other nodes are short or the
      // limit fell below them (a backoff).
      if (now < l.contended_until_ms || l.held > l.limit) {
        set_held(key, l);
      } else if (l.surplus_since_ms < 0) {
        l.surplus_since_ms = now;
      } else if (now - l.surplus_since_ms >= options_.lease_linger_ms) {
        set_held(key, l);
      }
    }
    for (auto& [key, t] : tokens_) {
      if (t.tokens > 0 && now - t.fetched_ms > options_.token_ttl_ms) t.tokens = 0;
      const uint32_t batch = std::clamp<uint32_t>(
          static_cast<uint32_t>(std::ceil(t.per_second * options_.token_batch_ms / 1000.0)), 1,
          std::max<uint32_t>(t.burst, 1));
      // Asked for, or running low while in use: fetch a batch.
      if ((t.wanted > 0 || (t.tokens * 4 < batch && now - t.fetched_ms < options_.token_ttl_ms &&
                            t.fetched_ms > 0)) &&
          now >= t.next_ask_ms && t.per_second > 0) {
        t.wanted = 0;
        token_asks.push_back({key, batch});
      }
    }
    const int64_t day = NowUnixMs() / delivery::kDayMs;
    for (auto& [key, w] : warmups_) {
      if (w.day != day) continue;
      const int64_t left = w.allowance - w.fleet_count;
      const int64_t share = left <= 0 ? 0 : (left + options_.fleet_size - 1) / options_.fleet_size;
      // What this node sent goes up every second, or at once when its share is spent; and the
      // fleet's count is read every few seconds even when idle (others give back too).
      if ((w.unsynced != 0 && (now - w.synced_ms >= kWarmupSyncMs || w.unsynced >= share)) ||
          now - w.synced_ms >= kWarmupSyncMs * 5) {
        warmup_syncs.push_back({key, w.unsynced});
      }
    }
  }

  // A shard's kick that found nothing due (its lease or token request waits for next_ask_ms)
  // costs no round trip: the stream is read every sync_ms, not on every kick.
  const bool due = reconnected || now >= heartbeat_due_ms_ ||
                   (board_ != nullptr && now >= full_sync_due_ms_) ||
                   now - polled_ms_ >= options_.sync_ms || !full_read_.empty() || stream_behind_ ||
                   !sending.empty() || !lease_asks.empty() || !lease_sets.empty() ||
                   !token_asks.empty() || !warmup_syncs.empty();
  if (!due) return true;
  polled_ms_ = now;

  // Heartbeat (and leases re-asserted after a new connection).
  if (reconnected || now >= heartbeat_due_ms_) {
    add({"SET", K("live:" + node_id_), "1", "PX", std::to_string(options_.lease_ttl_ms)});
    std::string status = absl::StrCat("{\"node\":");
    AppendJsonString(status, options_.node);
    absl::StrAppend(&status, ",\"id\":");
    AppendJsonString(status, node_id_);
    absl::StrAppend(&status, ",\"started_unix_ms\":", started_unix_ms_,
                    ",\"updated_unix_ms\":", NowUnixMs(),
                    ",\"shared\":", shared_.load() ? "true" : "false");
    if (options_.status) absl::StrAppend(&status, ",", options_.status());
    status += "}";
    add({"SET", K("node:" + options_.node), status, "PX", std::to_string(options_.lease_ttl_ms)});
    add({"ZADD", K("nodes"), std::to_string(NowUnixMs()), options_.node});
    add({"ZREMRANGEBYSCORE", K("nodes"), "-inf", std::to_string(NowUnixMs() - 86400 * 1000)});
  }
  // A node holding more than its share looks, every round, whether others were refused leases
  // since (the script's "~starved" count went up): then it keeps to its share for a few
  // heartbeats, its connections past the share quitting after their message (ReleaseOverShare).
  if (!reconnected) {
    std::vector<std::string> watched;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [key, l] : leases_) {
        if (l.in_use > ShareOf(l.limit, options_.fleet_size)) watched.push_back(key);
      }
    }
    for (const std::string& key : watched) {
      add({"HGET", K("lease:" + key), "~starved"}, [this, key, now](const RedisReply& r) {
        const int64_t starved = r.AsInteger();
        std::lock_guard<std::mutex> lock(mu_);
        Lease& l = leases_[key];
        // Others were refused since the last look: the count rose by more than this node's own
        // refusals.
        if (l.starved_seen >= 0 && starved - l.starved_seen > l.own_starved) {
          l.contended_until_ms = now + 3 * options_.heartbeat_ms;
        }
        l.starved_seen = starved;
        l.own_starved = 0;
      });
    }
  }
  for (const auto& [key, held] : lease_sets) {
    if (held == 0) {
      add({"HDEL", K("lease:" + key), node_id_});
    } else {
      add({"HSET", K("lease:" + key), node_id_, std::to_string(held)});
      add({"PEXPIRE", K("lease:" + key), "86400000"});
    }
  }
  // Changes made here, before the stream is read: every node sees them in order.
  for (const Change& c : sending) {
    std::vector<RedisLink::Command> change;
    AppendChangeCommands(options_.key_prefix, node_id_, c.kind, c.removed, c.key, c.value,
                         options_.changes_stream_max, &change);
    for (RedisLink::Command& command : change) add(std::move(command));
  }
  for (const LeaseAsk& a : lease_asks) {
    uint32_t limit = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      limit = leases_[a.key].limit;
    }
    add({"EVAL", kLeaseScript, "1", K("lease:" + a.key), node_id_, std::to_string(limit),
         std::to_string(a.want), K("live:")},
        [this, key = a.key, want = a.want, now](const RedisReply& r) {
          const int64_t got = r.AsInteger();
          std::lock_guard<std::mutex> lock(mu_);
          Lease& l = leases_[key];
          l.held += static_cast<uint32_t>(std::max<int64_t>(0, got));
          if (got > 0) l.starved_ms = 0;
          if (got < want) {
            ++l.own_starved;  // the script counted this refusal: not another node's
            l.starved_ms =
                std::clamp<int64_t>(l.starved_ms * 2, kLeaseStarvedMs, kLeaseStarvedMsMax);
            l.next_ask_ms = now + l.starved_ms;
          }
          stats_.leases_granted.fetch_add(std::max<int64_t>(0, got), std::memory_order_relaxed);
        });
  }
  for (const auto& [key, want] : token_asks) {
    uint32_t per_second = 0, burst = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      per_second = tokens_[key].per_second;
      burst = tokens_[key].burst;
    }
    add({"EVAL", kRateScript, "1", K("rate:" + key), std::to_string(per_second),
         std::to_string(std::max(burst, want)), std::to_string(want)},
        [this, key = key, now](const RedisReply& r) {
          if (r.type != RedisReply::Type::kArray || r.elements.size() != 2) return;
          const int64_t got = r.elements[0].AsInteger();
          const int64_t wait = r.elements[1].AsInteger();
          std::lock_guard<std::mutex> lock(mu_);
          Tokens& t = tokens_[key];
          if (got > 0) {
            t.tokens += static_cast<uint32_t>(got);
            t.fetched_ms = now;
            stats_.tokens_granted.fetch_add(got, std::memory_order_relaxed);
          }
          // Short: the next request waits until a batch is there (the fleet's rate is spent).
          if (wait > 0) t.next_ask_ms = now + std::clamp<int64_t>(wait, 1, 1000);
        });
  }
  const int64_t day = NowUnixMs() / delivery::kDayMs;
  for (const auto& [key, delta] : warmup_syncs) {
    const std::string k = K(absl::StrCat("warmup:", day, ":", key));
    add({"INCRBY", k, std::to_string(delta)},
        [this, key = key, delta = delta, day, now](const RedisReply& r) {
          if (r.type != RedisReply::Type::kInteger) return;
          std::lock_guard<std::mutex> lock(mu_);
          Warmup& w = warmups_[key];
          if (w.day != day) return;
          w.fleet_count = r.integer;
          w.unsynced -= delta;
          w.synced_ms = now;
        });
    add({"PEXPIRE", k, std::to_string(kWarmupKeyTtlMs)});
  }

  // Where to read the change stream from, once per connection: the saved place if the stream
  // still holds it, else its end after a full read of the suppression hash.
  if (reconnected) {
    // Entries older than the stream's first may have been trimmed (MAXLEN): then the place is
    // lost, and the suppression hash is read whole.
    std::string place = stream_id_.empty() ? saved_stream_id_ : stream_id_;
    add({"XRANGE", K("changes"), "-", "+", "COUNT", "1"}, [this, place](const RedisReply& r) {
      std::string first;
      if (r.type == RedisReply::Type::kArray && !r.elements.empty() &&
          r.elements[0].type == RedisReply::Type::kArray && !r.elements[0].elements.empty()) {
        first = r.elements[0].elements[0].str;
      }
      if (!place.empty() && (first.empty() || !StreamIdBefore(place, first))) {
        stream_id_ = place;
      } else {
        stream_id_.clear();
        full_read_.clear();
        if (suppression_ != nullptr) full_read_.push_back(StateKind::kSuppression);
        if (tls_memory_ != nullptr) full_read_.push_back(StateKind::kTlsMemory);
        if (sts_cache_ != nullptr) full_read_.push_back(StateKind::kStsPolicy);
        scan_cursor_ = "0";
        if (!place.empty()) {
          LogWarning() << "cluster: the change stream no longer holds " << place
                       << ": reading the fleet's suppression list whole";
        }
      }
    });
    add({"XREVRANGE", K("changes"), "+", "-", "COUNT", "1"}, [this](const RedisReply& r) {
      if (!stream_id_.empty()) return;
      stream_id_ = "0-0";
      if (r.type == RedisReply::Type::kArray && !r.elements.empty() &&
          r.elements[0].type == RedisReply::Type::kArray && !r.elements[0].elements.empty()) {
        stream_id_ = r.elements[0].elements[0].str;
      }
    });
  } else if (!stream_id_.empty()) {
    add({"XREAD", "COUNT", std::to_string(kStreamReadMax), "STREAMS", K("changes"), stream_id_},
        [this](const RedisReply& r) {
          if (r.type != RedisReply::Type::kArray || r.elements.empty()) return;
          const RedisReply& stream = r.elements[0];
          if (stream.elements.size() != 2) return;
          // A full read: more may wait; the next round comes at once, so that a node behind
          // catches up before trimming (MAXLEN) passes its place.
          stream_behind_ =
              stream.elements[1].elements.size() >= static_cast<size_t>(kStreamReadMax);
          if (stream_behind_) {
            std::lock_guard<std::mutex> lock(mu_);
            kicked_ = true;
          }
          // Suppressions added in a row go in one transaction; anything else in between (a
          // removal) goes after them, in order.
          std::vector<std::pair<std::string, std::string>> adds;
          for (const RedisReply& entry : stream.elements[1].elements) {
            if (entry.elements.size() != 2) continue;
            stream_id_ = entry.elements[0].str;
            std::string_view node, type, key, value;
            const std::vector<RedisReply>& f = entry.elements[1].elements;
            for (size_t i = 0; i + 1 < f.size(); i += 2) {
              if (f[i].str == "n") node = f[i + 1].str;
              if (f[i].str == "t") type = f[i + 1].str;
              if (f[i].str == "k") key = f[i + 1].str;
              if (f[i].str == "v") value = f[i + 1].str;
            }
            if (node == node_id_) continue;
            if (type == "p") {
              adds.emplace_back(key, value);
              continue;
            }
            if (!adds.empty()) {
              ApplyEntries(StateKind::kSuppression, adds);
              adds.clear();
            }
            board_changed_ = ApplyChange(type, key, value) || board_changed_;
          }
          if (!adds.empty()) ApplyEntries(StateKind::kSuppression, adds);
        });
  }
  if (!full_read_.empty()) {
    const StateKind kind = full_read_.front();
    add({"HSCAN", K(StateHash(kind)), scan_cursor_, "COUNT", std::to_string(kScanCount)},
        [this, kind](const RedisReply& r) {
          if (r.type != RedisReply::Type::kArray || r.elements.size() != 2) return;
          std::vector<std::pair<std::string, std::string>> kv;
          const std::vector<RedisReply>& f = r.elements[1].elements;
          for (size_t i = 0; i + 1 < f.size(); i += 2) kv.emplace_back(f[i].str, f[i + 1].str);
          ApplyEntries(kind, kv);
          scan_cursor_ = r.elements[0].str;
          if (scan_cursor_ == "0") {
            LogInfo() << "cluster: the fleet's " << StateHash(kind) << " read whole";
            if (!full_read_.empty()) full_read_.pop_front();
          }
        });
  }
  if (board_ != nullptr && (reconnected || now >= full_sync_due_ms_)) {
    add({"HGETALL", K("suspensions")}, [this](const RedisReply& r) {
      board_changed_ = ReconcileSuspensions(r) || board_changed_;
    });
    full_sync_due_ms_ = now + options_.full_sync_ms;
  }

  absl::StatusOr<std::vector<RedisReply>> replies = link_->Pipeline(commands);
  stats_.round_trips.fetch_add(1, std::memory_order_relaxed);
  stats_.commands.fetch_add(commands.size(), std::memory_order_relaxed);
  stats_.limit_commands.fetch_add(lease_asks.size() + token_asks.size() + warmup_syncs.size(),
                                  std::memory_order_relaxed);
  if (!replies.ok()) {
    // What was being sent goes back in front, to go first next time.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = sending.rbegin(); it != sending.rend(); ++it) {
      changes_.push_front(std::move(*it));
    }
    while (changes_.size() > options_.pending_changes_max) {
      changes_.pop_back();
      stats_.changes_dropped.fetch_add(1, std::memory_order_relaxed);
    }
    if (shared_.load() || !announced_down_) Fallback(replies.status());
    return false;
  }
  board_changed_ = false;
  for (size_t i = 0; i < replies->size(); ++i) {
    if ((*replies)[i].is_error()) {
      LogWarning() << "cluster: Redis refused " << commands[i][0] << ": " << (*replies)[i].str;
      continue;
    }
    if (handlers[i]) handlers[i]((*replies)[i]);
  }
  if (board_changed_ && options_.board_changed) options_.board_changed();
  stats_.changes_sent.fetch_add(sending.size(), std::memory_order_relaxed);
  if (reconnected || now >= heartbeat_due_ms_) heartbeat_due_ms_ = now + options_.heartbeat_ms;
  link_connections_ = link_->connections();
  if (!shared_.load()) {
    announced_down_ = false;
    if (stats_.redis_failures.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      settle_until_ms_ = now + 2 * options_.heartbeat_ms + options_.redis.reconnect_ms;
    }
    shared_.store(true);
    stats_.shared.store(true);
    LogInfo() << "cluster: node " << options_.node << " shares limits and state through Redis "
              << options_.redis.address.host << ":" << options_.redis.address.port;
  }
  if (now - cursor_saved_ms_ >= kCursorSaveMs) {
    SaveCursor();
    cursor_saved_ms_ = now;
  }
  return true;
}

void Fleet::ApplyEntries(StateKind kind,
                         const std::vector<std::pair<std::string, std::string>>& kv) {
  stats_.changes_applied.fetch_add(kv.size(), std::memory_order_relaxed);
  if (kind == StateKind::kSuppression && suppression_ != nullptr) {
    std::vector<feedback::SuppressionEntry> adds;
    for (const auto& [key, value] : kv) {
      absl::StatusOr<feedback::SuppressionEntry> e = feedback::DecodeEntry(key, value);
      if (e.ok()) adds.push_back(std::move(*e));
    }
    const absl::Status s = suppression_->MirrorAdd(adds);
    if (!s.ok()) LogWarning() << "cluster: suppressions from the fleet: " << s.message();
  } else if (kind == StateKind::kTlsMemory && tls_memory_ != nullptr) {
    for (const auto& [domain, day_text] : kv) {
      int64_t day = 0;
      if (absl::SimpleAtoi(day_text, &day)) tls_memory_->Mirror({domain, day});
    }
  } else if (kind == StateKind::kStsPolicy && sts_cache_ != nullptr) {
    for (const auto& [domain, line] : kv) {
      for (tlspolicy::StsCacheEntry& e : tlspolicy::ParseStsCacheFile(line, 1)) {
        if (e.domain == domain) sts_cache_->Mirror(std::move(e));
      }
    }
  }
}

bool Fleet::ApplyChange(std::string_view type, std::string_view key, std::string_view value) {
  if (type == "m" || type == "t") {
    ApplyEntries(type == "m" ? StateKind::kTlsMemory : StateKind::kStsPolicy,
                 {{std::string(key), std::string(value)}});
    return false;
  }
  stats_.changes_applied.fetch_add(1, std::memory_order_relaxed);
  if (type == "m-") {
    if (tls_memory_ != nullptr) tls_memory_->Unmirror(key);
    return false;
  }
  if (type == "p-" && suppression_ != nullptr) {
    const size_t nul = key.find('\0');
    if (nul == std::string_view::npos) return false;
    (void)suppression_->MirrorRemove(key.substr(0, nul), key.substr(nul + 1));
    return false;
  }
  if (board_ == nullptr) return false;
  if (type == "s") {
    std::vector<delivery::Suspension> parsed = delivery::ParseSuspensionsFile(value);
    if (parsed.size() != 1) return false;
    delivery::Suspension s = std::move(parsed.front());
    s.key = LocalKey(s.key);
    if (s.key.empty() || s.until_unix_ms <= NowUnixMs()) return false;
    const uint64_t before = board_->generation();
    board_->Mirror(std::move(s));
    return board_->generation() != before;
  }
  if (type == "s-") {
    const std::string local = LocalKey(key);
    return !local.empty() && board_->Unmirror(local);
  }
  return false;
}

bool Fleet::ReconcileSuspensions(const RedisReply& all) {
  if (all.type != RedisReply::Type::kArray) return false;
  const uint64_t before = board_->generation();
  const int64_t now_unix = NowUnixMs();
  absl::flat_hash_set<std::string> fleet_keys;
  std::vector<std::string> expired;
  for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
    std::vector<delivery::Suspension> parsed =
        delivery::ParseSuspensionsFile(all.elements[i + 1].str);
    if (parsed.size() != 1) continue;
    delivery::Suspension s = std::move(parsed.front());
    if (s.until_unix_ms <= now_unix) {
      expired.push_back(all.elements[i].str);
      expired.push_back(all.elements[i + 1].str);
      continue;
    }
    s.key = LocalKey(all.elements[i].str);
    if (s.key.empty()) continue;
    fleet_keys.insert(s.key);
    board_->Mirror(std::move(s));
  }
  // What the board holds that the fleet does not: lifted elsewhere while this node was away,
  // unless it is a change of this node's still on its way.
  absl::flat_hash_set<std::string> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Change& c : changes_) {
      if (c.kind == StateKind::kSuspension) pending.insert(c.key);
    }
  }
  for (const delivery::Suspension& s : board_->InForce(now_unix)) {
    if (fleet_keys.contains(s.key) || pending.contains(FleetKey(s.key))) continue;
    board_->Unmirror(s.key);
  }
  // Entries over by now go from the hash (any node may do it; HDEL is idempotent).
  if (!expired.empty()) {
    // Only if unchanged since it was read: a node may have suspended the key again meanwhile.
    RedisLink::Command hdel = {"EVAL", kDeleteIfUnchangedScript, "1", K("suspensions")};
    hdel.insert(hdel.end(), expired.begin(), expired.end());
    (void)link_->Call(hdel);
  }
  return board_->generation() != before;
}

void Fleet::SaveCursor() {
  if (options_.cursor_path.empty() || stream_id_.empty() || !full_read_.empty() ||
      stream_id_ == saved_stream_id_) {
    return;
  }
  const absl::Status s = ReplaceFile(options_.cursor_path, stream_id_ + "\n", 0600,
                                     /*durable=*/false);
  if (s.ok()) {
    saved_stream_id_ = stream_id_;
  } else {
    LogWarning() << "cluster: " << s.message();
  }
}

absl::StatusOr<std::string> Fleet::Status() const {
  RedisLink link(options_.redis);
  absl::StatusOr<RedisReply> names = link.Call({"ZRANGE", K("nodes"), "0", "-1", "WITHSCORES"});
  if (!names.ok()) return names.status();
  if (names->is_error()) return absl::InternalError("redis: " + names->str);
  std::vector<RedisLink::Command> gets;
  std::vector<std::pair<std::string, int64_t>> nodes;
  for (size_t i = 0; i + 1 < names->elements.size(); i += 2) {
    nodes.push_back({names->elements[i].str, names->elements[i + 1].AsInteger()});
    gets.push_back({"GET", K("node:" + names->elements[i].str)});
  }
  std::string out = absl::StrCat("redis ", options_.redis.address.host, ":",
                                 options_.redis.address.port, ", prefix ", options_.key_prefix,
                                 ", ", nodes.size(), " node(s) seen in the last day\n");
  if (gets.empty()) return out;
  absl::StatusOr<std::vector<RedisReply>> status = link.Pipeline(gets);
  if (!status.ok()) return status.status();
  const int64_t now = NowUnixMs();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const RedisReply& r = (*status)[i];
    const int64_t age_s = (now - nodes[i].second) / 1000;
    if (r.is_nil()) {
      absl::StrAppend(&out, nodes[i].first, "\tgone\tlast heard ", age_s, " s ago\n");
    } else {
      absl::StrAppend(&out, nodes[i].first, "\tup\t", r.str, "\n");
    }
  }
  return out;
}

}  // namespace relay::cluster
