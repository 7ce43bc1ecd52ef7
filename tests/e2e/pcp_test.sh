#!/usr/bin/env bash
# e2e: aftrd's PCP server (RFC 6887) in the namespace lab, driven by an independent Python
# client (tests/e2e/pcp_client.py; scenarios in tests/e2e/pcp_test.py). The B4s ask over
# IPv6 to the softwire address 2001:db8:ffff::1:5351 for their hosts (THIRD_PARTY
# 192.0.2.10): header/option/authorization errors, MAP and PEER, PREFER_FAILURE, FILTER,
# quota, isolation between two B4s with the same host address, the epoch, and real inbound
# TCP/UDP from the Internet namespace through the granted mappings; the operator's view
# (aftrctl pcp list/delete) and the counters (aftrctl stats). Then aftrd is stopped (SIGTERM)
# and started again: the epoch continues, the mapping keeps its port and its traffic, and no
# unsolicited ANNOUNCE goes out. Restarted with requests_per_second 5, request_burst 10: a
# burst from b4a is cut to about 10 while b4b is served. Then the state loss: aftrd stopped,
# `aftrd --detach --purge`, started again (with min_lifetime 2): b4a gets unsolicited
# ANNOUNCEs on port 5350, the epoch starts again, the old mapping is gone and its refresh
# makes a new one. Last, on that aftrd, a 3 s mapping expires.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"
# shellcheck source=SCRIPTDIR/aftrctl.sh
source "$here/aftrctl.sh"

require_root

PY=/usr/bin/python3                  # Debian's, not a pyenv one
OUTSIDER_ADDR6=2001:db8:c::2          # on b4a's wire, outside b4_prefixes

trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pcp_line MIN_LIFETIME [REQUESTS_PER_SECOND REQUEST_BURST]: the pcp { } block.
pcp_line() {
	echo "pcp { enabled: true internal_prefixes: \"$LAN_PREFIX4\" min_lifetime: $1" \
		"max_lifetime: 86400 max_mappings_per_subscriber: 8 requests_per_second: ${2:-1000}" \
		"request_burst: ${3:-1000} clients_file: \"$PCP_CLIENTS\" }"
}

# The environment of pcp_test.py (PCP_RATE/PCP_BURST/PCP_ANNOUNCE_LOG/PCP_AFTRD_* as set).
PCP_RATE=1000 PCP_BURST=1000 PCP_ANNOUNCE_LOG="" PCP_AFTRD_LAUNCHED=0 PCP_AFTRD_UP=0
py_env() {
	env NS_H1="$NS_H1" NS_H2="$NS_H2" NS_B4A="$NS_B4A" NS_B4B="$NS_B4B" \
		NS_AFTR="$NS_AFTR" NS_INET="$NS_INET" AFTRD="$AFTRD" AFTR_CONF="$AFTR_CONF" \
		AFTRCTL="$AFTRCTL" AFTR_API_SOCKET="$AFTR_API_SOCKET" PCP_CLIENTS_FILE="$PCP_CLIENTS" \
		PCP_STATE="$TOPO_TMP/pcp-state.json" PCP_RATE="$PCP_RATE" PCP_BURST="$PCP_BURST" \
		PCP_ANNOUNCE_LOG="$PCP_ANNOUNCE_LOG" PCP_AFTRD_LAUNCHED="$PCP_AFTRD_LAUNCHED" \
		PCP_AFTRD_UP="$PCP_AFTRD_UP" \
		SOFTWIRE_ADDR6="$SOFTWIRE_ADDR6" B4A_ADDR6="$B4A_ADDR6" B4B_ADDR6="$B4B_ADDR6" \
		PCP_OUTSIDER_ADDR6="$OUTSIDER_ADDR6" HOST_ADDR4="$HOST_ADDR4" INET_ADDR4="$INET_ADDR4" \
		"$@"
}

# run_phase PHASE MIN_LIFETIME TIMEOUT: the Python scenarios of one phase, from b4a's namespace.
run_phase() {
	echo "--- pcp_test.py $1"
	py_env PCP_MIN_LIFETIME="$2" ip netns exec "$NS_B4A" timeout "$3" "$PY" "$here/pcp_test.py" "$1"
}

# announce_listener_start FILE SECONDS: `pcp_test.py listen` in the background in b4a's
# namespace, bound to [b4a]:5350 when this returns; it writes what it received to FILE
# (which the next phase reads as PCP_ANNOUNCE_LOG) and ends by itself.
LISTENER_PID=""
announce_listener_start() {
	PCP_ANNOUNCE_LOG=$1
	rm -f "$1" "$1.ready"
	py_env ip netns exec "$NS_B4A" timeout 30 "$PY" "$here/pcp_test.py" listen "$1" "$2" &
	LISTENER_PID=$!
	wait_until 5 test -e "$1.ready"
}

announce_listener_wait() {
	[[ -n $LISTENER_PID ]] || return 0
	wait "$LISTENER_PID" || true
	LISTENER_PID=""
}

# launch_aftrd: aftrd_start, with the wall-clock times around it for pcp_test.py.
launch_aftrd() {
	PCP_AFTRD_LAUNCHED=$(date +%s.%N)
	aftrd_start || return 1
	PCP_AFTRD_UP=$(date +%s.%N)
}

# pins_gone: nothing left under the pin path (after `aftrd --detach --purge`).
pins_gone() {
	[[ ! -d $AFTR_BPFFS/aftr ]] || [[ -z $(ls -A "$AFTR_BPFFS/aftr") ]]
}

aftrd_alive() { [[ -n $AFTRD_PID ]] && kill -0 "$AFTRD_PID" 2>/dev/null; }

# ---- the lab, with the pcp block naming this run's scratch dir ----
aftr_lab_prepare
PCP_CLIENTS=$TOPO_TMP/pcp-clients
aftr_config_write "$AFTR_CONF" "$(pcp_line 120)"

# A source outside b4_prefixes, on b4a's wire, that the AFTR can answer.
in_ns b4a ip -6 addr add "$OUTSIDER_ADDR6/128" dev "$B4_IF_WAN" nodad
in_ns aftr ip -6 route add "$OUTSIDER_ADDR6/128" dev "$AFTR_IF_A"
in_ns aftr ip -6 neigh replace "$OUTSIDER_ADDR6" lladdr "$MAC_B4A_WAN" dev "$AFTR_IF_A" nud permanent

launch_aftrd
check "PCP server listening on [$SOFTWIRE_ADDR6]:5351" \
	wait_until 10 in_ns aftr bash -c "ss -Hlun 'sport = :5351' | grep -qF '$SOFTWIRE_ADDR6'"

rc=0
run_phase main 120 300 || rc=1
check "aftrd still runs after the main phase" aftrd_alive

# ---- restart: SIGTERM, start again (data plane and pinned maps stay); b4a listens on 5350 ----
check "aftrd exits 0 on SIGTERM" aftrd_term
check "a listener on [$B4A_ADDR6]:5350 in b4a" announce_listener_start "$TOPO_TMP/announce-restart.json" 8
check "aftrd starts again" launch_aftrd
run_phase restart 120 60 || rc=1
announce_listener_wait

# ---- rate limit: requests_per_second 5, request_burst 10 ----
check "aftrd exits 0 on SIGTERM (before the rate-limit phase)" aftrd_term
aftr_config_write "$AFTR_CONF" "$(pcp_line 120 5 10)"
PCP_RATE=5 PCP_BURST=10
check "aftrd starts with requests_per_second 5, request_burst 10" launch_aftrd
run_phase ratelimit 120 60 || rc=1
PCP_RATE=1000 PCP_BURST=1000

# ---- state loss: SIGTERM, --detach --purge, start again (with min_lifetime 2 for expiry) ----
check "aftrd exits 0 on SIGTERM (before the state loss)" aftrd_term
check "b4a is in the clients file ($PCP_CLIENTS)" grep -qx "$B4A_ADDR6" "$PCP_CLIENTS"
check "aftrd --detach --purge" aftrd_detach --purge
check "no pinned maps left under $AFTR_BPFFS/aftr" pins_gone
aftr_config_write "$AFTR_CONF" "$(pcp_line 2)"
check "a listener on [$B4A_ADDR6]:5350 in b4a" announce_listener_start "$TOPO_TMP/announce-loss.json" 10
check "aftrd starts on the purged state (min_lifetime 2)" launch_aftrd
check "aftrd logs the unsolicited ANNOUNCEs" \
	wait_until 5 grep -q "unsolicited ANNOUNCE" "$AFTRD_STDERR"
run_phase stateloss 2 60 || rc=1
announce_listener_wait

# ---- expiry: min_lifetime 2 ----
run_phase expiry 2 60 || rc=1
check "aftrd still runs at the end" aftrd_alive

if ((rc || failures)); then
	echo "pcp_test: FAILED (python phases rc=$rc, driver checks failed: $failures)"
	echo "--- aftrd stderr (last run)"
	tail -n 60 "$AFTRD_STDERR" || true
	exit 1
fi
echo "pcp_test: all checks passed"
