#!/usr/bin/env bash
# Runs the AUTH throttling end-to-end test with the built relayd: inside a network namespace of
# its own when one can be made (root, `unshare --net`, iproute2), so that it can also show IPv6
# /64 grouping from addresses it assigns there; otherwise on the host's loopback, where that part
# is skipped with its reason.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"
relayd="$(realpath "$1")"
test_py="$(dirname "$0")/auth_throttle_test.py"
if command -v ip >/dev/null && why="$(unshare --net true 2>&1)"; then
  exec unshare --net /usr/bin/python3 "${test_py}" "${relayd}" --netns "${@:2}"
fi
echo "no network namespace here (${why:-iproute2 (ip) is not installed}): IPv6 /64 part skipped"
exec /usr/bin/python3 "${test_py}" "${relayd}" "${@:2}"
