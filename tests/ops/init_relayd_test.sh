#!/usr/bin/env bash
# The directory `relayctl init` writes runs relayd as it is: certificate, both DKIM keys, the
# egress pool and every limit load. Only the listeners move to loopback port 0 (the test must not
# take 587/465) and one shard is used. relayd is started, must report ready, and must stop
# cleanly on SIGTERM.
set -euo pipefail
relayctl="$(realpath "$1")"
relayd="$(realpath "$2")"
T="$(mktemp -d "${TEST_TMPDIR:-/tmp}/init-relayd.XXXXXX")"
conf="${T}/relay/relayd.toml"

"${relayctl}" init example.test --dir "${T}/relay" --ipv4 192.0.2.10 --ipv6 2001:db8::25 \
  --ipv6 2001:db8:1::/64 > "${T}/records.zone"
grep -q 'IN MX    10 mail.example.test.' "${T}/records.zone"
# The metrics endpoint (a string, on loopback already) moves to a free port too.
sed -i -e 's/^listen = \[.*/listen = ["127.0.0.1:0"]/' \
  -e 's/^listen_tls = .*/listen_tls = ["127.0.0.1:0"]/' \
  -e 's/^listen = "127.0.0.1:9587"/listen = "127.0.0.1:0"/' \
  -e 's/^shards = 0/shards = 1/' -e 's/^segment_bytes = .*/segment_bytes = 8388608/' "${conf}"
# The control socket path must stay under 108 bytes: put it in a short directory of /tmp.
sock_dir="$(mktemp -d /tmp/relay-ctl.XXXXXX)"
sed -i "s#^control_socket = .*#control_socket = \"${sock_dir}/control.sock\"#" "${conf}"
# Commented examples (port 25's [receive]) may name 0.0.0.0; settings must not.
if grep -q '^[^#]*0\.0\.0\.0' "${conf}"; then
  echo "FAIL: a listener was not moved to loopback"; exit 1
fi

"${relayd}" --config "${conf}" > "${T}/relayd.log" 2>&1 &
pid=$!
cleanup() { kill -KILL "${pid}" 2>/dev/null || true; rm -rf "${sock_dir}"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  if grep -q "relayd ready" "${T}/relayd.log"; then break; fi
  if ! kill -0 "${pid}" 2>/dev/null; then break; fi
  sleep 0.1
done
cat "${T}/relayd.log"
if ! grep -q "relayd ready" "${T}/relayd.log"; then echo "FAIL: relayd did not start"; exit 1; fi
# The certificate init made is the one relayd serves (it would generate one if it were missing).
grep -q "TLS certificate loaded: subject /CN=mail.example.test" "${T}/relayd.log"
if grep -q "generated a SELF-SIGNED" "${T}/relayd.log"; then
  echo "FAIL: relayd generated its own certificate"; exit 1
fi
kill -TERM "${pid}"
rc=0
wait "${pid}" || rc=$?
cat "${T}/relayd.log" | tail -2
if [[ "${rc}" -ne 0 ]]; then echo "FAIL: relayd exited ${rc} on SIGTERM"; exit 1; fi
grep -q "stopped cleanly" "${T}/relayd.log"
echo "ok: relayd ran the configuration relayctl init wrote and stopped cleanly"
