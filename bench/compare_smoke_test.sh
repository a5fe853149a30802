#!/bin/bash
# bench/compare --smoke: 200 messages through relayd and through Postfix into the sink, every
# accepted message must arrive. Runs from the runfiles tree, where the binaries sit under
# bench/ and relay/ as in bazel-bin. Postfix's master must start as root: skips otherwise.
set -u
skip() { echo "SKIP: $1"; exit 0; }
fail() { echo "FAIL: $1"; exit 1; }
[ -x /usr/sbin/postfix ] || command -v postfix > /dev/null || fail "Debian's postfix is missing"
[ -x /usr/sbin/unbound ] || command -v unbound > /dev/null || fail "unbound is not installed"
[ "$(id -u)" == 0 ] || skip "Postfix's master needs root"
# Postfix's private sockets need a short path, not $TEST_TMPDIR; "postfix check" fails
# without a message under /tmp on this machine, so the run lives under /var/tmp.
exec /usr/bin/python3 bench/compare --smoke --bin . --workdir /var/tmp
