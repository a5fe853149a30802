#!/bin/bash
# Smoke run of //bench:dkim_bench so that it cannot rot: every benchmark briefly, then the ratio
# table must be there.
set -uo pipefail
out="$(bench/dkim_bench --benchmark_min_time=0.01 2>&1)"
rc=$?
echo "$out"
[[ $rc == 0 ]] || { echo "FAIL: dkim_bench exited with $rc"; exit 1; }
grep -q "ERROR OCCURRED" <<<"$out" && { echo "FAIL: a benchmark reported an error"; exit 1; }
grep -q "overhead" <<<"$out" || { echo "FAIL: no ratio table"; exit 1; }
grep -q "plain SHA-256" <<<"$out" || { echo "FAIL: no body hash ratio"; exit 1; }
echo PASS
