#!/bin/bash
# Interoperability: messages signed by the relay's signer (RSA, Ed25519, dual; relaxed and simple)
# verify with python3-dkim's dkimverify and with opendkim-testmsg, the public keys served by a
# real DNS server (unbound) on 127.0.0.1 inside a private network and mount namespace; a message
# altered after signing fails in both. Keys come from openssl, the records from our code.
set -uo pipefail

skip() { echo "SKIP: $*"; exit 0; }
fail() { echo "FAIL: $*"; exit 1; }

SIGN_TOOL="$(pwd)/dkim/dkim_sign_tool"
[[ -x "$SIGN_TOOL" ]] || fail "dkim_sign_tool not found"
UNBOUND_TEMPLATE="$(pwd)/tools/testing/unbound.conf.in"  # the project's one unbound configuration
[[ -r "$UNBOUND_TEMPLATE" ]] || fail "tools/testing/unbound.conf.in not found"
PATH="$PATH:/usr/sbin:/sbin"
for tool in dkimverify opendkim-testmsg unbound unshare ip openssl mount; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed (tools/install-deps --test)"
done
[[ "$(id -u)" == 0 ]] || skip "needs root for unshare --net --mount (private DNS on loopback)"
/usr/bin/python3 -c "import nacl" 2>/dev/null || fail "python3-nacl missing (dkimverify needs it for Ed25519)"
/usr/bin/python3 -c "import dns.resolver" 2>/dev/null || fail "python3-dnspython missing (dkimverify's DNS)"
unshare --net --mount true 2>/dev/null || skip "unshare --net --mount not permitted here"

WORK="${TEST_TMPDIR:-$(mktemp -d)}/interop"
rm -rf "$WORK"; mkdir -p "$WORK"
cd "$WORK"
DOMAIN=example.test

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null || fail "openssl RSA"
openssl genpkey -algorithm ed25519 -out ed.pem 2>/dev/null || fail "openssl Ed25519"

# TXT record in unbound's syntax: strings of at most 255 bytes.
txt() {
  local record
  record="$("$SIGN_TOOL" --record "$1")" || fail "record for $1"
  local out="" i
  for ((i = 0; i < ${#record}; i += 255)); do out+=" \"${record:i:255}\""; done
  echo "$out"
}
zones="  local-zone: \"$DOMAIN.\" static
  local-data: 'rsa._domainkey.$DOMAIN. 300 IN TXT $(txt rsa.pem)'
  local-data: 'ed._domainkey.$DOMAIN. 300 IN TXT $(txt ed.pem)'"
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: "&" in a replacement is literal
conf="$(cat "$UNBOUND_TEMPLATE")"
conf="${conf//@PORT@/53}"
conf="${conf//@DIR@/$WORK}"
conf="${conf//@LOGFILE@/}"
conf="${conf//@PIDFILE@/$WORK/unbound.pid}"
conf="${conf//@EXTRA@/}"
conf="${conf//@ZONES@/$zones}"
printf '%s\n' "$conf" > unbound.conf
echo "nameserver 127.0.0.1" > resolv.conf

cat > message.txt <<'MSG'
From: Sender <sender@example.test>
To: Receiver <rcpt@example.net>
Subject: Interop   check
  with a folded subject
Date: Sun, 22 Nov 2026 20:00:00 +0000
Message-ID: <interop-1@example.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello,   this body has	tabs and  runs of spaces.   
 A line with leading space.


Trailing empty lines follow.


MSG

cat > inner.sh <<'INNER'
set -uo pipefail
ip link set lo up || exit 3
unbound -d -c unbound.conf > unbound.log 2>&1 &
UNBOUND=$!
trap 'kill $UNBOUND 2>/dev/null; wait $UNBOUND 2>/dev/null' EXIT
mount --bind resolv.conf /etc/resolv.conf || exit 4
for _ in $(seq 1 50); do
  if /usr/bin/python3 -c "import dns.resolver; dns.resolver.resolve('ed._domainkey.example.test', 'TXT')" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
/usr/bin/python3 -c "import dns.resolver; dns.resolver.resolve('ed._domainkey.example.test', 'TXT')" || exit 5

status=0
report() {  # report TOOL NAME EXPECT RC OUTPUT
  if [[ "$3" == pass && $4 -ne 0 ]] || [[ "$3" == fail && $4 -eq 0 ]]; then
    echo "FAIL: $1 $2: want $3, got rc=$4: $5"; status=1
  else
    echo "ok: $1 $2: $3"
  fi
}
opendkim_check() {  # opendkim-testmsg verifies every signature; non-zero exit on a failure.
  local out rc
  out="$(opendkim-testmsg -C < "$3" 2>&1)"; rc=$?
  report opendkim-testmsg "$1" "$2" $rc "$out"
}
# Each message carries an RSA and an Ed25519 signature; dkimverify checks one per run (--index),
# opendkim-testmsg all of them. dkimverify's start-up costs seconds on this loaded machine, so the
# dkimverify program itself checks RSA/relaxed and Ed25519/simple, and the other signatures and
# the altered messages go through one python3 process calling the same
# dkim.DKIM(message).verify(index) that dkimverify calls.
PY_CASES=()
while read -r name canon keys indexes cli_index; do
  args=()
  for k in ${keys//,/ }; do args+=(--key "example.test:$k:$k.pem"); done
  "$SIGN_TOOL" "${args[@]}" --canon "$canon" --crlf message.txt > "$name.eml" || {
    echo "FAIL: signing $name"; status=1; continue; }
  for idx in ${indexes//,/ }; do
    if [[ "$idx" == "$cli_index" ]]; then
      out="$(dkimverify --index "$idx" < "$name.eml" 2>&1)"; rc=$?
      report dkimverify "$name[$idx]" pass $rc "$out"
    else
      PY_CASES+=("$name.eml:$idx")
    fi
  done
  opendkim_check "$name" pass "$name.eml"
  sed 's/Trailing empty lines follow\./Trailing empty lines follow!/' "$name.eml" > "$name.body.eml"
  sed 's/^Subject: Interop/Subject: Changed/' "$name.eml" > "$name.subject.eml"
  # Every b= value with its first character changed: only the key operation can tell.
  /usr/bin/python3 - "$name.eml" "$name.sig.eml" <<'PY'
import re, sys
data = open(sys.argv[1], 'rb').read()
def flip(m):
    c = m.group(2)
    return m.group(1) + (b'B' if c == b'A' else b'A')
open(sys.argv[2], 'wb').write(re.sub(rb'(\sb=)(.)', flip, data))
PY
  for variant in body subject sig; do
    opendkim_check "$name-$variant" fail "$name.$variant.eml"
    for idx in ${indexes//,/ }; do PY_CASES+=("$name.$variant.eml:$idx"); done
  done
done <<CASES
dual-relaxed relaxed rsa,ed 0,1 0
dual-simple simple rsa,ed 0,1 1
CASES
/usr/bin/python3 - "${PY_CASES[@]}" <<'PY' || status=1
import sys, dkim
bad = 0
for case in sys.argv[1:]:
    path, idx = case.rsplit(':', 1)
    idx = int(idx)
    parts = path.split('.')
    variant = parts[1] if len(parts) == 3 else 'signed'
    want = variant == 'signed'
    try:
        got = bool(dkim.DKIM(open(path, 'rb').read()).verify(idx))
    except Exception as e:
        got = False
    ok = got == want
    bad += not ok
    print('%s: python3-dkim %s[%d]: want %s' % ('ok' if ok else 'FAIL', path, idx,
                                               'pass' if want else 'fail'))
sys.exit(1 if bad else 0)
PY
exit $status
INNER
export SIGN_TOOL
unshare --net --mount bash inner.sh
rc=$?
case $rc in
  0) echo "PASS: all interoperability checks" ;;
  3|4) skip "cannot set up the private network/mount namespace (rc=$rc)" ;;
  5) cat unbound.log; fail "unbound did not answer on 127.0.0.1:53" ;;
  *) fail "interoperability checks failed (rc=$rc)" ;;
esac
