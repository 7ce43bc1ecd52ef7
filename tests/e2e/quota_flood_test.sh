#!/usr/bin/env bash
# e2e: quotas under attack. h1 (behind b4a) floods new UDP flows — random source ports to
# random destination ports — while h2 (behind b4b) keeps downloading over HTTP, sending UDP
# and pinging. First h1 runs into its session limit (max_sessions_per_subscriber 300, with
# 2 blocks of 512 ports it has ports to spare): SL events and drop_session_limit; its
# sessions never exceed the limit. Then the limit is raised live to 4096 and h1 floods
# again: now its two blocks run out: PX events and drop_ports_exhausted, never a third
# block. h2's traffic and new sessions keep working throughout, and it still gets its block.
# The data plane raises an SL/PX event per dropped packet; aftrd writes at most about one line
# per limit and B4 a second (logging.limit_event_interval_ms, default 1000): each line's " +N"
# says how many were suppressed before it, the counters events_suppressed_sl/_px count them,
# and lines + their N account for every dropped packet once the last held event is written.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"
# shellcheck source=SCRIPTDIR/aftrctl.sh
source "$here/aftrctl.sh"
require_root

PY=/usr/bin/python3
FLOOD_PID=""
cleanup() {
	set +e  # a `wait` for a killed process must not stop the teardown
	[[ -n $FLOOD_PID ]] && _kill_pid "$FLOOD_PID"
	aftr_lab_down
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

AFTR_PORT_BLOCKS="block_size: 512 max_blocks_per_subscriber: 2 max_sessions_per_subscriber: 300" \
	aftr_lab_up

# flood COUNT SECONDS: h1 sends COUNT UDP datagrams from COUNT distinct source ports to random
# destination ports of the Internet host, spread over at most SECONDS (bounded both ways).
flood() {
	in_ns h1 timeout $(($2 + 10)) "$PY" - "$INET_ADDR4" "$1" "$2" <<-'PY'
		import random, socket, sys, time
		dst, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
		start = time.monotonic()
		ports = random.sample(range(20000, 60000), count)
		for i, sport in enumerate(ports):
		    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		    s.bind(("0.0.0.0", sport))
		    s.sendto(b"flood", (dst, random.randint(1024, 65535)))
		    s.close()
		    # Keep to the schedule: count datagrams evenly over the given seconds.
		    ahead = start + seconds * (i + 1) / count - time.monotonic()
		    if ahead > 0:
		        time.sleep(ahead)
		PY
}
# victim_works: h2's traffic of every kind, each a new session from a new source port.
victim_works() {
	check_http h2 && check_udp h2 && check_ping h2
}
sessions_of() {
	aftrctl_run --json subscribers get "$1" | "$PY" -c \
		'import json, sys; print(int(json.load(sys.stdin).get("session_count", 0)))'
}
blocks_of() {
	aftrctl_run --json subscribers get "$1" | "$PY" -c \
		'import json, sys; print(len(json.load(sys.stdin).get("port_blocks", [])))'
}
at_least() { local got; got=$("$1" "$2"); ((got >= $3)) || { echo "    $1 $2 = $got, expected >= $3" >&2; return 1; }; }
at_most() { local got; got=$("$1" "$2"); ((got <= $3)) || { echo "    $1 $2 = $got, expected <= $3" >&2; return 1; }; }
counter_above() { local got; got=$(aftr_counter "$1"); ((got > $2)) || { echo "    $1 = $got" >&2; return 1; }; }
lines_of() { grep -c " $1 " "$AFTR_EVENTS_LOG" || true; }
# limit_lines CODE B4 / limit_suppressed CODE B4: the lines of that limit and B4, and the sum of
# their " +N" counts (HH:MM:SS CODE PROTO B4 INNER:PORT [+N]).
limit_lines() { awk -v c="$1" -v b4="$2" '$2 == c && $4 == b4 { n++ } END { print n + 0 }' "$AFTR_EVENTS_LOG"; }
limit_suppressed() {
	awk -v c="$1" -v b4="$2" '$2 == c && $4 == b4 && $6 ~ /^[+][0-9]+$/ { n += substr($6, 2) } END { print n + 0 }' "$AFTR_EVENTS_LOG"
}
stat_of() { aftrctl_run stats | awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }'; }
# accounted CODE B4 DROPS: lines + their N = DROPS, i.e. every event is in the log or counted
# (held events are written an interval after the last one, at the next sweep).
accounted() { (($(limit_lines "$1" "$2") + $(limit_suppressed "$1" "$2") == $3)); }
# at_most_lines CODE B4 MAX
at_most_lines() {
	local got; got=$(limit_lines "$1" "$2")
	((got >= 1 && got <= $3)) || { echo "    $1 lines of $2: $got, expected 1..$3" >&2; return 1; }
}
suppressed_counted() {
	local lines drops counter; lines=$(limit_lines "$1" "$2"); drops=$3; counter=$(stat_of "$4")
	[[ $counter == $((drops - lines)) && $counter == $(limit_suppressed "$1" "$2") ]] ||
		{ echo "    $4 = $counter, drops $drops, lines $lines, +N in the log $(limit_suppressed "$1" "$2")" >&2; return 1; }
}

check "h2 works before the flood" victim_works

# ---- 1. the session limit ----
flood 2000 8 &
FLOOD_PID=$!
sleep 1
check "h2 works during the flood (session limit phase)" victim_works
check "h2 works again during the flood" victim_works
wait "$FLOOD_PID"
FLOOD_PID=""
check "drop_session_limit counted the flood beyond 300 sessions" counter_above drop_session_limit 1000
check "h1 holds at most 300 sessions" at_most sessions_of "$B4A_ADDR6" 300
check "SL events logged for b4a" bash -c "grep -q ' SL udp $B4A_ADDR6 ' '$AFTR_EVENTS_LOG'"
sl_drops=$(aftr_counter drop_session_limit)
check "SL lines + their +N account for every dropped packet ($sl_drops)" \
	wait_until 5 accounted SL "$B4A_ADDR6" "$sl_drops"
# An 8 s flood at one line a second (plus a held one written after it): a handful, not ~1700.
check "only a handful of SL lines for b4a ($(limit_lines SL "$B4A_ADDR6"))" at_most_lines SL "$B4A_ADDR6" 12
check "events_suppressed_sl counts the rest" suppressed_counted SL "$B4A_ADDR6" "$sl_drops" events_suppressed_sl
check "h2 works after the flood" victim_works

# ---- 2. the block quota: the session limit raised live above h1's 1024 ports ----
raise_limit() {
	aftrctl_run config get >"$TOPO_TMP/live.conf" &&
		sed -i 's/max_sessions_per_subscriber: 300/max_sessions_per_subscriber: 4096/' "$TOPO_TMP/live.conf" &&
		aftrctl_run config reload --from "$TOPO_TMP/live.conf" >/dev/null
}
check "max_sessions_per_subscriber raised to 4096 live" raise_limit
px_before=$(aftr_counter drop_ports_exhausted)
flood 3000 10 &
FLOOD_PID=$!
sleep 1
check "h2 works during the flood (block quota phase)" victim_works
check "h2 works again during the flood" victim_works
wait "$FLOOD_PID"
FLOOD_PID=""
check "drop_ports_exhausted counted the flood beyond h1's two blocks" counter_above drop_ports_exhausted $((px_before + 500))
check "h1 holds at most its 2 blocks" at_most blocks_of "$B4A_ADDR6" 2
check "h1 holds at most its 1024 ports as sessions" at_most sessions_of "$B4A_ADDR6" 1024
check "PX events logged for b4a" bash -c "grep -q ' PX udp $B4A_ADDR6 ' '$AFTR_EVENTS_LOG'"
px_drops=$(($(aftr_counter drop_ports_exhausted) - px_before))
check "PX lines + their +N account for every dropped packet ($px_drops)" \
	wait_until 5 accounted PX "$B4A_ADDR6" "$px_drops"
check "only a handful of PX lines for b4a ($(limit_lines PX "$B4A_ADDR6"))" at_most_lines PX "$B4A_ADDR6" 14
check "events_suppressed_px counts the rest" suppressed_counted PX "$B4A_ADDR6" "$px_drops" events_suppressed_px
check "no PX or SL event names b4b" bash -c "! grep -E ' (PX|SL) [a-z]+ $B4B_ADDR6 ' '$AFTR_EVENTS_LOG'"
check "h2 works after the flood" victim_works
check "h2 holds a block of its own" at_least blocks_of "$B4B_ADDR6" 1
check "aftrd still runs" kill -0 "$AFTRD_PID"
echo "     lines: SL $(lines_of SL), PX $(lines_of PX); events_suppressed $(stat_of events_suppressed); drop_session_limit $(aftr_counter drop_session_limit), drop_ports_exhausted $(aftr_counter drop_ports_exhausted)"

if ((failures)); then
	echo "quota_flood_test: FAILED ($failures checks)"
	tail -n 20 "$AFTRD_STDERR" || true
	exit 1
fi
echo "quota_flood_test: all checks passed"
