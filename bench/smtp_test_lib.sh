#!/bin/bash
# Helpers for the bench tools' shell tests: temporary directory, starting the sink on a free
# port, reading JSON summaries, failing with a message. Sourced, not run.
set -euo pipefail

T="${TEST_TMPDIR:-$(mktemp -d)}/$$"
mkdir -p "$T"
LOAD="${LOAD:-bench/smtp_load}"
SINK="${SINK:-bench/smtp_sink}"
PY=/usr/bin/python3
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$T"/*.err; do [ -f "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
  exit 1
}

# json FILE KEY[.SUBKEY...]: prints the value from the file's last line (0 when the key is
# missing, e.g. a reply code never seen). The file is parsed once, into FILE.kv.
json() {
  if [ ! -f "$1.kv" ] || [ "$1" -nt "$1.kv" ]; then
    "$PY" - "$1" > "$1.kv" <<'PYEOF'
import json, sys
doc = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
def walk(prefix, v):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(prefix + k + ".", x)
    else:
        print(prefix[:-1], v)
walk("", doc)
PYEOF
  fi
  awk -v k="$2" 'BEGIN { v = 0 } $1 == k { v = $2 } END { print v }' "$1.kv"
}

# start_sink NAME ARGS...: starts the sink on 127.0.0.1 port 0 with ARGS; sets SINK_PID and
# SINK_PORT. Its JSON summary goes to $T/NAME.json, its log to $T/NAME.err.
start_sink() {
  local name="$1"
  shift
  rm -f "$T/$name.port"
  "$SINK" --port-file "$T/$name.port" --stats-interval-s 0 --max-seconds 50 --threads 2 "$@" \
    > "$T/$name.json" 2> "$T/$name.err" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  for _ in $(seq 1 200); do
    [ -s "$T/$name.port" ] && break
    kill -0 "$SINK_PID" 2>/dev/null || fail "sink $name did not start"
    sleep 0.05
  done
  SINK_PORT=$(cat "$T/$name.port")
  [ -n "$SINK_PORT" ] || fail "sink $name wrote no port"
}

# stop_sink: SIGTERM, then wait for its summary.
stop_sink() {
  kill -TERM "$SINK_PID"
  wait "$SINK_PID" || fail "sink exited with $?"
}

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

expect_eq() {
  [ "$1" == "$2" ] || fail "$3: got '$1', want '$2'"
}
