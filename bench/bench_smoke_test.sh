#!/usr/bin/env bash
# Smoke run of a benchmark binary (so that it cannot rot): runs it briefly and fails if it fails
# or reports an error. Arguments: the binary, then its flags.
set -euo pipefail
out="$("$@" 2>&1)" || { echo "$out"; exit 1; }
echo "$out"
if grep -q "ERROR OCCURRED" <<<"$out"; then exit 1; fi
