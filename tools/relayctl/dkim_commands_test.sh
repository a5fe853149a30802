#!/bin/bash
# relayctl dkim-keygen and dkim-verify: generated keys have mode 0600 and a TXT record in strings
# of at most 255 bytes; a message signed with them (dual RSA + Ed25519) verifies through a real
# DNS server (unbound on 127.0.0.1, a port picked free at run time) and fails once altered.
set -uo pipefail
fail() { echo "FAIL: $*"; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
CMD="$(pwd)/tools/relayctl/dkim_commands_testmain"
SIGN="$(pwd)/dkim/dkim_sign_tool"
RELAYD="$(pwd)/relay/relayd"
command -v unbound >/dev/null || fail "unbound is not installed"
W="${TEST_TMPDIR:-$(mktemp -d)}/relayctl-dkim"
rm -rf "$W"; mkdir -p "$W"; cd "$W"

"$CMD" dkim-keygen --domain example.test --selector r1 --algo rsa2048 --out r1.pem > r1.out \
  || fail "keygen rsa2048"
"$CMD" dkim-keygen --domain example.test --selector e1 --algo ed25519 --out e1.pem > e1.out \
  || fail "keygen ed25519"
"$CMD" dkim-keygen --domain example.test --selector big --algo rsa4096 > big.out \
  || fail "keygen rsa4096 with the default file name"
[[ -f example.test.big.pem ]] || fail "default key file name"
for f in r1.pem e1.pem example.test.big.pem; do
  [[ "$(stat -c %a "$f")" == 600 ]] || fail "$f has mode $(stat -c %a "$f")"
done
grep -q '^name: r1._domainkey.example.test.$' r1.out || fail "record name: $(cat r1.out)"
# A 4096-bit key's record needs several strings, none longer than 255 bytes.
[[ $(grep -c '^value: ' big.out) -ge 3 ]] || fail "4096-bit record not split: $(cat big.out)"
while read -r line; do
  v="${line#value: }"
  (( ${#v} <= 255 )) || fail "TXT string of ${#v} bytes"
done < <(grep '^value: ' big.out r1.out e1.out | cut -d: -f2- | sed 's/^ //')
grep -q 'IN TXT ( "v=DKIM1; k=ed25519; p=' e1.out || fail "zone line: $(cat e1.out)"
"$CMD" dkim-keygen --domain example.test --selector r1 --algo rsa2048 --out r1.pem 2>/dev/null
[[ $? == 1 ]] || fail "keygen must not overwrite an existing key"

# dkim-record: the same record again from the key file, and from a config's [[dkim.key]] entries;
# "record:" is the whole value as one string.
"$CMD" dkim-record r1.pem --domain example.test --selector r1 > r1.again || fail "dkim-record file"
diff <(grep -v '^private key' r1.out | grep -v '^publish') r1.again \
  || fail "dkim-record differs from what keygen printed"
[[ "$(sed -n 's/^record: //p' r1.again)" == "$(grep '^value: ' r1.out | sed 's/^value: //' | tr -d '\n')" ]] \
  || fail "record: is not the strings joined: $(cat r1.again)"
"$RELAYD" --init cfg --domain example.test > init.out 2>&1 || fail "relayd --init: $(cat init.out)"
"$CMD" dkim-record --config cfg/relayd.toml > both.out || fail "dkim-record --config: $(cat both.out)"
[[ $(grep -c '^record: v=DKIM1' both.out) == 2 ]] || fail "two records: $(cat both.out)"
ed_selector="$(sed -n 's/^selector = "\(ed[^"]*\)"/\1/p' cfg/relayd.toml)"
[[ -n "$ed_selector" ]] || fail "no Ed25519 key in the config relayd --init wrote"
"$CMD" dkim-record --config cfg/relayd.toml --selector "$ed_selector" > e1.again \
  || fail "dkim-record --selector"
grep -q "^record: v=DKIM1; k=ed25519; p=" e1.again && [[ $(grep -c '^record: ' e1.again) == 1 ]] \
  || fail "--selector $ed_selector: $(cat e1.again)"
"$CMD" dkim-record --config cfg/relayd.toml --domain other.test 2>/dev/null
[[ $? == 1 ]] || fail "dkim-record for a domain without keys must fail"
"$CMD" dkim-keygen --domain example.test --selector x --algo dsa 2>/dev/null
[[ $? == 2 ]] || fail "unknown algorithm must be a usage error"

port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
zone_line() {  # the "( ... )" strings of the keygen output
  sed -n 's/.* IN TXT ( \(.*\) )$/\1/p' "$1"
}
cat > unbound.conf <<CONF
server:
  interface: 127.0.0.1
  port: $port
  do-ip6: no
  do-tcp: yes
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "$W"
  pidfile: "$W/unbound.pid"
  do-daemonize: no
  access-control: 127.0.0.0/8 allow
  local-zone: "example.test." static
  local-data: 'r1._domainkey.example.test. 300 IN TXT $(zone_line r1.out)'
  local-data: 'e1._domainkey.example.test. 300 IN TXT $(zone_line e1.out)'
  local-data: 'big._domainkey.example.test. 300 IN TXT $(zone_line big.out)'
remote-control:
  control-enable: no
CONF
unbound -d -c unbound.conf > unbound.log 2>&1 &
UNBOUND=$!
trap 'kill $UNBOUND 2>/dev/null; wait $UNBOUND 2>/dev/null' EXIT

printf 'From: a@example.test\nTo: b@example.net\nSubject: hello\n\nbody\n' > msg.txt
"$SIGN" --key example.test:r1:r1.pem --key example.test:e1:e1.pem --key example.test:big:example.test.big.pem \
  --crlf msg.txt > signed.eml || fail "signing"
for _ in $(seq 1 50); do
  out="$("$CMD" dkim-verify signed.eml --dns-server "127.0.0.1:$port")" && break
  sleep 0.2
done
echo "$out"
[[ $(grep -c ': pass$' <<<"$out") == 3 ]] || { cat unbound.log; fail "dkim-verify: $out"; }

sed 's/^body/altered body/' signed.eml > altered.eml
out="$("$CMD" dkim-verify altered.eml --dns-server "127.0.0.1:$port")"
rc=$?
echo "$out"
[[ $rc == 1 && $(grep -c 'fail (body hash mismatch)' <<<"$out") == 3 ]] || fail "altered: $out"

"$SIGN" --key example.test:nokey:r1.pem --crlf msg.txt > nokey.eml || fail "signing nokey"
out="$("$CMD" dkim-verify nokey.eml --dns-server "127.0.0.1:$port")"
echo "$out"
grep -q 'permerror (no key' <<<"$out" || fail "missing key: $out"
out="$("$CMD" dkim-verify msg.txt --dns-server "127.0.0.1:$port")"
[[ $? == 1 && "$out" == "no DKIM-Signature" ]] || fail "unsigned message: $out"
echo "PASS"
