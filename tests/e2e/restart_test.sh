#!/usr/bin/env bash
# e2e: a restart that loses nothing. While a rate-limited TCP download (curl from h1) and a
# steady stream of numbered UDP datagrams (from h2) cross the AFTR, aftrd is (a) stopped
# with SIGTERM and started again, (b) killed with SIGKILL and started again, (c) upgraded:
# started with a configuration whose data-plane rodata differs (hop_limit, fib_cache_ms),
# so that a different program replaces the running one. Each time: XDP stays attached and
# forwarding while no daemon runs, the new aftrd adopts the pinned state and replaces the
# program atomically, every session keeps its public address and port, subscribers keep
# their blocks, no counter goes backwards, and an event made while no daemon ran (a new
# session) reaches the log. At the end: no UDP datagram lost, one public source seen by
# the receiver, the download complete and intact.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"

PY=/usr/bin/python3                     # Debian's, not a pyenv one
DL_FILE=restart.bin
DL_BYTES=$((4 * 1024 * 1024))           # at 160 KiB/s: about 26 s, longer than the three phases
DL_RATE=$((160 * 1024))                 # bytes/s, paced by the server (curl 7.88's --limit-rate
                                        # does not limit here)
DL_PORT=8080
UDP_PORT=9999
UDP_SRC_PORT=45000                      # one flow, so one session and one public port
UDP_INTERVAL=0.005                      # 200 datagrams/s
BG_PIDS=()

cleanup() {
	local pid
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	aftr_lab_down
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# ---- the traffic ----

udp_receiver() { # in inet: counts numbered datagrams until END n; writes a report
	in_ns inet "$PY" - "$INET_ADDR4" "$UDP_PORT" "$TOPO_TMP/udp.report" <<-'PY'
		import socket, sys, time
		addr, port, report = sys.argv[1], int(sys.argv[2]), sys.argv[3]
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
		s.bind((addr, port))
		s.settimeout(1.0)
		got, sources, end = set(), set(), None
		deadline = time.monotonic() + 200
		while time.monotonic() < deadline and end is None:
		    try:
		        data, src = s.recvfrom(128)
		    except socket.timeout:
		        continue
		    sources.add("%s:%d" % src)
		    kind, _, n = data.partition(b" ")
		    if kind == b"SEQ":
		        got.add(int(n))
		    elif kind == b"END":
		        end = int(n)
		sent = end if end is not None else -1
		missing = sum(1 for i in range(sent) if i not in got) if sent >= 0 else -1
		with open(report, "w") as f:
		    f.write("sent=%d received=%d missing=%d sources=%s\n"
		            % (sent, len(got), missing, ",".join(sorted(sources))))
	PY
}

udp_sender() { # in h2: numbered datagrams at a steady rate until the stop file appears
	in_ns h2 "$PY" - "$INET_ADDR4" "$UDP_PORT" "$UDP_SRC_PORT" "$UDP_INTERVAL" "$TOPO_TMP/udp.stop" <<-'PY'
		import os, socket, sys, time
		dst, port, sport, interval, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.bind(("0.0.0.0", sport))
		seq, t, deadline = 0, time.monotonic(), time.monotonic() + 150
		while not os.path.exists(stop) and time.monotonic() < deadline:
		    s.sendto(b"SEQ %d" % seq, (dst, port))
		    seq += 1
		    t += interval
		    time.sleep(max(0.0, t - time.monotonic()))
		time.sleep(0.5)  # everything before END has arrived by then
		for _ in range(3):
		    s.sendto(b"END %d" % seq, (dst, port))
		    time.sleep(0.1)
	PY
}

slow_server_start() { # in inet: serves $DL_FILE on $DL_PORT at $DL_RATE bytes/s
	# (a background command's stdin is /dev/null: the script goes in a file)
	cat >"$TOPO_TMP/slow_http.py" <<-'PY'
		import http.server, socketserver, sys, time
		addr, port, path, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
		data = open(path, "rb").read()
		class Slow(http.server.BaseHTTPRequestHandler):
		    def do_GET(self):
		        self.send_response(200)
		        self.send_header("Content-Length", str(len(data)))
		        self.end_headers()
		        chunk, t = max(1, rate // 20), time.monotonic()
		        for off in range(0, len(data), chunk):
		            self.wfile.write(data[off:off + chunk])
		            t += 0.05
		            time.sleep(max(0.0, t - time.monotonic()))
		    def log_message(self, *args):
		        pass
		socketserver.ThreadingTCPServer.allow_reuse_address = True
		with socketserver.ThreadingTCPServer((addr, port), Slow) as server:
		    server.serve_forever()
	PY
	bg_in_ns inet "$TOPO_TMP/slow-http.log" "$PY" "$TOPO_TMP/slow_http.py" "$INET_ADDR4" \
		"$DL_PORT" "$TOPO_TMP/www/$DL_FILE" "$DL_RATE"
	wait_until 10 in_ns inet bash -c "ss -Hltn 'sport = :$DL_PORT' | grep -q ."
}

download() { # in h1: the paced download; writes "bytes http_code rc=curl's status"
	local rc=0 out
	out=$(in_ns h1 curl -sS -o "$TOPO_TMP/dl.out" -w '%{size_download} %{http_code} %{time_total}' \
		--max-time 120 "http://$INET_ADDR4:$DL_PORT/$DL_FILE" 2>"$TOPO_TMP/dl.err") || rc=$?
	echo "${out% *} rc=$rc" >"$TOPO_TMP/dl.result"
	echo "${out##* }" >"$TOPO_TMP/dl.seconds"
}

# ---- what must hold across a restart ----

prog_id() { in_ns aftr ip -d link show dev "$AFTR_IF_A" | grep -o 'prog/xdp id [0-9]*' | awk '{print $3}'; }
prog_name_ok() { [[ $(in_ns aftr ip -d link show dev "$AFTR_IF_A") == *"name aftr_xdp"* ]]; }
# "proto b4 inner public" of every TCP and UDP session.
session_map() { aftr_show sessions | awk '$1 == "tcp" || $1 == "udp" { print $1, $2, $3, $4 }' | sort; }
counter_map() { aftr_show counters | awk '$1 ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9]+$/ { print $1, $2 }'; }
subscriber_map() { aftr_show subscribers | awk '/^2001:/ { print $1, $2, $4 }' | sort; }

# Every session of before is still there with the same public address and port.
sessions_kept() { # BEFORE_FILE
	local after
	after=$(session_map)
	[[ -s $1 ]] || return 1
	while read -r line; do
		grep -qxF -- "$line" <<<"$after" || { echo "  lost or moved: $line" >&2; return 1; }
	done <"$1"
}

counters_not_backwards() { # BEFORE_FILE
	local after name value now
	after=$(counter_map)
	while read -r name value; do
		now=$(awk -v n="$name" '$1 == n { print $2 }' <<<"$after")
		[[ -n $now && $now -ge $value ]] || { echo "  $name went from $value to ${now:-nothing}" >&2; return 1; }
	done <"$1"
}

logged() { grep -q "$1" "$AFTR_EVENTS_LOG"; }
subscribers_kept() { diff "$1" <(subscriber_map); } # BEFORE_FILE
new_program() { local id; id=$(prog_id); [[ -n $id && $id != "$1" ]] && prog_name_ok; } # OLD_ID

# hop_limit_is N: the IPv6 header the AFTR pushes toward b4a (seen arriving on b4a's wire)
# has it.
hop_limit_is() {
	local cap=$TOPO_TMP/hlim.txt pid
	in_ns b4a timeout 5 tcpdump -c 1 -n -v -i "$B4_IF_WAN" \
		"ip6 dst host $B4A_ADDR6 and ip6[6] == 4" >"$cap" 2>/dev/null &
	pid=$!
	sleep 1
	in_ns h1 ping -c 10 -i 0.2 -W 1 -q "$INET_ADDR4" >/dev/null || true
	wait "$pid" || true
	grep -q "hlim $1," "$cap"
}

PHASES=0
# phase NAME STOP_COMMAND [config lines for the new aftrd...]
phase() {
	local name=$1 stop=$2 port before_id
	shift 2
	PHASES=$((PHASES + 1))
	port=$((47000 + PHASES))
	session_map >"$TOPO_TMP/before.sessions"
	counter_map >"$TOPO_TMP/before.counters"
	subscriber_map >"$TOPO_TMP/before.subscribers"
	before_id=$(prog_id)

	check "$name: aftrd stops" "$stop"
	check "$name: XDP stays attached with no daemon" aftr_xdp_attached
	# A new session while no daemon runs: its SC event waits in the ring.
	in_ns h1 bash -c "echo nodaemon | socat -u - UDP4:$INET_ADDR4:$UDP_ECHO_PORT,sourceport=$port"
	check "$name: traffic crosses with no daemon (ping from h1)" check_ping h1
	if (($#)); then aftr_config_write "$AFTR_CONF" "$@"; fi
	check "$name: aftrd starts again" aftrd_start
	check "$name: the pinned state was adopted" grep -q "adopted from pinned maps" "$AFTRD_STDERR"
	check "$name: our program was replaced in place on all three interfaces" \
		test "$(grep -c 'XDP replaced' "$AFTRD_STDERR")" -eq 3
	check "$name: a new program runs, named aftr_xdp" new_program "$before_id"
	check "$name: every session kept its public address and port" sessions_kept "$TOPO_TMP/before.sessions"
	check "$name: subscribers kept their address and blocks" subscribers_kept "$TOPO_TMP/before.subscribers"
	check "$name: no counter went backwards" counters_not_backwards "$TOPO_TMP/before.counters"
	check "$name: the session made while no daemon ran is logged" \
		wait_until 10 logged " SC udp $B4A_ADDR6 $HOST_ADDR4:$port "
}

# ---- run ----

aftr_lab_up 'sweep_interval_ms: 200'
head -c "$DL_BYTES" /dev/urandom >"$TOPO_TMP/www/$DL_FILE"
slow_server_start || { echo "the paced HTTP server did not start"; exit 1; }

udp_receiver &
BG_PIDS+=($!)
wait_until 10 in_ns inet bash -c "ss -Hlun 'sport = :$UDP_PORT' | grep -q ." ||
	{ echo "the UDP receiver did not start"; exit 1; }
udp_sender &
BG_PIDS+=($!)
download &
dl_pid=$!
BG_PIDS+=($dl_pid)
sleep 2 # both flows have their sessions
two_flows() { [[ $(session_map | grep -c .) -ge 2 ]]; }
check "the UDP stream and the download have their sessions" two_flows

phase "SIGTERM" aftrd_term
phase "SIGKILL" aftrd_kill
check "before the upgrade: hop limit 64 toward the B4s" hop_limit_is 64
phase "upgrade" aftrd_term 'sweep_interval_ms: 200' 'hop_limit: 63' 'fib_cache_ms: 500'
check "upgrade: the new program runs the new configuration (hop limit 63)" hop_limit_is 63
check "the download was still running after the last restart" kill -0 "$dl_pid"

# The download was running all along: it must finish, complete and intact.
if ! wait "$dl_pid"; then :; fi
touch "$TOPO_TMP/udp.stop"
wait_until 15 test -s "$TOPO_TMP/udp.report" || true
dl=$(cat "$TOPO_TMP/dl.result" 2>/dev/null || echo "none")
echo "download: $dl in $(cat "$TOPO_TMP/dl.seconds" 2>/dev/null) s $(cat "$TOPO_TMP/dl.err" 2>/dev/null)"
check "the download completed without a reset ($DL_BYTES bytes, HTTP 200, curl status 0)" \
	test "$dl" == "$DL_BYTES 200 rc=0"
check "the downloaded bytes are the served ones" cmp -s "$TOPO_TMP/dl.out" "$TOPO_TMP/www/$DL_FILE"
report=$(cat "$TOPO_TMP/udp.report" 2>/dev/null || echo "no report")
echo "udp stream: $report"
check "no UDP datagram was lost across the three restarts" \
	bash -c "[[ '$report' =~ ^sent=([0-9]+)\ received=([0-9]+)\ missing=0\  ]] && (( \${BASH_REMATCH[1]} > 1000 ))"
check "the receiver saw one public source for the stream all along" \
	bash -c "[[ '$report' =~ sources=[0-9.]+:[0-9]+\$ ]]"
check "aftrd exits 0 on SIGTERM" aftrd_term
check "aftrd --detach exits 0" aftrd_detach
check "nothing is left attached" bash -c "! ip netns exec '$NS_AFTR' ip -d link show | grep -q 'prog/xdp'"

echo "--- event log (last lines)"
tail -n 15 "$AFTR_EVENTS_LOG"
if ((failures)); then
	echo "restart_test: $failures check(s) failed"
	echo "--- aftrd stderr (last run)"
	cat "$AFTRD_STDERR"
	exit 1
fi
echo "restart_test: all checks passed"
