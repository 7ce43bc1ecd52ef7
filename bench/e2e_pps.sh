#!/usr/bin/env bash
# bench/e2e_pps.sh — end-to-end packets/s of three AFTRs, side by side on one lab topology
# (tests/e2e/lib.sh), in one run:
#   (a) the do-it-yourself Linux AFTR: seg6local End.DX4 decapsulation + nftables SNAT;
#   (b) the "ceiling": bench/xdp_decap_min.bpf.c (decapsulate, rewrite the source, redirect;
#       no tables, no FIB) attached native on the aftr's B4-side interface;
#   (c) our AFTR: `aftrd --config FILE` in the aftr namespace (skipped if not built);
#   (d) the same aftrd with 1 datagram in 100 sent as two IPv4 fragments inside the softwire
#       (bench/e2e_gen.h): XDP queues each fragment to aftrd's slow path, which reassembles
#       the datagram, runs the data plane's program on it and sends it on (70 bytes: whole).
#       Printed beside (c) as a ratio, with how many fragmented datagrams reached the sink.
# A generator in b4a (BPF_PROG_TEST_RUN with live frames, XDP_TX out of b4a's WAN veth)
# sends 100-byte DS-Lite frames (IPv6 next-header 4 to 2001:db8:ffff::1 carrying IPv4 UDP
# 192.0.2.10:20000..20063 -> 203.0.113.10:9) as fast as it can; an XDP sink on inet's
# interface counts what arrives (per CPU; reassembled datagrams and fragments apart too) and
# drops it. Each measurement: a warm-up (the
# first packets create the AFTR's sessions), then delivered packets/s over a fixed window.
# The AFTRs take turns, round after round (7 rounds of 3 s); each figure is the median of the
# rounds, printed beside the best round (and the best over the ceiling's best: some windows on
# this VM run at half speed on both CPUs at once, whatever runs in them). Rates
# count datagrams delivered (in (d) a fragmented datagram is two frames offered, one delivered).
# The generator is pinned to one CPU and the receive processing of the aftr's B4-side veth
# (a threaded NAPI instance, GRO on) to the other; the share of each window that the
# receive threads actually got on their CPU is reported ("rx busy"), because other work on
# this shared 2-core machine halves the figures when it runs (a quiet machine gave
# DIY ~0.45, ceiling ~4.5 Mpps; a busy one ~0.2 and ~1.4-2.4).
#
# Usage: bench/e2e_pps.sh [--smoke]   (root; --smoke: 1 s per measurement, 1 round)
# Environment: AFTRD (default <repo>/build/control/aftrd), AFTR_E2E_BENCH (the loader,
#   default <repo>/build/bench/aftr_e2e_bench), BENCH_SECONDS, BENCH_RUNS, GEN_CPU, AFTR_CPU.
# Not a test: it prints figures, and ctest does not run it. A full run takes about 2 minutes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/../tests/e2e/lib.sh
source "$REPO/tests/e2e/lib.sh"

SMOKE=0
case "${1:-}" in
--smoke) SMOKE=1 ;;
"") ;;
*) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
if ((SMOKE)); then
	MEASURE_SECONDS=${BENCH_SECONDS:-1} RUNS=${BENCH_RUNS:-1} WARMUP=0.5
else
	MEASURE_SECONDS=${BENCH_SECONDS:-3} RUNS=${BENCH_RUNS:-7} WARMUP=1
fi
AFTRD=${AFTRD:-$REPO/build/control/aftrd}
BENCH_TOOL=${AFTR_E2E_BENCH:-$REPO/build/bench/aftr_e2e_bench}
FLOWS=64
SPORT_BASE=20000
if (($(nproc) >= 2)); then
	GEN_CPU=${GEN_CPU:-0} AFTR_CPU=${AFTR_CPU:-1}
else
	GEN_CPU=0 AFTR_CPU=0
fi

log() { echo "[bench] $*" >&2; }

if [[ $(id -u) != 0 ]]; then
	echo "e2e_pps: needs root (namespaces, XDP, bpffs)" >&2
	exit 1
fi
if [[ ! -x $BENCH_TOOL ]]; then
	echo "e2e_pps: $BENCH_TOOL not found; build it: cmake --build build --target aftr_e2e_bench" >&2
	exit 1
fi

BENCH_TMP=$(mktemp -d /tmp/aftr-bench.XXXXXX)
BPFFS=$BENCH_TMP/bpffs
SINK_PIN=$BPFFS/sink_count
AFTRD_PID=""

aftrd_stop() {
	[[ -n $AFTRD_PID ]] || return 0
	kill -TERM "$AFTRD_PID" 2>/dev/null || true
	wait "$AFTRD_PID" 2>/dev/null || true
	AFTRD_PID=""
}

cleanup() {
	aftrd_stop
	topo_destroy
	if mountpoint -q "$BPFFS" 2>/dev/null; then
		umount "$BPFFS" || true
	fi
	rm -rf -- "$BENCH_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- topology and measurement plumbing ----

napi_threads() { # PIDs of the kernel threads running NAPI for interfaces named $AFTR_IF_A
	ps -eo pid=,comm= | awk -v p="napi/$AFTR_IF_A-" 'index($2, p) == 1 {print $1}'
}
napi_before=$(napi_threads) # other runs' threads, never touched

topo_create
mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS"

# The aftr's B4-side veth gets a NAPI instance (GRO on) run by its own kernel thread, which
# is pinned to AFTR_CPU: there the AFTR under test does its work (XDP or the kernel stack),
# including the redirect into inet and the sink, while the generator spins on GEN_CPU.
veth_napi_on aftr "$AFTR_IF_A"
in_ns aftr sh -c "echo 1 > /sys/class/net/$AFTR_IF_A/threaded"

# pin_napi: pins this run's NAPI thread of the aftr's B4-side veth to AFTR_CPU (the kernel
# may recreate the thread when an XDP program comes or goes, so this runs before each run),
# and sets RX_THREADS to it plus AFTR_CPU's ksoftirqd (which takes over the softirq work of
# the redirect target when it piles up): the threads whose CPU time the generator reports.
RX_THREADS=""
pin_napi() {
	local pid
	RX_THREADS=$(ps -eo pid=,comm= | awk -v k="ksoftirqd/$AFTR_CPU" '$2 == k {print $1}')
	for pid in $(napi_threads); do
		grep -qx "$pid" <<<"$napi_before" && continue
		taskset -pc "$AFTR_CPU" "$pid" >/dev/null
		RX_THREADS+=",$pid"
	done
	[[ $RX_THREADS == *,* ]] ||
		log "warning: no NAPI thread found for $AFTR_IF_A; receive CPU not pinned"
	RX_THREADS=${RX_THREADS#,}
}

in_ns inet "$BENCH_TOOL" sink-attach --dev "$INET_IF" --pin "$SINK_PIN"

gen() { # gen [more generator options]
	in_ns b4a "$BENCH_TOOL" gen --dev "$B4_IF_WAN" \
		--src-mac "$MAC_B4A_WAN" --dst-mac "$MAC_AFTR_A" \
		--src6 "$B4A_ADDR6" --dst6 "$SOFTWIRE_ADDR6" --src4 "$HOST_ADDR4" --dst4 "$INET_ADDR4" \
		--dport 9 --sport-base "$SPORT_BASE" --flows "$FLOWS" \
		--warmup "$WARMUP" --seconds "$MEASURE_SECONDS" --cpu "$GEN_CPU" --sink "$SINK_PIN" \
		--rx-threads "$RX_THREADS" "$@"
}

field() { # field KEY LINE: the value of KEY=VALUE in LINE
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

median() { # median VALUES...
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mpps() { awk -v p="$1" 'BEGIN {printf "%.3f", p / 1e6}'; }

ORDER=(diy ceiling aftrd aftrd_frag)
FRAG_EVERY=100 # (d): 1 datagram in FRAG_EVERY is sent as two fragments
declare -A LABEL=([diy]="DIY Linux AFTR (End.DX4 + nft SNAT)"
	[ceiling]="ceiling XDP (decap + SNAT + redirect)"
	[aftrd]="aftrd (XDP AFTR)"
	[aftrd_frag]="aftrd, 1 % of datagrams fragmented")
# Per AFTR: PPS[key] all runs' delivered pps (space-separated), PPS[key,round] one run's,
# OFFERED[key] the generator's rates, BUSY[key] the receive threads' on-CPU shares,
# PER_CORE[key] delivered pps per on-CPU second, CPUS[key] where the last run ran,
# NOTE[key] why there is no figure. (d) only: FRAG_SENT, FRAG_ARRIVED, FRAG_PIECES summed over
# its runs (fragmented datagrams generated, reaching the sink whole, fragments reaching it);
# ALL_SENT, ALL_ARRIVED the same for all its datagrams (fragmented or not); FRAG_QUEUED the
# fragments aftrd's XDP program queued to its slow path (the rest were lost before it).
declare -A PPS OFFERED BUSY PER_CORE CPUS NOTE
FRAG_SENT=0 FRAG_ARRIVED=0 FRAG_PIECES=0 ALL_SENT=0 ALL_ARRIVED=0 FRAG_QUEUED=0

# run_once KEY ROUND [generator options]: one generator run against whatever AFTR is in place.
run_once() {
	local key=$1 round=$2 line pps offered busy wait
	shift 2
	pin_napi
	line=$(gen "$@")
	pps=$(field delivered_pps "$line")
	offered=$(field offered_pps "$line")
	busy=$(field rx_busy "$line")
	wait=$(field rx_wait "$line")
	BUSY[$key]+="$busy "
	PER_CORE[$key]+="$(awk -v p="$pps" -v b="$busy" 'BEGIN {print (b > 0) ? p / b : 0}') "
	PPS[$key]+="$pps "
	PPS[$key,$round]=$pps
	OFFERED[$key]+="$offered "
	CPUS[$key]="generator on CPU $(field gen_cpu "$line"), sink packets per CPU:"
	CPUS[$key]+=$(tr ' ' '\n' <<<"$line" | sed -n 's/^sink_cpu\([0-9]*\)=\(.*\)/ cpu\1=\2/p' | tr -d '\n')
	log "round $round/$RUNS ${LABEL[$key]}: delivered $(mpps "$pps") Mpps (offered" \
		"$(mpps "$offered"); receive threads on CPU $busy, waiting $wait of the time)"
	if [[ $line == *frag_sent=* ]]; then
		FRAG_SENT=$((FRAG_SENT + $(field frag_sent "$line")))
		FRAG_ARRIVED=$((FRAG_ARRIVED + $(field frag_arrived "$line")))
		FRAG_PIECES=$((FRAG_PIECES + $(field sink_fragments "$line")))
		ALL_SENT=$((ALL_SENT + $(field datagrams_sent "$line")))
		ALL_ARRIVED=$((ALL_ARRIVED + $(field datagrams_arrived "$line")))
		log "round $round/$RUNS ${LABEL[$key]}: fragmented datagrams sent" \
			"$(field frag_sent "$line"), arrived whole $(field frag_arrived "$line")," \
			"fragments at the sink $(field sink_fragments "$line")"
	fi
}

# (c)'s configuration: the lab's interfaces and pool, maps pinned in this run's bpffs.
AFTRD_CONFIG=$BENCH_TMP/aftrd.textproto
cat >"$AFTRD_CONFIG" <<EOF
# proto-message: aftr.config.v1.Config (generated by bench/e2e_pps.sh)
interfaces: "$AFTR_IF_A"
interfaces: "$AFTR_IF_B"
interfaces: "$AFTR_IF_INET"
softwire_addresses: "$SOFTWIRE_ADDR6"
b4_prefixes: "2001:db8::/32"
pool_prefixes: "198.51.100.0/28"
port_blocks { block_size: 512 }
log_file: "$BENCH_TMP/aftr-events.log"
logging { attribution_db: "$BENCH_TMP/attribution.sqlite3" }
pin_path: "$BPFFS/aftr"
EOF
if [[ ! -x $AFTRD ]]; then
	NOTE[aftrd]="skipped: $AFTRD not built (set AFTRD=/path/to/aftrd)"
	NOTE[aftrd_frag]=${NOTE[aftrd]}
	log "(c) ${NOTE[aftrd]}"
fi

# (c) and (d) one round: aftrd started afresh (empty pin directory), measured without and with
# fragments (which goes first alternates from round to round), stopped.
aftrd_round() {
	local round=$1 dev counters queued
	rm -rf -- "${BPFFS:?}/aftr"
	ip netns exec "$NS_AFTR" "$AFTRD" --config "$AFTRD_CONFIG" >>"$BENCH_TMP/aftrd.log" 2>&1 &
	AFTRD_PID=$!
	if wait_until 15 bash -c "kill -0 $AFTRD_PID && ip -n $NS_AFTR link show dev $AFTR_IF_A | grep -q xdp"; then
		if ((round % 2)); then
			run_once aftrd "$round"
			run_once aftrd_frag "$round" --frag-every "$FRAG_EVERY"
		else
			run_once aftrd_frag "$round" --frag-every "$FRAG_EVERY"
			run_once aftrd "$round"
		fi
		# Where fragments went: this aftrd's data-plane counters (name, total, per direction).
		counters=$(ip netns exec "$NS_AFTR" "$AFTRD" --config "$AFTRD_CONFIG" --show counters \
			2>/dev/null | grep -E 'slow_path|fragment' | tr -s ' ' || true)
		log "round $round/$RUNS aftrd data plane: $(paste -sd ';' <<<"$counters")"
		queued=$(awk '$1 == "slow_path_queued" {print $2}' <<<"$counters")
		FRAG_QUEUED=$((FRAG_QUEUED + ${queued:-0}))
	else
		NOTE[aftrd]="failed: aftrd did not attach XDP to $AFTR_IF_A within 15 s"
		NOTE[aftrd_frag]=${NOTE[aftrd]}
		log "(c) ${NOTE[aftrd]}; its output:"
		tail -n 20 "$BENCH_TMP/aftrd.log" >&2 || true
	fi
	aftrd_stop
	for dev in "$AFTR_IF_A" "$AFTR_IF_B" "$AFTR_IF_INET"; do # in case it left one behind
		in_ns aftr ip link set dev "$dev" xdp off 2>/dev/null || true
	done
}

# The AFTRs take turns within each round, so that load from elsewhere on this shared
# machine, which drifts over a minute, weighs on all three alike.
for ((round = 1; round <= RUNS; round++)); do
	diy_aftr_enable a # (a)
	run_once diy "$round"
	diy_aftr_disable

	in_ns aftr "$BENCH_TOOL" ceiling-attach --dev "$AFTR_IF_A" --out "$AFTR_IF_INET" \
		--src-mac "$MAC_AFTR_INET" --dst-mac "$MAC_INET" --saddr "$DIY_POOL_ADDR4" # (b)
	run_once ceiling "$round"
	in_ns aftr ip link set dev "$AFTR_IF_A" xdp off

	if [[ -z ${NOTE[aftrd]:-} ]]; then # (c)
		aftrd_round "$round"
	fi
done

# ---- report ----
declare -A MEDIAN BEST
for key in "${ORDER[@]}"; do
	if [[ -n ${PPS[$key]:-} && -z ${NOTE[$key]:-} ]]; then
		# shellcheck disable=SC2086 # the per-run list is split on purpose
		MEDIAN[$key]=$(median ${PPS[$key]})
		# shellcheck disable=SC2086
		BEST[$key]=$(printf '%s\n' ${PPS[$key]} | sort -g | tail -n 1)
	fi
done
# ratio KEY BASE: the median over rounds of KEY's rate / BASE's rate in the same round (two
# AFTRs measured seconds apart share the machine's momentary load better than two medians).
ratio() {
	local key=$1 base=$2 r ratios=()
	[[ -n ${MEDIAN[$key]:-} && -n ${MEDIAN[$base]:-} ]] || { echo "-"; return; }
	for ((r = 1; r <= RUNS; r++)); do
		[[ -n ${PPS[$key,$r]:-} && -n ${PPS[$base,$r]:-} ]] || continue
		ratios+=("$(awk -v a="${PPS[$key,$r]}" -v b="${PPS[$base,$r]}" 'BEGIN {print (b > 0) ? a / b : 0}')")
	done
	((${#ratios[@]})) || { echo "-"; return; }
	awk -v x="$(median "${ratios[@]}")" 'BEGIN {printf "%.2f", x}'
}
# best_ratio KEY BASE: KEY's best round over BASE's best round. Disturbance on this shared VM
# only ever takes packets away (some windows run at half speed on both CPUs, generator and
# receiver alike: see the offered rates in the log), so each one's best window is the least
# disturbed measure of what it can do.
best_ratio() {
	[[ -n ${BEST[$1]:-} && -n ${BEST[$2]:-} ]] || { echo "-"; return; }
	awk -v a="${BEST[$1]}" -v b="${BEST[$2]}" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'
}
spread() { # spread VALUES...: "min-max" in Mpps
	printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1}
		END {printf "%.2f-%.2f", lo / 1e6, hi / 1e6}'
}
echo
echo "End-to-end DS-Lite packets/s delivered: 100-byte frames, $FLOWS flows, ${MEASURE_SECONDS} s" \
	"per run after ${WARMUP} s warm-up; Mpps: median of $RUNS round(s); ratios: median of the" \
	"rounds' ratios"
echo "kernel $(uname -r), $(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-40s %7s %11s %6s %9s %6s %6s %7s %9s\n' "AFTR" "Mpps" "runs" "x DIY" "x ceiling" \
	"best" "x best" "rx busy" "Mpps/core"
for key in "${ORDER[@]}"; do
	if [[ -n ${MEDIAN[$key]:-} ]]; then
		# shellcheck disable=SC2086
		printf '%-40s %7s %11s %6s %9s %6s %6s %7s %9s\n' "${LABEL[$key]}" "$(mpps "${MEDIAN[$key]}")" \
			"$(spread ${PPS[$key]})" "$(ratio "$key" diy)" "$(ratio "$key" ceiling)" \
			"$(awk -v p="${BEST[$key]}" 'BEGIN {printf "%.2f", p / 1e6}')" "$(best_ratio "$key" ceiling)" \
			"$(awk -v x="$(median ${BUSY[$key]})" 'BEGIN {printf "%.2f", x}')" \
			"$(mpps "$(median ${PER_CORE[$key]})")"
	else
		printf '%-40s %s\n' "${LABEL[$key]}" "${NOTE[$key]:-no result}"
	fi
done
if [[ -n ${MEDIAN[aftrd_frag]:-} ]]; then
	pct() { awk -v a="$1" -v s="$2" 'BEGIN {printf "%.1f", (s > 0) ? 100 * a / s : 0}'; }
	# shellcheck disable=SC2086
	echo "aftrd with 1 datagram in $FRAG_EVERY sent as two IPv4 fragments inside the softwire" \
		"(reassembled by aftrd's slow path, forwarded whole): $(ratio aftrd_frag aftrd) x aftrd all" \
		"unfragmented (Mpps/core: $(awk -v a="$(median ${PER_CORE[aftrd_frag]})" \
			-v b="$(median ${PER_CORE[aftrd]})" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}') x)."
	echo "  Delivered, all runs, counted until 0.5 s after each: fragmented datagrams $FRAG_ARRIVED" \
		"of $FRAG_SENT ($(pct "$FRAG_ARRIVED" "$FRAG_SENT") %); all datagrams of these runs" \
		"$ALL_ARRIVED of $ALL_SENT ($(pct "$ALL_ARRIVED" "$ALL_SENT") %: the generator offers more" \
		"than the AFTR takes, and a fragmented datagram is lost when either fragment is);" \
		"fragments reaching the sink: $FRAG_PIECES."
	echo "  Fragments that reached aftrd's XDP and were queued to its slow path: $FRAG_QUEUED;" \
		"datagrams delivered whole per pair queued ($FRAG_ARRIVED / ($FRAG_QUEUED / 2)):" \
		"$(pct "$((2 * FRAG_ARRIVED))" "$FRAG_QUEUED") % (below 100: a pair lost one fragment before XDP, or the slow path lost it)."
fi
echo
echo "x DIY, x ceiling: median of the rounds' ratios. best: the best round's Mpps; x best: that" \
	"over the ceiling's best round (disturbance only takes packets away: the least disturbed" \
	"window of each)."
echo "rx busy: share of each window the receive threads (napi/$AFTR_IF_A, ksoftirqd/$AFTR_CPU)" \
	"were on CPU $AFTR_CPU; below 1.00, that CPU was shared with other work or the receive side"
echo "idled. Mpps/core = delivered / rx busy: per-core throughput, less sensitive to other load" \
	"on this shared machine (medians)."
echo "Generator: in b4a, BPF_PROG_TEST_RUN with live frames (XDP_TX out of $B4_IF_WAN)," \
	"pinned to CPU $GEN_CPU."
echo "Receive processing: the NAPI thread of aftr/$AFTR_IF_A (the AFTR's work, the redirect" \
	"into inet and the sink), pinned to CPU $AFTR_CPU. Last run of each:"
for key in "${ORDER[@]}"; do
	[[ -n ${MEDIAN[$key]:-} ]] || continue
	# shellcheck disable=SC2086
	echo "  ${LABEL[$key]}: ${CPUS[$key]}; offered $(mpps "$(median ${OFFERED[$key]})") Mpps (median)"
done
