#!/bin/bash
# Smoke run of dot_stuffer_bench so it cannot rot: every benchmark runs briefly and the ratios
# are printed.
set -eu
BENCH="$(dirname "$0")/dot_stuffer_bench"
[ -x "$BENCH" ] || BENCH="$TEST_SRCDIR/$TEST_WORKSPACE/relay/smtp/dot_stuffer_bench"
out="$("$BENCH" --benchmark_min_time=0.01)"
echo "$out"
for name in BM_MemcpyBaseline BM_CopyingStuffer BM_DotStufferSegments; do
  grep -q "$name" <<<"$out" || { echo "FAIL: $name did not run"; exit 1; }
done
grep -q "of the CPU time of BM_CopyingStuffer" <<<"$out" || { echo "FAIL: no ratio"; exit 1; }
