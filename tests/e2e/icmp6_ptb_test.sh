#!/usr/bin/env bash
# e2e: an ICMPv6 Packet Too Big about a softwire packet reaches the Internet host as the IPv4
# "fragmentation needed" it understands, and the AFTR keeps the lower tunnel MTU toward that B4
# (RFC 2473 section 8, RFC 6333 sections 5.3 and 6.3).
#   b4a plays a router on the IPv6 path with a 1300-byte MTU: a python AF_PACKET socket on its
#       WAN link catches the first softwire packet over 1300 bytes that the AFTR sends it and
#       answers it with Packet Too Big (mtu 1300) quoting it, from its own address to the
#       softwire address (the lab's B4s are directly on the AFTR's links: no real router hop);
#   inet answers h1's datagram with a 1400-byte UDP reply sent with DF; the AFTR turns the
#       Packet Too Big into "fragmentation needed" naming 1260 from h1's public address, so
#       inet's kernel caches mtu 1260 and its next 1400-byte send fails with EMSGSIZE, while a
#       1200-byte one reaches h1;
#   then, inet's route cache flushed, another 1400-byte send with DF is stopped by the AFTR
#       itself (the learned MTU): "fragmentation needed" again, and b4a never sees it.
# Packets are built with struct (no scapy).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
# shellcheck source=SCRIPTDIR/aftrd.sh
source "$here/aftrd.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_root
PY=/usr/bin/python3
aftr_lab_up

check "h1: ping through the AFTR (makes its subscriber)" check_ping h1

# ---- b4a: the "router" that sends Packet Too Big ----
router_log=$TOPO_TMP/router.log
cat >"$TOPO_TMP/router.py" <<-'PY'
	# Watches wan0 for 20 s: answers the first softwire packet over 1300 bytes with Packet Too
	# Big (mtu 1300), counts every such packet.
	import socket, struct, sys, time
	ifname, aftr_mac, own_mac, own6, sw6 = sys.argv[1:6]
	mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
	sw = socket.inet_pton(socket.AF_INET6, sw6)
	own = socket.inet_pton(socket.AF_INET6, own6)
	def csum(b):
	    if len(b) % 2: b += b"\0"
	    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
	    while s >> 16: s = (s & 0xffff) + (s >> 16)
	    return ~s & 0xffff
	s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x86dd))
	s.bind((ifname, 0x86dd))
	s.settimeout(0.5)
	print("listening", flush=True)
	big = 0
	deadline = time.time() + 20
	while time.time() < deadline:
	    try:
	        frame, addr = s.recvfrom(65535)
	    except socket.timeout:
	        continue
	    if addr[2] == socket.PACKET_OUTGOING or len(frame) < 54 or frame[12:14] != b"\x86\xdd":
	        continue
	    ip6 = frame[14:]
	    if ip6[6] != 4 or ip6[8:24] != sw or len(ip6) <= 1300:
	        continue
	    big += 1
	    print("big softwire packet %d: %d bytes" % (big, len(ip6)), flush=True)
	    if big > 1:
	        continue
	    body = struct.pack("!BBHI", 2, 0, 0, 1300) + ip6[:1232]
	    pseudo = own + sw + struct.pack("!I3xB", len(body), 58)
	    body = body[:2] + struct.pack("!H", csum(pseudo + body)) + body[4:]
	    hdr = struct.pack("!IHBB16s16s", 0x60000000, len(body), 58, 64, own, sw)
	    s.send(mac(aftr_mac) + mac(own_mac) + b"\x86\xdd" + hdr + body)
	    print("sent packet too big", flush=True)
	print("big softwire packets: %d" % big, flush=True)
	PY
bg_in_ns b4a "$router_log" timeout 25 "$PY" "$TOPO_TMP/router.py" "$B4_IF_WAN" "$MAC_AFTR_A" \
	"$MAC_B4A_WAN" "$B4A_ADDR6" "$SOFTWIRE_ADDR6"
check "b4a's router is listening" wait_until 10 grep -q listening "$router_log"

# ---- inet: replies with DF ----
reply_log=$TOPO_TMP/reply.log
cat >"$TOPO_TMP/reply.py" <<-'PY'
	import errno, socket, subprocess, time
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # <linux/in.h>
	s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
	s.bind(("0.0.0.0", 5006))
	s.settimeout(15)
	data, peer = s.recvfrom(100)
	print("request from %s:%d" % peer, flush=True)
	def send(what, size):
	    try:
	        s.sendto(what * size, peer)
	        print("%s: sent" % what.decode(), flush=True)
	    except OSError as e:
	        print("%s: %s" % (what.decode(), "EMSGSIZE" if e.errno == errno.EMSGSIZE else e), flush=True)
	send(b"a", 1372)  # 1400 bytes of IPv4, 1440 in the softwire: meets b4a's "router"
	time.sleep(2)
	send(b"b", 1372)  # the kernel now knows 1260
	send(b"c", 1200)
	subprocess.run(["ip", "route", "flush", "cache"], check=True)
	print("flushed", flush=True)
	send(b"d", 1372)  # sent; the AFTR answers from what it learned
	time.sleep(2)
	send(b"e", 1372)
	PY
bg_in_ns inet "$reply_log" timeout 25 "$PY" "$TOPO_TMP/reply.py"
check "reply server listening" wait_until 10 in_ns inet bash -c "ss -Hlun 'sport = :5006' | grep -q ."

translated=$(aftr_counter icmp6_error_translated)
learned=$(aftr_counter icmp6_ptb_learned)
frag=$(aftr_counter icmp_frag_needed_sent)
got=$(in_ns h1 timeout 12 "$PY" - "$INET_ADDR4" <<-'PY' || true
	import socket, sys
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(7)
	s.sendto(b"hello", (sys.argv[1], 5006))
	got = []
	try:
	    while True:
	        data, _ = s.recvfrom(4000)
	        got.append("%s%d" % (chr(data[0]), len(data)))
	except socket.timeout:
	    pass
	print("received " + " ".join(got))
	PY
)
echo "h1: $got"
wait_until 15 grep -q "^e: " "$reply_log" || true
wait_until 15 grep -q "big softwire packets" "$router_log" || true
cat "$reply_log"
cat "$router_log"
pub=$(aftr_show subscribers | grep -oE '198\.51\.100\.[0-9]+' | head -1 || true) # h1's only
echo "h1's public address: ${pub:-?}"

check "b4a's router saw a 1440-byte softwire packet and sent Packet Too Big" \
	grep -q "sent packet too big" "$router_log"
check "the AFTR translated it (icmp6_error_translated)" \
	test "$(aftr_counter icmp6_error_translated)" -gt "$translated"
check "the AFTR learned the MTU toward b4a (icmp6_ptb_learned)" \
	test "$(aftr_counter icmp6_ptb_learned)" -gt "$learned"
check "inet's second 1400-byte send fails with EMSGSIZE" grep -q "^b: EMSGSIZE" "$reply_log"
check "inet's kernel cached mtu 1260 toward h1's public address" \
	bash -c "[[ -n '$pub' ]] && ip netns exec '$NS_INET' ip route get '$pub' | grep -q 'mtu 1260'"
check "after the flush, the AFTR itself answered the next 1400-byte send (icmp_frag_needed_sent)" \
	test "$(aftr_counter icmp_frag_needed_sent)" -gt "$frag"
check "and inet's kernel refuses the one after (EMSGSIZE)" grep -q "^e: EMSGSIZE" "$reply_log"
check "b4a saw only the first oversize packet" grep -q "big softwire packets: 1$" "$router_log"
check "h1 received the first 1400-byte reply and the 1200-byte one, nothing else" \
	grep -qx "received a1372 c1200" <<<"$got"

aftr_show counters | grep -E "icmp|drop_too_big" || true
if ((failures)); then
	echo "FAILED: $failures check(s)"
	cat "$AFTRD_STDERR" >&2
	exit 1
fi
echo "PASS"
