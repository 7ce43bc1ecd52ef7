#!/usr/bin/env bash
# README command 1: the DS-Lite lab. Installs what it needs, builds, then builds a namespace
# topology — two B4s (the kernel's own SRv6 encapsulation) whose hosts both use 192.0.2.10,
# the AFTR namespace running aftrd with XDP attached, an "Internet" namespace with HTTP,
# UDP echo and ping — sends real traffic from both subscribers, shows the subscribers, port
# blocks, sessions and counters (through aftrctl, the API client) and the log lines, and
# deletes everything. Exits 0 only if all traffic worked.
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
aftr_lab_up
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

echo
echo "== aftrd's API ($AFTR_API_SOCKET): aftrctl health: $(aftrctl_run health 2>&1)"
echo
aftrctl_show || { echo "aftrctl failed"; failures=$((failures + 1)); }
echo
echo "== event log ($AFTR_EVENTS_LOG)"
cat "$AFTR_EVENTS_LOG"
echo
aftrd_stop || { echo "aftrd exited with an error"; failures=$((failures + 1)); }
echo "== aftrd stopped: $(tail -1 "$AFTRD_STDERR" | sed 's/^<[0-9]>//')"
if ((failures)); then
	echo "lab: $failures check(s) FAILED"
	exit 1
fi
echo "lab: all traffic went through the AFTR"
