# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# tests/e2e/lib.sh — builds and tears down the DS-Lite lab topology in network namespaces.
# Sourced (never run) by the e2e tests, the lab and bench/e2e_pps.sh.
#
#   h1  (192.0.2.10/24) --lan0-- b4a --wan0 ==link A== sw-a--+
#                                                            aftr --inet0 ==== eth0-- inet
#   h2  (192.0.2.10/24) --lan0-- b4b --wan0 ==link B== sw-b--+      203.0.113.1   203.0.113.10
#
#   link A: 2001:db8:a::1/64 (aftr sw-a) <-> 2001:db8:a::2/64 (b4a wan0)
#   link B: 2001:db8:b::1/64 (aftr sw-b) <-> 2001:db8:b::2/64 (b4b wan0)
#   AFTR softwire address 2001:db8:ffff::1/128 on the aftr's lo; inet routes 198.51.100.0/24
#   (the public NAT pool) via 203.0.113.1. Both hosts use the SAME 192.0.2.10 (gw 192.0.2.1).
#
# The B4s are the kernel's own SRv6 pieces (DESIGN.md "The B4 in the lab"): IPv4 default route
# `encap seg6 mode encap.red` to the AFTR (one segment, reduced: plain IPv6 next-header 4 on the
# wire), and `seg6local End.DX4` for IPv4-in-IPv6 addressed to the B4. The aftr namespace has
# addresses, forwarding and static neighbours only: an AFTR is added on top of it, either
# aftrd (XDP) or diy_aftr_enable (the kernel "do-it-yourself" AFTR).
#
# Usage:
#   source tests/e2e/lib.sh
#   cleanup() { topo_destroy; }
#   trap cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
#   topo_create
#   in_ns h1 ping -c 1 -W 2 203.0.113.10
#
# Functions:
#   topo_create / topo_destroy     build / tear down everything (destroy is idempotent and
#                                  also removes whatever this run's prefix left behind)
#   in_ns ROLE CMD...              run CMD in a namespace (ROLE h1 h2 b4a b4b aftr inet, or a
#                                  full namespace name); ns_name ROLE prints the name
#   bg_in_ns ROLE LOG CMD...       start CMD in the background there, PID kept for servers_stop
#   servers_start / servers_stop   http_server_start (python3 http.server on 203.0.113.10:80,
#                                  file $HTTP_FILE of $HTTP_FILE_BYTES) + udp_echo_start (socat
#                                  on 203.0.113.10:7); stop kills only the PIDs they recorded
#   diy_aftr_enable [a|b] / diy_aftr_disable   the kernel "do-it-yourself" AFTR in aftr
#   veth_napi_on ROLE DEV          GRO on, so XDP redirects into DEV's peer are accepted
#   wait_until SECONDS CMD...      poll until CMD succeeds
#
# Namespaces are named ${TOPO_PREFIX}<role>, roles h1 h2 b4a b4b aftr inet; TOPO_PREFIX
# defaults to "aftr-$$-" so parallel runs never clash (set it before sourcing to change it).
# ($NS_H1 ... $NS_INET hold the names.) Every interface inside the namespaces has a fixed
# name and a fixed MAC (below), so a config file can name them and a generator can address
# them. Static neighbour entries everywhere (no ARP/ND races); TX checksum offload off on
# every veth (see _veth); GRO on for b4a/b4b wan0 and inet eth0, the receivers of the
# AFTR's XDP redirects.
# Needs root, iproute2, ethtool, nftables + conntrack (DIY AFTR), python3 and socat (servers);
# the tests also use ping (iputils-ping, not in every minimal Debian image) and curl.

TOPO_PREFIX=${TOPO_PREFIX:-aftr-$$-}
TOPO_ROLES=(h1 h2 b4a b4b aftr inet)
NS_H1=${TOPO_PREFIX}h1
NS_H2=${TOPO_PREFIX}h2
NS_B4A=${TOPO_PREFIX}b4a
NS_B4B=${TOPO_PREFIX}b4b
NS_AFTR=${TOPO_PREFIX}aftr
NS_INET=${TOPO_PREFIX}inet

# Interface names. In the aftr namespace:
AFTR_IF_A=sw-a       # toward b4a (link A)
AFTR_IF_B=sw-b       # toward b4b (link B)
AFTR_IF_INET=inet0   # toward inet
# In each B4 namespace:
B4_IF_WAN=wan0       # toward the aftr
B4_IF_LAN=lan0       # toward its host
# In h1/h2 and in inet:
HOST_IF=eth0
INET_IF=eth0

# Addresses (DESIGN.md "Address plan").
SOFTWIRE_ADDR6=2001:db8:ffff::1   # AFTR tunnel endpoint, on the aftr's lo
AFTR_A_ADDR6=2001:db8:a::1
B4A_ADDR6=2001:db8:a::2
AFTR_B_ADDR6=2001:db8:b::1
B4B_ADDR6=2001:db8:b::2
HOST_ADDR4=192.0.2.10             # h1 and h2 alike
B4_LAN_ADDR4=192.0.2.1            # the hosts' gateway, in b4a and b4b alike
LAN_PREFIX4=192.0.2.0/24
AFTR_INET_ADDR4=203.0.113.1
INET_ADDR4=203.0.113.10           # the "Internet" server
INET_PREFIX4=203.0.113.0/24
POOL_PREFIX4=198.51.100.0/24      # public NAT pool, routed by inet to the aftr
DIY_POOL_ADDR4=198.51.100.1       # the DIY AFTR's SNAT address

# Fixed, locally administered MACs (so static neighbours and generators need no lookups).
MAC_AFTR_A=02:00:00:00:0a:01
MAC_B4A_WAN=02:00:00:00:0a:02
MAC_AFTR_B=02:00:00:00:0b:01
MAC_B4B_WAN=02:00:00:00:0b:02
MAC_AFTR_INET=02:00:00:00:cb:01
MAC_INET=02:00:00:00:cb:10
MAC_B4A_LAN=02:00:00:00:1a:01
MAC_H1=02:00:00:00:1a:10
MAC_B4B_LAN=02:00:00:00:1b:01
MAC_H2=02:00:00:00:1b:10

# Servers in inet.
HTTP_PORT=80
UDP_ECHO_PORT=7
HTTP_FILE=big.bin                 # served at http://203.0.113.10/big.bin
HTTP_FILE_BYTES=$((400 * 1024))   # ~290 MSS-sized segments

TOPO_TMP=""                       # per-run scratch directory, made by topo_create
TOPO_NAMESPACES=()                # namespaces this run created
TOPO_PIDS=()                      # server processes this run started (killed by PID)

topo_log() { echo "[topo] $*" >&2; }

# require_root: a test that needs namespaces and XDP skips (exit 77) when not root.
require_root() {
	if [[ $(id -u) != 0 ]]; then
		echo "SKIP: needs root (network namespaces, XDP)"
		exit 77
	fi
}

# ns_name ROLE|NAMESPACE: the namespace name for a role (h1 h2 b4a b4b aftr inet).
ns_name() {
	case "$1" in
	h1 | h2 | b4a | b4b | aftr | inet) echo "${TOPO_PREFIX}$1" ;;
	*) echo "$1" ;;
	esac
}

# in_ns ROLE|NAMESPACE CMD...: runs CMD inside the namespace (with its own /sys).
in_ns() {
	local ns
	ns=$(ns_name "$1")
	shift
	ip netns exec "$ns" "$@"
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds; fails after SECONDS.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# check DESCRIPTION CMD...: runs CMD, prints ok/FAIL with the description, counts failures
# in $failures (a test exits non-zero when it is not 0).
failures=0
check() {
	local what=$1
	shift
	if "$@"; then
		echo "ok   - $what"
	else
		echo "FAIL - $what"
		failures=$((failures + 1))
	fi
}

# make_test_pki DIR: a CA (ca.pem), a server certificate for aftr.example (server.pem/.key)
# and a client certificate (client.pem/.key), all EC P-256, for the API's mutual TLS.
make_test_pki() {
	local dir=$1 name cn ext
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=aftr test CA" \
		-days 2 -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null || return 1
	while read -r name cn ext; do
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
			-keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null &&
			openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
				-CAcreateserial -days 2 -extfile <(echo "$ext") -out "$dir/$name.pem" 2>/dev/null ||
			return 1
	done <<-EOP
		server aftr.example subjectAltName=DNS:aftr.example
		client operator extendedKeyUsage=clientAuth
	EOP
}

# veth_napi_on ROLE DEV: turns GRO on, which gives a veth a NAPI instance, so that XDP
# redirects into its peer are accepted even when DEV runs no XDP program (without it, and
# without XDP on DEV, ndo_xdp_xmit toward DEV drops every frame).
veth_napi_on() {
	in_ns "$1" ethtool -K "$2" gro on >/dev/null
}

# _veth ROLE_A DEV_A MAC_A ROLE_B DEV_B MAC_B: a veth pair created directly in its namespaces.
# TX checksum offload is turned off on both ends: a veth otherwise hands TCP/UDP packets on
# with only the pseudo-header sum in the checksum field (CHECKSUM_PARTIAL), an XDP program
# that rewrites them incrementally then forwards a wrong checksum, and the receiver drops
# them (ping works, TCP and UDP do not). Real NICs deliver complete checksums.
_veth() {
	ip link add "$2" address "$3" netns "$(ns_name "$1")" type veth \
		peer name "$5" address "$6" netns "$(ns_name "$4")"
	in_ns "$1" ethtool -K "$2" tx off >/dev/null
	in_ns "$4" ethtool -K "$5" tx off >/dev/null
	in_ns "$1" ip link set "$2" up
	in_ns "$4" ip link set "$5" up
}

# _b4_setup ROLE B4_ADDR6 AFTR_LINK_ADDR6 MAC_AFTR_SIDE HOST_MAC: the kernel B4.
_b4_setup() {
	local role=$1 b4=$2 aftr_link=$3 aftr_mac=$4 host_mac=$5
	# A router on both sides: seg6 encapsulates forwarded IPv4 on input, and the new IPv6
	# packet is then routed as a received one (dropped as an address error without forwarding).
	in_ns "$role" sysctl -qw net.ipv4.ip_forward=1
	in_ns "$role" sysctl -qw net.ipv6.conf.all.forwarding=1
	in_ns "$role" ip addr add "$B4_LAN_ADDR4/24" dev "$B4_IF_LAN"
	in_ns "$role" ip -6 addr add "$b4/64" dev "$B4_IF_WAN" nodad
	in_ns "$role" ip -6 neigh replace "$aftr_link" lladdr "$aftr_mac" dev "$B4_IF_WAN" nud permanent
	in_ns "$role" ip neigh replace "$HOST_ADDR4" lladdr "$host_mac" dev "$B4_IF_LAN" nud permanent
	in_ns "$role" ip -6 route add "$SOFTWIRE_ADDR6/128" via "$aftr_link" dev "$B4_IF_WAN"
	# B4 -> AFTR: IPv4 in IPv6 (next header 4), source = the B4's address.
	in_ns "$role" ip sr tunsrc set "$b4"
	in_ns "$role" ip route add default encap seg6 mode encap.red segs "$SOFTWIRE_ADDR6" \
		dev "$B4_IF_WAN" src "$B4_LAN_ADDR4"
	# AFTR -> B4: decapsulate IPv4-in-IPv6 sent to the B4's address (rule ahead of local).
	in_ns "$role" ip -6 rule add pref 100 to "$b4/128" ipproto 4 lookup 100
	in_ns "$role" ip -6 rule del pref 0 lookup local
	in_ns "$role" ip -6 rule add pref 1000 lookup local
	in_ns "$role" ip -6 route add "$b4/128" encap seg6local action End.DX4 nh4 0.0.0.0 \
		dev "$B4_IF_WAN" table 100
	# The AFTR may redirect frames into this B4 from XDP.
	veth_napi_on "$role" "$B4_IF_WAN"
}

# topo_create: makes the six namespaces, links, addresses, routes and the two kernel B4s.
topo_create() {
	local role
	TOPO_TMP=$(mktemp -d /tmp/aftr-topo.XXXXXX)
	for role in "${TOPO_ROLES[@]}"; do
		ip netns add "$(ns_name "$role")"
		TOPO_NAMESPACES+=("$(ns_name "$role")")
		in_ns "$role" ip link set lo up
	done
	_veth h1 "$HOST_IF" "$MAC_H1" b4a "$B4_IF_LAN" "$MAC_B4A_LAN"
	_veth h2 "$HOST_IF" "$MAC_H2" b4b "$B4_IF_LAN" "$MAC_B4B_LAN"
	_veth aftr "$AFTR_IF_A" "$MAC_AFTR_A" b4a "$B4_IF_WAN" "$MAC_B4A_WAN"
	_veth aftr "$AFTR_IF_B" "$MAC_AFTR_B" b4b "$B4_IF_WAN" "$MAC_B4B_WAN"
	_veth aftr "$AFTR_IF_INET" "$MAC_AFTR_INET" inet "$INET_IF" "$MAC_INET"

	# Hosts behind the B4s (the same address on both sides).
	for role in h1 h2; do
		in_ns "$role" ip addr add "$HOST_ADDR4/24" dev "$HOST_IF"
		in_ns "$role" ip route add default via "$B4_LAN_ADDR4"
	done
	in_ns h1 ip neigh replace "$B4_LAN_ADDR4" lladdr "$MAC_B4A_LAN" dev "$HOST_IF" nud permanent
	in_ns h2 ip neigh replace "$B4_LAN_ADDR4" lladdr "$MAC_B4B_LAN" dev "$HOST_IF" nud permanent

	_b4_setup b4a "$B4A_ADDR6" "$AFTR_A_ADDR6" "$MAC_AFTR_A" "$MAC_H1"
	_b4_setup b4b "$B4B_ADDR6" "$AFTR_B_ADDR6" "$MAC_AFTR_B" "$MAC_H2"

	# The AFTR namespace: addresses, forwarding, static neighbours; no AFTR yet.
	in_ns aftr sysctl -qw net.ipv4.ip_forward=1
	in_ns aftr sysctl -qw net.ipv6.conf.all.forwarding=1
	in_ns aftr ip -6 addr add "$SOFTWIRE_ADDR6/128" dev lo nodad
	in_ns aftr ip -6 addr add "$AFTR_A_ADDR6/64" dev "$AFTR_IF_A" nodad
	in_ns aftr ip -6 addr add "$AFTR_B_ADDR6/64" dev "$AFTR_IF_B" nodad
	in_ns aftr ip addr add "$AFTR_INET_ADDR4/24" dev "$AFTR_IF_INET"
	in_ns aftr ip -6 neigh replace "$B4A_ADDR6" lladdr "$MAC_B4A_WAN" dev "$AFTR_IF_A" nud permanent
	in_ns aftr ip -6 neigh replace "$B4B_ADDR6" lladdr "$MAC_B4B_WAN" dev "$AFTR_IF_B" nud permanent
	in_ns aftr ip neigh replace "$INET_ADDR4" lladdr "$MAC_INET" dev "$AFTR_IF_INET" nud permanent

	# The Internet: a server, and the way back to the public pool.
	in_ns inet ip addr add "$INET_ADDR4/24" dev "$INET_IF"
	in_ns inet ip route add "$POOL_PREFIX4" via "$AFTR_INET_ADDR4"
	in_ns inet ip neigh replace "$AFTR_INET_ADDR4" lladdr "$MAC_AFTR_INET" dev "$INET_IF" nud permanent
	veth_napi_on inet "$INET_IF"
	topo_log "created namespaces ${TOPO_NAMESPACES[*]}"
}

# _kill_pid PID: TERM, then KILL after 3 s; only for PIDs this run recorded.
_kill_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# topo_destroy: stops this run's servers, deletes every namespace this run made (and any
# left with this run's prefix), removes the scratch directory. Idempotent; never fails.
topo_destroy() {
	local ns pid
	servers_stop
	for ns in "${TOPO_NAMESPACES[@]}" $(ip netns list 2>/dev/null | awk '{print $1}' |
		grep -F -- "$TOPO_PREFIX" || true); do
		[[ $ns == "$TOPO_PREFIX"* ]] || continue
		[[ -e /run/netns/$ns ]] || continue
		# Anything still running inside was started by this run (the namespace is private to
		# it); a live process would keep the namespace's interfaces alive after deletion.
		for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
			topo_log "stopping leftover process $pid ($(cat /proc/"$pid"/comm 2>/dev/null)) in $ns"
			_kill_pid "$pid"
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	TOPO_NAMESPACES=()
	if [[ -n $TOPO_TMP && -d $TOPO_TMP ]]; then
		rm -rf -- "$TOPO_TMP"
	fi
	TOPO_TMP=""
}

# ---- servers in inet ----

# bg_in_ns ROLE LOGFILE CMD...: starts CMD in the background inside the namespace and records
# its PID for servers_stop (ip netns exec execs CMD, so $! is CMD's own PID).
bg_in_ns() {
	local ns log=$2
	ns=$(ns_name "$1")
	shift 2
	ip netns exec "$ns" "$@" >"$log" 2>&1 &
	TOPO_PIDS+=($!)
}

# http_server_start: python's http.server on 203.0.113.10:80 serving $HTTP_FILE
# ($HTTP_FILE_BYTES random bytes, so a transfer crosses many MSS-sized segments).
http_server_start() {
	local dir=$TOPO_TMP/www
	mkdir -p "$dir"
	head -c "$HTTP_FILE_BYTES" /dev/urandom >"$dir/$HTTP_FILE"
	bg_in_ns inet "$TOPO_TMP/http.log" /usr/bin/python3 -m http.server "$HTTP_PORT" \
		--bind "$INET_ADDR4" --directory "$dir"
	wait_until 10 in_ns inet bash -c "ss -Hltn 'sport = :$HTTP_PORT' | grep -q ." ||
		{ topo_log "http server did not start: $(cat "$TOPO_TMP/http.log")"; return 1; }
}

# udp_echo_start: socat UDP echo on 203.0.113.10:7 (a child per datagram, echoing it back).
udp_echo_start() {
	bg_in_ns inet "$TOPO_TMP/udp-echo.log" socat -T 3 \
		"UDP4-RECVFROM:$UDP_ECHO_PORT,bind=$INET_ADDR4,reuseaddr,fork" PIPE
	wait_until 10 in_ns inet bash -c "ss -Hlun 'sport = :$UDP_ECHO_PORT' | grep -q ." ||
		{ topo_log "udp echo did not start: $(cat "$TOPO_TMP/udp-echo.log")"; return 1; }
}

servers_start() {
	http_server_start
	udp_echo_start
}

# servers_stop: kills the server processes this run started (and their children), by PID.
servers_stop() {
	local pid child
	for pid in "${TOPO_PIDS[@]}"; do
		for child in $(pgrep -P "$pid" 2>/dev/null || true); do
			_kill_pid "$child"
		done
		_kill_pid "$pid"
		wait "$pid" 2>/dev/null || true
	done
	TOPO_PIDS=()
}

# ---- the do-it-yourself Linux AFTR (the benchmark baseline) ----

# diy_aftr_enable [a|b]: kernel decapsulation (seg6local End.DX4 for IPv4-in-IPv6 sent to
# 2001:db8:ffff::1), nftables SNAT of 192.0.2.0/24 to 198.51.100.1, TCP MSS clamped to 1420
# (the tunnel costs 40 bytes), and the way back by `encap seg6 mode encap.red` to ONE B4
# (default a). The kernel AFTR routes by inner IPv4 destination only, so it cannot tell
# two subscribers with the same 192.0.2.10 apart: only the chosen B4's subscriber works.
diy_aftr_enable() {
	local which=${1:-a} b4 dev
	case "$which" in
	a) b4=$B4A_ADDR6 dev=$AFTR_IF_A ;;
	b) b4=$B4B_ADDR6 dev=$AFTR_IF_B ;;
	*) topo_log "diy_aftr_enable: unknown B4 '$which' (a or b)"; return 1 ;;
	esac
	# Let netfilter see packets decapsulated/encapsulated by lwtunnels (conntrack + NAT).
	# Note: this switch is host-wide and cannot be turned off again once on.
	in_ns aftr sysctl -qw net.netfilter.nf_hooks_lwtunnel=1
	in_ns aftr ip sr tunsrc set "$SOFTWIRE_ADDR6"
	in_ns aftr ip -6 rule add pref 100 to "$SOFTWIRE_ADDR6/128" ipproto 4 lookup 100
	in_ns aftr ip -6 rule del pref 0 lookup local
	in_ns aftr ip -6 rule add pref 1000 lookup local
	in_ns aftr ip -6 route add "$SOFTWIRE_ADDR6/128" encap seg6local action End.DX4 \
		nh4 0.0.0.0 dev "$AFTR_IF_A" table 100
	in_ns aftr ip route add "$LAN_PREFIX4" encap seg6 mode encap.red segs "$b4" dev "$dev"
	in_ns aftr nft -f - <<-EOF
		table ip diy_aftr {
			chain forward {
				type filter hook forward priority mangle; policy accept;
				tcp flags & (syn | rst) == syn tcp option maxseg size > 1420 \
					tcp option maxseg size set 1420
			}
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "$AFTR_IF_INET" ip saddr $LAN_PREFIX4 snat to $DIY_POOL_ADDR4
			}
		}
	EOF
}

# diy_aftr_disable: undoes diy_aftr_enable (and flushes its conntrack entries).
diy_aftr_disable() {
	in_ns aftr nft delete table ip diy_aftr 2>/dev/null || true
	in_ns aftr ip route del "$LAN_PREFIX4" 2>/dev/null || true
	in_ns aftr ip -6 route flush table 100 2>/dev/null || true
	in_ns aftr ip -6 rule del pref 100 2>/dev/null || true
	if ! in_ns aftr ip -6 rule show pref 0 | grep -q local; then
		in_ns aftr ip -6 rule add pref 0 lookup local
		in_ns aftr ip -6 rule del pref 1000 lookup local 2>/dev/null || true
	fi
	in_ns aftr ip sr tunsrc set :: 2>/dev/null || true
	in_ns aftr conntrack -F >/dev/null 2>&1 || true
}
