// The control socket: how `relayctl queue retry|bounce|delete` reaches a running relayd.
//
// A Unix stream socket (mode 0600, so only the relay's user and root may use it) served by a
// thread of its own: one request line per connection ("retry ID", "retry --all", "bounce ID",
// "delete ID"), one answer line ("ok: ..." or "error: ..."). A request about a message goes to
// the shard that owns it (the shard number is part of the queue id) and runs on that shard's
// thread, so the queue is only ever written by its own shard.
//
// Local clients are bounded like remote ones: at most kClientsMax at once (others wait in the
// listen backlog), a request line of at most kRequestBytesMax that must arrive within
// kRequestTimeoutMs, and an answer that is dropped if the client does not take it. A slow client
// delays no other and never the main thread, which handles the signals.
//
// The socket is bound inside a fresh private directory and renamed into place once its mode is
// 0600: no moment where it is reachable with another mode, and no process-wide umask change
// while other threads create files.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::server {

class Shard;

class ControlSocket {
 public:
  static constexpr size_t kRequestBytesMax = 512;
  static constexpr int kRequestTimeoutMs = 2000;
  static constexpr size_t kClientsMax = 16;

  // Binds `path` (an old socket file left by a previous run is replaced) and starts serving.
  // `shards` must outlive the returned object.
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Start(const std::string& path,
                                                              std::vector<Shard*> shards);
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  // Stops the thread (a request being handled finishes first), closes, removes the file.
  ~ControlSocket();

  // The answer to one request line.
  static std::string Handle(const std::string& request, const std::vector<Shard*>& shards);

 private:
  ControlSocket(int fd, int wake_fd, std::string path, std::vector<Shard*> shards)
      : fd_(fd), wake_fd_(wake_fd), path_(std::move(path)), shards_(std::move(shards)) {}
  void Serve();

  const int fd_;
  const int wake_fd_;  // an eventfd: the destructor writes it to stop Serve()
  const std::string path_;
  const std::vector<Shard*> shards_;
  std::thread thread_;
};

}  // namespace relay::server
