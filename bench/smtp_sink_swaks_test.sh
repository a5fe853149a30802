#!/bin/bash
# The sink receives from a client nobody here wrote: swaks (Debian package swaks). Pipelined and
# plain transactions, dot-stuffing, AUTH PLAIN, the saved message and envelope, the latency header,
# and STARTTLS with swaks's OpenSSL client (the message arrives, the sink counts a TLS session).
source bench/smtp_test_lib.sh

SWAKS=$(command -v swaks || echo /usr/bin/swaks)
[ -x "$SWAKS" ] || fail "swaks is not installed (Debian package swaks)"

mkdir -p "$T/saved"
start_sink swaks --listen 127.0.0.1:0 --listen '[::1]:0' --save-dir "$T/saved" \
  --auth-user bench --auth-password s3cret --arrivals-file "$T/arrivals"

sent_ns=$(date +%s%N)
"$SWAKS" --server 127.0.0.1 --port "$SINK_PORT" --from a@sender.test --to b@rcpt.test \
  --auth PLAIN --auth-user bench --auth-password s3cret --pipeline \
  --header "X-Bench-Sent: $sent_ns" --header "Subject: via swaks" \
  --body $'first line\n.starts with a dot\n..two dots\nlast line' \
  < /dev/null > "$T/swaks1.log" 2>&1 || fail "swaks (pipelined) failed: $(tail -5 "$T/swaks1.log")"
"$SWAKS" --server ::1 --port "$SINK_PORT" --from '<>' --to c@rcpt.test,d@rcpt.test \
  --auth PLAIN --auth-user bench --auth-password s3cret --header "Subject: second" \
  < /dev/null > "$T/swaks2.log" 2>&1 || fail "swaks over IPv6 failed: $(tail -5 "$T/swaks2.log")"
if "$SWAKS" --server 127.0.0.1 --port "$SINK_PORT" --to e@rcpt.test \
  --auth PLAIN --auth-user bench --auth-password wrong < /dev/null > "$T/swaks3.log" 2>&1; then
  fail "swaks with a wrong password was accepted"
fi
grep -q "535 5.7.8" "$T/swaks3.log" || fail "no 535 for a wrong password"
stop_sink

expect_eq "$(json "$T/swaks.json" messages)" 2 "messages"
expect_eq "$(json "$T/swaks.json" e2e_latency.count)" 1 "messages with X-Bench-Sent"
expect_eq "$(json "$T/swaks.json" missing_header)" 1 "messages without it"
eml=$(grep -l "via swaks" "$T"/saved/*.eml) || fail "first message not saved"
grep -q $'^\\.starts with a dot\r$' "$eml" || fail "dot-stuffing not undone: $(cat "$eml")"
grep -q $'^\\.\\.two dots\r$' "$eml" || fail "double dot line wrong"
env_file="${eml%.eml}.env"
grep -q "MAIL FROM:<a@sender.test>" "$env_file" || fail "envelope sender not saved"
grep -q "RCPT TO:<b@rcpt.test>" "$env_file" || fail "envelope recipient not saved"
eml2=$(grep -l "Subject: second" "$T"/saved/*.eml) || fail "second message not saved"
grep -q "MAIL FROM:<>" "${eml2%.eml}.env" || fail "null sender not saved"
[ "$(grep -c RCPT "${eml2%.eml}.env")" == 2 ] || fail "two recipients not saved"
[ "$(json "$T/swaks.json" bytes)" -eq "$(( $(stat -c %s "$eml") + $(stat -c %s "$eml2") ))" ] ||
  fail "byte count differs from the saved messages"

# One line per message: arrival_ns sent_ns, with the sent time of the one that carried it.
[ "$(wc -l < "$T/arrivals")" == 2 ] || fail "arrivals file: $(cat "$T/arrivals")"
grep -q " $sent_ns\$" "$T/arrivals" || fail "X-Bench-Sent not recorded: $(cat "$T/arrivals")"
grep -q " 0\$" "$T/arrivals" || fail "missing header not recorded as 0"

if "$SWAKS" --help 2>&1 | grep -q -- "--tls"; then
  start_sink tls --listen 127.0.0.1:0 --starttls --auth-user bench --auth-password s3cret
  "$SWAKS" --server 127.0.0.1 --port "$SINK_PORT" --from a@sender.test --to b@rcpt.test --tls \
    --auth PLAIN --auth-user bench --auth-password s3cret < /dev/null > "$T/swaks-tls.log" 2>&1 ||
    fail "swaks with STARTTLS failed: $(tail -5 "$T/swaks-tls.log")"
  stop_sink
  grep -q "TLS started with cipher TLSv1" "$T/swaks-tls.log" ||
    fail "no TLS: $(cat "$T/swaks-tls.log")"
  expect_eq "$(json "$T/tls.json" messages)" 1 "messages over STARTTLS"
  expect_eq "$(json "$T/tls.json" tls_sessions)" 1 "TLS sessions"
else
  echo "this swaks has no --tls: the STARTTLS case is not run"
fi

echo "PASS"
