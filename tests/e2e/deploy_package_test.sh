#!/usr/bin/env bash
# e2e (deploy): the .deb. Built with cpack from this build; its contents, control fields and
# shared-library dependencies checked; installed with dpkg on this machine (a throwaway root
# VM, no systemd as PID 1): user, directories, enable link, binaries that load their
# libraries, `systemd-analyze verify` of the installed unit, the logrotate rule run for real
# on a copy of its directory; removed: binaries gone, logs kept; purged: state gone, logs kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/deploy_lib.sh"
deb_preflight
tmp=$(mktemp -d)
cleanup() { deb_cleanup; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

deb=$(deb_build "$tmp")
echo "built $deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}')
for f in ./usr/sbin/aftrd ./usr/bin/aftrctl ./lib/systemd/system/aftrd.service \
	./etc/logrotate.d/aftrd ./usr/share/doc/aftr/examples/aftrd.conf \
	./usr/share/aftr/proto/aftr/config/v1/config.proto; do
	check "package has $f (root-owned)" grep -q "root/root $f\$" <<<"$contents"
done
check "nothing under /usr/local" bash -c "! grep -q '/usr/local' <<<'$contents'"
check "the BPF object is embedded (no separate .bpf.o shipped)" \
	bash -c "! grep -q '\.bpf\.o' <<<'$contents'"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libstdc++6 libbpf1 libgrpc++1.51 libprotobuf32 libabsl20220623; do
	check "Depends names $lib (dpkg-shlibdeps)" grep -q "\b$lib\b" <<<"$depends"
done
check "logrotate rule is a conffile" bash -c "dpkg-deb -e '$deb' '$tmp/ctl' && grep -qx /etc/logrotate.d/aftrd '$tmp/ctl/conffiles'"

dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1 || { cat "$tmp/dpkg-i.log"; exit 1; }
check "dpkg -i: installed" bash -c "dpkg-query -W -f='\${Status}' aftr | grep -q 'ok installed'"
check "system user aftr, no login shell" bash -c "getent passwd aftr | grep -q ':/usr/sbin/nologin$'"
check "/var/lib/aftrd and /var/log/aftr belong to aftr" \
	bash -c "[[ \$(stat -c %U /var/lib/aftrd) == aftr && \$(stat -c %U /var/log/aftr) == aftr ]]"
check "unit enabled (WantedBy=multi-user.target link)" \
	test -L /etc/systemd/system/multi-user.target.wants/aftrd.service
check "aftrd finds all its libraries" bash -c "! ldd /usr/sbin/aftrd | grep -q 'not found'"
check "aftrctl finds all its libraries" bash -c "! ldd /usr/bin/aftrctl | grep -q 'not found'"
check "installed aftrd validates the shipped example" \
	/usr/sbin/aftrd --check_config /usr/share/doc/aftr/examples/aftrd.conf
verify=$(systemd-analyze verify /lib/systemd/system/aftrd.service 2>&1) && rc=0 || rc=$?
echo "$verify"
check "systemd-analyze verify: exit 0, no complaint about aftrd.service" \
	bash -c "[[ $rc == 0 ]] && ! grep -q 'aftrd.service' <<<'$verify'"
check "unit: Type=notify, User=aftr, exactly CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_ADMIN" bash -c "
	u=/lib/systemd/system/aftrd.service
	grep -qx Type=notify \$u && grep -qx User=aftr \$u &&
	grep -qx 'AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_ADMIN' \$u &&
	grep -qx 'CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_ADMIN' \$u"

# The logrotate rule, run for real (paths moved to a scratch copy, state back-dated): a day
# not written for 3 days is compressed, yesterday's and today's (and the link) are untouched,
# a compressed day older than 180 days is deleted.
logrotate_rule() {
	local d=$tmp/logs
	mkdir -p "$d"
	sed "s|/var/log/aftr|$d|; s/su aftr aftr/su root root/" /etc/logrotate.d/aftrd >"$tmp/lr.conf"
	echo a >"$d/events-2020-01-01.log" && touch -d '3 days ago' "$d/events-2020-01-01.log"
	echo b >"$d/events-2020-01-03.log" && touch -d '1 day ago' "$d/events-2020-01-03.log"
	echo c >"$d/events-2020-01-04.log" && ln -s events-2020-01-04.log "$d/events.log"
	echo x | gzip >"$d/events-2019-01-01.log.1.gz" && touch -d '200 days ago' "$d/events-2019-01-01.log.1.gz"
	{ echo 'logrotate state -- version 2'; for f in "$d"/*; do echo "\"$f\" 2020-1-1-0:0:0"; done; } >"$tmp/lr.state"
	chmod 600 "$tmp/lr.state"
	logrotate -s "$tmp/lr.state" "$tmp/lr.conf" || return 1
	ls "$d"
	[[ -f $d/events-2020-01-01.log.1.gz && ! -e $d/events-2020-01-01.log ]] &&
		[[ -f $d/events-2020-01-03.log && -f $d/events-2020-01-04.log && -L $d/events.log ]] &&
		[[ ! -e $d/events-2019-01-01.log.1.gz ]]
}
check "logrotate: compresses finished days only, deletes old compressed days" logrotate_rule

echo "20260101T000000Z test line" >/var/log/aftr/events-2026-01-01.log
dpkg -r aftr >"$tmp/dpkg-r.log" 2>&1 || { cat "$tmp/dpkg-r.log"; exit 1; }
check "dpkg -r: binaries and unit gone" \
	bash -c "[[ ! -e /usr/sbin/aftrd && ! -e /usr/bin/aftrctl && ! -e /lib/systemd/system/aftrd.service ]]"
check "dpkg -r: the logs stay" test -s /var/log/aftr/events-2026-01-01.log
dpkg --purge aftr >"$tmp/dpkg-purge.log" 2>&1 || { cat "$tmp/dpkg-purge.log"; exit 1; }
check "dpkg --purge: state directory and logrotate conffile gone" \
	bash -c "[[ ! -e /var/lib/aftrd && ! -e /etc/logrotate.d/aftrd ]]"
check "dpkg --purge: the logs still stay" test -s /var/log/aftr/events-2026-01-01.log
exit "$failures"
