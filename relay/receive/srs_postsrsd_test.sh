#!/bin/bash
# Our SRS (srs_tool) against postsrsd, started here on 127.0.0.1 with free ports and a secrets
# file of its own: postsrsd reverses what we forward, we reverse what postsrsd forwards, and both
# forward a sender to the same address (the format is libsrs2's on both sides).
set -euo pipefail

POSTSRSD=/usr/sbin/postsrsd
PY=/usr/bin/python3
if [[ ! -x $POSTSRSD ]]; then
  echo "SKIP: postsrsd is not installed (Debian package postsrsd)"
  exit 0
fi
TOOL=$(cd "${TEST_SRCDIR:-.}" && pwd)/${TEST_WORKSPACE:-__main__}/relay/receive/srs_tool
[[ -x $TOOL ]] || TOOL=relay/receive/srs_tool
TMP=${TEST_TMPDIR:-$(mktemp -d)}
printf 'n3w-secret\nold-secret\n' > "$TMP/secrets"
chmod 600 "$TMP/secrets"
DOMAIN=fwd.example

read -r FPORT RPORT < <($PY - <<'PYEOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PYEOF
)
$POSTSRSD -4 -l 127.0.0.1 -f "$FPORT" -r "$RPORT" -s "$TMP/secrets" -d "$DOMAIN" \
  > "$TMP/postsrsd.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT

# Postfix's tcp_table protocol: "get <key>" -> "200 <value>" or "500 ...", URL-encoded.
lookup() {  # port address
  $PY - "$1" "$2" <<'PYEOF'
import socket, sys, time, urllib.parse
port, addr = int(sys.argv[1]), sys.argv[2]
for _ in range(100):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("postsrsd did not listen")
s.sendall(b"get " + urllib.parse.quote(addr, safe="@").encode() + b"\n")
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk: break
    reply += chunk
code, _, value = reply.decode().strip().partition(" ")
print(code, urllib.parse.unquote(value))
PYEOF
}

fail=0
check() {  # description expected actual
  if [[ "$2" == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: expected '$2', got '$3'"; fail=1; fi
}

for sender in alice@example.com Bob.Smith@Example.ORG 'a=b@example.net'; do
  ours=$("$TOOL" forward "$TMP/secrets" "$DOMAIN" "$sender")
  theirs=$(lookup "$FPORT" "$sender")
  # Both ran within the same day unless the test straddles midnight UTC: then ask again.
  if [[ "200 $ours" != "$theirs" ]]; then
    ours=$("$TOOL" forward "$TMP/secrets" "$DOMAIN" "$sender")
    theirs=$(lookup "$FPORT" "$sender")
  fi
  check "forward $sender" "200 $ours" "$theirs"
  check "postsrsd reverses ours ($ours)" "200 $sender" "$(lookup "$RPORT" "$ours")"
  check "we reverse postsrsd's" "$sender" "$("$TOOL" reverse "$TMP/secrets" "$DOMAIN" "${theirs#200 }")"
done

# SRS1: an SRS0 address from another forwarder, forwarded again by both.
hop1=$(printf 'hop1-secret\n' > "$TMP/hop1"; "$TOOL" forward "$TMP/hop1" hop1.example carol@example.com)
ours=$("$TOOL" forward "$TMP/secrets" "$DOMAIN" "$hop1")
check "SRS1 forward equals postsrsd's" "200 $ours" "$(lookup "$FPORT" "$hop1")"
check "postsrsd reverses our SRS1" "200 $hop1" "$(lookup "$RPORT" "$ours")"
check "we reverse our SRS1" "$hop1" "$("$TOOL" reverse "$TMP/secrets" "$DOMAIN" "$ours")"

# The hash is checked case-insensitively on both sides; a changed hash is refused by both.
lower=$(echo "$ours" | tr 'A-Z' 'a-z')
check "postsrsd accepts a lower-cased address" "200" "$(lookup "$RPORT" "$lower" | cut -d' ' -f1)"
check "we accept a lower-cased address" 0 "$("$TOOL" reverse "$TMP/secrets" "$DOMAIN" "$lower" >/dev/null; echo $?)"
ours0=$("$TOOL" forward "$TMP/secrets" "$DOMAIN" dave@example.com)
forged="SRS0=ZZZZ${ours0#SRS0=????}"
check "postsrsd refuses a forged hash" "500" "$(lookup "$RPORT" "$forged" | cut -d' ' -f1)"
ours_forged=$("$TOOL" reverse "$TMP/secrets" "$DOMAIN" "$forged" || true)
check "we refuse a forged hash" "error PERMISSION_DENIED" "${ours_forged%%:*}"
# The second secret still verifies (rotation): postsrsd signs with a file whose order is swapped.
printf 'old-secret\n' > "$TMP/old"
old=$("$TOOL" forward "$TMP/old" "$DOMAIN" erin@example.com)
check "postsrsd accepts the old secret" "200 erin@example.com" "$(lookup "$RPORT" "$old")"

exit $fail
