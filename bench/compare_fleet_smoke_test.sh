#!/bin/bash
# bench/compare --smoke for a fleet: one relayd against one and three nodes sharing a Redis; every
# accepted message must arrive.
set -u
fail() { echo "FAIL: $1"; exit 1; }
[ -x /usr/sbin/unbound ] || command -v unbound > /dev/null || fail "unbound is not installed"
command -v redis-server > /dev/null || fail "redis-server is not installed"
command -v openssl > /dev/null || fail "openssl is not installed"
exec /usr/bin/python3 bench/compare --smoke --systems relayd,relayd-fleet1,relayd-fleet3 --bin . \
  --workdir /var/tmp
