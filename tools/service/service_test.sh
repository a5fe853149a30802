#!/usr/bin/env bash
# The service files under real tools: `service_test.sh unit RELAYCTL` runs systemd-analyze verify
# (and its offline security score) on relayd.service; `service_test.sh logrotate` runs
# logrotate -d and then a forced rotation on relayd.logrotate; `service_test.sh acme` installs
# certificates with acme-reload-hook. Paths are rewritten into $TEST_TMPDIR; nothing outside it
# is touched. A missing tool is a failure that names its package.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"
here="$(cd "$(dirname "$0")" && pwd)"
mode="$1"
T="$(mktemp -d "${TEST_TMPDIR:-/tmp}/service.XXXXXX")"
. "${here}/../testing/checks.sh"

case "${mode}" in
unit)
  if ! command -v systemd-analyze >/dev/null; then
    echo "FAIL: systemd-analyze is not installed (Debian package systemd)"; exit 1
  fi
  relayctl="$(realpath "$2")"
  # ExecStart must name an executable that exists: a stand-in at a path of our own.
  printf '#!/bin/sh\nexit 0\n' > "${T}/relayd"
  chmod 755 "${T}/relayd"
  sed "s#/usr/sbin/relayd#${T}/relayd#" "${here}/relayd.service" > "${T}/relayd.service"
  check "ExecStart was rewritten" grep -q "^ExecStart=${T}/relayd --config" "${T}/relayd.service"
  # --man=no: the Documentation= man pages come with the Debian package (//tools/package:deb_test
  # checks that it has them), not with this machine.
  out="$(systemd-analyze verify --man=no "${T}/relayd.service" 2>&1)" && rc=0 || rc=$?
  echo "${out}"
  check "systemd-analyze verify exits 0" test "${rc}" -eq 0
  # Unknown or misspelt keys are only warnings (exit 0): any output at all is a failure.
  check "systemd-analyze verify prints nothing" test -z "${out}"

  score="$(systemd-analyze security --offline=true "${T}/relayd.service" 2>&1 |
           sed -n 's/.*Overall exposure level for relayd.service: \([0-9.]*\).*/\1/p')"
  echo "exposure: ${score:-unknown}"
  check "systemd-analyze security: exposure at most 2.0 (got ${score:-none})" \
    awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
  caps="$(sed -n 's/^AmbientCapabilities=//p' "${T}/relayd.service")"
  check "the only capability is CAP_NET_BIND_SERVICE (${caps})" \
    test "${caps}" = CAP_NET_BIND_SERVICE

  # The stop timeout must exceed the drain grace the config written by relayctl init asks for.
  "${relayctl}" init example.test --dir "${T}/etc" > /dev/null 2>&1
  grace_ms="$(sed -n 's/^grace_ms = //p' "${T}/etc/relayd.toml")"
  stop_s="$(sed -n 's/^TimeoutStopSec=//p' "${T}/relayd.service")"
  check "TimeoutStopSec ${stop_s}s above shutdown.grace_ms ${grace_ms}" \
    test "$((stop_s * 1000))" -gt "${grace_ms:-999999999}"
  check "ExecStart reads the config relayctl init writes by default" \
    grep -q -- "--config /etc/relay/relayd.toml$" "${here}/relayd.service"
  check "the unit does not start before that config exists" \
    grep -qx "ConditionPathExists=/etc/relay/relayd.toml" "${here}/relayd.service"
  ;;

template)
  if ! command -v systemd-analyze >/dev/null; then
    echo "FAIL: systemd-analyze is not installed (Debian package systemd)"; exit 1
  fi
  unit="$(realpath "$2")"
  printf '#!/bin/sh\nexit 0\n' > "${T}/relayd"
  chmod 755 "${T}/relayd"
  sed "s#/usr/sbin/relayd#${T}/relayd#" "${unit}" > "${T}/relayd@.service"
  # An instance of the template, as `systemctl start relayd@a` makes it.
  cp "${T}/relayd@.service" "${T}/relayd@a.service"
  out="$(systemd-analyze verify --man=no "${T}/relayd@a.service" 2>&1)" && rc=0 || rc=$?
  echo "${out}"
  check "systemd-analyze verify relayd@a exits 0" test "${rc}" -eq 0
  check "systemd-analyze verify relayd@a prints nothing" test -z "${out}"
  check "instance a reads /etc/relay/a/relayd.toml" \
    grep -qx "ExecStart=${T}/relayd --config /etc/relay/%i/relayd.toml" "${T}/relayd@.service"
  check "and starts only once it exists" \
    grep -qx "ConditionPathExists=/etc/relay/%i/relayd.toml" "${unit}"
  check "it writes only its own spool and logs" \
    grep -qx "ReadWritePaths=/var/spool/relay/%i /var/log/relay/%i" "${unit}"
  check "its control socket is in /run/relay/a" grep -qx "RuntimeDirectory=relay/%i" "${unit}"
  check "no path of the single unit is left" bash -c '! grep -q "/etc/relay/relayd.toml" "$1"' _ \
    "${unit}"
  ;;

logrotate)
  if ! command -v logrotate >/dev/null; then
    echo "FAIL: logrotate is not installed (Debian package logrotate)"; exit 1
  fi
  mkdir "${T}/log"
  me="$(id -un) $(id -gn)"
  sed -e "s#/var/log/relay#${T}/log#" -e "s#relay relay#${me}#" \
      -e "s#systemctl reload relayd.service.*#echo hup >> ${T}/hups#" \
      "${here}/relayd.logrotate" > "${T}/relayd.logrotate"
  chmod 644 "${T}/relayd.logrotate"
  check "postrotate was rewritten" grep -q "echo hup" "${T}/relayd.logrotate"
  echo '{"event":"delivered"}' > "${T}/log/delivery-0.log"
  echo '{"event":"deferred"}' > "${T}/log/delivery-1.log"
  out="$(logrotate -d -s "${T}/state" "${T}/relayd.logrotate" 2>&1)" && rc=0 || rc=$?
  echo "${out}"
  check "logrotate -d exits 0" test "${rc}" -eq 0
  check "logrotate -d reports no error" bash -c '! grep -qi "error" <<< "$1"' _ "${out}"
  check "logrotate -d considers both shard logs" grep -q "considering log ${T}/log/delivery-1.log" \
    <<< "${out}"
  check "logrotate -d changed nothing" test ! -e "${T}/log/delivery-0.log.1"

  logrotate -f -s "${T}/state" "${T}/relayd.logrotate"
  check "forced rotation moved delivery-0.log" grep -q delivered "${T}/log/delivery-0.log.1"
  check "forced rotation moved delivery-1.log" grep -q deferred "${T}/log/delivery-1.log.1"
  check "a new empty delivery-0.log was created" test -f "${T}/log/delivery-0.log" -a \
    ! -s "${T}/log/delivery-0.log"
  check "created with mode 0640" test "$(stat -c %a "${T}/log/delivery-0.log")" = 640
  check "postrotate ran once for both files (sharedscripts)" test "$(wc -l < "${T}/hups")" -eq 1
  ;;

acme)
  if ! command -v openssl >/dev/null; then
    echo "FAIL: openssl is not installed (Debian package openssl)"; exit 1
  fi
  hook="${here}/acme-reload-hook"
  for n in a b; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=mail.example.test" -keyout "${T}/${n}.key" -out "${T}/${n}.crt" 2>/dev/null
  done
  mkdir "${T}/tls"
  echo old-cert > "${T}/tls/cert.pem"
  echo old-key > "${T}/tls/key.pem"
  export RELAY_TLS_DIR="${T}/tls" RELAY_GROUP="$(id -gn)" RELAY_RELOAD="echo reload >> ${T}/reloads"

  check "installs a matching pair" "${hook}" "${T}/a.crt" "${T}/a.key"
  check "cert.pem is the new certificate" cmp -s "${T}/a.crt" "${T}/tls/cert.pem"
  check "key.pem is the new key" cmp -s "${T}/a.key" "${T}/tls/key.pem"
  check "key.pem has mode 0640" test "$(stat -c %a "${T}/tls/key.pem")" = 640
  check "reloaded once" test "$(wc -l < "${T}/reloads")" -eq 1

  check "refuses a key that is not the certificate's" bash -c '! "$@"' _ "${hook}" "${T}/b.crt" \
    "${T}/a.key"
  check "after a refusal the installed pair is unchanged" cmp -s "${T}/a.crt" "${T}/tls/cert.pem"
  check "and no reload happened" test "$(wc -l < "${T}/reloads")" -eq 1

  mkdir -p "${T}/live/mail.example.test"
  cp "${T}/b.crt" "${T}/live/mail.example.test/fullchain.pem"
  cp "${T}/b.key" "${T}/live/mail.example.test/privkey.pem"
  check "certbot deploy hook (RENEWED_LINEAGE)" \
    env RENEWED_LINEAGE="${T}/live/mail.example.test" "${hook}"
  check "certbot's certificate installed" cmp -s "${T}/b.crt" "${T}/tls/cert.pem"
  check "reloaded again" test "$(wc -l < "${T}/reloads")" -eq 2
  check "no arguments and no RENEWED_LINEAGE is a usage error" bash -c \
    '"$1"; test $? -eq 2' _ "${hook}"
  check "no temporary file left behind" \
    test -z "$(ls -A "${T}/tls" | grep -v '^cert.pem$\|^key.pem$')"
  ;;
*)
  echo "usage: service_test.sh unit RELAYCTL | logrotate | acme" >&2; exit 2 ;;
esac

if [[ "${checks_failed}" -ne 0 ]]; then echo "${checks_failed} failed"; exit 1; fi
echo "all passed"
