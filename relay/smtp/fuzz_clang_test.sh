#!/bin/bash
# Runs the SMTP server session fuzz target built with clang and libFuzzer (by fuzz_clang_build.sh,
# -fsanitize=fuzzer,address,undefined) for a bounded time over the committed corpus. When clang
# was missing at build time the binary is a stand-in that prints "FAIL: reason" and exits 1.
# Usage: fuzz_clang_test.sh FUZZER CORPUS_FILE...
set -euo pipefail
fuzzer="$1"
shift
FUZZ_SECONDS="${SMTP_FUZZ_CLANG_SECONDS:-20}"

work="${TEST_TMPDIR:?}/fuzz"
mkdir -p "$work/corpus"
cp "$@" "$work/corpus/"
if head -c 2 "$fuzzer" | grep -q '#!'; then
  exec "$fuzzer"  # the stand-in, which fails
fi

# Crash inputs are kept with the test's outputs for replay.
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/"
set +e
"$fuzzer" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$artifacts" "$work/corpus" >"$work/fuzz.log" 2>&1
status=$?
set -e
tail -25 "$work/fuzz.log"
if (( status != 0 )); then
  echo "FAIL: the fuzzer found a crash or invariant violation (exit $status)"
  exit 1
fi
grep -q "^Done [0-9]* runs" "$work/fuzz.log" || { echo "FAIL: the fuzzer did not run"; exit 1; }
echo "PASS: fuzzed for ${FUZZ_SECONDS} s without findings"
