#!/usr/bin/env bash
# Runs the checks of tools/monitoring/ (promtool from Debian's prometheus, python3-yaml).
set -euo pipefail
if ! command -v promtool >/dev/null; then echo "FAIL: promtool is missing (Debian package prometheus)"; exit 1; fi
if ! /usr/bin/python3 -c "import yaml" 2>/dev/null; then echo "FAIL: python3-yaml is missing"; exit 1; fi
exec /usr/bin/python3 "$(dirname "$0")/monitoring_test.py" "$1"
