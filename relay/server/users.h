// The user database for SMTP AUTH: a plain-text file in the config directory (DIR/users), one user
// per line, that an operator can read, diff and keep in git:
//
//   # NAME            PASSWORD-HASH                              [MAY-SEND-AS]
//   app@example.com   $scrypt$ln=15,r=8,p=1$<salt b64>$<key b64>  app@example.com,@example.org
//   reports           $scrypt$ln=15,r=8,p=1$<salt b64>$<key b64>  reports@example.com
//
// Fields are separated by spaces or tabs; `#` starts a comment line; blank lines are allowed and
// comment lines survive a save. The password hash is scrypt (RFC 7914, BoringSSL's
// EVP_PBE_scrypt) with its parameters and salt in the field itself, so the cost can be raised
// for new passwords without touching old ones. MAY-SEND-AS is a comma-separated list of addresses
// (local part exact, domain case-insensitive) and `@domain` entries; when absent, a user whose
// name is an address may send as that address and a bare name may send as nobody.
//
// Cost (measured on the project's 2-core VM, one thread, r=8 p=1): N=2^14 ~42 ms and 16 MiB,
// N=2^15 ~140 ms and 32 MiB, N=2^16 ~300 ms and 64 MiB. The default is N=2^15: a password guess
// costs an attacker 140 ms of our CPU only until auth throttling refuses the address, and a bulk
// sender pays it once, after which the credential cache answers.
//
// Threads: a loaded UserDb is published as a std::shared_ptr<const UserDb> snapshot and never
// changed again; Verify, CheckCachedCredentials, MaySendAs, Find and List are then safe from any
// thread at once (the credential cache inside has its own mutex). The I/O thread calls
// CheckCachedCredentials (microseconds) and, on a miss, hands Verify (a full scrypt) to a worker
// thread. Reload builds a new snapshot, which starts with an empty cache, so a changed file
// invalidates every cached credential. Add, Remove and Save are for a private copy (the relayctl
// tool), never for a published snapshot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "relay/base/clock.h"

namespace relay::server {

struct ScryptParams {
  int log2_n = 15;
  int r = 8;
  int p = 1;
};

// Parameter bounds accepted from a users file, so that a typo cannot make one verification take
// gigabytes: 128 * r * N bytes of memory at most.
inline constexpr uint64_t kScryptMemoryBytesMax = 256ull << 20;
inline constexpr size_t kScryptSaltBytes = 16;
inline constexpr size_t kScryptKeyBytes = 32;

// "$scrypt$ln=15,r=8,p=1$<salt>$<key>" for `password` with a fresh random salt.
absl::StatusOr<std::string> HashPassword(absl::string_view password, const ScryptParams& params);
// Whether `password` matches the encoded hash (constant-time compare of the derived key). A
// malformed hash matches nothing.
bool VerifyPasswordHash(absl::string_view encoded_hash, absl::string_view password);
// Parses and checks an encoded hash without verifying anything.
absl::Status ValidatePasswordHash(absl::string_view encoded_hash);

// User names are compared with the domain part (after the last '@') lower-cased.
std::string NormalizeUserName(absl::string_view name);

struct User {
  std::string name;           // Normalized.
  std::string password_hash;  // Encoded scrypt hash.
  // Addresses and "@domain" entries, as written (empty when the line has none).
  std::vector<std::string> may_send_as;
};

struct UserDbOptions {
  const Clock* clock = RealClock::Get();
  // A successful verification is remembered this long ...
  int64_t credential_cache_ttl_ms = 15 * 60 * 1000;
  // ... for at most this many users (the oldest entry goes first).
  size_t credential_cache_entries_max = 4096;
};

class UserDb {
 public:
  // Loads `path`. Errors name the file and line: "users file /etc/relay/users line 3: ...".
  static absl::StatusOr<std::shared_ptr<UserDb>> Load(const std::string& path,
                                                      UserDbOptions options = UserDbOptions());
  // Like Load, but a missing file gives an empty database (for the first user-add).
  static absl::StatusOr<std::shared_ptr<UserDb>> LoadOrEmpty(
      const std::string& path, UserDbOptions options = UserDbOptions());

  // Full check: the credential cache, then scrypt. Successes are cached; failures never are.
  bool Verify(absl::string_view user, absl::string_view password) const;
  // The cache alone: true only when (user, password) verified recently. A false says nothing.
  bool CheckCachedCredentials(absl::string_view user, absl::string_view password) const;
  // Whether `user` may use `address` as MAIL FROM (see the file format above).
  bool MaySendAs(absl::string_view user, absl::string_view address) const;

  const User* Find(absl::string_view user) const;
  // Normalized names, in file order.
  std::vector<std::string> List() const;
  size_t size() const { return users_.size(); }
  const std::string& path() const { return path_; }

  // Mutations, for a private copy only (see above). Add fails when the user exists.
  absl::Status Add(absl::string_view user, absl::string_view password,
                   std::vector<std::string> may_send_as,
                   const ScryptParams& params = ScryptParams());
  absl::Status SetPassword(absl::string_view user, absl::string_view password,
                           const ScryptParams& params = ScryptParams());
  absl::Status Remove(absl::string_view user);
  // Writes the file atomically: a temporary file in the same directory, fsync, rename, fsync of
  // the directory. Mode 0600: the hashes are not for everyone to brute-force.
  absl::Status Save() const;

 private:
  // Successful verifications: user -> HMAC-SHA256(process key, stored hash || password).
  class CredentialCache {
   public:
    CredentialCache(const Clock* clock, int64_t ttl_ms, size_t entries_max);
    bool Check(const std::string& user, const std::string& stored_hash,
               absl::string_view password) const ABSL_LOCKS_EXCLUDED(mu_);
    void Remember(const std::string& user, const std::string& stored_hash,
                  absl::string_view password) ABSL_LOCKS_EXCLUDED(mu_);

   private:
    struct Entry {
      std::string mac;
      int64_t expires_nanos;
    };
    std::string Mac(const std::string& stored_hash, absl::string_view password) const;
    const Clock* const clock_;
    const int64_t ttl_nanos_;
    const size_t entries_max_;
    uint8_t key_[32];  // Random per database instance; never leaves memory.
    mutable absl::Mutex mu_;
    absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  };

  // One line of the file: a user (index into users_) or text kept verbatim.
  struct Line {
    std::string text;
    bool is_user = false;
    std::string user;
  };

  UserDb(std::string path, const UserDbOptions& options);
  std::string Render() const;

  std::string path_;
  UserDbOptions options_;
  std::vector<Line> lines_;
  absl::flat_hash_map<std::string, User> users_;
  std::unique_ptr<CredentialCache> cache_;
};

}  // namespace relay::server
