#!/bin/bash
# Smoke run of //bench:queue_bench so it cannot rot: every benchmark once, tiny sizes, and the
# ratio lines must be printed.
set -euo pipefail
bench="$1"
rc=0
out="$("$bench" --benchmark_min_time=0.01 --queue_recovery_records=20000 2>&1)" || rc=$?
echo "$out"
if [[ $rc -ne 0 ]]; then
  echo "FAIL: queue_bench exited with status $rc" >&2
  exit 1
fi
for name in BM_Append_GroupCommit_Mmap BM_Append_FsyncPerRecord BM_Append_NoFsync_Mmap \
            BM_FilePerMessage BM_Recovery BM_Compaction; do
  if ! grep -q "^$name" <<<"$out"; then
    echo "FAIL: $name did not run" >&2
    exit 1
  fi
done
if grep -q "ERROR OCCURRED" <<<"$out"; then
  echo "FAIL: a benchmark reported an error" >&2
  exit 1
fi
grep -q "^ratio group commit Pwrite batch 64 / fdatasync per record" <<<"$out" || {
  echo "FAIL: ratios not printed" >&2
  exit 1
}
