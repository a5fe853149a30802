#!/usr/bin/env bash
# relayctl init -> its records served by a real unbound on loopback -> relayctl check-dns passes;
# then one broken record at a time and check-dns names that problem (unbound from Debian).
set -euo pipefail
if [[ ! -x /usr/sbin/unbound ]]; then echo "FAIL: unbound is not installed"; exit 1; fi
exec /usr/bin/python3 "$(dirname "$0")/check_dns_test.py" "$1"
