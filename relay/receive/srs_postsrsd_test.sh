#!/bin/bash
# Runs srs_postsrsd_test.py with Debian's python.
set -euo pipefail
DIR=$(cd "${TEST_SRCDIR:-.}" && pwd)/${TEST_WORKSPACE:-__main__}/relay/receive
exec /usr/bin/python3 "$DIR/srs_postsrsd_test.py" "$DIR/srs_tool"
