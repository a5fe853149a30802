#!/bin/bash
# The generator against the sink on loopback: every message sent is counted received, byte
# counts match, the latency header is parsed, scripted failures show up in the generator's
# counts, AUTH PLAIN, one message per connection, IPv6 and an address range, reply delay,
# STARTTLS on both sides (with AUTH after it, session resumption, a reply delay).
source bench/smtp_test_lib.sh

[ -x "$SINK" ] && [ -x "$LOAD" ] || fail "binaries missing"

echo "== pipelined, many messages per connection, IPv4 + IPv6 + a range of loopback addresses"
start_sink plain --listen 127.0.0.1:0 --listen '[::1]:0' --listen-range 127.0.0.21-127.0.0.23:0
"$LOAD" --target "127.0.0.1:$SINK_PORT,[::1]:$SINK_PORT,127.0.0.22:$SINK_PORT" \
  --connections 9 --count 300 --duration-s 30 --size 3000:1,9000:1 \
  --domains gmail.test:67,hotmail.test:9,yahoo.test:6,other.test:18 \
  > "$T/plain-load.json" 2> "$T/plain-load.err" || fail "load exited with $?"
kill -USR1 "$SINK_PID"
for _ in $(seq 1 100); do grep -q "^sink: t=" "$T/plain.err" && break; sleep 0.05; done
grep -q "^sink: t=.* messages=300 .*e2e n=300 p50=" "$T/plain.err" ||
  fail "no stats line with percentiles on SIGUSR1"
stop_sink
expect_eq "$(json "$T/plain-load.json" sent)" 300 "sent"
expect_eq "$(json "$T/plain-load.json" accepted)" 300 "accepted"
expect_eq "$(json "$T/plain-load.json" connection_errors)" 0 "connection errors"
expect_eq "$(json "$T/plain.json" messages)" 300 "sink messages"
expect_eq "$(json "$T/plain.json" bytes)" "$(json "$T/plain-load.json" accepted_bytes)" "bytes"
expect_eq "$(json "$T/plain.json" missing_header)" 0 "messages without X-Bench-Sent"
expect_eq "$(json "$T/plain.json" e2e_latency.count)" 300 "end-to-end latencies"
expect_eq "$(json "$T/plain-load.json" latency.count)" 300 "reply latencies"
expect_eq "$(json "$T/plain.json" connections)" 9 "sink connections"

echo "== scripted 451 on a share of transactions"
start_sink fail --listen 127.0.0.1:0 --fail-rate 0.2 --fail-reply "451 4.7.28 try later" --seed 3
"$LOAD" --target "127.0.0.1:$SINK_PORT" --connections 4 --count 300 --duration-s 30 \
  > "$T/fail-load.json" 2> "$T/fail-load.err" || fail "load exited with $?"
stop_sink
rejected=$(json "$T/fail.json" rejected)
[ "$rejected" -gt 25 ] && [ "$rejected" -lt 100 ] || fail "sink rejected $rejected of 300 at 0.2"
expect_eq "$(json "$T/fail-load.json" replies.451)" "$rejected" "451 replies counted"
expect_eq "$(json "$T/fail-load.json" accepted)" "$(json "$T/fail.json" messages)" "accepted"
expect_eq "$(( $(json "$T/fail-load.json" accepted) + rejected ))" 300 "accepted + 451"
grep -q "451 4.7.28 try later" "$T/fail-load.err" || fail "the reply text is not reported"

echo "== 550 at RCPT, no pipelining, one message per connection, AUTH PLAIN"
start_sink auth --listen 127.0.0.1:0 --fail-rate 0.3 --fail-stage rcpt \
  --fail-reply "550 5.1.1 no such user" --auth-user bench --auth-password s3cret
"$LOAD" --target "127.0.0.1:$SINK_PORT" --connections 3 --count 40 --duration-s 30 \
  --messages-per-connection 1 --pipelining=false --auth-user bench --auth-password s3cret \
  > "$T/auth-load.json" 2> "$T/auth-load.err" || fail "load exited with $?"
stop_sink
rejected=$(json "$T/auth.json" rejected)
[ "$rejected" -gt 0 ] || fail "no recipient was refused"
expect_eq "$(json "$T/auth-load.json" replies.550)" "$rejected" "550 replies counted"
expect_eq "$(( $(json "$T/auth-load.json" accepted) + rejected ))" 40 "accepted + 550"
expect_eq "$(json "$T/auth-load.json" connects)" 40 "one connection per message"
expect_eq "$(json "$T/auth.json" connections)" 40 "sink connections"

echo "== wrong password: counted, no message, and the generator stops by itself"
start_sink badauth --listen 127.0.0.1:0 --auth-user bench --auth-password s3cret
"$LOAD" --target "127.0.0.1:$SINK_PORT" --connections 2 --count 10 --duration-s 20 \
  --auth-user bench --auth-password wrong \
  > "$T/badauth-load.json" 2> "$T/badauth-load.err" || fail "load exited with $?"
stop_sink
expect_eq "$(json "$T/badauth-load.json" accepted)" 0 "accepted with a wrong password"
expect_eq "$(json "$T/badauth-load.json" replies.535)" 2 "535 replies"

echo "== reply delay and duration bound"
start_sink slow --listen 127.0.0.1:0 --delay-ms 30
"$LOAD" --target "127.0.0.1:$SINK_PORT" --connections 2 --duration-s 1.5 \
  > "$T/slow-load.json" 2> "$T/slow-load.err" || fail "load exited with $?"
stop_sink
p50=$(json "$T/slow-load.json" latency.p50_us)
"$PY" -c "import sys; sys.exit(0 if $p50 >= 29000 else 1)" || fail "p50 $p50 us under the delay"
wall=$(json "$T/slow-load.json" wall_s)
"$PY" -c "import sys; sys.exit(0 if $wall < 5 else 1)" || fail "duration bound: ran ${wall}s"
[ "$(json "$T/slow-load.json" accepted)" -gt 5 ] || fail "too few messages through a slow sink"

echo "== target rate"
start_sink paced --listen 127.0.0.1:0
"$LOAD" --target "127.0.0.1:$SINK_PORT" --connections 4 --rate 200 --duration-s 2 \
  > "$T/paced-load.json" 2> "$T/paced-load.err" || fail "load exited with $?"
stop_sink
n=$(json "$T/paced-load.json" accepted)
[ "$n" -ge 330 ] && [ "$n" -le 420 ] || fail "rate 200/s for 2 s gave $n messages"

echo "== STARTTLS with a self-signed pair: AUTH after TLS, resumption, TLS counted on both sides"
start_sink tls --listen 127.0.0.1:0 --starttls --auth-user bench --auth-password s3cret
"$LOAD" --target "127.0.0.1:$SINK_PORT" --starttls --auth bench:s3cret --connections 4 \
  --count 200 --messages-per-connection 10 --duration-s 30 \
  > "$T/tls-load.json" 2> "$T/tls-load.err" || fail "load exited with $?"
echo "== STARTTLS offered, a client that does not use it"
"$LOAD" --target "127.0.0.1:$SINK_PORT" --auth bench:s3cret --connections 2 --count 20 \
  --duration-s 30 > "$T/tls-plain-load.json" 2> "$T/tls-plain-load.err" || fail "load exited"
stop_sink
expect_eq "$(json "$T/tls-load.json" accepted)" 200 "accepted over STARTTLS"
# At least 20 connections: the last ones may carry fewer than 10 when the count runs out.
tls_connects=$(json "$T/tls-load.json" connects)
[ "$tls_connects" -ge 20 ] || fail "$tls_connects connections for 200 messages at 10 each"
expect_eq "$(json "$T/tls-load.json" tls_handshakes)" "$tls_connects" "generator handshakes"
expect_eq "$(json "$T/tls-load.json" tls_errors)" 0 "generator TLS errors"
[ "$(json "$T/tls-load.json" tls_resumed)" -gt 0 ] || fail "no session resumed"
expect_eq "$(json "$T/tls-plain-load.json" accepted)" 20 "accepted in the clear"
expect_eq "$(json "$T/tls.json" messages)" 220 "sink messages"
expect_eq "$(json "$T/tls.json" tls_sessions)" "$tls_connects" "sink TLS sessions"
expect_eq "$(json "$T/tls.json" tls_resumed)" "$(json "$T/tls-load.json" tls_resumed)" \
  "resumed sessions, sink and generator"
expect_eq "$(json "$T/tls.json" tls_errors)" 0 "sink TLS errors"
expect_eq "$(json "$T/tls.json" connections)" \
  "$((tls_connects + $(json "$T/tls-plain-load.json" connects)))" "sink connections"

echo "== STARTTLS with a given certificate and a reply delay (the handshake is not delayed)"
if command -v openssl > /dev/null; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=sink.bench.test -keyout "$T/key.pem" -out "$T/cert.pem" 2> "$T/openssl.err" ||
    fail "openssl req"
  start_sink tlsslow --listen 127.0.0.1:0 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
    --delay-ms 20
  "$LOAD" --target "127.0.0.1:$SINK_PORT" --starttls --tls-resume=false --connections 2 \
    --count 20 --messages-per-connection 5 --duration-s 30 \
    > "$T/tlsslow-load.json" 2> "$T/tlsslow-load.err" || fail "load exited with $?"
  stop_sink
  expect_eq "$(json "$T/tlsslow-load.json" accepted)" 20 "accepted through a slow TLS sink"
  expect_eq "$(json "$T/tlsslow-load.json" tls_resumed)" 0 "resumed with --tls-resume=false"
  expect_eq "$(json "$T/tlsslow.json" tls_sessions)" 4 "sink TLS sessions"
else
  echo "openssl not installed: the given-certificate case is not run"
fi

echo "== STARTTLS asked of a sink that does not offer it: counted as a TLS error, no mail"
start_sink notls --listen 127.0.0.1:0
"$LOAD" --target "127.0.0.1:$SINK_PORT" --starttls --connections 2 --count 10 --duration-s 10 \
  > "$T/notls-load.json" 2> "$T/notls-load.err" || fail "load exited with $?"
stop_sink
expect_eq "$(json "$T/notls-load.json" accepted)" 0 "accepted without STARTTLS"
expect_eq "$(json "$T/notls-load.json" tls_errors)" 2 "TLS errors"
grep -q "does not offer STARTTLS" "$T/notls-load.err" || fail "no reason given"

echo "== refuses a destination that is not loopback"
if "$LOAD" --target 192.168.1.1:25 --count 1 > /dev/null 2> "$T/refuse.err"; then
  fail "a non-loopback target was accepted"
fi
grep -q "refusing" "$T/refuse.err" || fail "no clear refusal: $(cat "$T/refuse.err")"

echo "PASS"
