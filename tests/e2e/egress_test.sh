#!/usr/bin/env bash
# Runs the IPv6 egress rotation test in a network namespace of its own (needs root for
# `unshare --net`, iproute2, unbound and python3-aiosmtpd / python3-dnspython from Debian).
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
if ! command -v ip >/dev/null; then echo "FAIL: iproute2 (ip) is not installed"; exit 1; fi
if ! /usr/bin/python3 -c "import aiosmtpd, dns.resolver" 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd or python3-dnspython is missing"; exit 1
fi
if ! why="$(unshare --net true 2>&1)"; then
  echo "SKIP: cannot create a network namespace (unshare --net: ${why:-not permitted})"; exit 0
fi
relayd="$(realpath "$1")"
exec unshare --net /usr/bin/python3 "$(dirname "$0")/egress_test.py" "${relayd}" "${@:2}"
