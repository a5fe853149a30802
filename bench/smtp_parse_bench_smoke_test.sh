#!/bin/bash
# Smoke run of //bench:smtp_parse_bench so it cannot rot: every benchmark briefly, and the
# figures and ratio lines must be printed.
set -euo pipefail
bench="$1"
out="$("$bench" --benchmark_min_time=0.01 2>&1)"
echo "$out"
for name in BM_ParseCommands BM_SessionTransaction BM_MemchrBaselineTransaction \
            BM_SessionDataPath BM_MemchrBaselineData; do
  if ! grep -q "^$name" <<<"$out"; then
    echo "FAIL: $name did not run" >&2
    exit 1
  fi
done
if grep -q "ERROR OCCURRED" <<<"$out"; then
  echo "FAIL: a benchmark reported an error" >&2
  exit 1
fi
for line in "^commands parsed per second: " "^pipelined transactions" \
            "^ratio session transaction / memchr scan" "^ratio session DATA path / memchr scan"; do
  grep -q "$line" <<<"$out" || { echo "FAIL: missing output line $line" >&2; exit 1; }
done
