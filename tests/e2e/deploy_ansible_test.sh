#!/usr/bin/env bash
# e2e (deploy): the Ansible role run for real, `ansible-playbook -c local` inside the lab's
# AFTR namespace (lib.sh topology: sw-a, sw-b, inet0), with the .deb built from this tree.
#  1. a bad variable is refused by meta/argument_specs.yml before anything changes;
#  2. site.yml: package installed, sysctls set, config rendered and validated, aftrd started
#     and SERVING over gRPC; traffic from both subscribers; aftrd runs as user aftr with
#     exactly the unit's ambient capabilities;
#  3. site.yml again: zero changes;
#  4. a live-changeable variable changes: the file is re-rendered and aftrd reloaded (same
#     PID, RELOADING=1 then READY=1, the running configuration has the new value);
#  5. rolling-update.yml with a newer .deb: upgraded and restarted (new PID), SERVING, and a
#     TCP connection open through the AFTR the whole time keeps every echoed line.
# No systemd runs here: tests/e2e/deploy/systemctl stands in for systemctl on PATH (only in
# this test) and runs the INSTALLED unit's own ExecStartPre/ExecStart/ExecReload as its User=
# with its AmbientCapabilities= and Type=notify readiness. The role has no test branch.
# /sys/fs/bpf (mounted by systemd on a real host) is a bpffs the test mounts and binds there
# inside the namespace, so aftrd's default pin path survives from one run to the next.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
source "$here/deploy_lib.sh"
deb_preflight
command -v ansible-playbook >/dev/null || { echo "skip: ansible not installed"; exit 77; }

tmp=$(mktemp -d)
shim=$(mktemp -d /tmp/aftr-shim.XXXXXX)  # traversable: aftrd (user aftr) notifies in there
chmod 0755 "$shim"
bpffs=""
cleanup() {
	set +e
	if ((failures)) && [[ -f $shim/state/aftrd.service.log ]]; then
		echo "---- aftrd under the systemctl stand-in (last lines)"
		tail -n 40 "$shim/state/aftrd.service.log"
	fi
	[[ -x $shim/systemctl ]] && "$shim/systemctl" stop aftrd.service
	deb_cleanup
	[[ -n $bpffs ]] && mountpoint -q "$bpffs" && umount "$bpffs"
	topo_destroy
	rm -rf "$tmp" "$shim"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$here/deploy/systemctl" "$shim/systemctl"
topo_create
servers_start
bpffs=$TOPO_TMP/bpffs
mkdir -p "$bpffs"
mount -t bpf bpf "$bpffs"

deb=$(deb_build "$tmp")
cat >"$tmp/inventory.yml" <<-EOI
	aftr:
	  hosts:
	    aftr-lab:
	      ansible_connection: local
	      ansible_python_interpreter: /usr/bin/python3
EOI
cat >"$tmp/vars.yml" <<-EOV
	aftr_package_deb: $deb
	aftr_interfaces: [$AFTR_IF_A, $AFTR_IF_B, $AFTR_IF_INET]
	aftr_softwire_addresses: ["$SOFTWIRE_ADDR6"]
	aftr_b4_prefixes: ["2001:db8:a::/48", "2001:db8:b::/48"]
	aftr_pool_prefixes: [198.51.100.0/28]
	aftr_tables: {max_sessions: 65536, max_subscribers: 1024}
	aftr_pcp_enabled: true
	aftr_sysctl_file: $tmp/sysctl-aftr.conf
	aftr_health_delay: 1
EOV

# play PLAYBOOK [ansible-playbook args]: runs it in the AFTR namespace; output in $out.
play() {
	local book=$1 rc=0
	shift
	out=$(ip netns exec "$NS_AFTR" env PATH="$shim:$PATH" ANSIBLE_CONFIG="$repo/deploy/ansible/ansible.cfg" \
		ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
		bash -c 'mount --bind "$0" /sys/fs/bpf && exec timeout 300 ansible-playbook -c local "$@"' \
		"$bpffs" -i "$tmp/inventory.yml" -e "@$tmp/vars.yml" "$repo/deploy/ansible/$book" "$@" 2>&1) || rc=$?
	echo "$out" | tail -n 25
	return "$rc"
}
out_has() { grep -Eq -- "$1" <<<"$out"; }
no_changes() { grep -E '^aftr-lab +:' <<<"$out" | grep -q ' changed=0 '; }
aftrd_pid() { cat "$shim/state/aftrd.service.pid" 2>/dev/null || echo none; }
health() { in_ns aftr aftrctl health >/dev/null; }

echo "== 1. a bad variable"
rc=0
play site.yml -e aftr_filtering=symmetric || rc=$?
check "bad variable: the play fails" test "$rc" -ne 0
check "bad variable: argument_specs names it and the choices" \
	out_has "value of aftr_filtering must be one of: endpoint_independent, address_dependent, got: symmetric"
check "bad variable: nothing ran or changed (changed=0, no package, no config)" bash -c "
	! dpkg-query -W aftr >/dev/null 2>&1 && [[ ! -e /etc/aftr/aftrd.conf ]]"
check "bad variable: the recap says changed=0" no_changes

echo "== 2. site.yml"
rc=0
play site.yml || rc=$?
check "site.yml succeeds" test "$rc" -eq 0
check "package installed" bash -c "dpkg-query -W -f='\${Status}' aftr | grep -q 'ok installed'"
check "config rendered with the lab's interfaces and validated" bash -c "
	grep -q 'interfaces: \"$AFTR_IF_INET\"' /etc/aftr/aftrd.conf && /usr/sbin/aftrd --check_config /etc/aftr/aftrd.conf"
check "forwarding sysctls set in the AFTR namespace" bash -c "
	[[ \$(ip netns exec $NS_AFTR sysctl -n net.ipv6.conf.all.forwarding) == 1 ]] && grep -q forwarding $tmp/sysctl-aftr.conf"
check "gRPC health SERVING (aftrctl health)" health
check "XDP attached" aftr_xdp_attached
pid=$(aftrd_pid)
check "aftrd runs as user aftr" bash -c "[[ \$(stat -c %U /proc/$pid) == aftr ]]"
check "aftrd has exactly CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_ADMIN (eff, amb, bnd)" bash -c "
	s=/proc/$pid/status; want=000000c000203000
	[[ \$(awk '/^CapEff/{print \$2}' \$s) == \$want && \$(awk '/^CapAmb/{print \$2}' \$s) == \$want && \$(awk '/^CapBnd/{print \$2}' \$s) == \$want ]]"
check "aftrd reported READY=1 (Type=notify)" grep -q "notify: 'READY=1" "$shim/state/aftrd.service.log"
for role in h1 h2; do
	check "$role: ping through the AFTR" check_ping "$role"
	check "$role: HTTP download through the AFTR" check_http "$role"
	check "$role: UDP echo through the AFTR" check_udp "$role"
done

echo "== 3. site.yml again"
rc=0
play site.yml || rc=$?
check "second run succeeds" test "$rc" -eq 0
check "second run reports zero changes" no_changes
check "same aftrd (not restarted)" test "$(aftrd_pid)" == "$pid"

echo "== 4. a live change: reload"
rc=0
play site.yml -e '{"aftr_timeouts": {"udp": 200}}' || rc=$?
check "reload run succeeds" test "$rc" -eq 0
check "handler 'Reload aftrd' ran" out_has 'RUNNING HANDLER \[aftr : Reload aftrd\]'
check "no restart: same aftrd" test "$(aftrd_pid)" == "$pid"
check "aftrd reported RELOADING=1 then READY=1" \
	awk "/notify: 'RELOADING=1/ { r = 1 } r && /notify: 'READY=1/ { ok = 1 } END { exit !ok }" \
	"$shim/state/aftrd.service.log"
check "running configuration has the new value (aftrctl config get)" \
	bash -c "ip netns exec $NS_AFTR aftrctl config get | grep -Eq 'udp: 200\b'"

echo "== 5. rolling-update.yml with a newer package, under a live TCP connection"
dpkg-deb -R "$deb" "$tmp/repack"
sed -i 's/^Version: .*/Version: 0.1.0+deploytest1/' "$tmp/repack/DEBIAN/control"
dpkg-deb --root-owner-group -b "$tmp/repack" "$tmp/aftr_0.1.0+deploytest1_amd64.deb" >/dev/null
bg_in_ns inet "$TOPO_TMP/tcp-echo.log" socat "TCP4-LISTEN:8080,bind=$INET_ADDR4,reuseaddr,fork" PIPE
wait_until 10 in_ns inet bash -c "ss -Hltn 'sport = :8080' | grep -q ."
in_ns h1 /usr/bin/python3 "$here/deploy/echo_client.py" "$INET_ADDR4" 8080 "$tmp/stop" 240 \
	>"$tmp/client.log" 2>&1 &
client=$!
sleep 1
rc=0
play rolling-update.yml -e "aftr_package_deb=$tmp/aftr_0.1.0+deploytest1_amd64.deb" || rc=$?
sleep 1
touch "$tmp/stop"
crc=0
wait "$client" || crc=$?
cat "$tmp/client.log"
check "rolling update succeeds" test "$rc" -eq 0
check "upgraded to 0.1.0+deploytest1" bash -c "[[ \$(dpkg-query -W -f='\${Version}' aftr) == 0.1.0+deploytest1 ]]"
check "aftrd restarted (new PID)" bash -c "[[ '$(aftrd_pid)' != none && '$(aftrd_pid)' != '$pid' ]]"
check "gRPC health SERVING after the upgrade" health
check "the TCP connection survived the upgrade, every line echoed" test "$crc" -eq 0
check "h2: HTTP through the upgraded AFTR" check_http h2
exit "$failures"
