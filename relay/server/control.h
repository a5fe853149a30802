// The control socket: how `relayctl queue retry|bounce|delete` reaches a running relayd.
//
// A Unix stream socket (mode 0600, so only the relay's user and root may use it) served by the
// main thread: one request line per connection ("retry ID", "retry --all", "bounce ID",
// "delete ID"), one answer line ("ok: ..." or "error: ..."). A request about a message goes to
// the shard that owns it (the shard number is part of the queue id) and runs on that shard's
// thread, so the queue is only ever written by its own shard.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::server {

class Shard;

class ControlSocket {
 public:
  // Binds `path` (an old socket file left by a previous run is replaced).
  static absl::StatusOr<ControlSocket> Listen(const std::string& path);
  ControlSocket(ControlSocket&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
    other.fd_ = -1;
  }
  ControlSocket(const ControlSocket&) = delete;
  ~ControlSocket();

  int fd() const { return fd_; }
  // Accepts one client, reads its request (bounded in size and time), answers it, closes.
  void ServeOne(const std::vector<Shard*>& shards);
  // The answer to one request line.
  static std::string Handle(const std::string& request, const std::vector<Shard*>& shards);

 private:
  ControlSocket(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace relay::server
