// Prints the exposition of the relay's whole metric set, as GET /metrics serves it, for checks
// that a dashboard or an alert rule names only series relayd exports (tools/monitoring).
// RelayMetrics registers every family whatever the configuration, so a small one shows them all.
//
// usage: render_metrics [SPOOL_DIR]   (the spool file-system series read SPOOL_DIR; default /)
#include <cstdio>
#include <string>

#include "relay/metrics/relay_metrics.h"

int main(int argc, char** argv) {
  relay::metrics::RelayMetricsOptions options;
  options.shards = 2;
  options.sites = {"default", "google", "microsoft", "yahoo", "apple"};
  options.sources = {"192.0.2.25", "2001:db8:25::1"};
  options.version = "render";
  options.spool_directory = argc > 1 ? argv[1] : "/";
  relay::metrics::RelayMetrics metrics(options);
  const std::string text = metrics.Render();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
