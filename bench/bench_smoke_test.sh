#!/usr/bin/env bash
# Smoke run of a benchmark binary, so that it cannot rot: runs it briefly and fails when it fails,
# when a benchmark reports an error, or when an expected line is missing from its output.
#   bench_smoke_test.sh BINARY [FLAG ...] [--expect=REGEX ...]
# Each --expect=REGEX (grep -E) must match some line of the output: the benchmarks that must have
# run, the ratio lines that must have been printed.
set -uo pipefail
binary="$1"
shift
flags=()
expects=()
while [[ $# -gt 0 ]]; do
  if [[ "$1" == --expect=* ]]; then
    expects+=("${1#--expect=}")
    shift
  else
    flags+=("$1")
    shift
  fi
done
out="$("$binary" "${flags[@]}" 2>&1)"
rc=$?
echo "$out"
if [[ $rc -ne 0 ]]; then
  echo "FAIL: $(basename "$binary") exited with status $rc" >&2
  exit 1
fi
if grep -q "ERROR OCCURRED" <<<"$out"; then
  echo "FAIL: a benchmark reported an error" >&2
  exit 1
fi
for pattern in "${expects[@]}"; do
  if ! grep -qE "$pattern" <<<"$out"; then
    echo "FAIL: no output line matches: $pattern" >&2
    exit 1
  fi
done
echo PASS
