#!/bin/bash
# Our TLS against Debian's OpenSSL 3 command-line peers, over 127.0.0.1:
#   - a certificate from GenerateSelfSignedCertificate verifies under `openssl verify`;
#   - our server (TlsStream) with `openssl s_client`, TLS 1.2 and 1.3, the client verifying our
#     certificate and host name;
#   - our client with `openssl s_server -rev`, TLS 1.2 and 1.3, resuming on the second connection;
#   - our client requiring verification refuses an s_server whose certificate it does not trust.
set -euo pipefail

if ! command -v openssl >/dev/null; then
  echo "FAIL: the openssl command (Debian package openssl) is not installed"
  exit 1
fi

BRIDGE="${TEST_SRCDIR}/${TEST_WORKSPACE}/relay/tls/tls_bridge"
WORK="$(mktemp -d "${TEST_TMPDIR:-/tmp}/interop.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cd "$WORK"
"$BRIDGE" gencert relay.test cert.pem key.pem
openssl x509 -in cert.pem -noout -subject | grep -q 'CN = relay.test' || fail "subject"
openssl x509 -in cert.pem -noout -ext subjectAltName | grep -q 'DNS:relay.test' || fail "SAN"
openssl verify -CAfile cert.pem -verify_hostname relay.test cert.pem >/dev/null || fail "verify"
openssl pkey -in key.pem -pubout > key.pub
openssl x509 -in cert.pem -noout -pubkey > cert.pub
cmp -s key.pub cert.pub || fail "the key does not match the certificate"
[ "$(stat -c %a key.pem)" = 600 ] || fail "key file mode $(stat -c %a key.pem)"

# Our server, openssl s_client.
for version in tls1_2 tls1_3; do
  rm -f port
  "$BRIDGE" server cert.pem key.pem port 2> "server-$version.log" &
  server_pid=$!
  PIDS+=("$server_pid")
  for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
  [ -s port ] || fail "server did not start"
  port=$(cat port)
  out=$(printf 'hello over %s\nQUIT\n' "$version" |
        timeout 20 openssl s_client -connect "127.0.0.1:$port" "-$version" -servername relay.test \
          -CAfile cert.pem -verify_return_error -verify_hostname relay.test -quiet \
          2> "client-$version.log") || fail "s_client $version: $(cat "client-$version.log")"
  wait "$server_pid" || fail "server exited with an error: $(cat "server-$version.log")"
  [ "$out" = "$(printf 'hello over %s\nBYE' "$version")" ] || fail "s_client got: $out"
  expected=TLSv1.2; [ "$version" = tls1_3 ] && expected=TLSv1.3
  grep -q "version=$expected" "server-$version.log" || fail "$(cat "server-$version.log")"
  echo "ok: our server with s_client -$version: $(cat "server-$version.log")"
done

# Our client, openssl s_server, two connections: the second resumes. The bridge retries its
# connect until s_server listens (a probe connection would use up one of -naccept).
for version in tls1_2 tls1_3; do
  port=$(free_port)
  openssl s_server -key key.pem -cert cert.pem -accept "127.0.0.1:$port" "-$version" \
    -naccept 2 -rev > "s_server-$version.log" 2>&1 &
  PIDS+=("$!")
  out=$(printf 'hello\nCLOSE\n' |
        timeout 20 "$BRIDGE" client "$port" relay.test 2 cert.pem 2> "bridge-$version.log") ||
    fail "bridge client $version: $(cat "bridge-$version.log")"
  [ "$out" = "$(printf 'olleh\nolleh')" ] || fail "bridge client got: $out"
  expected=TLSv1.2; [ "$version" = tls1_3 ] && expected=TLSv1.3
  [ "$(grep -c "version=$expected .*verified=yes" "bridge-$version.log")" = 2 ] ||
    fail "$(cat "bridge-$version.log")"
  grep -q "reused=no" <(head -1 "bridge-$version.log") || fail "first connection reused?"
  grep -q "reused=yes" <(tail -1 "bridge-$version.log") ||
    fail "second connection did not resume: $(cat "bridge-$version.log")"
  echo "ok: our client with s_server -$version: $(tr '\n' ' ' < "bridge-$version.log")"
done

# Verification required, certificate not trusted: the handshake fails on our side.
"$BRIDGE" gencert relay.test other.pem other.key
port=$(free_port)
openssl s_server -key key.pem -cert cert.pem -accept "127.0.0.1:$port" -naccept 1 -rev \
  > s_server-untrusted.log 2>&1 &
PIDS+=("$!")
if printf 'hello\nCLOSE\n' | timeout 20 "$BRIDGE" client "$port" relay.test 1 other.pem \
    > untrusted.out 2> untrusted.log; then
  fail "an untrusted certificate was accepted"
fi
grep -q "certificate" untrusted.log || fail "no certificate error: $(cat untrusted.log)"
[ ! -s untrusted.out ] || fail "data flowed over an unverified connection"
echo "ok: untrusted certificate refused: $(cat untrusted.log)"
echo "PASS"
