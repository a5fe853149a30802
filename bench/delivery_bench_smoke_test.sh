#!/usr/bin/env bash
# Smoke run of bench/delivery_bench.py with tiny counts, so the benchmark cannot rot: 200 slow
# sessions open at once (1.5 s per reply), then a 300-message drain with and without connection
# reuse, and with reuse but without pipelining across transactions (sink replies held 2 ms).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
bench="$(dirname "$0")/delivery_bench.py"
/usr/bin/python3 "${bench}" "$1" "$2" "$3" concurrency --messages 200 --sites 4 --delay-ms 1500 \
  --time-limit-s 25 --expect-min-sessions 200
/usr/bin/python3 "${bench}" "$1" "$2" "$3" rate --messages 300 --sites 3 --time-limit-s 20 \
  --compare-pipelining --reply-delay-ms 2
