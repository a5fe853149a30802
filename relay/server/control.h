// The control socket: how `relayctl queue retry|bounce|delete` reaches a running relayd.
//
// A Unix stream socket (mode 0600, so only the relay's user and root may use it) served by a
// thread of its own: one request line per connection ("retry ID", "retry --all", "bounce ID",
// "delete ID", "retry|bounce|delete --tenant T --campaign C --sender S --domain D" (any of the
// four, relay/delivery/queue_selector.h), "reload", "suspend WHAT SECONDS [REASON]", "resume
// WHAT", "rebind WHAT POOL SECONDS [REASON]", "unbind WHAT", "suspensions", "ready", "shape
// site|source": the ready queues, or their recipients by site or source with bytes and ages,
// summed over the shards, "tls forget DOMAIN", "tls list"), one answer line ("ok:
// ..." or "error: ..."). A request about a message goes to the shard that owns it (the shard number
// is part of the queue id), one with a selector to every shard, and runs on that shard's thread, so
// the queue is only ever written by its own shard. Each request is logged with who asked (the
// peer's uid and pid, SO_PEERCRED).
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

#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/delivery/suspensions.h"
#include "relay/tlspolicy/tls_memory.h"

namespace relay::server {

class Shard;

// Requests that only the main thread may carry out (a reload: certificate, users, aliases, logs),
// asked from the control thread. The main thread polls fd() and answers every waiting request
// with one Answer(); after Close() requests are answered at once with an error.
class MainThreadRequests {
 public:
  MainThreadRequests();
  ~MainThreadRequests();
  MainThreadRequests(const MainThreadRequests&) = delete;
  MainThreadRequests& operator=(const MainThreadRequests&) = delete;

  int fd() const { return fd_; }  // readable while requests wait
  // Control thread: waits up to `timeout_ms` for the answer.
  std::string Ask(int timeout_ms);
  // Main thread.
  void Answer(const std::string& answer);
  void Close(const std::string& answer);

 private:
  const int fd_;  // an eventfd
  std::mutex mu_;
  bool closed_ = false;
  std::string closed_answer_;
  std::vector<std::shared_ptr<std::promise<std::string>>> waiting_;
};

class ControlSocket {
 public:
  static constexpr size_t kRequestBytesMax = 512;
  static constexpr int kRequestTimeoutMs = 2000;
  static constexpr size_t kClientsMax = 16;

  // The time the main thread has to answer a reload.
  static constexpr int kReloadTimeoutMs = 30000;

  // Binds `path` (an old socket file left by a previous run is replaced) and starts serving.
  // `shards` and `main_thread` (may be null: no reload) must outlive the returned object.
  // `suspensions` (may be null) is the board the operator's suspend and resume act on,
  // `tls_memory` (may be null) the downgrade memory "tls forget|list" act on.
  // `cluster_status` (may be empty) answers "cluster status": the fleet's nodes
  // (relay/cluster/fleet.h).
  using ClusterStatus = std::function<std::string()>;
  static absl::StatusOr<std::unique_ptr<ControlSocket>> Start(
      const std::string& path, std::vector<Shard*> shards, MainThreadRequests* main_thread,
      delivery::Suspensions* suspensions = nullptr, tlspolicy::TlsMemory* tls_memory = nullptr,
      ClusterStatus cluster_status = nullptr);
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  // Stops the thread (a request being handled finishes first), closes, removes the file.
  ~ControlSocket();

  // The answer to one request line.
  static std::string Handle(const std::string& request, const std::vector<Shard*>& shards,
                            MainThreadRequests* main_thread,
                            delivery::Suspensions* suspensions = nullptr,
                            tlspolicy::TlsMemory* tls_memory = nullptr,
                            const ClusterStatus& cluster_status = nullptr);
  // The TLS downgrade memory (relay/tlspolicy/tls_memory.h):
  //   tls forget DOMAIN   plain text is allowed again for DOMAIN
  //   tls list            the remembered domains (at most kTlsListMax), with their latest day
  static std::string HandleTls(const std::vector<std::string>& words,
                               tlspolicy::TlsMemory* tls_memory);
  // About 40 bytes an entry: an answer the socket's buffer takes whole.
  static constexpr size_t kTlsListMax = 1000;
  // The operator's word on where mail may go, for every shard, kept across a restart
  // (relay/delivery/suspensions.h). WHAT is a site (its MX set or its shaping rule's name,
  // "google") or KIND=VALUE, KIND one of site, domain, source, tenant, campaign:
  //   suspend WHAT SECONDS [REASON]      (0 seconds: until resumed)
  //   resume WHAT
  //   rebind WHAT POOL SECONDS [REASON]  its mail goes out of egress pool POOL (one of `pools`)
  //   unbind WHAT
  //   suspensions                        everything in force, reply rules' entries included
  static std::string HandleSuspension(const std::vector<std::string>& words,
                                      delivery::Suspensions& suspensions, int64_t now_unix_ms,
                                      const std::vector<std::string>& pools = {"default"});
  // `verb` with `argument` asked of every shard in turn; one line naming each shard's answer.
  static std::string AskEveryShard(const std::vector<Shard*>& shards, const std::string& verb,
                                   const std::string& argument);

 private:
  ControlSocket(int fd, int wake_fd, std::string path, std::vector<Shard*> shards,
                MainThreadRequests* main_thread, delivery::Suspensions* suspensions,
                tlspolicy::TlsMemory* tls_memory, ClusterStatus cluster_status)
      : fd_(fd),
        wake_fd_(wake_fd),
        path_(std::move(path)),
        shards_(std::move(shards)),
        main_thread_(main_thread),
        suspensions_(suspensions),
        tls_memory_(tls_memory),
        cluster_status_(std::move(cluster_status)) {}
  void Serve();

  const int fd_;
  const int wake_fd_;  // an eventfd: the destructor writes it to stop Serve()
  const std::string path_;
  const std::vector<Shard*> shards_;
  MainThreadRequests* const main_thread_;
  delivery::Suspensions* const suspensions_;
  tlspolicy::TlsMemory* const tls_memory_;
  const ClusterStatus cluster_status_;
  std::thread thread_;
};

}  // namespace relay::server
