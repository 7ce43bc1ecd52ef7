#!/usr/bin/env bash
# e2e: the gRPC API of a running aftrd, called by an independent Python client
# (tests/e2e/api_client_test.py, Debian's python3-grpcio) over the Unix socket and over TCP
# with mutual TLS: every AftrService method, health, reflection, bad input, and a static
# mapping that a real TCP connection from the Internet namespace goes through.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
PKI=$(mktemp -d /tmp/aftr-api-pki.XXXXXX)
cleanup() {
	aftr_lab_down
	rm -rf "$PKI"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STUBS=${AFTR_PY_STUBS:?set AFTR_PY_STUBS to <build>/proto/python}

make_test_pki "$PKI"

TLS_PORT=9470
AFTR_API_CONFIG="unix_socket: \"$PKI/aftrd.sock\" tcp_listen: \"127.0.0.1:$TLS_PORT\"
  tls { cert_file: \"$PKI/server.pem\" key_file: \"$PKI/server.key\" client_ca_file: \"$PKI/ca.pem\" }"
METRICS_PORT=9469
aftr_lab_up "metrics { listen: \"127.0.0.1:$METRICS_PORT\" }"

# Traffic from both subscribers, so there are sessions and blocks to look at.
for role in h1 h2; do
	check_ping "$role"
	check_http "$role"
	check_udp "$role"
done

rc=0
in_ns aftr env AFTR_PY_STUBS="$STUBS" AFTR_API_SOCKET="$PKI/aftrd.sock" AFTR_CONF="$AFTR_CONF" \
	NS_H1="$NS_H1" NS_H2="$NS_H2" NS_INET="$NS_INET" INET_ADDR4="$INET_ADDR4" \
	UDP_ECHO_PORT="$UDP_ECHO_PORT" AFTR_TLS_TARGET="127.0.0.1:$TLS_PORT" AFTR_TLS_CA="$PKI/ca.pem" \
	AFTR_TLS_CLIENT_CERT="$PKI/client.pem" AFTR_TLS_CLIENT_KEY="$PKI/client.key" \
	timeout 120 /usr/bin/python3 "$here/api_client_test.py" || rc=$?

# Prometheus /metrics: the same counter names as GetStatistics, per direction, and gauges.
metrics=$(in_ns aftr curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics") || metrics=""
for want in 'aftr_rx_packets_total{direction="from_b4"}' 'aftr_in_translated_total{direction="from_internet"}' \
	'aftr_drop_no_session_total{direction="from_internet"}' 'aftr_statistics_up 1' 'aftr_subscribers 2'; do
	if grep -qF "$want" <<<"$metrics"; then
		echo "ok   /metrics has $want"
	else
		echo "FAIL /metrics lacks $want"
		rc=1
	fi
done
rx=$(awk '/^aftr_rx_packets_total\{direction="from_b4"\}/ { print $2 }' <<<"$metrics")
if [[ ${rx:-0} -gt 0 ]] 2>/dev/null; then echo "ok   /metrics rx_packets from_b4 = $rx"; else echo "FAIL /metrics rx_packets from_b4 = '$rx'"; rc=1; fi

# aftrd survived all of it and still answers.
if ! kill -0 "$AFTRD_PID" 2>/dev/null; then
	echo "FAIL - aftrd died"
	cat "$AFTRD_STDERR" >&2
	rc=1
fi
exit "$rc"
