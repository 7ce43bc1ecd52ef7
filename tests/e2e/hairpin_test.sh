#!/usr/bin/env bash
# e2e: hairpinning and ICMP errors from behind a B4, through aftrd's XDP program in the lab.
# h1 (behind b4a) and h2 (behind b4b) reach each other through their public addresses:
# TCP to a static mapping of h2 (the server sees h1's public address as the source), UDP
# both ways (h1 to h2's mapping and back, h2 to h1's mapping); and each to itself: UDP and
# TCP from h2 to its own mappings, ping to h1's own public address (the echo id maps back to
# h1). Hairpinned frames leave by a redirect, even back out of the veth they came in on. Then ICMP errors from behind a B4: a datagram from
# inet to a static UDP mapping of h2 where nothing listens makes h2's kernel answer port
# unreachable, which inet must receive from h2's public address quoting the datagram as it
# sent it (checked with a raw socket in inet); the same from h1 through the hairpin reaches
# h1's socket as ECONNREFUSED.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
source "$here/aftrctl.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

aftr_lab_up

jget() {
	/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# Subscribers exist once their hosts have sent something.
check "h1: UDP echo round trip (makes its subscriber)" check_udp h1
check "h2: UDP echo round trip (makes its subscriber)" check_udp h2
pub_of() { aftrctl_run --json subscribers get "$1" | jget 'd["public_address"]'; }
pub_a=$(pub_of "$B4A_ADDR6")
pub_b=$(pub_of "$B4B_ADDR6")
echo "public addresses: h1 $pub_a, h2 $pub_b"

# mapping B4 PROTO INNER_PORT: creates a static mapping, prints "ADDRESS PORT".
mapping() {
	aftrctl_run --json mappings create --b4 "$1" --protocol "$2" --inner "$HOST_ADDR4:$3" |
		jget 'd["public_address"] + " " + str(d["public_port"])'
}
read -r tcp_addr tcp_port < <(mapping "$B4B_ADDR6" tcp 8080)
read -r udp_addr udp_port < <(mapping "$B4B_ADDR6" udp 9000)
read -r h1_udp_addr h1_udp_port < <(mapping "$B4A_ADDR6" udp 9001)
read -r dead_addr dead_port < <(mapping "$B4B_ADDR6" udp 9999) # nothing listens there
echo "h2 tcp $tcp_addr:$tcp_port udp $udp_addr:$udp_port (dead $dead_addr:$dead_port); h1 udp $h1_udp_addr:$h1_udp_port"

# Servers behind the B4s that answer with the peer they saw, one connection or datagram at a
# time, each bounded by a timeout.
# (A file, not a here-document: a background command's stdin is /dev/null.)
cat >"$TOPO_TMP/peer_server.py" <<-'PY'
		import socket, sys
		proto, port = sys.argv[1], int(sys.argv[2])
		kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
		s = socket.socket(socket.AF_INET, kind)
		s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		s.bind(("0.0.0.0", port))
		if proto == "tcp":
		    s.listen(4)
		for _ in range(8):
		    if proto == "tcp":
		        c, peer = s.accept()
		        c.recv(100)
		        c.sendall(("peer=%s:%d" % peer).encode())
		        c.close()
		    else:
		        data, peer = s.recvfrom(100)
		        s.sendto(("peer=%s:%d" % peer).encode(), peer)
PY
peer_server() { # ROLE PROTO PORT
	bg_in_ns "$1" "$TOPO_TMP/peer-$1-$2-$3.log" timeout 60 /usr/bin/python3 \
		"$TOPO_TMP/peer_server.py" "$2" "$3"
}
peer_server h2 tcp 8080
peer_server h2 udp 9000
peer_server h1 udp 9001
check "server on h2 port 8080 listening" wait_until 10 in_ns h2 bash -c "ss -Hltn 'sport = :8080' | grep -q ."
check "server on h2 port 9000 listening" wait_until 10 in_ns h2 bash -c "ss -Hlun 'sport = :9000' | grep -q ."
check "server on h1 port 9001 listening" wait_until 10 in_ns h1 bash -c "ss -Hlun 'sport = :9001' | grep -q ."

# client ROLE PROTO ADDR PORT [LOCAL_PORT]: one exchange; prints "reply_from=A:P <reply>".
client() {
	in_ns "$1" timeout 10 /usr/bin/python3 - "$2" "$3" "$4" "${5:-0}" <<-'PY'
		import socket, sys
		proto, addr, port, lport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
		kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
		s = socket.socket(socket.AF_INET, kind)
		s.settimeout(3)
		if lport:
		    s.bind(("0.0.0.0", lport))
		s.connect((addr, port))
		s.send(b"hello")
		data, peer = s.recvfrom(100)
		print("reply_from=%s:%d %s" % (s.getpeername()[0], s.getpeername()[1], data.decode()))
	PY
}

before=$(aftr_counter hairpin_translated)
out=$(client h1 tcp "$tcp_addr" "$tcp_port" 41000) || true
echo "h1 -> h2 tcp: $out"
check "TCP h1 -> h2's mapping: the server sees h1's public address and port" \
	grep -Eq "peer=${pub_a//./\\.}:[0-9]+\$" <<<"$out"
h1_tcp_pub=$(aftrctl_run --json sessions list --all |
	jget '[s["public_port"] for s in d["sessions"] if s["b4_address"] == "'"$B4A_ADDR6"'" and s["inner_port"] == 41000][0]' ||
	true)
check "TCP: the source port h2 saw is h1's session's public port ($h1_tcp_pub)" \
	grep -q "peer=$pub_a:$h1_tcp_pub\$" <<<"$out"

out=$(client h1 udp "$udp_addr" "$udp_port" 41001) || true
echo "h1 -> h2 udp: $out"
check "UDP h1 -> h2's mapping and back: h2 sees h1's public address, the reply comes back" \
	grep -Eq "^reply_from=$udp_addr:$udp_port peer=${pub_a//./\\.}:[0-9]+\$" <<<"$out"
out=$(client h2 udp "$h1_udp_addr" "$h1_udp_port" 41002) || true
echo "h2 -> h1 udp: $out"
check "UDP h2 -> h1's mapping and back: h1 sees h2's public address" \
	grep -Eq "^reply_from=$h1_udp_addr:$h1_udp_port peer=${pub_b//./\\.}:[0-9]+\$" <<<"$out"
# A host reaching its own mapping (h2 to its port 9000 through the public address).
out=$(client h2 udp "$udp_addr" "$udp_port" 41003) || true
echo "h2 -> h2 udp: $out"
check "UDP h2 -> its own mapping: it sees itself as its public address" \
	grep -Eq "^reply_from=$udp_addr:$udp_port peer=${pub_b//./\\.}:[0-9]+\$" <<<"$out"

out=$(client h2 tcp "$tcp_addr" "$tcp_port" 41004) || true
echo "h2 -> h2 tcp: $out"
check "TCP h2 -> its own mapping: the server sees h2's public address" \
	grep -Eq "peer=${pub_b//./\\.}:[0-9]+\$" <<<"$out"

check "ping h1 -> its own public address $pub_a (the echo id maps back to h1)" \
	in_ns h1 ping -c 3 -i 0.2 -W 2 -q "$pub_a"
after=$(aftr_counter hairpin_translated)
echo "hairpin_translated: $before -> $after"
# TCP 3-way + data + FIN both ways (>= 6), 2 UDP exchanges of 2, 1 self, 3 pings (and a
# TCP connection to itself).
check "hairpin_translated counted the hairpinned packets (>= 14)" test $((after - before)) -ge 14

# ---- ICMP errors from behind a B4 ----
# inet sends one datagram from 203.0.113.10:4444 to h2's dead mapping and reads ICMP with a
# raw socket: the port unreachable must come from h2's public address and quote the datagram
# as inet sent it (addresses and ports, UDP checksum verified).
errors_before=$(aftr_counter out_icmp_error_translated)
icmp_out=$(in_ns inet timeout 10 /usr/bin/python3 - "$INET_ADDR4" "$dead_addr" "$dead_port" <<-'PY'
	import socket, struct, sys, time
	src, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3])
	raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
	raw.settimeout(1)
	u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	u.bind((src, 4444))
	u.sendto(b"anyone there?", (dst, dport))
	deadline = time.time() + 5
	while time.time() < deadline:
	    try:
	        pkt = raw.recv(2000)
	    except socket.timeout:
	        continue
	    ihl = (pkt[0] & 15) * 4
	    typ, code = pkt[ihl], pkt[ihl + 1]
	    if typ != 3:
	        continue
	    q = pkt[ihl + 8:]
	    qihl = (q[0] & 15) * 4
	    qsrc, qdst = socket.inet_ntoa(q[12:16]), socket.inet_ntoa(q[16:20])
	    sport, qdport = struct.unpack("!HH", q[qihl:qihl + 4])
	    def csum(b):
	        if len(b) % 2:
	            b += b"\0"
	        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
	        while s >> 16:
	            s = (s & 0xffff) + (s >> 16)
	        return s
	    icmp_ok = csum(pkt[ihl:]) == 0xffff
	    qhdr_ok = csum(q[:qihl]) == 0xffff
	    udp = q[qihl:]
	    pseudo = q[12:20] + struct.pack("!BBH", 0, 17, len(udp))
	    udp_ok = csum(pseudo + udp) == 0xffff
	    print("from=%s type=%d code=%d quoted=%s:%d->%s:%d icmp_csum=%s ip_csum=%s udp_csum=%s" % (
	        socket.inet_ntoa(pkt[12:16]), typ, code, qsrc, sport, qdst, qdport, icmp_ok, qhdr_ok, udp_ok))
	    break
PY
) || true
echo "inet got: $icmp_out"
check "ICMP port unreachable from h2 reaches inet from h2's public address, quoting inet's datagram" \
	grep -q "^from=$dead_addr type=3 code=3 quoted=$INET_ADDR4:4444->$dead_addr:$dead_port " <<<"$icmp_out"
check "its ICMP, quoted IPv4 and quoted UDP checksums are right" \
	grep -q "icmp_csum=True ip_csum=True udp_csum=True" <<<"$icmp_out"
errors_after=$(aftr_counter out_icmp_error_translated)
check "out_icmp_error_translated counted it" test "$errors_after" -gt "$errors_before"

# The same error about a hairpinned datagram: back to h1 through the hairpin, whose connected
# UDP socket then reports the port unreachable.
refused=$(in_ns h1 timeout 10 /usr/bin/python3 - "$dead_addr" "$dead_port" <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(3)
	s.connect((sys.argv[1], int(sys.argv[2])))
	s.send(b"x")
	try:
	    s.recv(100)
	    print("answered")
	except ConnectionRefusedError:
	    print("refused")
	except socket.timeout:
	    print("timeout")
PY
) || true
echo "h1 -> h2's dead port: $refused"
check "port unreachable from h2 about h1's hairpinned datagram reaches h1 (ECONNREFUSED)" \
	test "$refused" = refused

aftr_show counters | grep -E 'hairpin|icmp_error|drop_' || true
if ((failures)); then
	echo "$failures check(s) failed"
	cat "$TOPO_TMP"/peer-*.log 2>/dev/null || true
	exit 1
fi
echo "all checks passed"
