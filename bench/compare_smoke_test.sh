#!/bin/bash
# bench/compare --smoke: 200 messages through relayd and through Postfix into the sink, every
# accepted message must arrive. Runs from the runfiles tree, where the binaries sit under
# bench/ and relay/ as in bazel-bin. Postfix's master must start as root: skips otherwise.
set -u
command -v postfix > /dev/null || { echo "SKIP: Debian's postfix package is not installed"; exit 0; }
command -v unbound > /dev/null || [ -x /usr/sbin/unbound ] || { echo "SKIP: unbound is not installed"; exit 0; }
[ "$(id -u)" == 0 ] || { echo "SKIP: Postfix's master needs root"; exit 0; }
# Postfix's private sockets need a short path: not $TEST_TMPDIR.
exec /usr/bin/python3 bench/compare --smoke --bin . --workdir /tmp
