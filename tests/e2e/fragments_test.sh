#!/usr/bin/env bash
# e2e: the fragment slow path (RFC 6333 section 6.3). UDP datagrams larger than the tunnel
# MTU cross the AFTR both ways as fragments, through aftrd's reassembly and the data plane's
# own program run on the whole datagram:
#  1. h1 -> Internet echo -> h1, 3000 bytes: the AFTR gets IPv4 fragments inside whole
#     softwire packets; the echo comes back as IPv4 fragments from the Internet. The lab's B4
#     (the kernel's SRv6 encap, applied on input) fragments nothing: an IPv4 packet over 1460
#     bytes becomes an IPv6 packet over wan0's MTU and is dropped there (neither IPv4 nor IPv6
#     fragments come out). So the hosts use MTU 1460, as a B4 announces to its LAN (RFC 6333
#     section 5.3), and send their IPv4 fragments themselves.
#     And 8000 bytes, longer than one run of the program takes: run as its head.
#     And again with the AFTR's neighbours forgotten: the slow path hands it to the kernel.
#  2. the same datagram sent by b4a as IPv6 fragments (crafted: a B4 that fragments the
#     tunnel packet instead), reassembled by the AFTR's kernel for aftrd's raw socket.
#  3. an Internet host sends 3000 bytes to h1's mapping as fragments in reverse order.
#  4. 5000 first fragments that never complete: aftrd's table evicts and times them out,
#     and h2 still downloads over HTTP.
#  5. a restarted aftrd adopts the pinned slow-path ring and carries on.
# Python without scapy: packets are built with struct.
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
cleanup() {
	set +e
	aftr_lab_down
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

aftr_lab_up "fragments { timeout_ms: 1000 max_datagrams: 1000 }"
failures=0
in_ns h1 ip link set "$HOST_IF" mtu 1460
in_ns h2 ip link set "$HOST_IF" mtu 1460

ctl_above() { local got; got=$(aftrctl_counter "$1"); ((got > $2)) || { echo "    $1 = $got, expected > $2" >&2; return 1; }; }
no_pending() { [[ $(aftrctl_counter fragments_pending_datagrams) == 0 ]]; }
dp_above() { local got; got=$(aftr_counter "$1"); ((got > $2)) || { echo "    $1 = $got, expected > $2" >&2; return 1; }; }

# big_echo ROLE SIZE: a SIZE-byte datagram to the echo server comes back whole.
big_echo() {
	in_ns "$1" timeout 10 "$PY" - "$INET_ADDR4" "$UDP_ECHO_PORT" "$2" <<-'PY'
		import os, socket, sys
		dst, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.settimeout(3)
		data = os.urandom(size)
		for attempt in range(3):
		    s.sendto(data, (dst, port))
		    try:
		        got, _ = s.recvfrom(65535)
		    except socket.timeout:
		        continue
		    sys.exit(0 if got == data else 2)
		sys.exit(1)
		PY
}

# ---- 1. inner IPv4 fragments out, IPv4 fragments from the Internet back ----
queued_before=$(aftr_counter slow_path_queued)
check "h1: 3000 bytes to the echo server and back" big_echo h1 3000
check "h2: 3000 bytes to the echo server and back" big_echo h2 3000
check "XDP queued the fragments (slow_path_queued)" dp_above slow_path_queued $((queued_before + 8))
check "aftrd reassembled both ways (fragments_reassembled)" ctl_above fragments_reassembled 3
check "aftrd reinjected them (slow_path_reinjected)" ctl_above slow_path_reinjected 3
check "aftrd sent them fragmented (slow_path_fragments_sent)" ctl_above slow_path_fragments_sent 7
check "small UDP still takes the fast path" check_udp h1
# Longer than one program run takes (a page): run as its head, the tail put back after.
heads_before=$(aftrctl_counter slow_path_head_runs)
check "h1: 8000 bytes to the echo server and back" big_echo h1 8000
check "both ways ran as a head (slow_path_head_runs)" ctl_above slow_path_head_runs $((heads_before + 1))

# ---- 1b. next hops not resolved: the slow path hands its packets to the kernel ----
# The AFTR forgets its neighbours toward inet and b4a (the lab's are static) and h1's session
# waits out its cached next hops (fib_cache_ms, 1 s by default): the slow path's run then
# finds no neighbour both ways, passes the packet as the fast path does, and aftrd sends it
# through the kernel's IP stack, which resolves the neighbour (ARP, ND) and sends it.
sleep 1.5
via_before=$(aftrctl_counter slow_path_via_kernel)
in_ns aftr ip neigh del "$INET_ADDR4" dev "$AFTR_IF_INET"
in_ns aftr ip -6 neigh del "$B4A_ADDR6" dev "$AFTR_IF_A"
check "h1: 3000 bytes to the echo server and back with no neighbour resolved" big_echo h1 3000
check "both ways went through the kernel (slow_path_via_kernel)" ctl_above slow_path_via_kernel $((via_before + 1))
in_ns aftr ip neigh replace "$INET_ADDR4" lladdr "$MAC_INET" dev "$AFTR_IF_INET" nud permanent
in_ns aftr ip -6 neigh replace "$B4A_ADDR6" lladdr "$MAC_B4A_WAN" dev "$AFTR_IF_A" nud permanent

# ---- 2. IPv6 fragments from a B4 ----
# h1 waits on port 47000 for the echo of what b4a sends in its name as IPv6 fragments.
v6frag_exchange() {
	local listener
	in_ns h1 timeout 8 "$PY" - 47000 3000 >"$TOPO_TMP/v6frag.out" 2>&1 <<-'PY' &
		import socket, sys
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.bind(("0.0.0.0", int(sys.argv[1])))
		s.settimeout(6)
		got, _ = s.recvfrom(65535)
		print(len(got), got == bytes(i % 251 for i in range(int(sys.argv[2]))))
		PY
	listener=$!
	sleep 0.5
	in_ns b4a timeout 5 "$PY" - "$B4_IF_WAN" "$MAC_AFTR_A" "$MAC_B4A_WAN" "$B4A_ADDR6" "$SOFTWIRE_ADDR6" \
		"$HOST_ADDR4" "$INET_ADDR4" <<-'PY' || return 1
		import socket, struct, sys
		ifname, dmac, smac, src6, dst6, src4, dst4 = sys.argv[1:8]
		mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
		def csum(b):
		    if len(b) % 2: b += b"\0"
		    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
		    while s >> 16: s = (s & 0xffff) + (s >> 16)
		    return ~s & 0xffff
		payload = bytes(i % 251 for i in range(3000))
		udp = struct.pack("!HHHH", 47000, 7, 8 + len(payload), 0) + payload
		ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0,
		                 socket.inet_aton(src4), socket.inet_aton(dst4))
		ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
		inner = ip + udp
		s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
		s.bind((ifname, 0))
		step = 1232  # multiple of 8: IPv6 packets of 1280 bytes
		for off in range(0, len(inner), step):
		    chunk = inner[off:off + step]
		    more = 1 if off + step < len(inner) else 0
		    frag = struct.pack("!BBHI", 4, 0, off | more, 0x5150)
		    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(frag) + len(chunk), 44, 64,
		                      socket.inet_pton(socket.AF_INET6, src6), socket.inet_pton(socket.AF_INET6, dst6))
		    s.send(mac(dmac) + mac(smac) + b"\x86\xdd" + ip6 + frag + chunk)
		PY
	wait "$listener" || return 1
	grep -q "^3000 True$" "$TOPO_TMP/v6frag.out"
}
pass_before=$(aftr_counter pass_ipv6_fragment)
kernel_before=$(aftrctl_counter slow_path_from_kernel)
check "b4a: a 3000-byte datagram as IPv6 fragments reaches the echo server, its echo h1" v6frag_exchange
check "XDP passed the IPv6 fragments to the kernel (pass_ipv6_fragment)" dp_above pass_ipv6_fragment $((pass_before + 2))
check "aftrd got the kernel's reassembly (slow_path_from_kernel)" ctl_above slow_path_from_kernel "$kernel_before"

# ---- 3. fragments in reverse order from the Internet ----
# h1 opens a mapping to 203.0.113.10:9999; inet learns the public address and port from the
# datagram and answers 3000 bytes as IPv4 fragments sent last first.
reverse_exchange() {
	local responder
	in_ns inet timeout 10 "$PY" - 9999 <<-'PY' >"$TOPO_TMP/reverse.inet" 2>&1 &
		import socket, struct, sys
		u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		u.bind(("0.0.0.0", int(sys.argv[1])))
		u.settimeout(8)
		_, (pub, pport) = u.recvfrom(2048)
		payload = bytes((i * 7) % 256 for i in range(3000))
		udp = struct.pack("!HHHH", int(sys.argv[1]), pport, 8 + len(payload), 0) + payload
		raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
		step = 1480
		frags = []
		for off in range(0, len(udp), step):
		    chunk = udp[off:off + step]
		    more = 0x2000 if off + step < len(udp) else 0
		    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), 0x7777, more | (off // 8), 64, 17, 0,
		                      socket.inet_aton("203.0.113.10"), socket.inet_aton(pub))
		    frags.append(hdr + chunk)
		for f in reversed(frags):
		    raw.sendto(f, (pub, 0))
		print("sent", len(frags), "to", pub, pport)
		PY
	responder=$!
	sleep 0.5
	in_ns h1 timeout 8 "$PY" - "$INET_ADDR4" <<-'PY' || { wait "$responder"; return 1; }
		import socket, sys
		s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
		s.bind(("0.0.0.0", 47100))
		s.settimeout(5)
		s.sendto(b"open", (sys.argv[1], 9999))
		got, _ = s.recvfrom(65535)
		sys.exit(0 if got == bytes((i * 7) % 256 for i in range(3000)) else 2)
		PY
	wait "$responder"
}
check "inet: 3000 bytes in reverse-order fragments arrive whole at h1" reverse_exchange

# ---- 4. a flood of fragments that never complete ----
flood_fragments() {
	in_ns inet timeout 30 "$PY" - 5000 <<-'PY'
		import socket, struct, sys, time
		raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
		for i in range(int(sys.argv[1])):
		    # A first fragment (MF) of a datagram whose rest never comes; each its own id.
		    body = struct.pack("!HHHH", 7, 40000 + i % 1000, 1008, 0) + b"x" * 64
		    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1 + i, 0x2000, 64, 17, 0,
		                      socket.inet_aton("203.0.113.10"), socket.inet_aton("198.51.100.1"))
		    raw.sendto(hdr + body, ("198.51.100.1", 0))
		    if i % 500 == 499:
		        time.sleep(0.05)
		PY
}
check "5000 never-completed fragments sent" flood_fragments
check "h2 downloads over HTTP meanwhile" check_http h2
sleep 2.5 # past the 1 s reassembly timeout and a sweep
check "aftrd evicted datagrams beyond max_datagrams (fragments_evicted)" ctl_above fragments_evicted 3000
check "aftrd timed out the rest (fragments_timed_out)" ctl_above fragments_timed_out 100
check "nothing left pending" no_pending
check "h1 still echoes 3000 bytes" big_echo h1 3000
check "aftrd still runs" kill -0 "$AFTRD_PID"

# ---- 5. a restart adopts the pinned slow-path ring ----
check "the slow-path ring is pinned" test -e "$AFTR_BPFFS/aftr/aftr_slow_path"
restart() { aftrd_term && aftrd_start; }
check "aftrd restarts (SIGTERM, start on the pins)" restart
check "h2 echoes 3000 bytes after the restart" big_echo h2 3000
check "the new aftrd reassembled it" ctl_above fragments_reassembled 1
echo "     slow path: $(aftrctl_run --json stats | "$PY" -c 'import json,sys; c=json.load(sys.stdin).get("controller_counters",{}); print(" ".join(f"{k}={v}" for k,v in sorted(c.items()) if k.startswith(("slow_path","fragments"))))')"

if ((failures)); then
	echo "fragments_test: FAILED ($failures checks)"
	tail -n 20 "$AFTRD_STDERR" || true
	exit 1
fi
echo "fragments_test: all checks passed"
