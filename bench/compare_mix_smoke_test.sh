#!/bin/bash
# bench/compare --workload provider-mix --smoke: 200 messages to the provider mix through relayd
# with the shipped shaping rules and with their rates lifted; every provider's sink must get mail.
set -u
fail() { echo "FAIL: $1"; exit 1; }
[ -x /usr/sbin/unbound ] || command -v unbound > /dev/null || fail "unbound is not installed"
exec /usr/bin/python3 bench/compare --smoke --workload provider-mix --mix-window-s 12 --bin . \
  --workdir /tmp  # relayd's control socket path must stay under 108 bytes
