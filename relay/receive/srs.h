// The Sender Rewriting Scheme for forwarded mail, in the address format of libsrs2 and postsrsd,
// so that SPF passes at the final receiver (the envelope sender names our domain) and bounces
// that come back to the rewritten address reach the original sender.
//
//   SRS0=HHHH=TT=domain=local@forwarder   (rewriting an ordinary sender)
//   SRS1=HHHH=first-hop==HHHH=TT=domain=local@forwarder   (re-forwarding an SRS0 address)
//
// HHHH is the first `hash_chars` characters of the base64 (RFC 4648 §4, with + and /) of
// HMAC-SHA1(secret, lower-cased fields concatenated): for SRS0 the timestamp, the domain and the
// local part; for SRS1 the first hop's domain and the part after "SRS0". TT is the day number
// (unix time / 86400) modulo 1024 in two base32 characters (RFC 4648 §6 alphabet, high bits
// first). The hash is compared case-insensitively (some MTAs lower-case local parts) and a
// timestamp older than `age_days_max` is refused. The first secret signs; every secret is
// accepted on reversal, so a secret can be rotated. An SRS1 address always points at the hop
// that made the SRS0 address: re-forwarding it again only changes the outer hash and domain.
//
// The null sender stays null (RFC 5321 §4.5.5: bounces have no return path). A sender already
// at the forwarding domain is left as it is.
//
// Immutable after Create; any thread. Plain computation, the time is the caller's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::receive {

struct SrsConfig {
  // The domain rewritten senders use (the forwarder's, with SPF records covering our sources).
  std::string domain;
  // HMAC keys; the first signs. At least one, none empty.
  std::vector<std::string> secrets;
  // Characters of the hash kept in the address (libsrs2 and postsrsd default: 4).
  int hash_chars = 4;
  // Fewer characters are refused on reversal (libsrs2's hashmin; defaults to hash_chars).
  int hash_chars_min = 0;
  // Maximum age of an SRS0 address on reversal (libsrs2 and postsrsd default: 21 days).
  int age_days_max = 21;
  // The character after SRS0 / SRS1 in addresses we create: '=', '+' or '-'.
  char separator = '=';
};

// Named limits. RFC 5321 §4.5.3.1.1: a local part is at most 64 octets; libsrs2 lets longer
// ones through (many MTAs accept them), so only the path limit of §4.5.3.1.3 is enforced.
inline constexpr size_t kSrsAddressBytesMax = 254;
inline constexpr int kSrsTimeSlots = 1024;
inline constexpr int64_t kSrsTimePrecisionS = 86400;

class Srs {
 public:
  static absl::StatusOr<std::unique_ptr<Srs>> Create(const SrsConfig& config);

  // The envelope sender to use when forwarding mail from `sender` ("local@domain", no angle
  // brackets; "" for the null sender). InvalidArgument for a sender without '@' or too long a
  // result.
  absl::StatusOr<std::string> Forward(std::string_view sender, int64_t now_s) const;

  // The address an SRS address at our domain stands for: the original sender for SRS0, the
  // first hop's SRS0 address for SRS1. Errors, each with a precise message:
  //   NotFound: not an SRS address (the caller treats it as an ordinary local address);
  //   InvalidArgument: malformed SRS address;
  //   PermissionDenied: bad hash;
  //   DeadlineExceeded: the timestamp is older than age_days_max.
  absl::StatusOr<std::string> Reverse(std::string_view address, int64_t now_s) const;

  // Whether `local_part` starts like an SRS address ("SRS0" or "SRS1" and a separator,
  // case-insensitively).
  static bool IsSrs(std::string_view local_part);

  const std::string& domain() const { return config_.domain; }

 private:
  explicit Srs(SrsConfig config) : config_(std::move(config)) {}
  // Base64 HMAC-SHA1 of the lower-cased fields with `secret`, cut to hash_chars.
  std::string Hash(const std::string& secret, std::initializer_list<std::string_view> fields) const;
  absl::Status CheckHash(std::string_view hash,
                         std::initializer_list<std::string_view> fields) const;

  SrsConfig config_;
};

// Two base32 characters of the day number modulo 1024 (libsrs2's timestamp).
std::string SrsTimestamp(int64_t now_s);

}  // namespace relay::receive
