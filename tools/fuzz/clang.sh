#!/bin/bash
# The clang side of relay_fuzz_test (tools/bazel/fuzz.bzl), run by Bazel actions:
#   clang.sh compile OUT.o SRC.cc [-I... -D...]    one source, instrumented for libFuzzer
#   clang.sh link OUT OBJ.o... -- LINKOPTS...        the fuzzer, with libFuzzer's main
# Everything is built with -fsanitize=address,undefined (fatal) and libFuzzer's coverage. Without
# clang or its libFuzzer runtime, compile writes a marker object and link a stand-in executable
# that prints "FAIL: reason" and exits 1, so that the test fails naming the missing package
# (Debian: clang-14, libclang-rt-14-dev) instead of the whole build failing.
set -euo pipefail
mode="$1"
out="$2"
shift 2

missing=""
cxx=""
for candidate in clang++-14 clang++; do
  if command -v "$candidate" >/dev/null 2>&1; then cxx="$(command -v "$candidate")"; break; fi
done
if [[ -z "$cxx" ]]; then
  missing="clang++ not found (install clang-14 and libclang-rt-14-dev)"
else
  runtime="$("$cxx" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
  [[ -f "$runtime" ]] || missing="libFuzzer runtime $runtime missing (install libclang-rt-14-dev)"
fi

sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
case "$mode" in
  compile)
    src="$1"
    shift
    if [[ -n "$missing" ]]; then
      printf 'missing: %s\n' "$missing" >"$out"
      exit 0
    fi
    # -w: the project's warnings are GCC's (-Werror there); clang's would only be noise here.
    # -msse4.2 -mpclmul as in .bazelrc: the spool's CRC32C uses the crc32 instruction.
    exec "$cxx" -std=c++20 -O1 -gline-tables-only -w -msse4.2 -mpclmul "${sanitize[@]}" \
      -fsanitize=fuzzer-no-link -I. "$@" -c "$src" -o "$out"
    ;;
  link)
    objects=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do objects+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    if [[ -z "$missing" ]]; then
      for o in "${objects[@]}"; do
        if head -c 9 "$o" | grep -q '^missing: '; then missing="$(head -1 "$o")"; break; fi
      done
    fi
    if [[ -n "$missing" ]]; then
      printf '#!/bin/sh\necho "FAIL: %s"\nexit 1\n' "${missing#missing: }" >"$out"
      chmod +x "$out"
      exit 0
    fi
    exec "$cxx" "${sanitize[@]}" -fsanitize=fuzzer "${objects[@]}" -o "$out" "$@" -pthread
    ;;
  *)
    echo "usage: clang.sh compile|link ..." >&2
    exit 2
    ;;
esac
