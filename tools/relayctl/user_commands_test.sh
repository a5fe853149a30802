#!/bin/bash
# The relayctl user commands end to end on a temporary config directory.
set -uo pipefail

CTL="${TEST_SRCDIR}/${TEST_WORKSPACE}/tools/relayctl/user_commands_testmain"
DIR="$(mktemp -d "${TEST_TMPDIR:-/tmp}/config.XXXXXX")"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # expected-exit-code stdin-text args...
  local want=$1 input=$2
  shift 2
  printf '%s' "$input" | "$CTL" "$@" --config-dir "$DIR" > out.txt 2> err.txt
  local got=$?
  [ "$got" = "$want" ] || fail "relayctl $* exited $got, wanted $want: $(cat err.txt)"
}
cd "$DIR"

run 0 $'s3cret pass\n' user-add app@Example.com --allow @example.org --allow=news@example.com
[ -f "$DIR/users" ] || fail "no users file"
[ "$(stat -c %a "$DIR/users")" = 600 ] || fail "users file mode $(stat -c %a "$DIR/users")"
grep -q '^app@example.com \$scrypt\$ln=15,r=8,p=1\$[^ ]* @example.org,news@example.com$' users ||
  fail "unexpected line: $(cat users)"
grep -q 's3cret' users && fail "the password is in the file"
run 0 $'other\n' user-add reports --scrypt-log2-n 12
run 1 $'x\n' user-add app@example.com          # Already there.
grep -q "already exists" err.txt || fail "$(cat err.txt)"
run 2 '' user-add bob --password hunter2         # Never from the command line.
grep -q "never from arguments" err.txt || fail "$(cat err.txt)"
run 1 '' user-add carol                          # No password on stdin.
run 2 '' user-add                                # Missing user.
run 1 $'x\n' user-add eve --scrypt-log2-n 30           # Cost over the memory bound.
grep -q "scrypt parameters" err.txt || fail "$(cat err.txt)"
grep -q '^reports \$scrypt\$ln=12,r=8,p=1\$' users || fail "cost not recorded: $(cat users)"

run 0 '' user-list
[ "$(cat out.txt)" = "$(printf 'app@example.com\t@example.org,news@example.com\nreports\t-')" ] ||
  fail "user-list: $(cat out.txt)"

# Checks at the default cost (N=2^15) are slow on a busy machine (and under ASAN): only two.
run 0 $'s3cret pass\n' authenticate app@example.com
run 1 $'other\n' authenticate nobody
run 0 $'other\r\n' authenticate reports
run 1 $'othe\n' authenticate reports
grep -q "authentication failed" err.txt || fail "$(cat err.txt)"
printf 'pw\n' | "$CTL" user-add Cased@Example.NET --scrypt-log2-n 12 --config-dir "$DIR" 2> err.txt ||
  fail "$(cat err.txt)"
run 0 $'pw\n' authenticate Cased@example.net
run 0 '' user-del Cased@EXAMPLE.net

# Comments an operator wrote survive edits.
sed -i '1a # ops: keep this comment' users
run 0 '' user-del reports
run 1 '' user-del reports
grep -q '^# ops: keep this comment$' users || fail "comment lost: $(cat users)"
run 0 '' user-list
[ "$(cut -f1 out.txt)" = "app@example.com" ] || fail "after user-del: $(cat out.txt)"

# A broken file is reported with its line, and nothing is changed.
cp users users.good
echo 'broken-line-without-hash' >> users
run 1 $'x\n' user-add dave
grep -q "users line 4: expected NAME" err.txt || fail "$(cat err.txt)"
head -3 users | cmp -s - users.good || fail "file changed"

# At a terminal the password is prompted for twice with echo off (needs a pty: python3).
cp users.good users
if command -v python3 > /dev/null; then
  python3 - "$CTL" "$DIR" <<'PY' || fail "terminal prompt"
import os, pty, select, sys, time
ctl, d = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(ctl, [ctl, "user-add", "tty@example.com", "--scrypt-log2-n", "12",
                   "--config-dir", d])
out = b""
def read_until(marker):
    global out
    deadline = time.time() + 20
    while marker not in out and time.time() < deadline:
        if not select.select([fd], [], [], 1)[0]:
            continue
        try:
            out += os.read(fd, 1024)
        except OSError:
            break
    if marker not in out:
        os.kill(pid, 9)
        sys.exit("no %r in %r" % (marker, out))
read_until(b"Password: ")
os.write(fd, b"typed-secret\n")
read_until(b"(again): ")
os.write(fd, b"typed-secret\n")
read_until(b"added user")
_, status = os.waitpid(pid, 0)
if b"typed-secret" in out:
    sys.exit("the password was echoed: %r" % out)
if os.WEXITSTATUS(status) != 0:
    sys.exit("exit %d: %r" % (os.WEXITSTATUS(status), out))
PY
  run 0 $'typed-secret\n' authenticate tty@example.com
else
  echo "FAIL: python3 missing, terminal prompt not tested"; exit 1
fi
echo PASS
