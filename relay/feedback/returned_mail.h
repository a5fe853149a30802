// What a message to a bounce domain says about the mail the relay sent: a returned bounce (a DSN,
// RFC 3464, or a bounce text) or a complaint (ARF, RFC 5965), matched to the message and
// recipient its VERP token names (relay/feedback/verp.h), classified by the bounce rules; or
// nothing (an auto-reply, anything else, a token that does not verify), dropped.
//
// The token comes from the address the report was sent to; a report sent to the bare
// feedback-loop address (as feedback loops do, to the address the sender registered) is matched
// by the return path the report quotes (ARF Original-Mail-From, the returned message's
// Return-Path). The recipient is the address among those the report names that the token's MAC
// verifies: a report cannot make the relay suppress an address of its choosing.
//
// A message to an unsubscribe mailto (relay/feedback/unsubscribe.h) is an unsubscribe of the
// address it comes from (its envelope sender, else its From:), when the token verifies for it.
//
// Pure computation, any thread: relayd runs it on a worker (the report may be large), then
// records the events and suppressions it gives on the shard.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/feedback/bounce_category.h"
#include "relay/feedback/bounce_classifier.h"
#include "relay/feedback/report_parser.h"
#include "relay/feedback/suppression_list.h"
#include "relay/feedback/unsubscribe.h"
#include "relay/feedback/verp.h"

namespace relay::feedback {

struct ReturnedItem {
  bool complaint = false;    // else a bounce
  bool unsubscribe = false;  // an unsubscribe by mail (neither bounce nor complaint)
  std::string tenant;      // the sending domain
  std::string queue_id;
  uint32_t recipient_index = 0;
  std::string recipient;  // lower-case, as the MAC verified it
  // Bounces: the reply the report quotes; complaints: code 0 and the report's kind as text.
  int code = 0;
  std::string enhanced;
  std::string text;
  BounceCategory category = BounceCategory::kOther;
  std::string remote_mta;
  std::string message_id;     // the returned message's Message-ID, without <>
  std::string report;         // "dsn", "bounce-text", "complaint", "mailto"
  std::string feedback_type;  // complaints: "abuse", ...
};

struct ReturnedMail {
  ReportKind kind = ReportKind::kUnknown;
  std::vector<ReturnedItem> items;  // empty: dropped, `why` says why
  std::string why;
};

struct ReturnedMailLimits {
  ReportLimits report;
  size_t tokens_max = 8;  // distinct tokens tried per report
};

// `to` are the message's bounce-domain recipients; `envelope_sender` its MAIL FROM.
// `unsubscribe` may be null (no [unsubscribe]).
ReturnedMail ReadReturnedMail(const Verp& verp, const BounceClassifier& classifier,
                              const Unsubscribe* unsubscribe, std::string_view message,
                              std::string_view envelope_sender, const std::vector<std::string>& to,
                              const ReturnedMailLimits& limits = {});

// The suppression entries `mail` gives: bounces in `categories`, complaints when
// `complaints` is set, every unsubscribe. `detail` is the reply or the complaint's kind.
std::vector<SuppressionEntry> SuppressionsFor(const ReturnedMail& mail,
                                              const std::vector<BounceCategory>& categories,
                                              bool complaints, int64_t now_unix_ms);

}  // namespace relay::feedback
