#!/bin/bash
# Runs arc_interop_test.py with Debian's python (python3-dkim lives there).
set -euo pipefail
DIR=$(cd "${TEST_SRCDIR:-.}" && pwd)/${TEST_WORKSPACE:-__main__}/dkim
if ! command -v openssl >/dev/null; then
  echo "FAIL: openssl is not installed (Debian package openssl)"
  exit 1
fi
exec /usr/bin/python3 "$DIR/arc_interop_test.py" "$DIR/arc_tool"
