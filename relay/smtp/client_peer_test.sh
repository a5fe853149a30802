#!/bin/bash
# ClientSession against real SMTP servers on 127.0.0.1: Postfix's smtp-sink (also scripted to
# fail at each step) and Python's aiosmtpd. Plain text; every server is started and stopped here.
set -u

DRIVER="$(dirname "$0")/client_peer_driver"
[ -x "$DRIVER" ] || DRIVER="$TEST_SRCDIR/$TEST_WORKSPACE/relay/smtp/client_peer_driver"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
SINK="$(command -v smtp-sink || echo /usr/sbin/smtp-sink)"
PY=/usr/bin/python3

if [ ! -x "$SINK" ]; then echo "FAIL: smtp-sink not installed (Debian package postfix)"; exit 1; fi
if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
  echo "FAIL: aiosmtpd not installed (Debian package python3-aiosmtpd)"; exit 1
fi

failures=0
SERVER_PID=""
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
  fi
}
trap stop_server EXIT

# start_sink NAME [smtp-sink options...]
start_sink() {
  local name="$1"; shift
  PORT="$(free_port)"
  mkdir -p "$TMP/$name"
  "$SINK" -u root -d "$TMP/$name/%M." "$@" "127.0.0.1:$PORT" 16 >"$TMP/$name/sink.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$PORT" || { fail "$name: smtp-sink did not start"; cat "$TMP/$name/sink.log"; }
}

start_aiosmtpd() {
  local name="$1"; shift
  PORT="$(free_port)"
  mkdir -p "$TMP/$name"
  "$PY" -u -m aiosmtpd -n -l "127.0.0.1:$PORT" "$@" >"$TMP/$name/server.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$PORT" || fail "$name: aiosmtpd did not start"
}

# run NAME MESSAGES RCPTS [BODY_KIB] [MODE]: runs the driver, output in $OUT.
run() {
  local name="$1"; shift
  OUT="$(timeout 30 "$DRIVER" "$PORT" "$@" 2>&1)"
  echo "--- $name"; echo "$OUT"
}

expect_count() {  # NAME PATTERN COUNT
  local got
  got="$(grep -cE "$2" <<<"$OUT")"
  [ "$got" -eq "$3" ] || fail "$1: expected $3 lines matching '$2', got $got"
}

# 1. smtp-sink, PIPELINING: 3 messages x 2 recipients on one connection, 300 KiB bodies.
start_sink sink-ok
run sink-ok 3 a@example.net,b@example.net 300
expect_count sink-ok '^MSG [123] RCPT [01] delivered 250 ' 6
expect_count sink-ok '^CLOSED 3$' 1
stop_server
dumps=$(ls "$TMP/sink-ok" | grep -vc sink.log)
[ "$dumps" -eq 3 ] || fail "sink-ok: expected 3 dumped messages, got $dumps"
# The dump holds the message as smtp-sink received it: dot-stuffing must be undone exactly.
first=$(ls "$TMP"/sink-ok/*.* | grep -v sink.log | head -1)
grep -qx '.dotline' "$first" || fail "sink-ok: '.dotline' not received unstuffed"
grep -qx '..double' "$first" || fail "sink-ok: '..double' not received unstuffed"
grep -qx 'last line without CRLF' "$first" || fail "sink-ok: last line missing"

# 2. Without PIPELINING, 4xx to every RCPT: transient per recipient, no DATA.
start_sink sink-rcpt4 -r RCPT
run sink-rcpt4 2 a@example.net,b@example.net
expect_count sink-rcpt4 '^MSG [12] RCPT [01] transient 450 4.3.0 ' 4
expect_count sink-rcpt4 '^CLOSED 2$' 1
stop_server

# 3. 5xx to MAIL: permanent for every recipient.
start_sink sink-mail5 -f MAIL
run sink-mail5 1 a@example.net,b@example.net
expect_count sink-mail5 '^MSG 1 RCPT [01] permanent 500 5.3.0 ' 2
stop_server

# 4. 5xx at the end of data.
start_sink sink-dot5 -f .
run sink-dot5 2 a@example.net
expect_count sink-dot5 '^MSG [12] RCPT 0 permanent 500 5.3.0 ' 2
stop_server

# 5. 421 and disconnect after DATA: transient, connection closed.
start_sink sink-data421 -Q DATA
run sink-data421 2 a@example.net,b@example.net
expect_count sink-data421 '^MSG 1 RCPT [01] transient 421 ' 2
expect_count sink-data421 '^CLOSED 1$' 1
stop_server

# 6. Disconnect without a reply after ".": transient (may or may not have been delivered).
start_sink sink-dotdrop -q .
run sink-dotdrop 1 a@example.net
expect_count sink-dotdrop '^MSG 1 RCPT 0 transient 421 4.4.2 Connection closed by 127.0.0.1' 1
stop_server

# 7. No ESMTP: EHLO is not understood, HELO works, the message is delivered.
start_sink sink-helo -e
run sink-helo 1 a@example.net
expect_count sink-helo '^MSG 1 RCPT 0 delivered 250' 1
stop_server

# 8. 4xx to EHLO: a connection outcome, no message started.
start_sink sink-ehlo4 -r EHLO
run sink-ehlo4 1 a@example.net
expect_count sink-ehlo4 '^CONN transient 450 ' 1
expect_count sink-ehlo4 '^MSG ' 0
stop_server

# 9. 8-bit message to a server without 8BITMIME: permanent 554 5.6.3 before sending.
start_sink sink-no8bit -8
run sink-no8bit 1 a@example.net 1 8bit
expect_count sink-no8bit '^MSG 1 RCPT 0 permanent 554 5.6.3 ' 1
stop_server

# 10. aiosmtpd (no PIPELINING): 3 messages x 2 recipients, body unstuffed at the server.
start_aiosmtpd aio-ok
run aio-ok 3 a@example.net,b@example.net 64
expect_count aio-ok '^MSG [123] RCPT [01] delivered 250 ' 6
expect_count aio-ok '^CLOSED 3$' 1
stop_server
grep -qx '.dotline' "$TMP/aio-ok/server.log" || fail "aio-ok: '.dotline' not received unstuffed"
grep -qx '..double' "$TMP/aio-ok/server.log" || fail "aio-ok: '..double' not received unstuffed"

# 11. aiosmtpd with SIZE 1000: a larger message fails permanently without being sent; SMTPUTF8
# is not offered by default.
start_aiosmtpd aio-size -s 1000
run aio-size 1 a@example.net 4
expect_count aio-size '^MSG 1 RCPT 0 permanent 552 5.3.4 ' 1
run aio-utf8 1 a@example.net 0 utf8
expect_count aio-utf8 '^MSG 1 RCPT 0 permanent 553 5.6.7 ' 1
stop_server

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"; exit 1
fi
echo "PASS"
