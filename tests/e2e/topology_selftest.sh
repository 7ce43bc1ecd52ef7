#!/usr/bin/env bash
# tests/e2e/topology_selftest.sh — proves the lab topology of lib.sh end to end with the
# do-it-yourself kernel AFTR (no aftrd involved): builds the namespaces, turns the aftr
# namespace into the kernel AFTR, and checks from h1 (behind b4a) ping, an HTTP download of
# a few hundred KB and a UDP echo round trip to 203.0.113.10, then tears everything down.
# Exits 0 only if every check passed and no namespace of this run is left behind.
# Needs root. Registered in ctest as e2e:topology_diy_aftr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$HERE/lib.sh"

cleanup() { topo_destroy; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $(id -u) != 0 ]]; then
	echo "SKIP: needs root (network namespaces)"
	exit 77
fi

for tool in ip ethtool nft conntrack ping curl socat /usr/bin/python3; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed (ping: iputils-ping)"; exit 1; }
done

topo_create
diy_aftr_enable a
servers_start

ping_ok() { in_ns h1 ping -q -c 3 -i 0.2 -W 2 -w 10 "$INET_ADDR4" >/dev/null; }

http_ok() {
	local got
	got=$(in_ns h1 curl -sS --max-time 20 -o /dev/null -w '%{size_download}' \
		"http://$INET_ADDR4:$HTTP_PORT/$HTTP_FILE") || return 1
	[[ $got == "$HTTP_FILE_BYTES" ]] || { echo "  downloaded $got bytes, want $HTTP_FILE_BYTES"; return 1; }
}

udp_echo_ok() {
	local msg="ds-lite-echo-$$" got
	got=$(echo "$msg" | in_ns h1 timeout 10 socat -T 3 - "UDP4:$INET_ADDR4:$UDP_ECHO_PORT") || return 1
	[[ $got == "$msg" ]] || { echo "  echoed '$got', want '$msg'"; return 1; }
}

# The inet side must see the public pool address, not 192.0.2.10 (SNAT happened).
nat_ok() {
	in_ns aftr conntrack -L -d "$INET_ADDR4" 2>/dev/null | grep -q "dst=$DIY_POOL_ADDR4"
}

check "ping h1 -> $INET_ADDR4" ping_ok
check "http GET $HTTP_FILE ($HTTP_FILE_BYTES bytes)" http_ok
check "udp echo round trip" udp_echo_ok
check "sessions translated to $DIY_POOL_ADDR4" nat_ok

prefix=$TOPO_PREFIX
topo_destroy
trap - EXIT
if ip netns list | grep -qF -- "$prefix"; then
	echo "FAIL: namespaces left behind: $(ip netns list | grep -F -- "$prefix" | tr '\n' ' ')"
	failures=$((failures + 1))
else
	echo "PASS: no namespace left behind"
fi

if ((failures)); then
	echo "topology selftest: $failures check(s) failed"
	exit 1
fi
echo "topology selftest: all checks passed"
