#!/bin/bash
# Builds the SMTP server session fuzz target with clang and libFuzzer (-fsanitize=fuzzer plus
# ASan and UBSan) and runs it for a bounded time over the committed corpus. Prints "SKIP: reason"
# and succeeds when clang or its libFuzzer runtime is missing (Debian: clang-14,
# libclang-rt-14-dev).
set -euo pipefail

FUZZ_SECONDS="${SMTP_FUZZ_CLANG_SECONDS:-20}"
CXX=""
for candidate in clang++-14 clang++; do
  if command -v "$candidate" >/dev/null 2>&1; then CXX="$(command -v "$candidate")"; break; fi
done
if [[ -z "$CXX" ]]; then
  echo "SKIP: clang++ not found (install clang-14 and libclang-rt-14-dev)"
  exit 0
fi

root="${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}"
work="${TEST_TMPDIR:?}/fuzz"
mkdir -p "$work/corpus"
export TMPDIR="$TEST_TMPDIR"
cp "$root"/relay/smtp/fuzz_corpus/* "$work/corpus/"

flags=(-std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer -I"$root"
       -fsanitize=address,undefined -fno-sanitize-recover=undefined)
sources=(relay/smtp/server_session_fuzz.cc relay/smtp/server_session.cc relay/smtp/command.cc
         relay/smtp/reply.cc relay/smtp/sasl.cc relay/base/check.cc relay/base/log.cc)

# The libFuzzer runtime must be there, so that its absence is a skip and not a failure.
runtime="$("$CXX" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
if [[ ! -f "$runtime" ]]; then
  echo "SKIP: libFuzzer runtime $runtime missing (install libclang-rt-14-dev)"
  exit 0
fi

start=$(date +%s)
# One translation unit: parsing the standard headers once per file would double the build time
# on this shared machine.
: >"$work/unity.cc"
for src in "${sources[@]}"; do echo "#include \"$src\"" >>"$work/unity.cc"; done
"$CXX" "${flags[@]}" -fsanitize=fuzzer "$work/unity.cc" -o "$work/smtp_fuzzer" \
  -labsl_strings -labsl_strings_internal -labsl_base -labsl_raw_logging_internal \
  -labsl_throw_delegate -labsl_int128 -labsl_spinlock_wait -pthread
echo "built the fuzzer in $(( $(date +%s) - start )) s"

# Crash inputs are kept with the test's outputs for replay.
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/"
set +e
"$work/smtp_fuzzer" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
  -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts" "$work/corpus" \
  >"$work/fuzz.log" 2>&1
status=$?
set -e
tail -25 "$work/fuzz.log"
if (( status != 0 )); then
  echo "FAIL: the fuzzer found a crash or invariant violation (exit $status)"
  exit 1
fi
echo "PASS: fuzzed for ${FUZZ_SECONDS} s without findings"
