// relayd's life as functions: Start builds everything a configuration names (certificate, users,
// DKIM keys, port 25's aliases and SRS, metrics, the control socket) and starts the shards;
// Reload does what SIGHUP does; Stop drains and stops. relayd_main.cc keeps only the flags and
// the signal loop, so that a C++ test can run a whole relay on port 0 and drive it.
//
// Threads: Start, Reload, CheckCertificate, AnswerControlRequest and Stop on one thread (the
// main thread in relayd). The shards run on their own threads from Start to Stop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/server/config.h"

namespace relay::server {

class DaemonParts;  // daemon.cc
class Shard;

struct DaemonOptions {
  // The file the configuration was read from, and its text then: Reload reports the settings an
  // edit changed (they take effect at the next restart).
  std::string config_path;
  std::string config_text;
  std::string version = "dev";  // relay_build_info
};

// What Reload did: "ok: certificate reloaded; users reloaded; ..." or "error: ...".
struct ReloadResult {
  bool ok = true;
  std::string summary;
};

class Daemon {
 public:
  // Fails with a message naming what is wrong (a key, the certificate, a shard's listener); then
  // nothing is left running.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(Config config, DaemonOptions options);
  ~Daemon();  // Stop() unless it ran
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Reads the certificate, the users and the aliases again, reopens the delivery logs, and reads
  // relayd.toml again: its DKIM keys (key rotation: a new selector starts signing, the old one
  // stops), shaping rules, tenants, [limits] (for connections opened from then on), local domains
  // and aliases take effect, and its egress pools (routes, weights, warm-up) while the sources
  // stay the same; the answer names every other setting that changed, which waits for a restart. A
  // part that fails keeps its previous state; a relayd.toml with an error changes nothing and the
  // error is named.
  ReloadResult Reload();
  // Reloads the certificate when its files changed (every tls.reload_check_ms).
  void CheckCertificate();
  // The main thread's periodic work (every kHousekeepingMs): state files written when changed.
  void Housekeeping();
  static constexpr int kHousekeepingMs = 5000;
  static constexpr int64_t kTlsReportsFlushMs = 60000;
  // <spool>/tls-reports: the TLS report counts ([tls_policy] reports) as they are now.
  void FlushTlsReports();
  // A descriptor that is readable while `relayctl reload` waits for an answer, and the call that
  // answers it (with Reload()).
  int control_request_fd() const;
  void AnswerControlRequest();

  // Stops accepting, lets sessions finish within shutdown.grace_ms, flushes the queue and joins
  // the shards. Returns the number of messages accepted since Start.
  uint64_t Stop();

  // The configuration, with port 0 in the listen addresses replaced by the ports shard 0 got.
  const Config& config() const;
  // "2 shards; submission (STARTTLS) on 127.0.0.1:2587; ...; spool DIR": the line relayd logs
  // when it is ready (tools/testing/relayd_process.py reads the ports from it).
  std::string ReadyLine() const;
  std::vector<Shard*> shards() const;

 private:
  explicit Daemon(std::unique_ptr<DaemonParts> parts);
  // The settings a reload applies to the running shards: `next`'s DKIM keys, shaping rules,
  // tenants, and its egress pools when its sources are the running ones (`*egress` says whether).
  absl::Status ApplyLive(std::shared_ptr<const Config> next, bool* egress);
  std::unique_ptr<DaemonParts> parts_;
};

}  // namespace relay::server
