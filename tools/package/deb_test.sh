#!/usr/bin/env bash
# Builds the .deb from this build's binaries (tools/package/build-deb --bin, from the runfiles) and
# checks it without installing it: what it holds and with which modes, its conffiles, that its
# unit, logrotate file and hook are tools/service's, that Depends is exactly the libraries the
# binaries load (dpkg-shlibdeps, and the owners of what ldd resolves) plus adduser for the
# postinst and ca-certificates for the CA bundle relayd opens, and lintian: no error or warning,
# and every tag it still prints explained in the README. A missing tool is a failure that names
# its package.
set -euo pipefail
export PATH="${PATH}:/usr/sbin:/sbin"
tree="${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}"
T="$(mktemp -d "${TEST_TMPDIR:-/tmp}/deb.XXXXXX")"
. "${tree}/tools/testing/checks.sh"
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian; do
  command -v "${tool%%:*}" >/dev/null ||
    { echo "FAIL: ${tool%%:*} is not installed (Debian package ${tool#*:})"; exit 1; }
done

version="0.1+test"
start=$(date +%s)
deb="$("${tree}/tools/package/build-deb" --bin "${tree}" --version "${version}" --out "${T}/out" |
       tail -1)"
echo "built ${deb##*/} in $(( $(date +%s) - start ))s"
arch="$(dpkg --print-architecture)"
check "named relay_<version>_<arch>.deb" test "${deb}" = "${T}/out/relay_${version}_${arch}.deb"
check "its debug symbols beside it" test -f "${T}/out/relay-dbgsym_${version}_${arch}.deb"
field() { dpkg-deb -f "${deb}" "$1"; }
check "Package: relay" test "$(field Package)" = relay
check "Version: ${version}" test "$(field Version)" = "${version}"
check "Architecture: ${arch}" test "$(field Architecture)" = "${arch}"

echo "--- contents"
dpkg-deb -c "${deb}" | tee "${T}/contents"
# Files (not directories) with their modes and owners.
awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $2, $6 }' "${T}/contents" | sort -k3 > "${T}/files"
cat > "${T}/expected" <<'FILES'
-rw-r--r-- root/root /etc/logrotate.d/relayd
-rw-r--r-- root/root /etc/relay/relayd.toml.example
-rw-r--r-- root/root /lib/systemd/system/relayd.service
-rw-r--r-- root/root /lib/systemd/system/relayd@.service
-rwxr-xr-x root/root /usr/libexec/relay/acme-reload-hook
-rwxr-xr-x root/root /usr/sbin/relayctl
-rwxr-xr-x root/root /usr/sbin/relayd
-rw-r--r-- root/root /usr/share/doc/relay/README.md.gz
-rw-r--r-- root/root /usr/share/doc/relay/changelog.gz
-rw-r--r-- root/root /usr/share/doc/relay/copyright
-rw-r--r-- root/root /usr/share/lintian/overrides/relay
-rw-r--r-- root/root /usr/share/relay/monitoring/prometheus.yml
-rw-r--r-- root/root /usr/share/relay/monitoring/relay-dashboard.json
-rw-r--r-- root/root /usr/share/relay/monitoring/relay.rules.yml
-rw-r--r-- root/root /usr/share/relay/monitoring/relay.rules_test.yml
-rw-r--r-- root/root /usr/share/man/man8/relayctl.8.gz
-rw-r--r-- root/root /usr/share/man/man8/relayd.8.gz
FILES
sort -k3 -o "${T}/expected" "${T}/expected"
check "exactly the expected files, modes and owners" diff -u "${T}/expected" "${T}/files"

mkdir "${T}/root" "${T}/control"
dpkg-deb -x "${deb}" "${T}/root"
dpkg-deb -e "${deb}" "${T}/control"
check "conffiles: the logrotate file and the reference relayd.toml, nothing else" \
  diff -u <(printf '/etc/logrotate.d/relayd\n/etc/relay/relayd.toml.example\n') \
  <(sort "${T}/control/conffiles")
check "no /etc/relay/relayd.toml: relayctl init writes it, dpkg never does" \
  test ! -e "${T}/root/etc/relay/relayd.toml"
check "the unit is tools/service's" \
  cmp "${tree}/tools/service/relayd.service" "${T}/root/lib/systemd/system/relayd.service"
check "the logrotate file is tools/service's" \
  cmp "${tree}/tools/service/relayd.logrotate" "${T}/root/etc/logrotate.d/relayd"
check "the ACME hook is tools/service's" \
  cmp "${tree}/tools/service/acme-reload-hook" "${T}/root/usr/libexec/relay/acme-reload-hook"
for f in prometheus.yml relay-dashboard.json relay.rules.yml relay.rules_test.yml; do
  check "the monitoring file ${f} is tools/monitoring's" \
    cmp "${tree}/tools/monitoring/${f}" "${T}/root/usr/share/relay/monitoring/${f}"
done
unit="${T}/root/lib/systemd/system/relayd.service"
exec_start="$(sed -n 's/^ExecStart=//p' "${unit}")"
check "ExecStart (${exec_start%% *}) is in the package" test -x "${T}/root${exec_start%% *}"
check "the unit runs relayd as relay" grep -qx 'User=relay' "${unit}"
check "the unit waits for relayctl init's config" \
  grep -qx 'ConditionPathExists=/etc/relay/relayd.toml' "${unit}"
for dir in $(sed -n 's/^ReadWritePaths=//p' "${unit}"); do
  check "postinst makes ${dir}, writable by the unit" grep -q "${dir}" "${T}/control/postinst"
done
example="${T}/root/etc/relay/relayd.toml.example"
check "the reference relayd.toml has the package's spool" \
  grep -qx 'spool_dir = "/var/spool/relay"' "${example}"
check "... and its control socket" \
  grep -qx 'control_socket = "/run/relay/control.sock"' "${example}"
check "... and says relayd does not read it" grep -q '^# .*relayd does not read this file' \
  "${example}"
check "the stripped relayd runs" quiet "${T}/root/usr/sbin/relayd" --help
check "the stripped relayctl runs" quiet "${T}/root/usr/sbin/relayctl" --help
check "relayd's man page holds its --help" \
  bash -c 'zcat "$1" | grep -qF "relayd \-\-config FILE"' _ \
  "${T}/root/usr/share/man/man8/relayd.8.gz"

echo "--- maintainer scripts"
for s in postinst postrm prerm; do
  check "${s} is valid sh" sh -n "${T}/control/${s}"
done
check "postinst creates the system user relay" \
  grep -q 'adduser --system --group' "${T}/control/postinst"
# rm -rf only inside the purge) branch of postrm: remove keeps everything.
check "postrm deletes only on purge" awk '
  /^purge\)/ { inside = 1 } inside && /;;/ { inside = 0 }
  /rm -rf/ { if (inside) seen = 1; else bad = 1 }
  END { exit !(seen && !bad) }' "${T}/control/postrm"

echo "--- Depends"
depends="$(field Depends)"
echo "Depends: ${depends}"
# dpkg-shlibdeps on the binaries as packaged, in a scratch source tree of its own.
mkdir -p "${T}/shlibs/debian"
printf 'Source: relay\n\nPackage: relay\nArchitecture: any\n' > "${T}/shlibs/debian/control"
shlibs="$(cd "${T}/shlibs" && dpkg-shlibdeps -O "${T}/root/usr/sbin/relayd" \
          "${T}/root/usr/sbin/relayctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
echo "dpkg-shlibdeps: ${shlibs}"
split() { tr ',' '\n' | sed 's/^ *//; s/ *$//' | sort; }
# Beyond the libraries: adduser for the postinst, and ca-certificates, whose bundle relayd loads
# at start to verify MX certificates (it does not start without it: package-test found that).
check "Depends is dpkg-shlibdeps' list, adduser and ca-certificates, nothing more" \
  diff -u <(printf '%s, adduser, ca-certificates\n' "${shlibs}" | split) <(split <<<"${depends}")
# The same from the other side: the packages that own the libraries the binaries load
# directly (their NEEDED entries, as ldd resolves them; what those load in turn is theirs).
owners="$(for b in relayd relayctl; do
            f="${T}/root/usr/sbin/${b}"
            ldd "${f}" | awk -v needed="$(readelf -d "${f}" |
              sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')" '
              BEGIN { n = split(needed, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
              $2 == "=>" && $3 ~ /^\// && ($1 in want) { print $3 }'
          done | sort -u |
          while read -r lib; do dpkg -S "$(realpath "${lib}")" 2>/dev/null ||
            dpkg -S "${lib}"; done | sed 's/:.*//; s/,.*//' | sort -u)"
check "the libraries' packages are exactly Depends without adduser and ca-certificates" \
  diff -u <(echo "${owners}") \
  <(split <<<"${depends}" | sed 's/ .*//' | grep -vxE 'adduser|ca-certificates')
check "no library ldd cannot find" bash -c '! ldd "$1" "$2" | grep -q "not found"' _ \
  "${T}/root/usr/sbin/relayd" "${T}/root/usr/sbin/relayctl"

echo "--- lintian"
start=$(date +%s)
lintian -I -E --pedantic --show-overrides "${deb}" 2>&1 | grep -v '^running with root' |
  tee "${T}/lintian" || true
echo "lintian took $(( $(date +%s) - start ))s"
check "lintian: no error or warning" bash -c '! grep -qE "^[EW]: " "$1"' _ "${T}/lintian"
# Every tag still printed (not overridden) is explained in the README's section on the package.
for tag in $(awk '/^[EWIPX]: / { print $3 }' "${T}/lintian" | sort -u); do
  check "lintian tag ${tag} is explained in README.md" grep -q "\`${tag}\`" "${tree}/README.md"
done

if [[ "${checks_failed}" -ne 0 ]]; then echo "${checks_failed} failed"; exit 1; fi
echo "all passed"
