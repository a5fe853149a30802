#!/usr/bin/env bash
# Walks the README's operator guide in a network namespace of its own (needs root for
# `unshare --net`, iproute2, unbound, swaks, setpriv and python3-aiosmtpd / -dnspython / -dkim).
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"
for tool in unbound ip swaks setpriv useradd; do
  command -v "${tool}" >/dev/null || { echo "FAIL: ${tool} is not installed"; exit 1; }
done
if ! /usr/bin/python3 -c "import aiosmtpd, dns.resolver, dkim" 2>/dev/null; then
  echo "FAIL: python3-aiosmtpd, python3-dnspython or python3-dkim is missing"; exit 1
fi
if [[ "$(id -u)" != 0 ]]; then echo "SKIP: needs root (a system user, a network namespace)"; exit 0; fi
if ! why="$(unshare --net true 2>&1)"; then
  echo "SKIP: cannot create a network namespace (unshare --net: ${why:-not permitted})"; exit 0
fi
exec unshare --net /usr/bin/python3 "$(dirname "$0")/guide_test.py" "$(realpath "$1")" \
  "$(realpath "$2")" "${@:3}"
