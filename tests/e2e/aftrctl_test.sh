#!/usr/bin/env bash
# e2e: aftrctl against a running aftrd in the namespace lab, over its Unix socket (and once
# over TCP with mutual TLS): health, sessions and subscribers made by real traffic from both
# B4s, port blocks (and releasing one by ADDR:PORT), a static mapping's create/list/get/delete
# round trip, pools add/drain/list, statistics, config get/reload, an event caused by new
# traffic, and failed calls (exit 1, "aftrctl: CODE: message") and usage errors (exit 2).
# Also aftrd's Prometheus /metrics (metrics.listen) over HTTP.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
source "$here/aftrctl.sh"
PKI=$(mktemp -d /tmp/aftrctl-e2e.XXXXXX)
cleanup() {
	aftr_lab_down
	rm -rf "$PKI"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -x $AFTRCTL ]] || { echo "aftrctl not built: $AFTRCTL" >&2; exit 1; }

# jcheck PYTHON_EXPR [ARG...]: whether the expression over d (the JSON on stdin) and a (the
# ARGs) is true. P5: Debian's python, not the pyenv one on PATH.
jcheck() {
	/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); a = sys.argv[2:]; sys.exit(0 if eval(sys.argv[1]) else 1)' "$@"
}
# jget PYTHON_EXPR [ARG...]: prints the expression over d (the JSON on stdin) and a.
jget() {
	/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); a = sys.argv[2:]; print(eval(sys.argv[1]))' "$@"
}
# has_line REGEX TEXT: TEXT has a line matching REGEX (extended, whole line).
has_line() { grep -Eqx -- "$1" <<<"$2"; }
lacks_line() { ! grep -Eqx -- "$1" <<<"$2"; }
# fails_with CODE ARGS...: aftrctl ARGS exits 1 with "aftrctl: CODE: ..." on stderr (gRPC's
# own log lines may come first).
fails_with() {
	local code=$1 rc=0 err
	shift
	err=$(aftrctl_run "$@" 2>&1 >/dev/null) || rc=$?
	echo "     aftrctl $*: exit $rc, stderr: $err"
	[[ $rc == 1 ]] && grep -q "^aftrctl: $code: " <<<"$err"
}

# Certificates so the TCP listener can be reached with mutual TLS as well.
make_test_pki "$PKI"

AFTRCTL_SOCKET=$PKI/aftrd.sock
TLS_TARGET=127.0.0.1:9471 # inside the aftr namespace
AFTR_API_CONFIG="unix_socket: \"$AFTRCTL_SOCKET\" tcp_listen: \"$TLS_TARGET\"
  tls { cert_file: \"$PKI/server.pem\" key_file: \"$PKI/server.key\" client_ca_file: \"$PKI/ca.pem\" }"
METRICS_LISTEN=127.0.0.1:9469 # inside the aftr namespace
aftr_lab_up "metrics { listen: \"$METRICS_LISTEN\" }"

# ---- health, over the socket and over mutual TLS
health=$(aftrctl_run health) && health_rc=0 || health_rc=$?
check "health: SERVING, exit 0 (got $health, exit $health_rc)" test "$health/$health_rc" == SERVING/0
tls=(--target "$TLS_TARGET" --tls_ca "$PKI/ca.pem" --tls_server_name aftr.example)
health=$(ip netns exec "$NS_AFTR" "$AFTRCTL" "${tls[@]}" --tls_cert "$PKI/client.pem" \
	--tls_key "$PKI/client.key" health) || true
check "health over TCP with mutual TLS: SERVING (got $health)" test "$health" == SERVING
no_cert_rc=0
ip netns exec "$NS_AFTR" "$AFTRCTL" "${tls[@]}" --timeout 3s health >/dev/null 2>&1 || no_cert_rc=$?
check "TLS without a client certificate is refused (exit 1, got $no_cert_rc)" test "$no_cert_rc" -eq 1

# ---- traffic from both subscribers
traffic() { check_ping "$1" && check_http "$1" && check_udp "$1"; }
for role in h1 h2; do
	check "$role: ping, HTTP and UDP through the AFTR" traffic "$role"
done

# ---- sessions
sessions_json=$(aftrctl_run --json sessions list --all)
check "sessions list --all --json: sessions of both B4s, from the shared 192.0.2.10" jcheck \
	'{s["b4_address"] for s in d["sessions"]} == {"2001:db8:a::2", "2001:db8:b::2"} and all(s["inner_address"] == "192.0.2.10" for s in d["sessions"])' \
	<<<"$sessions_json"
check "sessions list: tcp, udp and icmp sessions for each B4" jcheck \
	'all({s["protocol"] for s in d["sessions"] if s["b4_address"] == b} >= {"TCP", "UDP", "ICMP"} for b in ("2001:db8:a::2", "2001:db8:b::2"))' \
	<<<"$sessions_json"
check "sessions list --all --json: no next_page_token left" jcheck 'd["next_page_token"] == ""' \
	<<<"$sessions_json"
total=$(jget 'len(d["sessions"])' <<<"$sessions_json")
paged=$(aftrctl_run --json sessions list --all --page_size 2 | jget 'len(d["sessions"])')
check "--all with --page_size 2 walks every page ($paged of $total)" test "$paged" -eq "$total"
sessions_text=$(aftrctl_run sessions list --all)
echo "$sessions_text"
check "sessions list: aligned table with the operator's columns" \
	grep -Eq '^PROTO +INNER +PUBLIC +B4 +KIND +STATE +EXPIRES$' <<<"$sessions_text"
check "sessions list: footer counts every session" grep -qx "$total sessions" <<<"$sessions_text"
a_udp=$(jget '[s["name"] for s in d["sessions"] if s["b4_address"] == "2001:db8:a::2" and s["protocol"] == "UDP"][0]' <<<"$sessions_json")
check "sessions get $a_udp" has_line "name: +$a_udp" "$(aftrctl_run sessions get "$a_udp")"
only_b=$(aftrctl_run --json sessions list --all --filter 'b4_address = 2001:db8:b::2')
check "sessions list --filter b4_address: only that B4's sessions" jcheck \
	'len(d["sessions"]) > 0 and all(s["b4_address"] == "2001:db8:b::2" for s in d["sessions"])' <<<"$only_b"

# ---- subscribers
pub_a=$(jget '{s["public_address"] for s in d["sessions"] if s["b4_address"] == "2001:db8:a::2"}.pop()' <<<"$sessions_json")
sub_a=$(aftrctl_run subscribers get 2001:db8:a::2)
echo "$sub_a"
check "subscribers get 2001:db8:a::2: its name" has_line "name: +subscribers/2001:db8:a::2" "$sub_a"
check "subscribers get 2001:db8:a::2: the public address its sessions use ($pub_a)" \
	has_line "public_address: +$pub_a" "$sub_a"
check "subscribers list --json: both B4s" jcheck \
	'sorted(s["b4_address"] for s in d["subscribers"]) == ["2001:db8:a::2", "2001:db8:b::2"]' \
	< <(aftrctl_run --json subscribers list --all)

# ---- port blocks
blocks_json=$(aftrctl_run --json blocks list --all)
aftrctl_run blocks list
check "blocks list: a block for each B4, on its subscriber's public address" jcheck \
	'{b["b4_address"] for b in d["port_blocks"]} == {"2001:db8:a::2", "2001:db8:b::2"} and all(b["last_port"] - b["first_port"] + 1 == b["block_size"] for b in d["port_blocks"])' \
	<<<"$blocks_json"

# ---- static mapping round trip
mapping_json=$(aftrctl_run --json mappings create --b4 2001:db8:a::2 --protocol tcp --inner 192.0.2.10:8080)
echo "$mapping_json"
mapping=$(jget 'd["name"]' <<<"$mapping_json")
check "mappings create: named staticMappings/tcp-$pub_a-PORT ($mapping)" \
	has_line "staticMappings/tcp-${pub_a//./\\.}-[0-9]+" "$mapping"
check "mappings list: has it" jcheck 'a[0] in [m["name"] for m in d["static_mappings"]]' "$mapping" \
	< <(aftrctl_run --json mappings list --all)
mapping_text=$(aftrctl_run mappings get "$mapping") || true
echo "$mapping_text"
check "mappings get: inner 192.0.2.10:8080" has_line "inner: +192\.0\.2\.10:8080" "$mapping_text"
check "mappings get: behind 2001:db8:a::2" has_line "b4_address: +2001:db8:a::2" "$mapping_text"
check "mappings delete: exit 0" aftrctl_run mappings delete "$mapping"
check "mappings get after delete: NOT_FOUND" fails_with NOT_FOUND mappings get "$mapping"
check "mappings list: gone" jcheck 'a[0] not in [m["name"] for m in d["static_mappings"]]' "$mapping" \
	< <(aftrctl_run --json mappings list --all)

# ---- pools: add 198.51.100.16/28 (routed to the AFTR like the configured /28), drain the
# configured one (its blocks in use keep it listed as draining), then take it back.
check "pools add 198.51.100.16/28: active, 16 addresses" jcheck \
	'd["state"] == "ACTIVE" and d["address_count"] == 16 and d["prefix"] == "198.51.100.16/28"' \
	< <(aftrctl_run --json pools add 198.51.100.16/28)
check "pools drain 198.51.100.0/28 (blocks in use): draining" jcheck \
	'd["state"] == "DRAINING" and d["name"] == "pools/198.51.100.0-28"' \
	< <(aftrctl_run --json pools drain 198.51.100.0/28)
pools_text=$(aftrctl_run pools list)
echo "$pools_text"
check "pools list: the configured pool draining" has_line "198\.51\.100\.0/28 +draining .*" "$pools_text"
check "pools list: the added one active" has_line "198\.51\.100\.16/28 +active .*" "$pools_text"
check "pools get 198.51.100.16/28" has_line "name: +pools/198\.51\.100\.16-28" \
	"$(aftrctl_run pools get 198.51.100.16/28)"
check "pools add 198.51.100.0/28 takes the draining prefix back into service" \
	jcheck 'd["state"] == "ACTIVE"' < <(aftrctl_run --json pools add 198.51.100.0/28)
check "pools list --json: both active" \
	jcheck 'sorted((p["prefix"], p["state"]) for p in d["pools"]) == [("198.51.100.0/28", "ACTIVE"), ("198.51.100.16/28", "ACTIVE")]' \
	< <(aftrctl_run --json pools list --all)

# ---- statistics
stats_json=$(aftrctl_run --json stats)
check "stats --json: rx_packets > 0 from both sides" jcheck \
	'[int(c["from_b4"]) > 0 and int(c["from_internet"]) > 0 for c in d["counters"] if c["name"] == "rx_packets"] == [True]' \
	<<<"$stats_json"
stats_text=$(aftrctl_run stats --nonzero)
echo "$stats_text"
check "stats --nonzero: rx_packets shown" has_line "rx_packets( +[0-9]+){4}" "$stats_text"
check "stats --nonzero: the all-zero drop_fragment hidden" lacks_line "drop_fragment .*" "$stats_text"

# ---- Prometheus /metrics serves the same statistics
metrics=$(ip netns exec "$NS_AFTR" curl -s --max-time 5 "http://$METRICS_LISTEN/metrics") || true
grep -E '^aftr_(statistics_up|rx_packets_total|sessions|subscribers|pool_addresses)[ {]' <<<"$metrics" || true
check "/metrics: aftr_statistics_up 1" has_line "aftr_statistics_up 1" "$metrics"
check "/metrics: aftr_rx_packets_total from_b4 > 0" \
	has_line 'aftr_rx_packets_total\{direction="from_b4"\} [1-9][0-9]*' "$metrics"
check "/metrics: aftr_drop_no_session_total per direction" \
	has_line 'aftr_drop_no_session_total\{direction="from_internet"\} [0-9]+' "$metrics"
check "/metrics: aftr_subscribers 2" has_line "aftr_subscribers 2" "$metrics"
check "/metrics: aftr_pool_addresses active 32 (both /28s)" \
	has_line 'aftr_pool_addresses\{state="active"\} 32' "$metrics"

# ---- configuration
config_text=$(aftrctl_run config get)
check "config get: textproto with the configured pool" \
	has_line 'pool_prefixes: "198\.51\.100\.0/28"' "$config_text"
check "config get: and softwire address" has_line "softwire_addresses: \"$SOFTWIRE_ADDR6\"" "$config_text"
check "config get --json: the configured interfaces" jcheck \
	'sorted(d["interfaces"]) == ["inet0", "sw-a", "sw-b"]' < <(aftrctl_run --json config get)
reload_out=$(aftrctl_run config reload --file "$AFTR_CONF" --validate_only 2>&1) && reload_rc=0 || reload_rc=$?
echo "     config reload --file --validate_only: exit $reload_rc: $reload_out"
check "config reload --file (the lab's own file) --validate_only: exit 0" test "$reload_rc" -eq 0
cp "$AFTR_CONF" "$PKI/changed.conf"
echo 'timeouts { udp: 200 }' >>"$PKI/changed.conf"
reload_out=$(aftrctl_run config reload --from "$PKI/changed.conf" --validate_only 2>&1) || true
echo "     config reload --from --validate_only: $reload_out"
check "config reload --from (udp timeout changed) --validate_only: would change timeouts.udp" \
	has_line "valid; would change: (.*, )?timeouts\.udp(, .*)?" "$reload_out"

# ---- errors
check "sessions get subscribers/bogus/sessions/x: exit 1, INVALID_ARGUMENT on stderr" \
	fails_with INVALID_ARGUMENT sessions get subscribers/bogus/sessions/x
check "sessions get of a well-formed but absent session: NOT_FOUND" \
	fails_with NOT_FOUND sessions get subscribers/2001:db8:a::99/sessions/tcp-192.0.2.10-1
usage_rc=0
aftrctl_run blocks release not-a-block 2>/dev/null || usage_rc=$?
check "usage error (blocks release not-a-block): exit 2" test "$usage_rc" -eq 2

# ---- events: one caused by new traffic (a fresh UDP flow from h1 creates a session)
events_out=$PKI/events.out
aftrctl_run events --count 1 --duration 30s --filter 'type = SESSION_CREATED' >"$events_out" 2>&1 &
events_pid=$!
sleep 1 # the watch is registered before the traffic
for _ in $(seq 10); do
	check_udp h1 || true
	kill -0 "$events_pid" 2>/dev/null || break
	sleep 0.5
done
events_rc=0
wait "$events_pid" || events_rc=$?
echo "     events: exit $events_rc: $(cat "$events_out")"
check "events --count 1: exit 0" test "$events_rc" -eq 0
check "events --count 1: exactly one line, SESSION_CREATED udp from h1 behind 2001:db8:a::2" \
	has_line "[0-9T:-]+Z SESSION_CREATED udp 2001:db8:a::2 192\.0\.2\.10:[0-9]+ [0-9.]+:[0-9]+" \
	"$(cat "$events_out")"
check "events --count 1: nothing else printed" test "$(wc -l <"$events_out")" -eq 1

# ---- releasing a block by ADDR:PORT ends its subscriber's sessions
b_block=$(jget '[b["public_address"] + ":" + str(b["first_port"]) for b in d["port_blocks"] if b["b4_address"] == "2001:db8:b::2"][0]' <<<"$blocks_json")
check "blocks release $b_block (ADDR:PORT): exit 0" aftrctl_run blocks release "$b_block"
check "blocks list: that block is gone" \
	jcheck 'a[0] not in [b["public_address"] + ":" + str(b["first_port"]) for b in d["port_blocks"]]' \
	"$b_block" < <(aftrctl_run --json blocks list --all)
check "sessions of b4b on that block are gone" jcheck \
	'not [s for s in d["sessions"] if s["b4_address"] == "2001:db8:b::2"]' \
	< <(aftrctl_run --json sessions list --all --filter 'b4_address = 2001:db8:b::2')

echo "--- aftrctl_show (what the lab prints)"
aftrctl_show
check "aftrd still running" kill -0 "$AFTRD_PID"
if ((failures)); then
	echo "aftrctl_test: $failures check(s) failed"
	echo "--- aftrd stderr"
	cat "$AFTRD_STDERR"
	exit 1
fi
echo "aftrctl_test: all checks passed"
