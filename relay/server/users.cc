#include "relay/server/users.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace relay::server {
namespace {

constexpr absl::string_view kScryptPrefix = "$scrypt$";
// Longest user name, address entry or password accepted (RFC 5321 §4.5.3.1.3 paths are 256).
constexpr size_t kNameBytesMax = 256;
constexpr size_t kPasswordBytesMax = 1024;

struct ParsedHash {
  ScryptParams params;
  std::string salt;
  std::string key;
};

uint64_t ScryptMemoryBytes(const ScryptParams& p) {
  return 128ull * static_cast<uint64_t>(p.r) * (1ull << p.log2_n);
}

absl::Status CheckParams(const ScryptParams& p) {
  if (p.log2_n < 1 || p.log2_n > 24 || p.r < 1 || p.r > 64 || p.p < 1 || p.p > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("scrypt parameters out of range: ln=", p.log2_n, ",r=", p.r, ",p=", p.p));
  }
  if (ScryptMemoryBytes(p) > kScryptMemoryBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("scrypt parameters need ",
                                                   ScryptMemoryBytes(p) >> 20, " MiB, more than ",
                                                   kScryptMemoryBytesMax >> 20));
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedHash> ParseHash(absl::string_view encoded) {
  if (!absl::ConsumePrefix(&encoded, kScryptPrefix)) {
    return absl::InvalidArgumentError("password hash does not start with $scrypt$");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(encoded, '$');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError("password hash is not $scrypt$PARAMS$SALT$KEY");
  }
  ParsedHash parsed;
  bool have_n = false, have_r = false, have_p = false;
  for (absl::string_view kv : absl::StrSplit(parts[0], ',')) {
    std::pair<absl::string_view, absl::string_view> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    int value;
    if (!absl::SimpleAtoi(p.second, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad scrypt parameter '", kv, "'"));
    }
    if (p.first == "ln") {
      parsed.params.log2_n = value;
      have_n = true;
    } else if (p.first == "r") {
      parsed.params.r = value;
      have_r = true;
    } else if (p.first == "p") {
      parsed.params.p = value;
      have_p = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown scrypt parameter '", kv, "'"));
    }
  }
  if (!have_n || !have_r || !have_p) {
    return absl::InvalidArgumentError("scrypt parameters must give ln, r and p");
  }
  if (absl::Status s = CheckParams(parsed.params); !s.ok()) return s;
  if (!absl::Base64Unescape(parts[1], &parsed.salt) || parsed.salt.size() < 8) {
    return absl::InvalidArgumentError("bad scrypt salt (base64, at least 8 bytes)");
  }
  if (!absl::Base64Unescape(parts[2], &parsed.key) || parsed.key.size() < 16 ||
      parsed.key.size() > 64) {
    return absl::InvalidArgumentError("bad scrypt key (base64, 16 to 64 bytes)");
  }
  return parsed;
}

bool Scrypt(absl::string_view password, const std::string& salt, const ScryptParams& params,
            uint8_t* out, size_t out_len) {
  return EVP_PBE_scrypt(password.data(), password.size(),
                        reinterpret_cast<const uint8_t*>(salt.data()), salt.size(),
                        1ull << params.log2_n, static_cast<uint64_t>(params.r),
                        static_cast<uint64_t>(params.p), kScryptMemoryBytesMax + (16ull << 20), out,
                        out_len) == 1;
}

bool IsFieldChar(char c) { return static_cast<unsigned char>(c) > ' ' && c != 0x7f && c != ','; }

absl::Status CheckName(absl::string_view name) {
  if (name.empty() || name.size() > kNameBytesMax) {
    return absl::InvalidArgumentError("user name must have 1 to 256 bytes");
  }
  if (name[0] == '#') return absl::InvalidArgumentError("user name cannot start with '#'");
  for (char c : name) {
    if (!IsFieldChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("user name '", name, "' has a space, comma or control character"));
    }
  }
  size_t at = name.rfind('@');
  if (at != absl::string_view::npos && (at == 0 || at + 1 == name.size())) {
    return absl::InvalidArgumentError(absl::StrCat("user name '", name, "' is not an address"));
  }
  return absl::OkStatus();
}

absl::Status CheckSender(absl::string_view entry) {
  if (entry.empty() || entry.size() > kNameBytesMax) {
    return absl::InvalidArgumentError("empty or too long sender entry");
  }
  for (char c : entry) {
    if (!IsFieldChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("sender entry '", entry, "' has a bad byte"));
    }
  }
  size_t at = entry.rfind('@');
  if (at == absl::string_view::npos || at + 1 == entry.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sender entry '", entry, "' is neither an address nor @domain"));
  }
  return absl::OkStatus();
}

// Splits an address at its last '@' (a quoted local part may contain '@').
bool SplitAddress(absl::string_view address, absl::string_view* local, absl::string_view* domain) {
  size_t at = address.rfind('@');
  if (at == absl::string_view::npos) return false;
  *local = address.substr(0, at);
  *domain = address.substr(at + 1);
  return true;
}

}  // namespace

absl::StatusOr<std::string> HashPassword(absl::string_view password, const ScryptParams& params) {
  if (absl::Status s = CheckParams(params); !s.ok()) return s;
  if (password.empty() || password.size() > kPasswordBytesMax) {
    return absl::InvalidArgumentError("password must have 1 to 1024 bytes");
  }
  std::string salt(kScryptSaltBytes, '\0');
  RAND_bytes(reinterpret_cast<uint8_t*>(salt.data()), salt.size());
  uint8_t key[kScryptKeyBytes];
  if (!Scrypt(password, salt, params, key, sizeof(key))) {
    return absl::ResourceExhaustedError("scrypt failed (out of memory?)");
  }
  return absl::StrCat(
      kScryptPrefix, "ln=", params.log2_n, ",r=", params.r, ",p=", params.p, "$",
      absl::Base64Escape(salt), "$",
      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(key), sizeof(key))));
}

absl::Status ValidatePasswordHash(absl::string_view encoded_hash) {
  return ParseHash(encoded_hash).status();
}

bool VerifyPasswordHash(absl::string_view encoded_hash, absl::string_view password) {
  auto parsed = ParseHash(encoded_hash);
  if (!parsed.ok() || password.size() > kPasswordBytesMax) return false;
  uint8_t key[64];
  if (!Scrypt(password, parsed->salt, parsed->params, key, parsed->key.size())) return false;
  return CRYPTO_memcmp(key, parsed->key.data(), parsed->key.size()) == 0;
}

std::string NormalizeUserName(absl::string_view name) {
  std::string out(name);
  size_t at = out.rfind('@');
  if (at != std::string::npos) {
    for (size_t i = at + 1; i < out.size(); ++i) out[i] = absl::ascii_tolower(out[i]);
  }
  return out;
}

UserDb::CredentialCache::CredentialCache(const Clock* clock, int64_t ttl_ms, size_t entries_max)
    : clock_(clock), ttl_nanos_(ttl_ms * 1000000), entries_max_(entries_max) {
  RAND_bytes(key_, sizeof(key_));
}

std::string UserDb::CredentialCache::Mac(const std::string& stored_hash,
                                         absl::string_view password) const {
  // The stored hash is part of the input, so a changed password never matches an old entry.
  bssl::ScopedHMAC_CTX ctx;
  uint8_t out[SHA256_DIGEST_LENGTH];
  unsigned out_len = 0;
  uint8_t separator = 0;
  if (!HMAC_Init_ex(ctx.get(), key_, sizeof(key_), EVP_sha256(), nullptr) ||
      !HMAC_Update(ctx.get(), reinterpret_cast<const uint8_t*>(stored_hash.data()),
                   stored_hash.size()) ||
      !HMAC_Update(ctx.get(), &separator, 1) ||
      !HMAC_Update(ctx.get(), reinterpret_cast<const uint8_t*>(password.data()), password.size()) ||
      !HMAC_Final(ctx.get(), out, &out_len)) {
    return "";
  }
  return std::string(reinterpret_cast<char*>(out), out_len);
}

bool UserDb::CredentialCache::Check(const std::string& user, const std::string& stored_hash,
                                    absl::string_view password) const {
  if (entries_max_ == 0) return false;
  std::string mac = Mac(stored_hash, password);
  if (mac.empty()) return false;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(user);
  if (it == entries_.end() || it->second.expires_nanos <= clock_->MonotonicNanos()) return false;
  return it->second.mac.size() == mac.size() &&
         CRYPTO_memcmp(it->second.mac.data(), mac.data(), mac.size()) == 0;
}

void UserDb::CredentialCache::Remember(const std::string& user, const std::string& stored_hash,
                                       absl::string_view password) {
  if (entries_max_ == 0) return;
  std::string mac = Mac(stored_hash, password);
  if (mac.empty()) return;
  const int64_t now = clock_->MonotonicNanos();
  absl::MutexLock lock(&mu_);
  if (!entries_.contains(user) && entries_.size() >= entries_max_) {
    // Expired entries go first, then the one closest to expiry (the oldest). A linear scan: this
    // runs only after a successful scrypt, which costs far more.
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.expires_nanos <= now) {
        entries_.erase(it++);
        continue;
      }
      if (it->second.expires_nanos < oldest->second.expires_nanos) oldest = it;
      ++it;
    }
    if (entries_.size() >= entries_max_) entries_.erase(entries_.find(oldest->first));
  }
  entries_[user] = Entry{std::move(mac), now + ttl_nanos_};
}

UserDb::UserDb(std::string path, const UserDbOptions& options)
    : path_(std::move(path)),
      options_(options),
      cache_(std::make_unique<CredentialCache>(options.clock, options.credential_cache_ttl_ms,
                                               options.credential_cache_entries_max)) {}

absl::StatusOr<std::shared_ptr<UserDb>> UserDb::Load(const std::string& path,
                                                     UserDbOptions options) {
  std::ifstream in(path);
  if (!in) {
    int err = errno;
    std::string message = absl::StrCat("users file ", path, ": ", strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::PermissionDeniedError(message);
  }
  std::shared_ptr<UserDb> db(new UserDb(path, options));
  std::string text;
  int line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    auto error = [&](absl::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat("users file ", path, " line ", line_number, ": ", what));
    };
    // CRLF files read like LF ones. Every CR at the end goes: a comment line kept with one
    // would be saved as "...\r\n", and lose it on the next load (a file that changes each save).
    while (!text.empty() && text.back() == '\r') text.pop_back();
    absl::string_view stripped = absl::StripAsciiWhitespace(text);
    if (stripped.empty() || stripped[0] == '#') {
      db->lines_.push_back(Line{text, false, ""});
      continue;
    }
    std::vector<absl::string_view> fields =
        absl::StrSplit(stripped, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() < 2 || fields.size() > 3) {
      return error("expected NAME PASSWORD-HASH [MAY-SEND-AS]");
    }
    if (absl::Status s = CheckName(fields[0]); !s.ok()) return error(s.message());
    if (absl::Status s = ValidatePasswordHash(fields[1]); !s.ok()) return error(s.message());
    User user;
    user.name = NormalizeUserName(fields[0]);
    user.password_hash = std::string(fields[1]);
    if (fields.size() == 3) {
      for (absl::string_view entry : absl::StrSplit(fields[2], ',')) {
        if (absl::Status s = CheckSender(entry); !s.ok()) return error(s.message());
        user.may_send_as.emplace_back(entry);
      }
    }
    if (db->users_.contains(user.name)) {
      return error(absl::StrCat("user '", user.name, "' appears twice"));
    }
    db->lines_.push_back(Line{"", true, user.name});
    db->users_.emplace(user.name, std::move(user));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("users file ", path, ": read error"));
  return db;
}

absl::StatusOr<std::shared_ptr<UserDb>> UserDb::LoadOrEmpty(const std::string& path,
                                                            UserDbOptions options) {
  auto db = Load(path, options);
  if (absl::IsNotFound(db.status())) {
    std::shared_ptr<UserDb> empty(new UserDb(path, options));
    empty->lines_.push_back(
        Line{"# Users of the relay: NAME PASSWORD-HASH [MAY-SEND-AS,...]. Managed with relayctl "
             "user-add / user-del.",
             false, ""});
    return empty;
  }
  return db;
}

const User* UserDb::Find(absl::string_view user) const {
  auto it = users_.find(NormalizeUserName(user));
  return it == users_.end() ? nullptr : &it->second;
}

bool UserDb::CheckCachedCredentials(absl::string_view user, absl::string_view password) const {
  const User* u = Find(user);
  return u != nullptr && cache_->Check(u->name, u->password_hash, password);
}

bool UserDb::Verify(absl::string_view user, absl::string_view password) const {
  const User* u = Find(user);
  if (u == nullptr) {
    // Same cost for an unknown user, so timing does not tell which names exist.
    // A fixed hash at the default cost: its key is zeros, which no password derives.
    static constexpr char kDummyHash[] =
        "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    VerifyPasswordHash(kDummyHash, password);
    return false;
  }
  if (cache_->Check(u->name, u->password_hash, password)) return true;
  if (!VerifyPasswordHash(u->password_hash, password)) return false;
  cache_->Remember(u->name, u->password_hash, password);
  return true;
}

bool UserDb::MaySendAs(absl::string_view user, absl::string_view address) const {
  const User* u = Find(user);
  absl::string_view local, domain;
  if (u == nullptr || !SplitAddress(address, &local, &domain) || domain.empty()) return false;
  auto matches = [&](absl::string_view entry) {
    absl::string_view entry_local, entry_domain;
    if (!SplitAddress(entry, &entry_local, &entry_domain)) return false;
    if (!absl::EqualsIgnoreCase(entry_domain, domain)) return false;
    return entry_local.empty() || entry_local == local;  // "@domain" or an exact local part.
  };
  if (u->may_send_as.empty()) return u->name.find('@') != std::string::npos && matches(u->name);
  for (const std::string& entry : u->may_send_as) {
    if (matches(entry)) return true;
  }
  return false;
}

std::vector<std::string> UserDb::List() const {
  std::vector<std::string> names;
  for (const Line& line : lines_) {
    if (line.is_user) names.push_back(line.user);
  }
  return names;
}

absl::Status UserDb::Add(absl::string_view user, absl::string_view password,
                         std::vector<std::string> may_send_as, const ScryptParams& params) {
  if (absl::Status s = CheckName(user); !s.ok()) return s;
  for (const std::string& entry : may_send_as) {
    if (absl::Status s = CheckSender(entry); !s.ok()) return s;
  }
  std::string name = NormalizeUserName(user);
  if (users_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("user '", name, "' already exists"));
  }
  auto hash = HashPassword(password, params);
  if (!hash.ok()) return hash.status();
  lines_.push_back(Line{"", true, name});
  users_.emplace(name, User{name, *std::move(hash), std::move(may_send_as)});
  return absl::OkStatus();
}

absl::Status UserDb::SetPassword(absl::string_view user, absl::string_view password,
                                 const ScryptParams& params) {
  auto it = users_.find(NormalizeUserName(user));
  if (it == users_.end()) return absl::NotFoundError(absl::StrCat("no user '", user, "'"));
  auto hash = HashPassword(password, params);
  if (!hash.ok()) return hash.status();
  it->second.password_hash = *std::move(hash);
  return absl::OkStatus();
}

absl::Status UserDb::Remove(absl::string_view user) {
  std::string name = NormalizeUserName(user);
  if (users_.erase(name) == 0) return absl::NotFoundError(absl::StrCat("no user '", name, "'"));
  for (auto it = lines_.begin(); it != lines_.end(); ++it) {
    if (it->is_user && it->user == name) {
      lines_.erase(it);
      break;
    }
  }
  return absl::OkStatus();
}

std::string UserDb::Render() const {
  std::string out;
  for (const Line& line : lines_) {
    if (!line.is_user) {
      absl::StrAppend(&out, line.text, "\n");
      continue;
    }
    const User& user = users_.at(line.user);
    absl::StrAppend(&out, user.name, " ", user.password_hash);
    if (!user.may_send_as.empty()) absl::StrAppend(&out, " ", absl::StrJoin(user.may_send_as, ","));
    out += "\n";
  }
  return out;
}

absl::Status UserDb::Save() const {
  const std::string contents = Render();
  // The new file replaces the old one with the old one's owner, group and mode: an operator who
  // made it readable by relayd's group (root:relay 0640) must not find it root:root 0600 after a
  // `relayctl user-add` run as root, or relayd can no longer read it. It holds password hashes:
  // never readable by others, whatever it was; a new file is 0600.
  struct stat old_st;
  const bool existed = stat(path_.c_str(), &old_st) == 0;
  const mode_t mode = existed ? ((old_st.st_mode & 0070) | 0600) : 0600;
  // A fresh, unpredictable name opened with O_EXCL (mkostemp): a link planted at a guessable
  // temporary name in a shared directory cannot redirect the write.
  std::string tmp = absl::StrCat(path_, ".tmp.XXXXXX");
  auto fail = [&](absl::string_view what) {
    std::string message = absl::StrCat(what, " ", tmp, ": ", strerror(errno));
    unlink(tmp.c_str());
    return absl::InternalError(message);
  };
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    std::string message = absl::StrCat("create ", tmp, ": ", strerror(errno));
    return absl::InternalError(message);
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (existed && (old_st.st_uid != geteuid() || old_st.st_gid != getegid()) &&
      fchown(fd, old_st.st_uid, old_st.st_gid) != 0) {
    close(fd);
    return fail(absl::StrCat("keep the owner ", old_st.st_uid, ":", old_st.st_gid, " of ", path_,
                             " on"));
  }
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
    close(fd);
    return fail("fsync");
  }
  close(fd);
  if (rename(tmp.c_str(), path_.c_str()) != 0) return fail("rename");
  // The rename is durable once the directory is synced.
  size_t slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace relay::server
