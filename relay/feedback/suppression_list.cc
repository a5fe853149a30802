#include "relay/feedback/suppression_list.h"

#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "relay/base/log.h"
#include "relay/base/sv.h"

namespace relay::feedback {
namespace {

constexpr std::string_view kReasonNames[] = {"bounce", "complaint", "unsubscribe", "manual"};
constexpr char kValueVersion[] = "v1";
constexpr size_t kValueFields = 6;  // version, reason, category, time, queue id, detail

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Tabs and line ends would split the value's fields: each becomes a space.
std::string Field(std::string_view s, size_t bytes_max) {
  std::string out(s.substr(0, bytes_max));
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r' || c == '\0') c = ' ';
  }
  return out;
}

absl::Status MdbError(std::string_view what, int rc) {
  return absl::InternalError(absl::StrCat("suppression list: ", std::string(what), ": ",
                                          mdb_strerror(rc)));
}

MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view View(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

}  // namespace

std::string_view ReasonName(SuppressionReason reason) {
  const int i = static_cast<int>(reason);
  return i >= 0 && i < 4 ? kReasonNames[i] : "manual";
}

std::optional<SuppressionReason> ReasonNamed(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (kReasonNames[i] == name) return static_cast<SuppressionReason>(i);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> EntryKey(std::string_view tenant, std::string_view address) {
  if (tenant.empty() || tenant.size() > kTenantBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("a tenant (sending domain) of 1 to ", kTenantBytesMax, " bytes is required"));
  }
  if (address.empty() || address.size() > kAddressBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("an address of 1 to ", kAddressBytesMax, " bytes is required"));
  }
  if (tenant.find('\0') != std::string_view::npos || address.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("a tenant or address holds a NUL byte");
  }
  std::string key = Lower(tenant);
  key.push_back('\0');
  key += Lower(address);
  return key;
}

std::string EncodeEntryValue(const SuppressionEntry& e) {
  return absl::StrCat(kValueVersion, "\t", std::string(ReasonName(e.reason)), "\t",
                      Field(e.category, 64), "\t", e.time_unix_ms, "\t", Field(e.queue_id, 64),
                      "\t", Field(e.detail, kDetailBytesMax));
}

absl::StatusOr<SuppressionEntry> DecodeEntry(std::string_view key, std::string_view value) {
  const size_t nul = key.find('\0');
  if (nul == std::string_view::npos || nul == 0 || nul + 1 == key.size()) {
    return absl::DataLossError("suppression entry: the key is not tenant NUL address");
  }
  SuppressionEntry e;
  e.tenant = std::string(key.substr(0, nul));
  e.address = std::string(key.substr(nul + 1));
  std::string_view fields[kValueFields];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= value.size() && n < kValueFields; ++i) {
    if (i == value.size() || (value[i] == '\t' && n + 1 < kValueFields)) {
      fields[n++] = value.substr(start, i - start);
      start = i + 1;
    }
  }
  if (n != kValueFields || fields[0] != kValueVersion) {
    return absl::DataLossError(absl::StrCat("suppression entry for ", e.address,
                                            ": not a v1 value of ", kValueFields, " fields"));
  }
  std::optional<SuppressionReason> reason = ReasonNamed(fields[1]);
  if (!reason) {
    return absl::DataLossError(absl::StrCat("suppression entry for ", e.address,
                                            ": unknown reason"));
  }
  e.reason = *reason;
  e.category = std::string(fields[2]);
  int64_t t = 0;
  if (fields[3].empty() || fields[3].size() > 18) {
    return absl::DataLossError(absl::StrCat("suppression entry for ", e.address, ": bad time"));
  }
  for (char c : fields[3]) {
    if (c < '0' || c > '9') {
      return absl::DataLossError(absl::StrCat("suppression entry for ", e.address, ": bad time"));
    }
    t = t * 10 + (c - '0');
  }
  e.time_unix_ms = t;
  e.queue_id = std::string(fields[4]);
  e.detail = std::string(fields[5].substr(0, kDetailBytesMax));
  return e;
}

struct SuppressionList::Env {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  ~Env() {
    if (env != nullptr) mdb_env_close(env);
  }
};

SuppressionList::SuppressionList(SuppressionListOptions options)
    : options_(std::move(options)), env_(std::make_unique<Env>()) {}

absl::StatusOr<std::unique_ptr<SuppressionList>> SuppressionList::Open(
    SuppressionListOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("suppression list: no path");
  std::unique_ptr<SuppressionList> list(new SuppressionList(std::move(options)));
  const std::string& path = list->options_.path;
  const std::string lock_path = path + "-lock";
  const bool existed = ::access(path.c_str(), F_OK) == 0;
  Env& e = *list->env_;
  if (int rc = mdb_env_create(&e.env); rc != 0) return MdbError("create", rc);
  if (int rc = mdb_env_set_mapsize(e.env, list->options_.map_bytes_max); rc != 0) {
    return MdbError("map size", rc);
  }
  if (int rc = mdb_env_set_maxreaders(e.env, 1024); rc != 0) return MdbError("readers", rc);
  // NOTLS: read transactions are not tied to a thread (shards and relayctl share the file);
  // NORDAHEAD: lookups are random, read-ahead would only fill the page cache.
  if (int rc = mdb_env_open(e.env, path.c_str(), MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD, 0640);
      rc != 0) {
    return absl::Status(absl::StatusCode::kUnavailable,
                        absl::StrCat("suppression list ", path, ": ", mdb_strerror(rc)));
  }
  if (!existed && list->options_.owner_from_directory && ::geteuid() == 0) {
    struct stat dir;
    const std::string parent = std::filesystem::path(path).parent_path().string();
    if (::stat(parent.empty() ? "." : parent.c_str(), &dir) == 0) {
      for (const std::string& p : {path, lock_path}) {
        if (::chown(p.c_str(), dir.st_uid, dir.st_gid) != 0) {
          LogWarning() << "suppression list: chown " << p << ": " << std::strerror(errno);
        }
      }
    }
  }
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(e.env, nullptr, 0, &txn); rc != 0) return MdbError("begin", rc);
  if (int rc = mdb_dbi_open(txn, nullptr, 0, &e.dbi); rc != 0) {
    mdb_txn_abort(txn);
    return MdbError("open", rc);
  }
  if (int rc = mdb_txn_commit(txn); rc != 0) return MdbError("commit", rc);
  list->writer_ = std::thread([l = list.get()] { l->WriterLoop(); });
  return list;
}

SuppressionList::~SuppressionList() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

absl::StatusOr<std::optional<SuppressionEntry>> SuppressionList::Find(
    std::string_view tenant, std::string_view address) const {
  absl::StatusOr<std::string> key = EntryKey(tenant, address);
  if (!key.ok()) return std::optional<SuppressionEntry>();  // nothing can be stored under it
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) {
    return MdbError("begin", rc);
  }
  MDB_val k = Val(*key), v;
  const int rc = mdb_get(txn, env_->dbi, &k, &v);
  absl::StatusOr<std::optional<SuppressionEntry>> result = std::optional<SuppressionEntry>();
  if (rc == 0) {
    absl::StatusOr<SuppressionEntry> e = DecodeEntry(*key, View(v));
    if (e.ok()) {
      result = std::optional<SuppressionEntry>(std::move(*e));
    } else {
      result = e.status();
    }
  } else if (rc != MDB_NOTFOUND) {
    result = MdbError("get", rc);
  }
  mdb_txn_abort(txn);
  return result;
}

absl::Status SuppressionList::Put(const std::vector<SuppressionEntry>& entries, bool announce) {
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  for (const SuppressionEntry& e : entries) {
    absl::StatusOr<std::string> key = EntryKey(e.tenant, e.address);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("suppression entry <", e.address, "> of ", e.tenant, ": ",
                       std::string(key.status().message())));
    }
    keys.push_back(std::move(*key));
  }
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) return MdbError("begin", rc);
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string value = EncodeEntryValue(entries[i]);
    MDB_val k = Val(keys[i]), v = Val(value);
    if (int rc = mdb_put(txn, env_->dbi, &k, &v, 0); rc != 0) {
      mdb_txn_abort(txn);
      if (rc == MDB_MAP_FULL) {
        return absl::ResourceExhaustedError(
            absl::StrCat("suppression list full (map_bytes_max ", options_.map_bytes_max, ")"));
      }
      return MdbError("put", rc);
    }
  }
  if (int rc = mdb_txn_commit(txn); rc != 0) {
    if (rc == MDB_MAP_FULL) {
      return absl::ResourceExhaustedError(
          absl::StrCat("suppression list full (map_bytes_max ", options_.map_bytes_max, ")"));
    }
    return MdbError("commit", rc);
  }
  if (announce) {
    std::lock_guard<std::mutex> lock(listener_mu_);
    if (listener_) {
      for (const SuppressionEntry& e : entries) listener_(e, /*removed=*/false);
    }
  }
  return absl::OkStatus();
}

absl::Status SuppressionList::Add(const SuppressionEntry& entry) { return Put({entry}); }

absl::Status SuppressionList::AddMany(const std::vector<SuppressionEntry>& entries) {
  return Put(entries);
}

bool SuppressionList::AddLater(SuppressionEntry entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() >= options_.pending_max) {
      ++dropped_;
      return false;
    }
    pending_.push_back(std::move(entry));
  }
  wake_.notify_one();
  return true;
}

void SuppressionList::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty() && stopping_) return;
    // A short wait gathers a burst of bounces into one commit.
    wake_.wait_for(lock, std::chrono::milliseconds(stopping_ ? 0 : options_.batch_wait_ms),
                   [&] { return stopping_; });
    std::vector<SuppressionEntry> batch(std::make_move_iterator(pending_.begin()),
                                        std::make_move_iterator(pending_.end()));
    pending_.clear();
    in_flight_ = batch.size();
    lock.unlock();
    absl::Status s = Put(batch);
    if (!s.ok()) {
      // One bad entry must not lose the others: try each alone.
      for (const SuppressionEntry& e : batch) {
        absl::Status one = Put({e});
        if (!one.ok()) {
          LogWarning() << "suppression of <" << e.address << "> for " << e.tenant
                       << " not recorded: " << one.message();
          std::lock_guard<std::mutex> relock(mu_);
          ++dropped_;
        }
      }
    }
    lock.lock();
    in_flight_ = 0;
    drained_.notify_all();
  }
}

void SuppressionList::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.notify_all();
  drained_.wait(lock, [&] { return pending_.empty() && in_flight_ == 0; });
}

absl::StatusOr<bool> SuppressionList::Remove(std::string_view tenant, std::string_view address) {
  return Delete(tenant, address, /*announce=*/true);
}

absl::StatusOr<bool> SuppressionList::Delete(std::string_view tenant, std::string_view address,
                                             bool announce) {
  absl::StatusOr<std::string> key = EntryKey(tenant, address);
  if (!key.ok()) return key.status();
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) return MdbError("begin", rc);
  MDB_val k = Val(*key);
  const int rc = mdb_del(txn, env_->dbi, &k, nullptr);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return false;
  }
  if (rc != 0) {
    mdb_txn_abort(txn);
    return MdbError("delete", rc);
  }
  if (int c = mdb_txn_commit(txn); c != 0) return MdbError("commit", c);
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (announce && listener_) {
    SuppressionEntry e;
    e.tenant = absl::AsciiStrToLower(Sv(tenant));
    e.address = absl::AsciiStrToLower(Sv(address));
    listener_(e, /*removed=*/true);
  }
  return true;
}

absl::Status SuppressionList::ForEach(
    std::string_view tenant, const std::function<bool(const SuppressionEntry&)>& visit) const {
  std::string prefix;
  if (!tenant.empty()) {
    prefix = Lower(tenant);
    prefix.push_back('\0');
  }
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) {
    return MdbError("begin", rc);
  }
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn, env_->dbi, &cursor); rc != 0) {
    mdb_txn_abort(txn);
    return MdbError("cursor", rc);
  }
  MDB_val k = Val(prefix), v;
  absl::Status status;
  int rc = prefix.empty() ? mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
                          : mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  for (; rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    const std::string_view key = View(k);
    if (key.substr(0, prefix.size()) != prefix) break;
    absl::StatusOr<SuppressionEntry> e = DecodeEntry(key, View(v));
    if (!e.ok()) {
      LogWarning() << e.status().message();  // a damaged entry does not hide the others
      continue;
    }
    if (!visit(*e)) break;
  }
  if (rc != 0 && rc != MDB_NOTFOUND) status = MdbError("cursor", rc);
  mdb_cursor_close(cursor);
  mdb_txn_abort(txn);
  return status;
}

absl::StatusOr<uint64_t> SuppressionList::Count() const {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) {
    return MdbError("begin", rc);
  }
  MDB_stat stat;
  const int rc = mdb_stat(txn, env_->dbi, &stat);
  mdb_txn_abort(txn);
  if (rc != 0) return MdbError("stat", rc);
  return static_cast<uint64_t>(stat.ms_entries);
}

uint64_t SuppressionList::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

}  // namespace relay::feedback
