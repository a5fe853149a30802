#!/bin/bash
# bench/compare --smoke for relayd with a webhook: 200 messages through relayd, every accepted
# message must arrive, and its received and delivered events must reach the HTTPS webhook
# receiver with signatures that check.
set -u
fail() { echo "FAIL: $1"; exit 1; }
[ -x /usr/sbin/unbound ] || command -v unbound > /dev/null || fail "unbound is not installed"
command -v openssl > /dev/null || fail "openssl is not installed"
exec /usr/bin/python3 bench/compare --smoke --systems relayd,relayd-events --bin . \
  --workdir /var/tmp
