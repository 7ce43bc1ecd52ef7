#!/usr/bin/env bash
# e2e: "who had this public address and port at that time?" end to end. aftrd in the lab with
# the default logging (port blocks only, B4s as /64) and RADIUS accounting from a BRAS in the
# inet namespace (radclient): alice holds b4a's /64, bob b4b's /56. Traffic from both hosts
# claims a block each; `aftrctl who` answers for a port of each block before (nobody),
# during (the B4 prefix, the block, the interval, the RADIUS identity) and after the block
# (released when its sessions expired: nobody), and still answers for the past after a
# restart, and after the index is deleted (rebuilt from the daily logs). Each port-block line
# is at most 62 bytes; bad queries get clear errors.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"
# shellcheck source=SCRIPTDIR/aftrctl.sh
source "$here/aftrctl.sh"

require_root
command -v radclient >/dev/null || { echo "SKIP: radclient not installed (scripts/install-deps.sh)"; exit 77; }

PY=/usr/bin/python3
SECRET=lab-bras-secret
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the lab, with the defaults of logging, short timeouts and RADIUS ----
aftr_lab_prepare
AFTR_EVENTS_LOG=$TOPO_TMP/logs/events.log
INDEX_DB=$TOPO_TMP/attribution.sqlite3
AFTR_LOGGING="" AFTR_PORT_BLOCKS="block_size: 512 max_blocks_per_subscriber: 4 hold_down_seconds: 1" \
	aftr_config_write "$AFTR_CONF" \
	'timeouts { udp: 5 icmp: 5 tcp_transitory: 5 }' 'sweep_interval_ms: 200' \
	"radius { enabled: true history_db: \"$TOPO_TMP/subscribers.sqlite3\"" \
	"  clients { source: \"$INET_ADDR4\" secret: \"$SECRET\" } }"

acct() {
	printf '%s\n' "$1" | in_ns inet timeout 10 radclient -q -r 1 -t 2 "$AFTR_INET_ADDR4:1813" acct "$SECRET"
}
iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }

# who ADDRESS PORT EPOCH: `aftrctl --json who`, one line per holder:
# "kind b4_prefix first-last start end|held user1,user2" (times as Unix seconds).
who() {
	aftrctl_run --json who "$1" "$2" "$(iso "$3")" | "$PY" -c '
import json, sys, datetime
def secs(t):
    return int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) if t else None
for a in json.load(sys.stdin).get("attributions", []):
    users = ",".join(i.get("user_name", "") for i in a.get("identities", []))
    end = secs(a.get("end_time"))
    print(a["kind"], a["b4_prefix"], "%d-%d" % (a["port_range_start"], a["port_range_end"]),
          secs(a["start_time"]), end if end is not None else "held", users or "-")
'
}
# who_is ADDRESS PORT EPOCH EXPECTED (lines of `who`, start/end left out: "kind b4 range users")
who_is() {
	local got
	got=$(who "$1" "$2" "$3" | awk '{ print $1, $2, $3, $6 }') || return 1
	[[ $got == "$4" ]] || { printf '    who %s %s %s\n    got:      %q\n    expected: %q\n' "$1" "$2" "$(iso "$3")" "$got" "$4" >&2; return 1; }
}
nobody() {
	local rc=0
	aftrctl_run who "$1" "$2" "$(iso "$3")" >/dev/null || rc=$?
	[[ $rc == 4 ]] || { echo "    aftrctl who exited $rc, expected 4 (nobody)" >&2; return 1; }
}

check "aftrd starts with logging defaults and RADIUS" aftrd_start
check "the log is a daily file, events.log links to it" \
	test "$(readlink "$AFTR_EVENTS_LOG")" = "events-$(date -u +%Y-%m-%d).log"

T_START=$(date +%s)
check "bras: Start for alice (b4a's /64)" acct "Acct-Status-Type = Start
User-Name = \"alice@isp.example\"
Acct-Session-Id = \"s-alice\"
NAS-Identifier = \"bras1\"
Framed-IPv6-Prefix = 2001:db8:a::/64
Event-Timestamp = $((T_START - 60))"
check "bras: Start for bob (b4b inside his delegated /56)" acct "Acct-Status-Type = Start
User-Name = \"bob@isp.example\"
Acct-Session-Id = \"s-bob\"
NAS-Identifier = \"bras1\"
Delegated-IPv6-Prefix = 2001:db8:b::/56
Event-Timestamp = $((T_START - 60))"

sleep 1.1
T_BEFORE=$(date +%s)
sleep 1.1
check "h1: UDP through the AFTR" check_udp h1
check "h2: UDP through the AFTR" check_udp h2
check "two blocks claimed (two BA lines)" wait_until 5 bash -c "[[ \$(grep -c ' BA ' '$AFTR_EVENTS_LOG') == 2 ]]"
check "no session lines in port-block mode" bash -c "! grep -q ' SC ' '$AFTR_EVENTS_LOG'"
sleep 1.1
T_DURING=$(date +%s)

# "HH:MM:SS BA 2001:db8:a:: 198.51.100.5 1024-1535" -> address first last
block_of() { awk -v b4="$1" '$2 == "BA" && $3 == b4 { split($5, r, "-"); print $4, r[1], r[2]; exit }' "$AFTR_EVENTS_LOG"; }
read -r A_ADDR A_FIRST A_LAST < <(block_of 2001:db8:a::)
read -r B_ADDR B_FIRST B_LAST < <(block_of 2001:db8:b::)
echo "     blocks: b4a $A_ADDR $A_FIRST-$A_LAST, b4b $B_ADDR $B_FIRST-$B_LAST"
check "b4a's block is in the log as its /64" test -n "$A_ADDR"
check "b4b's block is in the log as its /64" test -n "$B_ADDR"
check "every port-block line is at most 62 bytes" \
	awk '$2 == "BA" || $2 == "BR" { if (length($0) + 1 > 62) bad = 1 } END { exit bad }' "$AFTR_EVENTS_LOG"

held_open() { [[ $(who "$A_ADDR" "$A_FIRST" "$T_DURING" | awk '{ print $5 }') == held ]]; }
check "during: the block is still held (no end)" held_open
check "before the block: nobody held b4a's port" nobody "$A_ADDR" "$A_FIRST" "$T_BEFORE"
check "during: b4a's first port -> alice's /64, the block" who_is "$A_ADDR" "$A_FIRST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:a::/64 $A_FIRST-$A_LAST alice@isp.example"
check "during: b4a's last port -> the same" who_is "$A_ADDR" "$A_LAST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:a::/64 $A_FIRST-$A_LAST alice@isp.example"
check "during: b4b's block -> bob" who_is "$B_ADDR" "$((B_FIRST + 7))" "$T_DURING" \
	"PORT_BLOCK 2001:db8:b::/64 $B_FIRST-$B_LAST bob@isp.example"
# A port of the pool outside both blocks.
OTHER=$((A_LAST + 1))
if [[ $A_ADDR == "$B_ADDR" && $OTHER == "$B_FIRST" ]]; then OTHER=$((B_LAST + 1)); fi
check "a port of no block: nobody" nobody "$A_ADDR" "$OTHER" "$T_DURING"
check "text form names the subscriber" bash -c \
	"'$AFTRCTL' --socket '$AFTR_API_SOCKET' who $A_ADDR $A_FIRST $(iso "$T_DURING") | grep -q 'subscriber.*alice@isp.example'"

# ---- the sessions expire, the blocks go back after the hold-down ----
check "both blocks released (two BR lines)" wait_until 20 bash -c "[[ \$(grep -c ' BR ' '$AFTR_EVENTS_LOG') == 2 ]]"
sleep 1.1
T_AFTER=$(date +%s)
check "after the release: nobody held b4a's port" nobody "$A_ADDR" "$A_FIRST" "$T_AFTER"
check "after the release: nobody held b4b's port" nobody "$B_ADDR" "$B_FIRST" "$T_AFTER"
check "the past stays answered: alice during" who_is "$A_ADDR" "$A_FIRST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:a::/64 $A_FIRST-$A_LAST alice@isp.example"
ended_between() {
	local end
	end=$(who "$A_ADDR" "$A_FIRST" "$T_DURING" | awk '{ print $5 }')
	[[ $end =~ ^[0-9]+$ ]] && ((end >= T_DURING && end < T_AFTER))
}
check "the block's interval ends between during and after" ended_between

check "bras: Stop for alice" acct "Acct-Status-Type = Stop
User-Name = \"alice@isp.example\"
Acct-Session-Id = \"s-alice\"
NAS-Identifier = \"bras1\"
Framed-IPv6-Prefix = 2001:db8:a::/64
Event-Timestamp = $(date +%s)"
check "alice still answered for the time she held the prefix" who_is "$A_ADDR" "$A_FIRST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:a::/64 $A_FIRST-$A_LAST alice@isp.example"

# ---- restarts: the index persists; without it, it is rebuilt from the daily logs ----
check "aftrd stops (SIGTERM)" aftrd_term
check "aftrd starts again" aftrd_start
check "after a restart: bob during" who_is "$B_ADDR" "$B_FIRST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:b::/64 $B_FIRST-$B_LAST bob@isp.example"
check "aftrd stops again" aftrd_term
rm -f "$INDEX_DB" "$INDEX_DB-wal" "$INDEX_DB-shm"
check "aftrd starts without its index" aftrd_start
check "the index is rebuilt from the logs: alice during" who_is "$A_ADDR" "$A_FIRST" "$T_DURING" \
	"PORT_BLOCK 2001:db8:a::/64 $A_FIRST-$A_LAST alice@isp.example"
check "... and nobody after" nobody "$A_ADDR" "$A_FIRST" "$T_AFTER"

# ---- bad queries ----
rc_is() {
	local want=$1 rc=0
	shift
	aftrctl_run "$@" >/dev/null 2>&1 || rc=$?
	[[ $rc == "$want" ]] || { echo "    aftrctl $* exited $rc, expected $want" >&2; return 1; }
}
check "who with a bad address: INVALID_ARGUMENT (exit 1)" rc_is 1 who 198.51.100.300 1024
check "who with port 0: usage error (exit 2)" rc_is 2 who "$A_ADDR" 0
check "who with a bad time: usage error (exit 2)" rc_is 2 who "$A_ADDR" 1024 yesterday
check "aftrd still runs" kill -0 "$AFTRD_PID"

if ((failures)); then
	echo "attribution_test: FAILED ($failures checks)"
	tail -n 30 "$AFTRD_STDERR" || true
	cat "$AFTR_EVENTS_LOG" || true
	exit 1
fi
echo "attribution_test: all checks passed"
