#!/usr/bin/env bash
# Smoke run of bench/delivery_bench.py with TLS and tiny counts: 100 slow sessions that all reach
# STARTTLS with the sink (the memory per TLS session is printed), then a 200-message drain over
# TLS with and without connection reuse.
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
bench="$(dirname "$0")/delivery_bench.py"
/usr/bin/python3 "${bench}" "$1" "$2" "$3" concurrency --messages 100 --sites 4 --delay-ms 1000 \
  --time-limit-s 20 --expect-min-sessions 100 --tls on
/usr/bin/python3 "${bench}" "$1" "$2" "$3" rate --messages 200 --sites 3 --time-limit-s 20 --tls on
