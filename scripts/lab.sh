#!/usr/bin/env bash
# README command 1: the DS-Lite lab. Installs what it needs, builds, then builds a namespace
# topology — two B4s (the kernel's own SRv6 encapsulation) whose hosts both use 192.0.2.10,
# the AFTR namespace running aftrd with XDP attached, an "Internet" namespace with HTTP,
# UDP echo and ping — sends real traffic from both subscribers, opens an inbound port for h1
# over PCP and connects to it from the Internet, shows the subscribers, port
# blocks, sessions and counters (through aftrctl, the API client) and the log lines, asks
# `aftrctl who` which subscriber had h1's public port, and deletes everything. Exits 0 only if all traffic worked.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "lab.sh: run as root (namespaces, XDP)" >&2; exit 1; }
bash "$repo/scripts/install-deps.sh"
bash "$repo/scripts/build.sh" aftrd aftrctl

source "$repo/tests/e2e/lib.sh"
source "$repo/tests/e2e/aftrd.sh"
source "$repo/tests/e2e/aftrctl.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building the lab: h1,h2 (192.0.2.10) -> b4a,b4b -> aftr (aftrd, XDP) -> inet (203.0.113.10)"
AFTR_LOGGING="" aftr_lab_up "pcp { enabled: true internal_prefixes: \"192.0.2.0/24\" clients_file: \"$TOPO_TMP/pcp-clients\" }"
in_ns aftr ip -brief link show | sed 's/^/   /'
in_ns aftr ip link show | grep -o 'prog/xdp id [0-9]*' | sort -u | sed 's/^/   XDP: /'

failures=0
run_check() {
	local what=$1 role=$2
	if "check_$what" "$role"; then
		printf '   %-4s %-5s OK\n' "$role" "$what"
	else
		printf '   %-4s %-5s FAILED\n' "$role" "$what"
		failures=$((failures + 1))
	fi
}
echo "== traffic from both subscribers (same inner address 192.0.2.10)"
for role in h1 h2; do
	run_check ping "$role"
	run_check http "$role"
	run_check udp "$role"
done


# PCP: b4a (as the CPE's PCP proxy) asks for an inbound TCP port for h1:8080; a host on the
# Internet then connects to the public address and port it was given.
echo "== PCP: b4a asks for an inbound port for h1 (MAP, TCP 8080, THIRD_PARTY 192.0.2.10)"
bg_in_ns h1 "$TOPO_TMP/h1-8080.log" socat -T 5 TCP-LISTEN:8080,bind=192.0.2.10,reuseaddr \
	SYSTEM:'echo hello from h1 behind b4a'
mapped=$(in_ns b4a python3 - "$repo/tests/e2e" "$SOFTWIRE_ADDR6" "$B4A_ADDR6" <<-'PY'
	import sys
	sys.path.insert(0, sys.argv[1])
	import pcp_client as pcp
	client = pcp.Client(sys.argv[2], source=sys.argv[3])
	r = client.exchange(pcp.map_request(sys.argv[3], pcp.new_nonce(), 6, 8080, 3600,
	                                    options=pcp.third_party("192.0.2.10")))
	print(r.describe() if r else "no answer", file=sys.stderr)
	if r and r.result == 0:
	    print("%s %d" % (r.ext_ip, r.ext_port))
	PY
) || true
if [[ -n $mapped ]]; then
	read -r public_addr public_port <<<"$mapped"
	reply=$(in_ns inet timeout 5 socat -T 3 - "TCP:$public_addr:$public_port" </dev/null 2>&1) || true
	printf '   inet -> %s:%s (mapped to h1 192.0.2.10:8080): "%s"\n' "$public_addr" "$public_port" "$reply"
	[[ $reply == "hello from h1 behind b4a" ]] || failures=$((failures + 1))
else
	echo "   PCP MAP FAILED"
	failures=$((failures + 1))
fi
echo
echo "== PCP mappings (aftrctl pcp list)"
aftrctl_run pcp list || failures=$((failures + 1))

echo
echo "== aftrd's API ($AFTR_API_SOCKET): aftrctl health: $(aftrctl_run health 2>&1)"
echo
aftrctl_show || { echo "aftrctl failed"; failures=$((failures + 1)); }
echo
echo "== event log ($AFTR_EVENTS_LOG -> $(readlink "$AFTR_EVENTS_LOG"); port blocks only, B4s as /64)"
cat "$AFTR_EVENTS_LOG"
echo
# The question the logs are for: who had h1's public port (its block's first port) just now?
read -r who_addr who_port < <(awk '$2 == "BA" && $3 == "2001:db8:a::" { split($5, r, "-"); print $4, r[1]; exit }' "$AFTR_EVENTS_LOG")
echo "== who had $who_addr port $who_port at $(date -u +%H:%M:%S)? (aftrctl who)"
aftrctl_run who "$who_addr" "$who_port" || failures=$((failures + 1))
echo
aftrd_stop || { echo "aftrd exited with an error"; failures=$((failures + 1)); }
echo "== aftrd stopped: $(tail -1 "$AFTRD_STDERR" | sed 's/^<[0-9]>//')"
if ((failures)); then
	echo "lab: $failures check(s) FAILED"
	exit 1
fi
echo "lab: all traffic went through the AFTR"
