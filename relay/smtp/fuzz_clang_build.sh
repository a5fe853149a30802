#!/bin/bash
# Build step of //relay/smtp:fuzz_clang_test (run by a genrule, so that Bazel caches the result and
# the test's time is the fuzzing alone): compiles the fuzz target with clang and libFuzzer
# (-fsanitize=fuzzer,address,undefined) into $1. Without clang or its libFuzzer runtime it writes a
# stand-in to $1 that prints "FAIL: reason" and exits 1, so that the test fails and names the
# missing package (Debian: clang-14, libclang-rt-14-dev) instead of the whole build failing.
# Usage: fuzz_clang_build.sh OUTPUT SOURCE.cc...
set -euo pipefail
out="$1"
shift

missing() {
  printf '#!/bin/sh\necho "FAIL: %s"\nexit 1\n' "$1" >"$out"
  chmod +x "$out"
  exit 0
}

CXX=""
for candidate in clang++-14 clang++; do
  if command -v "$candidate" >/dev/null 2>&1; then CXX="$(command -v "$candidate")"; break; fi
done
[[ -n "$CXX" ]] || missing "clang++ not found (install clang-14 and libclang-rt-14-dev)"
runtime="$("$CXX" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
[[ -f "$runtime" ]] || missing "libFuzzer runtime $runtime missing (install libclang-rt-14-dev)"

# One translation unit: parsing the standard headers once per file would double the build time
# on this shared machine.
unity="$(mktemp --suffix=.cc)"
trap 'rm -f "$unity"' EXIT
for src in "$@"; do
  case "$src" in *.cc) echo "#include \"$PWD/$src\"" >>"$unity" ;; esac
done
"$CXX" -std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer -I"$PWD" \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined "$unity" -o "$out" \
  -labsl_strings -labsl_strings_internal -labsl_base -labsl_raw_logging_internal \
  -labsl_throw_delegate -labsl_int128 -labsl_spinlock_wait -pthread
