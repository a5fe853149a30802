#!/usr/bin/env bash
set -euo pipefail
exec python3 "$(dirname "$0")/idle_connections.py" "$1" 300
