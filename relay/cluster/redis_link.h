// One connection to a Redis server, over Debian's hiredis (its blocking API, with timeouts), for
// the fleet's agent thread and for relayctl: commands are sent as argument vectors (no string
// formatting, so any bytes are safe as a key or value) and pipelined when several go at once.
//
// A failed call (refused connection, timeout, a reply hiredis cannot read) closes the connection:
// the next call connects again, at most once per reconnect_ms, so a Redis that is down costs one
// attempt a second, not one per call. An error reply from Redis itself ("-ERR ...", "-NOSCRIPT")
// is a reply, not a failure: the connection stays.
//
// Redis is the operator's own server, trusted like the spool's disk; what it returns is still
// bounded by what is asked (COUNT on every range read) and read without recursion limits of our
// own beyond hiredis's.
//
// One thread at a time (the owner's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

struct redisContext;

namespace relay::cluster {

// A Redis reply, copied out of hiredis's.
struct RedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  // The integer of an integer reply, or of a string reply that is one; 0 otherwise.
  int64_t AsInteger() const;
};

struct RedisAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
};
// "host:port", "[v6]:port" or "host" (port 6379); an error names what is wrong.
absl::StatusOr<RedisAddress> ParseRedisAddress(std::string_view text);

struct RedisLinkOptions {
  RedisAddress address;
  std::string password;  // AUTH after connecting; "" for none
  int64_t connect_timeout_ms = 1000;
  int64_t command_timeout_ms = 1000;  // each call, send to last reply
  int64_t reconnect_ms = 1000;        // a failed connection is not tried again sooner
};

class RedisLink {
 public:
  using Command = std::vector<std::string>;

  explicit RedisLink(RedisLinkOptions options);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  // One command and its reply.
  absl::StatusOr<RedisReply> Call(const Command& command);
  // Several commands sent at once, their replies in order (one round trip).
  absl::StatusOr<std::vector<RedisReply>> Pipeline(const std::vector<Command>& commands);

  bool connected() const { return context_ != nullptr; }
  // Connections made so far (a new one after a failure: the caller re-asserts what it holds).
  uint64_t connections() const { return connections_; }
  // Round trips made (Call or Pipeline), for the metrics.
  uint64_t round_trips() const { return round_trips_; }
  const RedisLinkOptions& options() const { return options_; }
  void Close();

 private:
  absl::Status Connect();

  RedisLinkOptions options_;
  redisContext* context_ = nullptr;
  int64_t last_attempt_ms_ = -1;  // steady clock
  uint64_t connections_ = 0;
  uint64_t round_trips_ = 0;
};

}  // namespace relay::cluster
