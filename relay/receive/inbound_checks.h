// InboundChecks: the authentication checks of one port-25 connection, run while the client
// talks. SPF (RFC 7208) starts when MAIL FROM is accepted; the DKIM verification and ARC chain
// validation (relay/receive/dkim_check.h) and the DMARC policy discovery of the From domain
// (relay/receive/dmarc_check.h) start when the message is complete; Finish() calls back once all
// are done (DMARC then evaluated from the SPF and DKIM results, relay/receive/dmarc.h),
// or when checks_timeout_ms has passed since the end of DATA, whichever comes
// first: what is still pending then is temperror (the session never blocks the shard, and a slow
// DNS server delays the 250 by at most the timeout).
//
// SPF identity (RFC 7208 §2.4): the MAIL FROM domain; for the null reverse-path the HELO name with
// "postmaster" as local part. An SPF check for the same (client, MAIL FROM, HELO) as the previous
// transaction of the connection is reused.
//
// With an `offload` (relay/server/signing_pool.h), the parse of the message and the DKIM
// verification and ARC validation run there (relay/receive/dkim_check.h); when it refuses them
// (too much already waits), `done` gets dkim.overloaded and the message should be refused for
// now. The From domain DMARC looks up comes from that same parse, so the policy lookup starts
// when the parse is back, alongside the key lookups. The timeout does not cut work already handed
// over: that is our own work, bounded by the offload's queue; what it then waits for in DNS is cut
// shortly after it returns.
//
// Threading and ownership: the reactor's thread only. The evaluator and checkers (any may be
// null: that check is off; DMARC needs the other two) and the reactor outlive this object.
// `done` runs on the reactor's thread, never inside Finish, and never after Cancel() or
// destruction. The message given to Finish must stay valid until `done` runs or Cancel() is
// called, and while busy(): work handed to the offload reads it until it ends, cancelled or not.
// Do not destroy this object while busy().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "dkim/message.h"
#include "dns/spf.h"
#include "relay/io/reactor.h"
#include "relay/io/timer_wheel.h"
#include "relay/receive/auth_results.h"
#include "relay/receive/dkim_check.h"
#include "relay/receive/dmarc.h"
#include "relay/receive/dmarc_check.h"

namespace relay::receive {

struct InboundResults {
  bool spf_checked = false;
  dns::SpfOutcome spf;
  std::string spf_mailfrom;  // the identity checked: smtp.mailfrom ...
  std::string spf_helo;      // ... or smtp.helo (null reverse-path)
  bool dkim_checked = false;
  bool dkim_timed_out = false;
  DkimCheckResult dkim;  // signatures and the ARC chain as received
  // The message as the checks parsed it (null: not parsed, or its header does not parse), kept
  // when the key lookups time out: for whoever reads its header or seals it next, on the shard
  // or a worker, instead of a parse of its own.
  std::shared_ptr<const dkim::ParsedMessage> message;
  bool dmarc_checked = false;
  DmarcIdentifiers dmarc_ids;  // what DMARC was evaluated from
  DmarcOutcome dmarc;
};

class InboundChecks {
 public:
  InboundChecks(io::Reactor* reactor, dns::SpfEvaluator* spf, DkimChecker* dkim,
                uint32_t checks_timeout_ms, DmarcChecker* dmarc = nullptr,
                Offload offload = nullptr);
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
  // Work handed to the offload has not come back yet.
  bool busy() const { return verifying_ > 0; }

 private:
  void MaybeDone();
  void OnTimeout();
  // The From domain is known (or known not to be there): look up its policy.
  void StartDmarc(absl::StatusOr<std::string> from_domain);
  void EvaluateDmarcNow();

  io::Reactor* const reactor_;
  dns::SpfEvaluator* const spf_evaluator_;
  DkimChecker* const dkim_checker_;
  const uint32_t checks_timeout_ms_;
  DmarcChecker* const dmarc_checker_;
  const Offload offload_;
  int verifying_ = 0;  // work handed to offload_ and not back yet

  std::string spf_key_;  // client, MAIL FROM and HELO of the SPF check below
  bool spf_pending_ = false;
  dns::QueryHandle spf_query_;
  bool dkim_pending_ = false;
  dns::QueryHandle dkim_query_;
  bool dmarc_from_pending_ = false;  // waiting for the parse that gives the From domain
  bool dmarc_pending_ = false;       // the policy lookup is out
  dns::QueryHandle dmarc_query_;
  DmarcDiscovery dmarc_discovery_;
  absl::InsecureBitGen pct_bits_;  // pct= sampling (RFC 7489 §6.6.4)
  InboundResults results_;
  std::function<void(InboundResults)> done_;
  io::Timer timer_;
  // Guards the task posted when everything is already in at Finish.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The Authentication-Results of these checks (RFC 8601), authserv-id `hostname`, dmarc= included
// when it was evaluated.
AuthResults ToAuthResults(const InboundResults& results, std::string_view hostname,
                          bool arc_checked);

}  // namespace relay::receive
