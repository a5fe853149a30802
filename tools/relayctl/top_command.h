// relayctl top: a live terminal view of a running relay, read from its Prometheus endpoint, as
// KumoMTA's `kcli top` gives its operators:
//
//   relayctl top [--config PATH | --config-dir DIR | --url URL] [--interval SECONDS] [--once]
//
// The endpoint is the config's [metrics] listen (PATH, or DIR/relayd.toml; default
// /etc/relay/relayd.toml) unless --url names one ("http://127.0.0.1:9587/metrics" or
// "HOST:PORT"). Every --interval seconds (default 2) it scrapes /metrics and redraws: messages
// received and recipients delivered, deferred and bounced (totals and rates from successive
// scrapes), the queue (messages, spool use, oldest message, ready queues), connections, TLS share
// and failures, DNS failures, each shard's loop turns, suspended sites, and a table by site
// (shaping rule). Plain ANSI escapes on the alternate screen; q or Ctrl-C quits and restores the
// terminal. --once scrapes twice, --interval apart, and prints one frame to stdout without
// escapes, for scripts. Exit 0 when it ran, 1 when the relay cannot be scraped, 2 for usage.
//
// The exposition is parsed by relay/metrics/exposition_parser (linear, bounded); the response is
// read up to its limit and within a timeout. Summarize and RenderTop do no I/O (tests).
#pragma once

#include <string>
#include <vector>

#include "relay/metrics/exposition_parser.h"

namespace relay::relayctl {

// One site's (shaping rule's) series, summed over egress sources.
struct TopSite {
  std::string name;
  double delivered = 0;  // counters
  double deferred = 0;
  double bounced = 0;
  double delivered_tls = 0;
  double suspensions = 0;
  double ready_messages = 0;  // gauges
  double suspended_queues = 0;
};

// What one scrape says, summed the way the view shows it.
struct TopSnapshot {
  double time_s = 0;  // when it was taken (monotonic), for rates
  std::string version;
  double start_time_unix_s = 0;
  double received = 0;
  double delivered = 0;
  double deferred = 0;
  double bounced = 0;
  double delivered_tls = 0;
  double queue_messages = 0;
  double queue_bytes = 0;
  double queue_capacity_bytes = 0;
  double oldest_message_age_s = 0;
  double ready_messages = 0;
  double suspended_queues = 0;
  double inbound_connections = 0;
  double outbound_connections = 0;
  double tls_inbound = 0;
  double tls_inbound_failures = 0;
  double tls_outbound = 0;
  double tls_outbound_failures = 0;
  double dns_queries = 0;
  double dns_failures = 0;
  std::vector<double> loop_turns;  // by shard index
  std::vector<TopSite> sites;      // by name
};

TopSnapshot Summarize(const std::vector<metrics::ExpositionSample>& samples, double time_s);

struct TopFrameOptions {
  int width = 100;
  int height = 0;      // 0: as many lines as it takes (--once)
  std::string target;  // what is scraped, for the title
  double interval_s = 2;
  double now_unix_s = 0;     // for the uptime and the clock
  std::string error;         // the last scrape's failure, shown at the bottom
  bool interactive = false;  // says how to quit
};

// The frame's lines, without escapes, none wider than options.width. Rates need `previous`
// (null on the first frame: shown as "-"); a counter that went backwards (a restart) counts from
// zero.
std::vector<std::string> RenderTop(const TopSnapshot* previous, const TopSnapshot& current,
                                   const TopFrameOptions& options);

int TopCommand(int argc, char** argv);

}  // namespace relay::relayctl
