#!/bin/bash
# Smoke run of arc_bench (so it cannot rot): tiny minimum time; the ratio lines must be printed.
set -euo pipefail
out=$("$1" --benchmark_min_time=0.01)
echo "$out"
[[ $(grep -c '^ratio ' <<< "$out") == 4 ]] || { echo "FAIL: expected 4 ratio lines"; exit 1; }
