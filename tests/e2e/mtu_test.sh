#!/usr/bin/env bash
# e2e: MTU and the ICMP errors aftrd's XDP program makes (RFC 6333 sections 5.3 and 6.3).
# The AFTR <-> Internet link is lowered to 1400 (both ends); the B4 links are raised to 1600
# so that a full-size IPv4 packet fits in the softwire and meets the 1400 first at the AFTR;
# softwire_mtu is 1380, so the tunnel carries IPv4 packets of 1340 bytes toward the B4s.
#   outbound  h1's `ping -M do -s 1450` gets "fragmentation needed" naming 1400 from 192.0.0.1,
#             h1's kernel caches it, and tracepath finds pmtu 1400 (and the AFTR, 192.0.0.1,
#             as the hop where TTL 1 expires: "time exceeded" through the softwire);
#   TCP       a download of the 400 KiB file works; a capture in inet shows h1's SYN with the
#             MSS clamped to 1300 (softwire_mtu - 80);
#   inbound   a UDP reply of 1400 bytes sent with DF (IP_PMTUDISC_DO) from inet is answered by
#             "fragmentation needed" naming 1340; inet's kernel caches that MTU for h1's public
#             address and its next send of that size fails with EMSGSIZE;
#   no DF     a 1450-byte UDP datagram from h1 and a 1372-byte reply from inet, both without
#             DF, cross whole: the AFTR hands them to its slow path, which fragments them to
#             the Internet side's 1400 and the tunnel's 1340.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
# shellcheck source=SCRIPTDIR/aftrctl.sh
source "$here/aftrctl.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_root
for tool in tracepath tcpdump; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

aftr_lab_prepare
in_ns aftr ip link set "$AFTR_IF_INET" mtu 1400
in_ns inet ip link set "$INET_IF" mtu 1400
in_ns aftr ip link set "$AFTR_IF_A" mtu 1600
in_ns b4a ip link set "$B4_IF_WAN" mtu 1600
aftr_config_write "$AFTR_CONF" "softwire_mtu: 1380"
aftrd_start

jget() {
	/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

check "h1: ping through the AFTR (makes its subscriber)" check_ping h1

# ---- B4 -> Internet: the 1400-byte Internet side ----
frag_b4=$(aftr_counter icmp_frag_needed_sent)
out=$(in_ns h1 ping -M do -s 1450 -c 2 -i 0.3 -W 2 "$INET_ADDR4" 2>&1 || true)
echo "$out"
check "ping -M do -s 1450: fragmentation needed from 192.0.0.1 naming mtu 1400" \
	grep -Eq "From 192\.0\.0\.1 .*Frag needed.*mtu = 1400" <<<"$out"
check "h1's kernel caches mtu 1400 toward $INET_ADDR4" \
	bash -c "ip netns exec '$NS_H1' ip route get '$INET_ADDR4' | grep -q 'mtu 1400'"
check "counted icmp_frag_needed_sent" test "$(aftr_counter icmp_frag_needed_sent)" -gt "$frag_b4"
# 1340 bytes of IPv4 both ways: fits the Internet side and, for the reply, the tunnel.
check "a ping that fits both ways still goes through" \
	in_ns h1 ping -M do -s 1312 -c 1 -W 2 -q "$INET_ADDR4"

# tracepath from a clean cache: its 1500-byte probe meets the AFTR's error, TTL 2 expires at
# the AFTR (the B4 is hop 1).
in_ns h1 ip route flush cache
exceeded=$(aftr_counter icmp_time_exceeded_sent)
tp=$(in_ns h1 timeout 30 tracepath -n -m 5 "$INET_ADDR4" 2>&1 || true)
echo "$tp"
check "tracepath reports pmtu 1400" grep -q "pmtu 1400" <<<"$tp"
check "tracepath sees the AFTR (192.0.0.1) answer an expired TTL" grep -q "192\.0\.0\.1" <<<"$tp"
check "counted icmp_time_exceeded_sent" test "$(aftr_counter icmp_time_exceeded_sent)" -gt "$exceeded"

# ---- TCP: the download works, the SYN's MSS is clamped ----
cap=$TOPO_TMP/syn.txt
# XDP-redirected frames never pass the aftr's packet taps, so the capture is in inet, where
# they arrive.
bg_in_ns inet "$cap" timeout 20 tcpdump -i "$INET_IF" -nn -v -c 1 -l \
	"tcp dst port $HTTP_PORT and tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0"
sleep 1 # tcpdump attaches its filter
check "TCP: h1 downloads the $HTTP_FILE_BYTES-byte file" check_http h1
wait_until 10 grep -q "mss" "$cap" || true
cat "$cap"
check "the SYN that reached inet carries MSS 1300 (softwire_mtu - 80)" grep -q "mss 1300" "$cap"
check "counted mss_clamped" test "$(aftr_counter mss_clamped)" -gt 0

# ---- Internet -> B4: a reply bigger than the tunnel, with DF ----
cat >"$TOPO_TMP/big_reply.py" <<-'PY'
	# Answers one datagram with two replies of 1372 bytes (1400 of IPv4) sent with DF.
	import errno, socket, time
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # <linux/in.h>; Python's socket lacks them
	s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
	s.bind(("0.0.0.0", 5005))
	s.settimeout(15)
	data, peer = s.recvfrom(100)
	print("request from %s:%d" % peer, flush=True)
	s.sendto(b"a" * 1372, peer)
	time.sleep(1)  # the AFTR's "fragmentation needed" arrives meanwhile
	try:
	    s.sendto(b"b" * 1372, peer)
	    print("second send: sent", flush=True)
	except OSError as e:
	    print("second send: %s" % ("EMSGSIZE" if e.errno == errno.EMSGSIZE else e), flush=True)
	try:
	    s.sendto(b"c" * 1300, peer)  # 1328 of IPv4: fits the tunnel
	    print("small send: sent", flush=True)
	except OSError as e:
	    print("small send: %s" % e, flush=True)
PY
reply_log=$TOPO_TMP/big_reply.log
bg_in_ns inet "$reply_log" timeout 20 /usr/bin/python3 "$TOPO_TMP/big_reply.py"
check "reply server listening" wait_until 10 in_ns inet bash -c "ss -Hlun 'sport = :5005' | grep -q ."
frag_in=$(aftr_counter icmp_frag_needed_sent)
got=$(in_ns h1 timeout 10 /usr/bin/python3 - "$INET_ADDR4" <<-'PY' || true
	import socket, sys
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(4)
	s.sendto(b"hello", (sys.argv[1], 5005))
	sizes = []
	try:
	    while True:
	        data, _ = s.recvfrom(4000)
	        sizes.append(len(data))
	except socket.timeout:
	    pass
	print("received " + " ".join(map(str, sizes)))
PY
)
echo "h1: $got"
wait_until 10 grep -q "small send" "$reply_log" || true
cat "$reply_log"
pub=$(aftr_show subscribers | grep -oE '198\.51\.100\.[0-9]+' | head -1 || true) # h1's only
echo "h1's public address: ${pub:-?}"
check "inet's second 1400-byte send fails with EMSGSIZE" grep -q "second send: EMSGSIZE" "$reply_log"
check "inet's kernel caches mtu 1340 toward h1's public address" \
	bash -c "[[ -n '$pub' ]] && ip netns exec '$NS_INET' ip route get '$pub' | grep -q 'mtu 1340'"
check "the datagram that fits reached h1 (and the oversize ones did not)" \
	grep -qx "received 1300" <<<"$got"
check "counted icmp_frag_needed_sent from the Internet side" \
	test "$(aftr_counter icmp_frag_needed_sent)" -gt "$frag_in"

# ---- Without DF, bigger than the path both ways: the slow path fragments ----
# Both ends send with IP_PMTUDISC_INTERFACE: no DF, and their own interface MTU rather than
# the path MTU their kernels learned above, so the datagrams reach the AFTR whole.
cat >"$TOPO_TMP/nodf_echo.py" <<-'PY'
	# Answers one datagram of 1450 bytes with one of 1372 (1400 of IPv4), both without DF.
	import socket
	IP_MTU_DISCOVER, IP_PMTUDISC_INTERFACE = 10, 4  # <linux/in.h>
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_INTERFACE)
	s.bind(("0.0.0.0", 5006))
	s.settimeout(15)
	data, peer = s.recvfrom(4000)
	print("request of %d bytes" % len(data), flush=True)
	s.sendto(b"r" * 1372, peer)
PY
nodf_log=$TOPO_TMP/nodf_echo.log
bg_in_ns inet "$nodf_log" timeout 20 /usr/bin/python3 "$TOPO_TMP/nodf_echo.py"
check "no-DF server listening" wait_until 10 in_ns inet bash -c "ss -Hlun 'sport = :5006' | grep -q ."
sent_before=$(aftrctl_counter slow_path_fragments_sent)
queued_before=$(aftr_counter slow_path_queued)
got=$(in_ns h1 timeout 10 /usr/bin/python3 - "$INET_ADDR4" <<-'PY' || true
	import socket, sys
	IP_MTU_DISCOVER, IP_PMTUDISC_INTERFACE = 10, 4
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_INTERFACE)
	s.settimeout(4)
	s.sendto(b"q" * 1450, (sys.argv[1], 5006))  # 1478 of IPv4: over the 1400 Internet side
	try:
	    data, _ = s.recvfrom(4000)
	    print("received %d" % len(data))
	except socket.timeout:
	    print("received nothing")
PY
)
echo "h1: $got"
wait_until 5 grep -q "request of" "$nodf_log" || true
cat "$nodf_log"
check "h1's 1450-byte datagram without DF reached inet whole (fragmented by the slow path)" \
	grep -qx "request of 1450 bytes" "$nodf_log"
check "inet's 1372-byte reply without DF reached h1 whole (over softwire_mtu: fragmented)" \
	grep -qx "received 1372" <<<"$got"
check "the AFTR queued both whole packets to the slow path" \
	test "$(aftr_counter slow_path_queued)" -ge $((queued_before + 2))
check "and sent them as at least 4 fragments" \
	test "$(aftrctl_counter slow_path_fragments_sent)" -ge $((sent_before + 4))

aftr_show counters | grep -E "icmp_|mss_clamped|drop_too_big|drop_ttl|slow_path" || true
if ((failures)); then
	echo "FAILED: $failures check(s)"
	cat "$AFTRD_STDERR" >&2
	exit 1
fi
echo "PASS"
