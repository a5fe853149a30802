#!/bin/bash
# Smoke run of a benchmark binary (so it cannot rot): tiny minimum time, and the ratio lines the
# binary prints at the end must be there.
set -euo pipefail
bench="$1"
shift
out=$("$bench" --benchmark_min_time=0.01 "$@")
echo "$out"
grep -q '^ratio ' <<< "$out" || { echo "FAIL: no ratio line"; exit 1; }
