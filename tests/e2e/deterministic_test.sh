#!/usr/bin/env bash
# e2e: deterministic NAT (RFC 7422 style) in the namespace lab. b4a's /56 lies in a
# deterministic range (2001:db8:a::/48 in /56s over 198.51.100.64/28, 2048 ports each: b4a
# 2001:db8:a::2 is subscriber 0, 198.51.100.64 ports 1024-3071); b4b stays dynamic. Traffic
# from both; b4a's sessions stay in its computed range; `aftrctl deterministic` answers both
# ways and `aftrctl who` answers for b4a's port from the configuration; the log has the
# range as a start comment and no port-block line for b4a (one for b4b).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/aftrd.sh"
source "$here/aftrctl.sh"
trap aftr_lab_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -x $AFTRCTL ]] || { echo "aftrctl not built: $AFTRCTL" >&2; exit 1; }

jcheck() {
	/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); a = sys.argv[2:]; sys.exit(0 if eval(sys.argv[1]) else 1)' "$@"
}

aftr_lab_up 'deterministic { ranges { b4_prefix: "2001:db8:a::/48" subscriber_prefix_length: 56
  pool_prefix: "198.51.100.64/28" ports_per_subscriber: 2048 } }'

for role in h1 h2; do
	check "$role: ping through the softwire" check_ping "$role"
	check "$role: HTTP download over TCP" check_http "$role"
	check "$role: UDP echo round trip" check_udp "$role"
done

sessions=$(aftrctl_run --json sessions list --all)
echo "$sessions" | head -c 2000
echo
check "b4a: every session on 198.51.100.64 ports 1024-3071 (its computed range)" jcheck \
	'(lambda s: len(s) >= 3 and all(x["public_address"] == "198.51.100.64" and 1024 <= x["public_port"] <= 3071 for x in s))([x for x in d["sessions"] if x["b4_address"] == "2001:db8:a::2"])' \
	<<<"$sessions"
check "b4b: sessions from the dynamic pool 198.51.100.0/28" jcheck \
	'(lambda s: len(s) >= 3 and all(x["public_address"].rsplit(".", 1)[0] == "198.51.100" and int(x["public_address"].rsplit(".", 1)[1]) < 16 for x in s))([x for x in d["sessions"] if x["b4_address"] == "2001:db8:b::2"])' \
	<<<"$sessions"
b4a_port=$(/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print([x["public_port"] for x in d["sessions"] if x["b4_address"] == "2001:db8:a::2"][0])' <<<"$sessions")

# ---- aftrctl deterministic, both ways, from the configuration alone
out=$(aftrctl_run deterministic 2001:db8:a::2)
echo "$out"
check "deterministic B4ADDR: subscriber prefix" grep -Eq '^subscriber: +2001:db8:a::/56$' <<<"$out"
check "deterministic B4ADDR: public address and ports" \
	grep -Eq '^public: +198.51.100.64 ports 1024-3071$' <<<"$out"
out=$(aftrctl_run deterministic 198.51.100.64 3072)
check "deterministic ADDRESS PORT: the next subscriber's prefix" \
	grep -Eq '^subscriber: +2001:db8:a:100::/56$' <<<"$out"
out=$(aftrctl_run --json deterministic 198.51.100.65 1024)
check "deterministic --json ADDRESS PORT: subscriber 31 on the second address" jcheck \
	'd["subscriber_prefix"] == "2001:db8:a:1f00::/56" and d["subscriber_index"] == "31"' <<<"$out"
rc=0
err=$(aftrctl_run deterministic 2001:db8:b::2 2>&1 >/dev/null) || rc=$?
check "deterministic: a dynamic B4 is NOT_FOUND, exit 1 ($err)" \
	bash -c "[[ $rc == 1 ]] && grep -q 'NOT_FOUND' <<<'$err'"

# ---- who, answered from the configuration
out=$(aftrctl_run who 198.51.100.64 "$b4a_port")
echo "$out"
check "who: b4a's port is held by deterministic NAT" \
	grep -Eq '^held by: +deterministic NAT' <<<"$out"
check "who: the subscriber prefix of b4a" grep -Eq '^b4: +2001:db8:a::/56$' <<<"$out"
check "who: the whole range" grep -Eq '^range: +198.51.100.64 ports 1024-3071$' <<<"$out"
out=$(aftrctl_run --json who 198.51.100.64 3071)
check "who --json: DETERMINISTIC kind" jcheck \
	'd["attributions"][0]["kind"] == "DETERMINISTIC" and d["attributions"][0]["port_range_end"] == 3071' \
	<<<"$out"

# ---- the log: the range at start, no block line for b4a, one for b4b
log=$(cat "$AFTR_EVENTS_LOG")
check "log: the deterministic range as a start comment" \
	grep -Eq '^# [0-9:]{8} deterministic 2001:db8:a::/48 /56 198.51.100.64/28 2048 1024-65535$' <<<"$log"
check "log: no port-block line for b4a" bash -c "! grep -E ' B[AR] 2001:db8:a:' <<<'$log'"
check "log: a port-block line for b4b" grep -Eq ' BA 2001:db8:b:' <<<"$log"

check "aftrd still running" kill -0 "$AFTRD_PID"
if ((failures)); then
	echo "deterministic_test: $failures check(s) failed"
	echo "--- log"
	cat "$AFTR_EVENTS_LOG"
	echo "--- aftrd stderr"
	cat "$AFTRD_STDERR"
	exit 1
fi
echo "deterministic_test: all checks passed"
