#!/usr/bin/env bash
# e2e: aftrd's IPFIX export (RFC 7011 + RFC 8158) in the namespace lab, per-session logging.
# Two collectors on 127.0.0.1 inside the aftr namespace: UDP 4739, captured with tshark and
# decoded by tshark's own IPFIX dissector (every field by its IANA name, natEvent values by
# the IANA registry's names), and TCP 4740, a small Python collector (ipfix_collector.py)
# that goes away cleanly for a few seconds while both B4s make sessions, then comes back:
# every record arrives, sequence numbers have no gap, and the exporter's own statistics
# record and counters agree. The Internet address 203.0.113.x (a destination) never appears
# in the IPFIX bytes. Ports 1024-1535 make one block per public address, so at the end h1
# runs out of ports on its own address: natEvent 12 "NAT ports exhausted" with that address
# (template 263), in both collectors and the log, and no natEvent 3. Those come one per dropped
# packet; aftrd writes and exports at most about one a second (logging.limit_event_interval_ms):
# one natEvent 12 record per AP line, and the lines' " +N" account for the rest.
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
UDP_PORT=4739
TCP_PORT=4740
TSHARK_PID=""
COLLECTOR_PID=""

cleanup() {
	# Never stop half way (errexit would, on a `wait` for a killed process): the lab must go.
	set +e
	# Only what this test started, by PID.
	[[ -n $TSHARK_PID ]] && kill -INT "$TSHARK_PID" 2>/dev/null && wait "$TSHARK_PID" 2>/dev/null
	[[ -n $COLLECTOR_PID ]] && _kill_pid "$COLLECTOR_PID"
	aftr_lab_down
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The lab as aftr_lab_up builds it, with the collectors listening before aftrd starts (so the
# capture holds the first message, sequence number 0). aftrd.sh logs per session by default.
aftr_lab_prepare
AFTR_PORT_BLOCKS="block_size: 512 max_blocks_per_subscriber: 4 port_min: 1024 port_max: 1535" \
aftr_config_write "$AFTR_CONF" \
	"ipfix { collectors { address: \"127.0.0.1:$UDP_PORT\" }" \
	"  collectors { address: \"127.0.0.1:$TCP_PORT\" transport: IPFIX_TRANSPORT_TCP }" \
	'  template_refresh_seconds: 5 }'

PCAP=$TOPO_TMP/ipfix.pcap
CDIR=$TOPO_TMP/collector
mkdir -p "$CDIR"
ip netns exec "$NS_AFTR" tshark -q -i lo -f "udp port $UDP_PORT" -w "$PCAP" >"$TOPO_TMP/tshark.log" 2>&1 &
TSHARK_PID=$!
ip netns exec "$NS_AFTR" timeout 90 "$PY" "$here/ipfix_collector.py" 127.0.0.1 "$TCP_PORT" "$CDIR" 80 \
	>"$TOPO_TMP/collector.log" 2>&1 &
COLLECTOR_PID=$!
wait_until 10 test -e "$CDIR/ready"
wait_until 10 grep -q "Capturing on" "$TOPO_TMP/tshark.log" || { cat "$TOPO_TMP/tshark.log"; exit 1; }
aftrd_start

# Phase 1: traffic from both B4s while both collectors listen.
check "h1 http through the AFTR" check_http h1
check "h2 udp through the AFTR" check_udp h2
check "h1 ping through the AFTR" check_ping h1
sleep 1

# Phase 2: the TCP collector goes away; sessions go on being made.
touch "$CDIR/away"
wait_until 10 test -e "$CDIR/gone"
check "h2 http while the TCP collector is away" check_http h2
check "h1 udp while the TCP collector is away" check_udp h1
check "h2 ping while the TCP collector is away" check_ping h2
sleep 3
stats=$(aftrctl_run stats)
spool=$(awk '$1 == "ipfix_spool_bytes" { print $2 }' <<<"$stats")
check "records wait in the TCP spool meanwhile ($spool bytes)" test "${spool:-0}" -gt 0

# Phase 3: it comes back; the exporter reconnects (backoff at most 4 s here) and resends.
touch "$CDIR/back"
wait_until 15 bash -c "grep -c 'ipfix: connected to 127.0.0.1:$TCP_PORT' '$AFTRD_STDERR' | grep -qx 2"
check "the exporter reconnected" grep -q "messages to (re)send" "$AFTRD_STDERR"
sleep 1
stats=$(aftrctl_run stats)
counter() { awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }' <<<"$stats"; }
echo "$stats" | grep ipfix_ || true
check "ipfix_reconnects = 1" test "$(counter ipfix_reconnects)" = 1
check "ipfix_records_dropped = 0" test "$(counter ipfix_records_dropped)" = 0
check "ipfix_spool_bytes = 0 after the resend" test "$(counter ipfix_spool_bytes)" = 0

# Phase 4: h1 makes 600 new UDP flows, more than its one block's 512 ports; its address has no
# other block (one per address), so what does not fit is dropped as that address's ports
# exhausted. Bounded: 600 datagrams in about 3 s, the whole under a 15 s timeout.
h1_addr=$(awk '$2 == "BA" && $3 == "2001:db8:a::2" { print $4; exit }' "$AFTR_EVENTS_LOG")
check "h1 holds a block (on $h1_addr)" test -n "$h1_addr"
in_ns h1 timeout 15 "$PY" - "$INET_ADDR4" 600 3 <<-'PY'
	import socket, sys, time
	dst, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
	start = time.monotonic()
	for i in range(count):
	    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	    s.bind(("0.0.0.0", 30000 + i))
	    s.sendto(b"fill", (dst, 9))
	    s.close()
	    ahead = start + seconds * (i + 1) / count - time.monotonic()
	    if ahead > 0:
	        time.sleep(ahead)
	PY
sleep 1.5
dropped=$(aftr_counter drop_address_exhausted)
check "drop_address_exhausted counted h1's flows beyond its block ($dropped)" test "$dropped" -ge 88
# AP lines + their " +N" = dropped flows, once the last held event is written (an interval
# after it, at the next sweep).
ap_accounted() {
	[[ $(awk '$2 == "AP" { n += 1; if ($5 ~ /^[+][0-9]+$/) n += substr($5, 2) } END { print n + 0 }' \
		"$AFTR_EVENTS_LOG") == "$dropped" ]]
}
check "AP log lines and their +N account for every dropped flow ($dropped)" wait_until 5 ap_accounted
log_ports_exhausted=$(grep -c ' AP ' "$AFTR_EVENTS_LOG" || true)
# A 3 s flood at one line a second, plus a held one written after it.
check "only a handful of AP lines ($log_ports_exhausted)" \
	test "$log_ports_exhausted" -ge 1 -a "$log_ports_exhausted" -le 6
suppressed_ap=$(aftrctl_run stats | awk '$1 == "events_suppressed_ap" { print $2 }')
check "events_suppressed_ap counts the rest ($suppressed_ap)" \
	test "${suppressed_ap:-missing}" = $((dropped - log_ports_exhausted))
check "every AP line names h1 and its address" \
	test "$(awk '$2 == "AP" { print $3, $4 }' "$AFTR_EVENTS_LOG" | sort -u)" = "2001:db8:a::2 $h1_addr"
check "no AX line: the pool still has addresses" bash -c "! grep -q ' AX ' '$AFTR_EVENTS_LOG'"
check "h1 still holds one block" test "$(grep -c ' BA 2001:db8:a::2 ' "$AFTR_EVENTS_LOG")" = 1

# Stop: aftrd sends a last statistics record and closes the TCP connection.
aftrd_term
wait "$COLLECTOR_PID" || true
COLLECTOR_PID=""
sleep 0.5
kill -INT "$TSHARK_PID" 2>/dev/null || true
wait "$TSHARK_PID" 2>/dev/null || true
TSHARK_PID=""

# ---- TCP: every record, no gap, statistics agree ----
tcp=$("$PY" "$here/ipfix_check.py" tcp "$CDIR/collector.json") || { echo "$tcp"; check "TCP sequence numbers without gap" false; }
echo "$tcp" | sed 's/^/  tcp: /'
val() { awk -F= -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
check "TCP: two connections" test "$(val connections "$tcp")" = 2
check "TCP: each connection starts with the templates" test "$(val connections_start_with_templates "$tcp")" = 1
check "TCP: sequence numbers contiguous across the reconnection" test "$(val gaps "$tcp")" = 0
check "TCP: first sequence number 0" test "$(val first_seq "$tcp")" = 0
tcp_nat=$(val nat_records "$tcp")
check "TCP: records received ($tcp_nat) = exportedFlowRecordTotalCount of the last statistics record" \
	test "$tcp_nat" = "$(val stats_records "$tcp")"
check "TCP: notSentFlowTotalCount 0" test "$(val stats_not_sent "$tcp")" = 0
log_sessions=$(grep -c ' SC ' "$AFTR_EVENTS_LOG" || true)
log_blocks=$(grep -c ' BA ' "$AFTR_EVENTS_LOG" || true)
check "TCP: one record per logged session, block and address out of ports ($log_sessions + $log_blocks + $log_ports_exhausted)" \
	test "$tcp_nat" = $((log_sessions + log_blocks + log_ports_exhausted))
check "TCP: one natEvent 12 record per AP line" \
	test "$(val ports_exhausted_records "$tcp")" = "$log_ports_exhausted"
check "TCP: natEvent 12 records carry h1's address and B4" \
	test "$(val ports_exhausted "$tcp")" = "12/$h1_addr/2001:db8:a::2"
check "TCP: no 203.0.113.x in the IPFIX bytes" \
	"$PY" -c "import sys; sys.exit(bytes([203,0,113]) in open('$CDIR/stream.bin','rb').read())"

# ---- UDP, decoded by tshark ----
decode() { tshark -r "$PCAP" -d "udp.port==$UDP_PORT,cflow" "$@" 2>/dev/null; }
tshark -r "$PCAP" -T fields -e udp.payload >"$TOPO_TMP/udp.hex" 2>/dev/null
udp=$("$PY" "$here/ipfix_check.py" udp "$TOPO_TMP/udp.hex") || true
echo "$udp" | sed 's/^/  udp: /'
check "UDP: sequence numbers contiguous" test "$(val gaps "$udp")" = 0
check "UDP: first sequence number 0" test "$(val first_seq "$udp")" = 0
check "UDP: same NAT records as TCP" test "$(val nat_records "$udp")" = "$tcp_nat"
check "UDP: same natEvent 12 records as TCP" \
	test "$(val ports_exhausted "$udp")/$(val ports_exhausted_records "$udp")" = "12/$h1_addr/2001:db8:a::2/$log_ports_exhausted"
check "UDP: templates refreshed (more than one template message)" test "$(val template_messages "$udp")" -gt 1
check "UDP: no 203.0.113.x in the IPFIX bytes" bash -c "! grep -q 'cb0071' '$TOPO_TMP/udp.hex'"
DECODED=$TOPO_TMP/decoded.txt
decode -V >"$DECODED"
# Every field of every template, named by tshark's IPFIX dissector ("Type: NAME (ID)" in its
# template dump). For ids below 128, which IPFIX inherited from NetFlow v9, tshark 4.0 prints
# the NetFlow v9 name: IANA protocolIdentifier (4) is PROTOCOL, sourceTransportPort (7)
# L4_SRC_PORT, sourceIPv4Address (8) IP_SRC_ADDR, sourceIPv6Address (27) IPV6_SRC_ADDR,
# exportedMessageTotalCount (41) TOTAL_PKTS_EXP, exportedFlowRecordTotalCount (42)
# TOTAL_FLOWS_EXP.
for f in "observationTimeMilliseconds (323)" "natEvent (230)" "PROTOCOL (4)" \
	"IP_SRC_ADDR (8)" "L4_SRC_PORT (7)" "postNATSourceIPv4Address (225)" \
	"postNAPTSourceTransportPort (227)" "IPV6_SRC_ADDR (27)" "userName (371)" \
	"portRangeStart (361)" "portRangeEnd (362)" "portRangeStepSize (363)" \
	"portRangeNumPorts (364)" "natPoolId (283)" "natQuotaExceededEvent (466)" \
	"maxEntriesPerUser (473)" "maxSessionEntries (471)" "maxSubscribers (474)" \
	"observationDomainId (149)" "TOTAL_PKTS_EXP (41)" \
	"TOTAL_FLOWS_EXP (42)" "notSentFlowTotalCount (166)"; do
	check "UDP template field $f" grep -qF "Type: $f" "$DECODED"
done
check "UDP: no unknown field types" bash -c "! grep -q 'Type: Unknown' '$DECODED'"
values() { decode -T fields -E occurrence=a -E aggregator=/s -e "$1" | tr ' ' '\n' | sed '/^$/d' | sort -u; }
check "natEvent 4 NAT44 session create" grep -q "NAT44 session create (4)" "$DECODED"
check "natEvent 16 Port block allocation" grep -q "Port block allocation (16)" "$DECODED"
check "natEvent 12 NAT ports exhausted" grep -q "NAT ports exhausted (12)" "$DECODED"
check "no natEvent 3 NAT Addresses exhausted" bash -c "! grep -q 'NAT Addresses exhausted (3)' '$DECODED'"
# tshark's own reading of each natEvent 12 record: its postNATSourceIPv4Address and B4.
exhausted_decoded=$(awk '/^ *Flow [0-9]+/ { ev = 0 } /Nat Event: / { ev = /\(12\)/ }
	ev && /Post NAT Source IPv4 Address: / { a = $NF } ev && /SrcAddr: / { print a, $NF; ev = 0 }' "$DECODED" |
	sort | uniq -c | awk '{ print $1, $2, $3 }')
check "tshark: $log_ports_exhausted natEvent 12 records, all of h1's address and B4" \
	test "$exhausted_decoded" = "$log_ports_exhausted $h1_addr 2001:db8:a::2"
check "B4 2001:db8:a::2 in sourceIPv6Address" grep -qx "2001:db8:a::2" <(values cflow.srcaddrv6)
check "B4 2001:db8:b::2 in sourceIPv6Address" grep -qx "2001:db8:b::2" <(values cflow.srcaddrv6)
check "sourceIPv4Address is the hosts' 192.0.2.10" test "$(values cflow.srcaddr)" = "192.0.2.10"
check "postNATSourceIPv4Address in 198.51.100.0/28" \
	bash -c "values_ok=\$(cat); [[ -n \$values_ok ]] && ! grep -vqE '^198\.51\.100\.([0-9]|1[0-5])$' <<<\"\$values_ok\"" \
	< <(values cflow.post_natsource_ipv4_address)
check "protocols ICMP, TCP and UDP" test "$(values cflow.protocol | sort -n | tr '\n' ' ')" = "1 6 17 "
starts=$(values cflow.port_range_start | tr '\n' ' ')
check "port blocks of 512 from 1024 ($starts)" \
	bash -c "for s in $starts; do (( (s - 1024) % 512 == 0 )) || exit 1; done; [[ -n '$starts' ]]"
check "portRangeNumPorts 512, step 1" test "$(values cflow.port_range_num_ports)/$(values cflow.port_range_step_size)" = "512/1"
ends_ok=$(decode -T fields -E occurrence=a -E aggregator=/s -e cflow.port_range_start -e cflow.port_range_end |
	"$PY" -c "
import sys
ok = True
for line in sys.stdin:
    cols = line.rstrip('\n').split('\t')
    if len(cols) < 2 or not cols[0]: continue
    for s, e in zip(cols[0].split(), cols[1].split()):
        ok &= int(e) == int(s) + 511
print(int(ok))")
check "portRangeEnd = start + 511" test "$ends_ok" = 1
check "public ports of sessions inside a claimed block" test -n "$(values cflow.post_naptsource_transport_port)"

if ((failures)); then
	echo "--- aftrd stderr"; cat "$AFTRD_STDERR"
	echo "--- events log"; cat "$AFTR_EVENTS_LOG"
	echo "FAILED: $failures"
	exit 1
fi
echo "PASS"
