#!/bin/bash
# The generator against a receiver nobody here wrote: Postfix's smtp-sink (Debian package
# postfix). Pipelined and unpipelined runs must get every message accepted; with RCPT refused
# by smtp-sink (-r rcpt) every message must be counted under the refusal's code.
source bench/smtp_test_lib.sh

SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
[ -x "$SMTP_SINK" ] || fail "Postfix's smtp-sink is not installed (Debian package postfix)"

# run_postfix_sink NAME ARGS...: sets PF_PID and PF_PORT.
run_postfix_sink() {
  local name="$1"
  shift
  local user_args=()
  # smtp-sink refuses to run as root without -u; keep the same user (a test sandbox may map no
  # other user or group).
  [ "$(id -u)" == 0 ] && user_args=(-u "$(id -un)")
  for attempt in 1 2 3 4 5; do
    PF_PORT=$(free_port)
    "$SMTP_SINK" "${user_args[@]}" "$@" "127.0.0.1:$PF_PORT" 128 > "$T/$name.out" \
      2> "$T/$name.err" &
    PF_PID=$!
    PIDS+=("$PF_PID")
    for _ in $(seq 1 100); do
      if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$PF_PORT),0.2)" \
        2>/dev/null; then
        sleep 0.1  # it listens before dropping privileges: make sure it is still there
        kill -0 "$PF_PID" 2>/dev/null && return 0
        break
      fi
      kill -0 "$PF_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$PF_PID" 2>/dev/null || true
  done
  fail "smtp-sink did not start"
}

echo "== pipelined, many messages per connection"
run_postfix_sink pf-plain
"$LOAD" --target "127.0.0.1:$PF_PORT" --connections 6 --count 400 --duration-s 30 \
  > "$T/pf-plain-load.json" 2> "$T/pf-plain-load.err" || fail "load exited with $?"
expect_eq "$(json "$T/pf-plain-load.json" accepted)" 400 "accepted by smtp-sink"
expect_eq "$(json "$T/pf-plain-load.json" connection_errors)" 0 "connection errors"
expect_eq "$(json "$T/pf-plain-load.json" latency.count)" 400 "reply latencies"

echo "== no pipelining, one message per connection"
"$LOAD" --target "127.0.0.1:$PF_PORT" --connections 4 --count 40 --duration-s 30 \
  --pipelining=false --messages-per-connection 1 \
  > "$T/pf-single-load.json" 2> "$T/pf-single-load.err" || fail "load exited with $?"
expect_eq "$(json "$T/pf-single-load.json" accepted)" 40 "accepted by smtp-sink"
expect_eq "$(json "$T/pf-single-load.json" connects)" 40 "connections"
kill "$PF_PID"

echo "== every RCPT refused with smtp-sink's soft bounce"
run_postfix_sink pf-reject -r rcpt -b "450 4.3.0 bench: rcpt refused"
"$LOAD" --target "127.0.0.1:$PF_PORT" --connections 2 --count 30 --duration-s 30 \
  > "$T/pf-reject-load.json" 2> "$T/pf-reject-load.err" || fail "load exited with $?"
expect_eq "$(json "$T/pf-reject-load.json" accepted)" 0 "accepted"
expect_eq "$(json "$T/pf-reject-load.json" replies.450)" 30 "450 replies"
expect_eq "$(json "$T/pf-reject-load.json" sent)" 0 "messages sent after refused RCPTs"
grep -q "bench: rcpt refused" "$T/pf-reject-load.err" || fail "reply text not reported"
kill "$PF_PID"

echo "PASS"
