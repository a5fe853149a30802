# Checks for the shell tests, sourced: `check DESCRIPTION COMMAND...` runs COMMAND and prints
# "ok   DESCRIPTION" or "FAIL DESCRIPTION", counting both in checks_passed and checks_failed;
# `quiet COMMAND...` runs it without its output (for a check whose command talks).
checks_passed=0
checks_failed=0
check() {
  local what="$1"; shift
  if "$@"; then
    echo "ok   ${what}"; checks_passed=$((checks_passed + 1))
  else
    echo "FAIL ${what}"; checks_failed=$((checks_failed + 1))
  fi
}
quiet() { "$@" > /dev/null 2>&1; }
