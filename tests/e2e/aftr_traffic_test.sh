#!/usr/bin/env bash
# e2e: aftrd with XDP attached in the namespace lab. Real ping, TCP (curl) and UDP from two
# B4s whose hosts share 192.0.2.10; a softwire packet carrying the Tunnel Encapsulation Limit
# destination option (crafted with scapy: the lab's SRv6 B4s do not add it) is translated
# and answered; inbound traffic to an unmapped public port is dropped and creates nothing;
# sessions expire on (shortened) timeouts with their deletion logged, idle blocks return to
# the pool; SIGTERM stops aftrd cleanly and leaves XDP attached and forwarding, and
# `aftrd --detach` then leaves no XDP program attached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# Short timeouts so expiry happens within the test; hold-down short for block release.
AFTR_PORT_BLOCKS="block_size: 512 max_blocks_per_subscriber: 4 hold_down_seconds: 2"
aftr_lab_up 'timeouts { udp: 4 icmp: 4 tcp_transitory: 4 }' 'sweep_interval_ms: 200'

for role in h1 h2; do
	check "$role: ping through the softwire" check_ping "$role"
	check "$role: HTTP download ($HTTP_FILE_BYTES bytes) over TCP" check_http "$role"
	check "$role: UDP echo round trip" check_udp "$role"
done

subscribers=$(aftr_show subscribers)
sessions=$(aftr_show sessions)
echo "$subscribers"
echo "$sessions"
check "two subscribers, one per B4" \
	bash -c "grep -c '^2001:db8:[ab]::2 ' <<<'$subscribers' | grep -qx 2"
# Paired pooling: every session of a B4 uses that B4's one public address.
paired() {
	local b4=$1 addrs
	addrs=$(awk -v b4="$b4" '$2 == b4 { split($4, a, ":"); print a[1] }' <<<"$sessions" | sort -u)
	[[ $(wc -l <<<"$addrs") == 1 && -n $addrs ]]
}
check "paired pooling: all of b4a's sessions share one public address" paired "$B4A_ADDR6"
check "paired pooling: all of b4b's sessions share one public address" paired "$B4B_ADDR6"
# Overlapping inner addresses: both B4s have sessions from 192.0.2.10 at once.
check "both subscribers hold sessions from the same inner 192.0.2.10" \
	bash -c "[[ \$(grep -c ' 192.0.2.10:' <<<'$sessions') -ge 6 ]]"

# A softwire frame with a Destination Options header carrying the Tunnel Encapsulation Limit
# option (type 4, as Linux ip6tnl sends by default), sent from b4a's wire; the echo server's
# reply must come back through the AFTR to h1 (captured there).
encap_limit_probe() {
	local cap=$TOPO_TMP/encap-limit.pcap
	in_ns h1 timeout 8 tcpdump -i eth0 -n -c 1 -w "$cap" 'udp and src port 7 and dst port 5555' \
		>/dev/null 2>&1 &
	local tcpdump_pid=$!
	sleep 1
	in_ns b4a /usr/bin/python3 - "$B4A_ADDR6" "$SOFTWIRE_ADDR6" "$MAC_B4A_WAN" "$MAC_AFTR_A" <<-'PY'
		import sys
		from scapy.all import Ether, IPv6, IPv6ExtHdrDestOpt, HBHOptUnknown, PadN, IP, UDP, sendp
		b4, aftr, src_mac, dst_mac = sys.argv[1:5]
		opts = [HBHOptUnknown(otype=4, optlen=1, optdata=b"\x04"), PadN(optdata=b"\x00")]
		frame = (Ether(src=src_mac, dst=dst_mac) / IPv6(src=b4, dst=aftr) /
		         IPv6ExtHdrDestOpt(options=opts) /
		         IP(src="192.0.2.10", dst="203.0.113.10", ttl=64) /
		         UDP(sport=5555, dport=7) / b"encap-limit-probe")
		assert bytes(frame)[14 + 40] == 4 and len(bytes(frame[IPv6ExtHdrDestOpt])) - len(bytes(frame[IP])) == 8
		sendp(frame, iface="wan0", verbose=False)
	PY
	wait "$tcpdump_pid" && [[ -s $cap ]]
}
check "softwire packet with the Tunnel Encapsulation Limit option is translated and answered" \
	encap_limit_probe
check "the encap-limit flow has its session (inner port 5555)" \
	bash -c "ip netns exec '$NS_AFTR' '$AFTRD' --config '$AFTR_CONF' --show sessions | grep -q ' 192.0.2.10:5555 '"

# Inbound to a public address/port nobody holds: dropped, counted, no state created.
no_session_before=$(aftr_counter drop_no_session)
in_ns inet bash -c "echo unsolicited | socat -u - UDP4:198.51.100.5:40000"
in_ns inet bash -c "echo unsolicited | socat -u - UDP4:198.51.100.13:1999"
sleep 0.3
check "inbound to unmapped ports is dropped and counted (drop_no_session +2)" \
	test "$(aftr_counter drop_no_session)" -eq $((no_session_before + 2))
# No state for either probe: no session on those public endpoints, none logged. (Not by the
# session_created counter: a late packet of a flow whose session just expired, e.g. a TCP
# ACK after the 4 s transitory timeout, may legitimately make a new one meanwhile.)
unsolicited_state() {
	aftr_show sessions | grep -qE ' 198\.51\.100\.5:40000 | 198\.51\.100\.13:1999 ' ||
		grep -qE ' 198\.51\.100\.5:40000$| 198\.51\.100\.13:1999$' "$AFTR_EVENTS_LOG"
}
no_unsolicited_state() { ! unsolicited_state; }
check "inbound to unmapped ports creates no session" no_unsolicited_state

# Expiry: UDP/ICMP/closed-TCP timeouts are 4 s, hold-down 2 s, sweep every 200 ms.
expired() { [[ $(aftr_show sessions | tail -1) == "0 sessions" ]]; }
check "every session expires on its timeout" wait_until 20 expired
check "session deletions are logged (SD lines for udp, tcp and icmp)" \
	bash -c "grep -q ' SD udp ' '$AFTR_EVENTS_LOG' && grep -q ' SD tcp ' '$AFTR_EVENTS_LOG' && grep -q ' SD icmp ' '$AFTR_EVENTS_LOG'"
check "every created session has its deletion logged" \
	bash -c "[[ \$(grep -c ' SC ' '$AFTR_EVENTS_LOG') == \$(grep -c ' SD ' '$AFTR_EVENTS_LOG') ]]"
released() { [[ $(grep -c ' BR ' "$AFTR_EVENTS_LOG") -ge 2 ]]; }
check "idle subscribers' port blocks return to the pool after the hold-down (BR lines)" \
	wait_until 10 released
check "no subscriber left once its blocks were released" \
	bash -c "[[ \$(ip netns exec '$NS_AFTR' '$AFTRD' --config '$AFTR_CONF' --show subscribers | tail -1) == '0 subscribers' ]]"

# Stopping aftrd leaves the data plane running (hitless restart); --detach removes it.
check "aftrd exits 0 on SIGTERM" aftrd_term
check "XDP stays attached after aftrd exits" aftr_xdp_attached
check "traffic still flows with no daemon running (ping from h1)" check_ping h1
check "traffic still flows with no daemon running (HTTP from h2)" check_http h2
check "aftrd --detach exits 0" aftrd_detach
check "no XDP program left attached in the AFTR namespace after --detach" \
	bash -c "! ip netns exec '$NS_AFTR' ip -d link show | grep -q 'prog/xdp'"
check "with XDP gone, softwire traffic no longer crosses (ping from h1 fails)" \
	bash -c "! ip netns exec '$NS_H1' ping -c 1 -W 1 -q '$INET_ADDR4' >/dev/null"
echo "--- event log"
cat "$AFTR_EVENTS_LOG"
if ((failures)); then
	echo "aftr_traffic_test: $failures check(s) failed"
	echo "--- aftrd stderr"
	cat "$AFTRD_STDERR"
	exit 1
fi
echo "aftr_traffic_test: all checks passed"
