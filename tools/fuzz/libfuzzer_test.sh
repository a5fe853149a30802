#!/bin/bash
# The libFuzzer half of a relay_fuzz_test under `bazel test`: runs the clang-built fuzzer over a
# copy of the committed corpus for a short time (RELAY_FUZZ_CLANG_SECONDS, default 10), with
# AddressSanitizer, UndefinedBehaviorSanitizer and the target's heap bounds. Crash inputs go to
# the test's undeclared outputs. When clang was missing at build time the fuzzer is a stand-in
# that prints "FAIL: reason" and exits 1.
# Usage: libfuzzer_test.sh FUZZER DICT|- MAX_LEN CORPUS_FILE...
set -euo pipefail
fuzzer="$1"
dict="$2"
max_len="$3"
shift 3
seconds="${RELAY_FUZZ_CLANG_SECONDS:-10}"

if head -c 2 "$fuzzer" | grep -q '#!'; then
  exec "$fuzzer"  # the stand-in, which fails
fi
work="${TEST_TMPDIR:?}/fuzz"
mkdir -p "$work/corpus"
cp "$@" "$work/corpus/"
flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len"
       -print_final_stats=1 -artifact_prefix="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/")
[[ "$dict" != "-" ]] && flags+=(-dict="$dict")
set +e
"$fuzzer" "${flags[@]}" "$work/corpus" >"$work/fuzz.log" 2>&1
status=$?
set -e
# What went wrong (an invariant, a bound, a sanitizer report), then how the run ended.
grep -E -A3 "fuzz invariant violated|fuzz bounds exceeded|ERROR: (AddressSanitizer|libFuzzer)|runtime error" \
  "$work/fuzz.log" | head -40 || true
tail -12 "$work/fuzz.log"
if (( status != 0 )); then
  echo "FAIL: the fuzzer found a crash, an invariant violation or a bound exceeded (exit $status)"
  exit 1
fi
grep -q "^Done [0-9]* runs" "$work/fuzz.log" || { echo "FAIL: the fuzzer did not run"; exit 1; }
echo "PASS: $(basename "$fuzzer") fuzzed for ${seconds} s without findings"
