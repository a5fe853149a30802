#!/bin/bash
# The generator's TLS against relayd's submission server: STARTTLS then AUTH PLAIN on the
# submission port (RFC 3207, RFC 4954), implicit TLS on the submissions port (RFC 8314 §3), every
# message accepted and counted, one handshake per connection, resumption counted; and the same
# AUTH without TLS refused, since relayd requires TLS before AUTH by default.
# Delivery is off: this is about the generator's side only.
#   smtp_load_relayd_tls_test.sh RELAYD (the generator is bench/smtp_load)
source bench/smtp_test_lib.sh
RELAYD="$1"
[ -x "$RELAYD" ] && [ -x "$LOAD" ] || fail "binaries missing"

# --no-dkim: this is about the generator's TLS; RSA signing would only slow the 250 replies.
"$RELAYD" --init "$T/relay" --domain example.com --hostname relay.example.com --no-dkim \
  > "$T/init.out" || fail "relayd --init"
PASSWORD=$(awk '/^Password:/ { print $2 }' "$T/init.out")
[ -n "$PASSWORD" ] || fail "no password from relayd --init"
SOCK_DIR=$(mktemp -d /tmp/rtls.XXXXXX)  # a Unix socket path must stay under 108 bytes
conf="$T/relay/relayd.toml"
sed -i -e 's|"127.0.0.1:2587"|"127.0.0.1:0"|' -e 's|"127.0.0.1:2465"|"127.0.0.1:0"|' \
  -e 's|^enabled = true|enabled = false|' -e 's|^shards = 0|shards = 2|' \
  -e "s|^control_socket = .*|control_socket = \"$SOCK_DIR/control.sock\"|" "$conf"
grep -q '^enabled = false' "$conf" || fail "the default config changed: no delivery switch"
"$RELAYD" --config "$conf" > "$T/relayd.err" 2>&1 &
RELAYD_PID=$!
PIDS+=("$RELAYD_PID")
for _ in $(seq 1 300); do
  grep -q "relayd ready" "$T/relayd.err" && break
  kill -0 "$RELAYD_PID" 2>/dev/null || fail "relayd did not start"
  sleep 0.1
done
SUBMISSION=$(sed -n 's/.*submission (STARTTLS) on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/relayd.err")
SUBMISSIONS=$(sed -n 's/.*submissions (TLS) on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/relayd.err")
[ -n "$SUBMISSION" ] && [ -n "$SUBMISSIONS" ] || fail "relayd's ports not in its log"

common=(--count 120 --duration-s 30 --size 2K --from app@example.com
        --auth "app@example.com:$PASSWORD" --domains "bench.test:1")

echo "== STARTTLS + AUTH PLAIN on the submission port, 10 messages per connection, resumption"
"$LOAD" --target "127.0.0.1:$SUBMISSION" --starttls --connections 4 --messages-per-connection 10 \
  "${common[@]}" > "$T/starttls.json" 2> "$T/starttls.err" || fail "load exited with $?"
expect_eq "$(json "$T/starttls.json" accepted)" 120 "accepted over STARTTLS"
expect_eq "$(json "$T/starttls.json" connection_errors)" 0 "connection errors"
expect_eq "$(json "$T/starttls.json" tls_errors)" 0 "TLS errors"
expect_eq "$(json "$T/starttls.json" tls_handshakes)" "$(json "$T/starttls.json" connects)" \
  "one handshake per connection"
[ "$(json "$T/starttls.json" connects)" -ge 12 ] || fail "fewer than 12 connections"
[ "$(json "$T/starttls.json" tls_resumed)" -gt 0 ] || fail "no session was resumed"

echo "== the same without resumption: full handshakes only"
"$LOAD" --target "127.0.0.1:$SUBMISSION" --starttls --tls-resume=false --connections 2 \
  --messages-per-connection 20 "${common[@]}" > "$T/noresume.json" 2> "$T/noresume.err" ||
  fail "load exited with $?"
expect_eq "$(json "$T/noresume.json" accepted)" 120 "accepted without resumption"
expect_eq "$(json "$T/noresume.json" tls_resumed)" 0 "resumed with --tls-resume=false"

echo "== implicit TLS on the submissions port"
"$LOAD" --target "127.0.0.1:$SUBMISSIONS" --implicit-tls --connections 3 "${common[@]}" \
  > "$T/implicit.json" 2> "$T/implicit.err" || fail "load exited with $?"
expect_eq "$(json "$T/implicit.json" accepted)" 120 "accepted over implicit TLS"
expect_eq "$(json "$T/implicit.json" tls_handshakes)" 3 "handshakes"
expect_eq "$(json "$T/implicit.json" tls_errors)" 0 "TLS errors"

echo "== AUTH without TLS is refused (auth_requires_tls): nothing accepted"
"$LOAD" --target "127.0.0.1:$SUBMISSION" --connections 1 "${common[@]}" \
  > "$T/plain.json" 2> "$T/plain.err" || fail "load exited with $?"
expect_eq "$(json "$T/plain.json" accepted)" 0 "accepted without TLS"
expect_eq "$(json "$T/plain.json" tls_handshakes)" 0 "handshakes without TLS"

echo "== implicit TLS against the STARTTLS port: a TLS error, counted"
"$LOAD" --target "127.0.0.1:$SUBMISSION" --implicit-tls --connections 1 --reply-timeout-ms 3000 \
  "${common[@]}" --duration-s 2 > "$T/wrong.json" 2> "$T/wrong.err" || fail "load exited with $?"
expect_eq "$(json "$T/wrong.json" accepted)" 0 "accepted"
[ "$(json "$T/wrong.json" tls_errors)" -ge 1 ] || fail "no TLS error counted"

kill -TERM "$RELAYD_PID"
wait "$RELAYD_PID" || fail "relayd exited with $?"
rm -rf "$SOCK_DIR"
echo "PASS"
