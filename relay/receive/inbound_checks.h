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
// Threading and ownership: the reactor's thread only. The evaluator and checkers (any may be
// null: that check is off; DMARC needs the other two) and the reactor outlive this object.
// `done` runs on the reactor's thread, never inside Finish, and never after Cancel() or
// destruction. The message given to Finish must stay valid until `done` runs or Cancel() is
// called.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/random/random.h"
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
  bool dmarc_checked = false;
  DmarcIdentifiers dmarc_ids;  // what DMARC was evaluated from
  DmarcOutcome dmarc;
};

class InboundChecks {
 public:
  InboundChecks(io::Reactor* reactor, dns::SpfEvaluator* spf, DkimChecker* dkim,
                uint32_t checks_timeout_ms, DmarcChecker* dmarc = nullptr);
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

 private:
  void MaybeDone();
  void OnTimeout();
  void StartDmarc(std::string_view message);
  void EvaluateDmarcNow();

  io::Reactor* const reactor_;
  dns::SpfEvaluator* const spf_evaluator_;
  DkimChecker* const dkim_checker_;
  const uint32_t checks_timeout_ms_;
  DmarcChecker* const dmarc_checker_;

  std::string spf_key_;  // client, MAIL FROM and HELO of the SPF check below
  bool spf_pending_ = false;
  dns::QueryHandle spf_query_;
  bool dkim_pending_ = false;
  dns::QueryHandle dkim_query_;
  bool dmarc_pending_ = false;
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
