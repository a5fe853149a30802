// A parser of the Prometheus text exposition format 0.0.4 (what Registry::Render writes), for
// tools that read a running relay's GET /metrics, such as `relayctl top`.
//
// The text comes from whatever endpoint an operator names, so it is read as untrusted input: one
// pass over it, each byte looked at a bounded number of times (no backtracking), and every
// quantity bounded by ExpositionLimits: total bytes, bytes per line, samples, labels per sample.
// What exceeds a limit or does not parse is an error naming the line, never a partial result.
// Comment lines (# HELP, # TYPE and others) and blank lines are skipped; timestamps after a value
// are accepted and dropped. Label values are unescaped (\\, \" and \n, the format's only escapes).
//
// Pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::metrics {

struct ExpositionSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in the order written
  double value = 0;

  // The value of label `name`, "" when absent.
  std::string_view Label(std::string_view name) const;
};

struct ExpositionLimits {
  size_t bytes_max = size_t{64} << 20;
  size_t line_bytes_max = size_t{64} << 10;
  size_t samples_max = size_t{1} << 20;
  size_t labels_max = 64;
};

absl::StatusOr<std::vector<ExpositionSample>> ParseExposition(
    std::string_view text, const ExpositionLimits& limits = ExpositionLimits());

}  // namespace relay::metrics
