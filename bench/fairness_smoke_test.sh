#!/usr/bin/env bash
# Smoke run of bench/fairness.py with tiny counts, so the benchmark cannot rot: 3,000 bulk
# messages to a site throttled to 100/s, 3 s of transactional mail at 10/s beside them, whose p99
# from acceptance to delivery must stay under a second (the FIFO queues of old took ~30 s here).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
/usr/bin/python3 "$(dirname "$0")/fairness.py" --relayd "new=$1" "$2" "$3" --bulk 3000 \
  --site-rate 100 --tx-seconds 3 --settle-s 2 --time-limit-s 60 --expect-p99-ms 1000
