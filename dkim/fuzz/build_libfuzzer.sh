#!/bin/bash
# Builds the DKIM fuzz target with clang's libFuzzer (Bazel here builds with GCC, which has none)
# and, with a time given, runs it on the committed corpus:
#   dkim/fuzz/build_libfuzzer.sh [OUT_DIR] [SECONDS]
# Needs clang-14 and libclang-rt-14-dev.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-/tmp/dkim_fuzz}"
seconds="${2:-0}"
mkdir -p "$out"
clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I/usr/include/android -I. \
  dkim/fuzz/dkim_fuzzer.cc dkim/canon.cc dkim/header.cc dkim/key.cc dkim/signer.cc \
  dkim/verifier.cc \
  -L/usr/lib/x86_64-linux-gnu/android -Wl,-rpath,/usr/lib/x86_64-linux-gnu/android -lcrypto \
  -labsl_strings -labsl_strings_internal -labsl_status -labsl_statusor -labsl_raw_hash_set \
  -labsl_hash -labsl_city -labsl_low_level_hash -labsl_cord -labsl_cord_internal \
  -labsl_cordz_info -labsl_cordz_functions -labsl_cordz_handle -labsl_str_format_internal \
  -labsl_raw_logging_internal -labsl_throw_delegate -labsl_int128 -labsl_base \
  -labsl_spinlock_wait -labsl_synchronization -labsl_time -labsl_time_zone -labsl_stacktrace \
  -labsl_symbolize -labsl_debugging_internal -labsl_demangle_internal -labsl_malloc_internal \
  -labsl_graphcycles_internal -labsl_exponential_biased -labsl_bad_optional_access \
  -labsl_strerror -labsl_log_severity \
  -o "$out/dkim_fuzzer"
echo "built $out/dkim_fuzzer"
if [[ "$seconds" != 0 ]]; then
  mkdir -p "$out/corpus"
  cp dkim/fuzz/corpus/* "$out/corpus/"
  "$out/dkim_fuzzer" -max_total_time="$seconds" -max_len=4096 "$out/corpus"
fi
