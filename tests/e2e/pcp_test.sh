#!/usr/bin/env bash
# e2e: aftrd's PCP server (RFC 6887) in the namespace lab, driven by an independent Python
# client (tests/e2e/pcp_client.py; scenarios in tests/e2e/pcp_test.py). The B4s ask over
# IPv6 to the softwire address 2001:db8:ffff::1:5351 for their hosts (THIRD_PARTY
# 192.0.2.10): header/option/authorization errors, MAP and PEER, PREFER_FAILURE, FILTER,
# quota, isolation between two B4s with the same host address, the epoch, and real inbound
# TCP/UDP from the Internet namespace through the granted mappings. Then aftrd is stopped
# (SIGTERM) and started again: the epoch continues and the mapping keeps its port and its
# traffic. Last, aftrd restarted with min_lifetime 2: a 3 s mapping expires.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"

if [[ $(id -u) != 0 ]]; then
	echo "SKIP: needs root (network namespaces, XDP)"
	exit 77
fi

PY=/usr/bin/python3                  # Debian's, not a pyenv one
OUTSIDER_ADDR6=2001:db8:c::2          # on b4a's wire, outside b4_prefixes

trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pcp_line MIN_LIFETIME: the pcp { } block of the configuration.
pcp_line() {
	echo "pcp { enabled: true internal_prefixes: \"$LAN_PREFIX4\" min_lifetime: $1" \
		"max_lifetime: 86400 max_mappings_per_subscriber: 8 requests_per_second: 1000" \
		"request_burst: 1000 clients_file: \"$TOPO_TMP/pcp-clients\" }"
}

# run_phase PHASE MIN_LIFETIME: the Python scenarios of one phase, from b4a's namespace.
run_phase() {
	echo "--- pcp_test.py $1"
	in_ns b4a env NS_H1="$NS_H1" NS_H2="$NS_H2" NS_B4A="$NS_B4A" NS_B4B="$NS_B4B" \
		NS_AFTR="$NS_AFTR" NS_INET="$NS_INET" AFTRD="$AFTRD" AFTR_CONF="$AFTR_CONF" \
		PCP_STATE="$TOPO_TMP/pcp-state.json" PCP_MIN_LIFETIME="$2" \
		SOFTWIRE_ADDR6="$SOFTWIRE_ADDR6" B4A_ADDR6="$B4A_ADDR6" B4B_ADDR6="$B4B_ADDR6" \
		PCP_OUTSIDER_ADDR6="$OUTSIDER_ADDR6" HOST_ADDR4="$HOST_ADDR4" INET_ADDR4="$INET_ADDR4" \
		timeout "$3" "$PY" "$here/pcp_test.py" "$1"
}

aftrd_alive() { [[ -n $AFTRD_PID ]] && kill -0 "$AFTRD_PID" 2>/dev/null; }

# ---- the lab: aftr_lab_up's steps, with the pcp block naming this run's scratch dir ----
topo_create
AFTR_BPFFS=$TOPO_TMP/bpffs
mkdir -p "$AFTR_BPFFS"
mount -t bpf bpf "$AFTR_BPFFS"
AFTR_CONF=$TOPO_TMP/aftrd.conf
AFTR_EVENTS_LOG=$TOPO_TMP/events.log
AFTR_API_SOCKET=$TOPO_TMP/aftrd.sock
aftr_config_write "$AFTR_CONF" "$(pcp_line 120)"

# A source outside b4_prefixes, on b4a's wire, that the AFTR can answer.
in_ns b4a ip -6 addr add "$OUTSIDER_ADDR6/128" dev "$B4_IF_WAN" nodad
in_ns aftr ip -6 route add "$OUTSIDER_ADDR6/128" dev "$AFTR_IF_A"
in_ns aftr ip -6 neigh replace "$OUTSIDER_ADDR6" lladdr "$MAC_B4A_WAN" dev "$AFTR_IF_A" nud permanent

aftrd_start
check "PCP server listening on [$SOFTWIRE_ADDR6]:5351" \
	wait_until 10 in_ns aftr bash -c "ss -Hlun 'sport = :5351' | grep -qF '$SOFTWIRE_ADDR6'"

rc=0
run_phase main 120 300 || rc=1
check "aftrd still runs after the main phase" aftrd_alive

# ---- restart: SIGTERM, start again (data plane and pinned maps stay) ----
check "aftrd exits 0 on SIGTERM" aftrd_term
check "aftrd starts again" aftrd_start
run_phase restart 120 60 || rc=1

# ---- expiry: min_lifetime 2 ----
check "aftrd exits 0 on SIGTERM (before the expiry phase)" aftrd_term
aftr_config_write "$AFTR_CONF" "$(pcp_line 2)"
check "aftrd starts with min_lifetime 2" aftrd_start
run_phase expiry 2 60 || rc=1
check "aftrd still runs at the end" aftrd_alive

if ((rc || failures)); then
	echo "pcp_test: FAILED (python phases rc=$rc, driver checks failed: $failures)"
	echo "--- aftrd stderr (last run)"
	tail -n 60 "$AFTRD_STDERR" || true
	exit 1
fi
echo "pcp_test: all checks passed"
