#!/bin/bash
# The long libFuzzer runs of the relay's fuzz targets, one at a time, at the lowest CPU priority:
#   tools/fuzz/run_long.sh [-t SECONDS] [-o OUT_DIR] [LABEL...]
# LABEL is a relay_fuzz_test name ("//dkim:arc_fuzz_test"); without any, every one in the
# workspace. Each runs for SECONDS (default 600) over a copy of its committed corpus with its
# dictionary, -rss_limit_mb=2048 and its heap bounds, then the coverage-increasing inputs it found
# are merged into OUT_DIR/NAME/merged (those not in seed/ are new: for a person to pick a few
# small ones to commit). Prints one line per target: executions, exec/s, corpus entries and
# bytes at the end, peak RSS, new coverage-adding inputs, crashes; the logs and crash files stay
# in OUT_DIR/NAME.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=600
out=/tmp/relay-fuzz-long
while getopts "t:o:" opt; do
  case "$opt" in
    t) seconds="$OPTARG" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
labels=("$@")
if [[ ${#labels[@]} -eq 0 ]]; then
  mapfile -t labels < <(bazel query 'kind("_clang_fuzzer rule", //...)' 2>/dev/null | sed 's/_fuzzer$//')
fi
bazel build "${labels[@]/%/_fuzzer}" >/dev/null 2>&1
bin="$(bazel info bazel-bin 2>/dev/null)"
mkdir -p "$out"
# Everything Bazel knows is asked first, so that no query waits on another Bazel command while
# the fuzzers run.
declare -A fuzzers dicts max_lens
for label in "${labels[@]}"; do
  pkg="${label#//}"
  pkg="${pkg%%:*}"
  name="${label##*:}"
  fuzzers[$label]="$bin/$pkg/${name}_fuzzer"
  rule="$(bazel query "attr(name, '^${name}$', //${pkg}:*)" --output=build 2>/dev/null)"
  dict="$(sed -n 's/.*"--dict=\$(rootpath \([^)]*\))".*/\1/p' <<<"$rule" | head -1)"
  dicts[$label]="${dict:+$pkg/${dict#:}}"
  max_len="$(sed -n 's/.*"--max_len=\([0-9]*\)".*/\1/p' <<<"$rule" | head -1)"
  max_lens[$label]="${max_len:-4096}"
  rm -rf "$out/$name"
  mkdir -p "$out/$name/seed" "$out/$name/artifacts"
  bazel query "labels(srcs, ${label}_corpus)" 2>/dev/null | sed -e 's#^//##' -e 's#:#/#' |
    xargs -I{} cp {} "$out/$name/seed/"
done

printf '%-40s %12s %8s %8s %10s %8s %6s %s\n' target execs exec/s corpus bytes rss_mb new crashes
for label in "${labels[@]}"; do
  name="${label##*:}"
  work="$out/$name"
  cp -r "$work/seed" "$work/corpus"
  cp -r "$work/seed" "$work/merged"
  dict_flag=()
  [[ -n "${dicts[$label]}" ]] && dict_flag=(-dict="${dicts[$label]}")
  set +e
  nice -n 19 "${fuzzers[$label]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -max_len="${max_lens[$label]}" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "${dict_flag[@]}" "$work/corpus" >"$work/fuzz.log" 2>&1
  status=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log")"
  rss="$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/fuzz.log")"
  corp="$( (grep -oE 'corp: [0-9]+/[0-9]+[bKM]+' "$work/fuzz.log" || true) | tail -1 |
          sed 's/corp: //')"
  crashes="$(find "$work/artifacts" -type f | wc -l)"
  [[ $status -ne 0 && $crashes -eq 0 ]] && crashes="exit $status"
  # What the run found that the committed corpus does not cover: merged/ minus seed/.
  nice -n 19 "${fuzzers[$label]}" -merge=1 -rss_limit_mb=2048 -max_len="${max_lens[$label]}" \
    "$work/merged" "$work/corpus" >"$work/merge.log" 2>&1 || true
  new=$(($(ls "$work/merged" | wc -l) - $(ls "$work/seed" | wc -l)))
  printf '%-40s %12s %8s %8s %10s %8s %6s %s\n' "$label" "${execs:-?}" "${rate:-?}" \
    "${corp%%/*}" "${corp##*/}" "${rss:-?}" "$new" "$crashes"
done
