#!/bin/bash
# bench/compare --smoke for the TLS systems: 200 messages through relayd with STARTTLS on both
# sides and through chasquid (STARTTLS + AUTH in, STARTTLS out), every accepted message must
# arrive and TLS must be used on both sides. chasquid needs root (a mount namespace for its
# resolv.conf, port 53 for its resolver); compare prints a SKIP line with the reason when it
# cannot run it for want of root.
set -u
fail() { echo "FAIL: $1"; exit 1; }
[ -x /usr/sbin/unbound ] || command -v unbound > /dev/null || fail "unbound is not installed"
command -v chasquid > /dev/null || [ -x /usr/sbin/chasquid ] ||
  fail "Debian's chasquid is not installed"
exec /usr/bin/python3 bench/compare --smoke --systems relayd-tls,chasquid --bin . --workdir /var/tmp
