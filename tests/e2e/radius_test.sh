#!/usr/bin/env bash
# e2e: aftrd's RADIUS accounting server and the subscriber identity history, driven by the
# real FreeRADIUS client (radclient). Two BRASes: "bras1" in the inet namespace sends over IPv4
# (203.0.113.10 -> 203.0.113.1:1813, through the AFTR's XDP, which passes what is not for
# the pool), "bras2" in b4a over IPv6 (2001:db8:a::2 -> [2001:db8:a::1]:1813, same "::"
# socket; its secret from a secret_file). Start / Interim (new delegated prefix) / Stop for
# two subscribers; every request answered; the history read back with the sqlite3 CLI (the
# intervals, the prefixes, end exclusive); a wrong secret is not answered and is counted; a
# malformed datagram and one from an unknown source are counted and the server keeps
# serving; a retransmission is answered from the cache and counted once; aftrd restarted:
# the history is still there and a Stop after the restart closes the session opened before
# it; an Accounting-On closes everything of its NAS; a Status-Server is answered.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"
# shellcheck source=SCRIPTDIR/aftrctl.sh
source "$here/aftrctl.sh"

require_root
for tool in radclient sqlite3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (scripts/install-deps.sh)"; exit 77; }
done

PY=/usr/bin/python3
SECRET1=lab-bras1-secret
SECRET2=lab-bras2-secret
RADIUS_PORT=1813

trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the lab, with the radius block naming this run's scratch dir ----
aftr_lab_prepare
HISTORY_DB=$TOPO_TMP/history/subscribers.sqlite3
printf '%s\n' "$SECRET2" >"$TOPO_TMP/bras2.secret"
aftr_config_write "$AFTR_CONF" \
	"radius { enabled: true port: $RADIUS_PORT history_db: \"$HISTORY_DB\" history_days: 30" \
	"  clients { source: \"$INET_ADDR4\" secret: \"$SECRET1\" }" \
	"  clients { source: \"$B4A_ADDR6/128\" secret_file: \"$TOPO_TMP/bras2.secret\" } }"

# acct ROLE SERVER SECRET ATTRIBUTES: one Accounting-Request by radclient from ROLE's
# namespace (1 try, 2 s timeout); succeeds when an Accounting-Response came back.
acct() {
	local role=$1 server=$2 secret=$3 attrs=$4
	printf '%s\n' "$attrs" | in_ns "$role" timeout 10 radclient -q -r 1 -t 2 "$server" acct "$secret"
}
BRAS1_SERVER=$AFTR_INET_ADDR4:$RADIUS_PORT
BRAS2_SERVER=[$AFTR_A_ADDR6]:$RADIUS_PORT
acct1() { acct inet "$BRAS1_SERVER" "$SECRET1" "$1"; }
acct2() { acct b4a "$BRAS2_SERVER" "$SECRET2" "$1"; }

# counter NAME: a controller counter from `aftrctl --json stats` (0 when absent).
counter() {
	aftrctl_run --json stats | "$PY" -c \
		'import json, sys; print(int(json.load(sys.stdin).get("controller_counters", {}).get(sys.argv[1], 0)))' "$1"
}
# counter_is NAME VALUE
counter_is() {
	local got
	got=$(counter "$1")
	[[ $got == "$2" ]] || { echo "    $1 = $got, expected $2" >&2; return 1; }
}

# sql QUERY: the history, read as an operator would (the sqlite3 CLI; WAL lets it read
# while aftrd writes).
sql() { sqlite3 -batch -noheader -separator ' ' "$HISTORY_DB" "$1"; }
# sql_is QUERY EXPECTED
sql_is() {
	local got
	got=$(sql "$1")
	[[ $got == "$2" ]] || { printf '    %s\n    got:      %q\n    expected: %q\n' "$1" "$got" "$2" >&2; return 1; }
}
# The bindings of one user: "prefix start_s end_s" per row, end "open" while open.
bindings_of() {
	echo "SELECT prefix, start_us / 1000000, COALESCE(end_us / 1000000, 'open') FROM bindings" \
		"WHERE user_name = '$1' ORDER BY start_us, rowid"
}
# Who held B4 (an address inside a prefix, given as a prefix row) at T: the rows that
# contain it, by a textual prefix list (the C++ Lookup is unit-tested; this checks the file).
held_at() {
	echo "SELECT DISTINCT user_name FROM bindings WHERE prefix IN ($1)" \
		"AND start_us <= $2 * 1000000 AND (end_us IS NULL OR end_us > $2 * 1000000) ORDER BY user_name"
}

# Event times: a day ago (inside history_days 30, so nothing of it is pruned).
T0=$(($(date +%s) - 86400))
launch() {
	aftrd_start || return 1
	wait_until 10 in_ns aftr bash -c "ss -Hlun 'sport = :$RADIUS_PORT' | grep -q ."
}
check "aftrd starts with radius enabled and listens on :$RADIUS_PORT" launch
check "the history file was created" test -f "$HISTORY_DB"
check "WAL mode" sql_is "PRAGMA journal_mode" "wal"
status1() {
	printf 'Message-Authenticator = 0x00\n' |
		in_ns inet timeout 10 radclient -q -r 1 -t 2 "$BRAS1_SERVER" status "$SECRET1"
}
check "Status-Server (RFC 5997) from bras1 answered" status1
check "radius_status_server is 1" counter_is radius_status_server 1

# ---- alice (bras1, IPv4) and bob (bras2, IPv6): Start ----
check "bras1 Start for alice answered" acct1 "Acct-Status-Type = Start
User-Name = \"alice@isp.example\"
Acct-Session-Id = \"bras1-0001\"
NAS-Identifier = \"bras1\"
NAS-Port-Id = \"ge-0/0/1.100\"
Framed-IPv6-Prefix = 2001:db8:a::/64
Delegated-IPv6-Prefix = 2001:db8:b::/56
Event-Timestamp = $T0"
check "bras2 Start for bob answered (over IPv6, Message-Authenticator, secret_file)" acct2 "Acct-Status-Type = Start
User-Name = \"bob@isp.example\"
Acct-Session-Id = \"bras2-0001\"
NAS-IPv6-Address = $B4A_ADDR6
NAS-Port-Id = \"xe-1/0/0.200\"
Framed-IPv6-Prefix = 2001:db8:c::/64
Delegated-IPv6-Prefix = 2001:db8:d::/56
Framed-IPv6-Address = 2001:db8:c::2
Event-Timestamp = $((T0 + 5))
Message-Authenticator = 0x00"
check "radius_starts is 2" counter_is radius_starts 2
check "alice's binding: her two prefixes, open, from the Event-Timestamp" sql_is "$(bindings_of alice@isp.example)" \
	"2001:db8:a::/64 $T0 open
2001:db8:b::/56 $T0 open"
check "bob's binding carries the NAS-IPv6-Address as NAS and the /128" sql_is \
	"SELECT DISTINCT nas, nas_port_id, acct_session_id FROM bindings WHERE user_name = 'bob@isp.example'" \
	"$B4A_ADDR6 xe-1/0/0.200 bras2-0001"
check "bob holds three prefixes" sql_is "SELECT COUNT(*) FROM bindings WHERE user_name = 'bob@isp.example'" 3

# ---- Interim: alice's delegated prefix changes at T0+600; an unchanged Interim for bob ----
check "bras1 Interim for alice (new Delegated-IPv6-Prefix) answered" acct1 "Acct-Status-Type = Interim-Update
User-Name = \"alice@isp.example\"
Acct-Session-Id = \"bras1-0001\"
NAS-Identifier = \"bras1\"
NAS-Port-Id = \"ge-0/0/1.100\"
Framed-IPv6-Prefix = 2001:db8:a::/64
Delegated-IPv6-Prefix = 2001:db8:e::/56
Acct-Session-Time = 600
Event-Timestamp = $((T0 + 600))"
check "bras2 Interim for bob (unchanged) answered" acct2 "Acct-Status-Type = Interim-Update
User-Name = \"bob@isp.example\"
Acct-Session-Id = \"bras2-0001\"
NAS-IPv6-Address = $B4A_ADDR6
NAS-Port-Id = \"xe-1/0/0.200\"
Framed-IPv6-Prefix = 2001:db8:c::/64
Delegated-IPv6-Prefix = 2001:db8:d::/56
Framed-IPv6-Address = 2001:db8:c::2
Event-Timestamp = $((T0 + 605))"
check "alice: the old binding ended at the Interim, a new one began there" sql_is "$(bindings_of alice@isp.example)" \
	"2001:db8:a::/64 $T0 $((T0 + 600))
2001:db8:b::/56 $T0 $((T0 + 600))
2001:db8:a::/64 $((T0 + 600)) open
2001:db8:e::/56 $((T0 + 600)) open"
check "bob: an unchanged Interim leaves one binding" sql_is \
	"SELECT COUNT(DISTINCT binding_id) FROM bindings WHERE user_name = 'bob@isp.example'" 1
check "radius_interims is 2" counter_is radius_interims 2

# ---- Stop for alice at T0+3600; her /56 goes to carol at T0+3601 ----
check "bras1 Stop for alice answered" acct1 "Acct-Status-Type = Stop
User-Name = \"alice@isp.example\"
Acct-Session-Id = \"bras1-0001\"
NAS-Identifier = \"bras1\"
Framed-IPv6-Prefix = 2001:db8:a::/64
Delegated-IPv6-Prefix = 2001:db8:e::/56
Acct-Session-Time = 3600
Event-Timestamp = $((T0 + 3600))"
check "bras1 Start for carol with alice's former /56 answered" acct1 "Acct-Status-Type = Start
User-Name = \"carol@isp.example\"
Acct-Session-Id = \"bras1-0002\"
NAS-Identifier = \"bras1\"
Delegated-IPv6-Prefix = 2001:db8:e::/56
Event-Timestamp = $((T0 + 3601))"
check "alice's second binding ends at the Stop" sql_is \
	"SELECT DISTINCT end_us / 1000000 FROM bindings WHERE user_name = 'alice@isp.example' AND start_us = $((T0 + 600)) * 1000000" \
	"$((T0 + 3600))"
E56="'2001:db8:e::/56'"
check "2001:db8:e::/56 at T0+3599: alice" sql_is "$(held_at "$E56" $((T0 + 3599)))" "alice@isp.example"
check "2001:db8:e::/56 at T0+3600: nobody (end exclusive)" sql_is "$(held_at "$E56" $((T0 + 3600)))" ""
check "2001:db8:e::/56 at T0+3601: carol" sql_is "$(held_at "$E56" $((T0 + 3601)))" "carol@isp.example"
check "radius_stops is 1" counter_is radius_stops 1

# ---- what is dropped: wrong secret, unknown source, malformed, not accounting ----
no_answer() { ! acct "$@"; }
check "a wrong secret gets no answer" no_answer inet "$BRAS1_SERVER" wrong-secret "Acct-Status-Type = Start
Acct-Session-Id = \"evil\"
User-Name = \"mallory\"
Framed-IPv6-Prefix = 2001:db8:a::/64"
check "radius_dropped_bad_authenticator is 1" counter_is radius_dropped_bad_authenticator 1
check "mallory was not recorded" sql_is "SELECT COUNT(*) FROM bindings WHERE user_name = 'mallory'" 0
# The softwire address is not a client: its accounting is dropped unanswered.
check "an unknown source gets no answer" no_answer aftr "[$AFTR_A_ADDR6]:$RADIUS_PORT" "$SECRET1" "Acct-Status-Type = Start
Acct-Session-Id = \"x\""
check "radius_dropped_unknown_client is 1" counter_is radius_dropped_unknown_client 1
# A datagram whose Length field says 200 in 24 octets, and a 3-octet one.
send_raw() {
	in_ns inet timeout 5 "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
' "$AFTR_INET_ADDR4" "$RADIUS_PORT" "$1"
}
check "a malformed datagram is sent" send_raw "0401 00c8 00000000000000000000000000000000 01020304"
check "a 3-octet datagram is sent" send_raw "040100"
check "radius_dropped_malformed is 2" wait_until 3 counter_is radius_dropped_malformed 2
check "aftrd still answers after the malformed datagrams" acct1 "Acct-Status-Type = Interim-Update
User-Name = \"carol@isp.example\"
Acct-Session-Id = \"bras1-0002\"
NAS-Identifier = \"bras1\"
Delegated-IPv6-Prefix = 2001:db8:e::/56
Event-Timestamp = $((T0 + 4000))"

# ---- a retransmission: the same datagram twice (radclient with a lost reply is random; a
# raw replay is exact) is answered twice and recorded once ----
replay() {
	in_ns inet timeout 10 "$PY" - "$AFTR_INET_ADDR4" "$RADIUS_PORT" "$SECRET1" <<-'EOF'
		import hashlib, socket, struct, sys
		server, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
		def attr(t, v): return bytes([t, len(v) + 2]) + v
		body = (attr(40, struct.pack("!I", 1)) + attr(1, b"dave@isp.example") + attr(44, b"bras1-0003")
		        + attr(32, b"bras1") + attr(97, bytes([0, 64]) + bytes.fromhex("20010db8000f0000"))
		        + attr(55, struct.pack("!I", 1700005000)))
		head = bytes([4, 77]) + struct.pack("!H", 20 + len(body))
		pkt = head + hashlib.md5(head + bytes(16) + body + secret).digest() + body
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.settimeout(2)
		replies = []
		for _ in range(2):
		    s.sendto(pkt, (server, port))
		    replies.append(s.recv(100))
		want = hashlib.md5(bytes([5, 77, 0, 20]) + pkt[4:20] + secret).digest()
		ok = all(r[:4] == bytes([5, 77, 0, 20]) and r[4:] == want for r in replies)
		sys.exit(0 if ok and replies[0] == replies[1] else 1)
	EOF
}
check "a replayed Start gets the same (valid) Accounting-Response twice" replay
check "radius_duplicates is 1" counter_is radius_duplicates 1
check "dave was recorded once" sql_is \
	"SELECT COUNT(*) FROM bindings WHERE user_name = 'dave@isp.example'" 1

# ---- a session heard of only by its Stop, 40 days ago: recorded (dated back by
# Acct-Session-Time), then pruned at the next start (history_days 30) ----
T_OLD=$(($(date +%s) - 40 * 86400))
check "bras1 Stop of an old unknown session answered" acct1 "Acct-Status-Type = Stop
User-Name = \"olga@isp.example\"
Acct-Session-Id = \"bras1-old\"
NAS-Identifier = \"bras1\"
Framed-IPv6-Prefix = 2001:db8:a:9::/64
Acct-Session-Time = 3600
Event-Timestamp = $T_OLD"
check "olga's closed binding is recorded from Stop minus Acct-Session-Time" sql_is \
	"SELECT start_us / 1000000, end_us / 1000000 FROM bindings WHERE user_name = 'olga@isp.example'" \
	"$((T_OLD - 3600)) $T_OLD"

# ---- restart: the history is a file; the open sessions carry on ----
check "aftrd exits 0 on SIGTERM" aftrd_term
check "the history is still there after aftrd stopped" sql_is \
	"SELECT COUNT(DISTINCT binding_id) FROM bindings" 6
check "aftrd starts again" launch
check "olga's binding, ended 40 days ago, was pruned at the start" wait_until 5 sql_is \
	"SELECT COUNT(*) FROM bindings WHERE user_name = 'olga@isp.example'" 0
check "aftrd logged the pruning" grep -q "pruned 1 expired bindings" "$AFTRD_STDERR"
check "bras2 Stop for bob after the restart answered" acct2 "Acct-Status-Type = Stop
User-Name = \"bob@isp.example\"
Acct-Session-Id = \"bras2-0001\"
NAS-IPv6-Address = $B4A_ADDR6
Acct-Session-Time = 7200
Event-Timestamp = $((T0 + 7205))"
check "bob's binding (opened before the restart) ends at his Stop" sql_is \
	"SELECT DISTINCT start_us / 1000000, end_us / 1000000 FROM bindings WHERE user_name = 'bob@isp.example'" \
	"$((T0 + 5)) $((T0 + 7205))"
check "alice's history survived the restart" sql_is \
	"SELECT COUNT(*) FROM bindings WHERE user_name = 'alice@isp.example'" 4

# ---- Accounting-On from bras1 (it rebooted): carol and dave end there ----
check "bras1 Accounting-On answered" acct1 "Acct-Status-Type = Accounting-On
NAS-Identifier = \"bras1\"
Event-Timestamp = $((T0 + 9000))"
check "radius_accounting_on_off is 1" counter_is radius_accounting_on_off 1
check "no binding of bras1 is open any more" sql_is \
	"SELECT COUNT(*) FROM bindings WHERE nas = 'bras1' AND end_us IS NULL" 0
check "carol's binding ends at the Accounting-On" sql_is \
	"SELECT end_us / 1000000 FROM bindings WHERE user_name = 'carol@isp.example'" "$((T0 + 9000))"
check "aftrd still runs" kill -0 "$AFTRD_PID"

if ((failures)); then
	echo "radius_test: FAILED ($failures checks)"
	echo "--- aftrd stderr"
	tail -n 40 "$AFTRD_STDERR" || true
	echo "--- history"
	sqlite3 -header "$HISTORY_DB" "SELECT * FROM bindings" || true
	exit 1
fi
echo "radius_test: all checks passed"
