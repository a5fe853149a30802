#!/bin/bash
# Runs auth_results_interop_test.py with Debian's python (python3-authres lives there).
set -euo pipefail
DIR=$(cd "${TEST_SRCDIR:-.}" && pwd)/${TEST_WORKSPACE:-__main__}/relay/receive
exec /usr/bin/python3 "$DIR/auth_results_interop_test.py" "$DIR/auth_results_tool"
