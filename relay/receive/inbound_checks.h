// InboundChecks: the authentication checks of one port-25 connection, run while the client
// talks. SPF (RFC 7208) starts when MAIL FROM is accepted; the DKIM verification and ARC chain
// validation (relay/receive/dkim_check.h) start when the message is complete; Finish() calls back
// once both are done, or when checks_timeout_ms has passed since the end of DATA, whichever comes
// first: what is still pending then is temperror (the session never blocks the shard, and a slow
// DNS server delays the 250 by at most the timeout).
//
// SPF identity (RFC 7208 §2.4): the MAIL FROM domain; for the null reverse-path the HELO name with
// "postmaster" as local part. An SPF check for the same (client, MAIL FROM, HELO) as the previous
// transaction of the connection is reused.
//
// With an `offload` (relay/server/signing_pool.h), the DKIM verification and ARC validation run
// there once the keys are in; when it refuses them (too much already waits), `done` gets
// dkim.overloaded and the message should be refused for now. The timeout does not cut a
// verification already handed over: that is our own work, bounded by the offload's queue.
//
// Threading and ownership: the reactor's thread only. The evaluator and checker (either may be
// null: that check is off) and the reactor outlive this object. `done` runs on the reactor's
// thread, never inside Finish, and never after Cancel() or destruction. The message given to
// Finish must stay valid until `done` runs or Cancel() is called, and while busy(): a
// verification handed to the offload reads it until it ends, cancelled or not. Do not destroy
// this object while busy().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dns/spf.h"
#include "relay/io/reactor.h"
#include "relay/io/timer_wheel.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dkim_check.h"

namespace relay::receive {

struct InboundResults {
  bool spf_checked = false;
  dns::SpfOutcome spf;
  std::string spf_mailfrom;  // the identity checked: smtp.mailfrom ...
  std::string spf_helo;      // ... or smtp.helo (null reverse-path)
  bool dkim_checked = false;
  bool dkim_timed_out = false;
  DkimCheckResult dkim;  // signatures and the ARC chain as received
};

class InboundChecks {
 public:
  InboundChecks(io::Reactor* reactor, dns::SpfEvaluator* spf, DkimChecker* dkim,
                uint32_t checks_timeout_ms, Offload offload = nullptr);
  ~InboundChecks();
  InboundChecks(const InboundChecks&) = delete;
  InboundChecks& operator=(const InboundChecks&) = delete;

  // MAIL FROM:<mail_from> was accepted ("" = null path). `receiver` is our host name (%{r}).
  void StartSpf(std::string_view client_ip, std::string_view mail_from, std::string_view helo,
                std::string_view receiver);
  // The message is complete: start DKIM/ARC and call `done` when everything is in.
  void Finish(std::string_view message, int64_t now_s, std::function<void(InboundResults)> done);
  // Drops whatever is pending; `done` will not run.
  void Cancel();
  bool finishing() const { return done_ != nullptr; }
  // A verification handed to the offload has not come back yet.
  bool busy() const { return verifying_ > 0; }

 private:
  void MaybeDone();
  void OnTimeout();

  io::Reactor* const reactor_;
  dns::SpfEvaluator* const spf_evaluator_;
  DkimChecker* const dkim_checker_;
  const uint32_t checks_timeout_ms_;
  const Offload offload_;
  int verifying_ = 0;  // verifications handed to offload_ and not back yet

  std::string spf_key_;  // client, MAIL FROM and HELO of the SPF check below
  bool spf_pending_ = false;
  dns::QueryHandle spf_query_;
  bool dkim_pending_ = false;
  dns::QueryHandle dkim_query_;
  InboundResults results_;
  std::function<void(InboundResults)> done_;
  io::Timer timer_;
  // Guards the task posted when everything is already in at Finish.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The Authentication-Results of these checks (RFC 8601), authserv-id `hostname`.
AuthResults ToAuthResults(const InboundResults& results, std::string_view hostname,
                          bool arc_checked);

}  // namespace relay::receive
