#!/usr/bin/env bash
# The benchmark command (README "Benchmarks"): builds what it needs, then prints in one run
#  1. ns/packet of each data-plane path under BPF_PROG_TEST_RUN with 1 M sessions installed
#     (fragments queued to the slow path included), each as a ratio to an empty XDP program,
#     and bytes per session (bench/microbench); then the fragment slow path's µs per
#     reassembled datagram in aftrd's code (reassembly, the program's run, the AF_PACKET
#     send) as a ratio to the fast path's ns per unfragmented packet (bench/slowpath);
#  2. end-to-end packets/s across the namespace lab for the do-it-yourself Linux AFTR, a
#     no-table XDP "ceiling" and aftrd, with aftrd's ratio to each, and aftrd again with 1
#     datagram in 100 sent as two IPv4 fragments: its ratio to the unfragmented run and how
#     many fragmented datagrams arrived (bench/e2e_pps.sh);
#  3. the API: walking 1 M sessions with ListSessions (time, memory, ratio to one raw map
#     read) and the events/s WatchEvents sustains to one client with zero loss (bench/api);
#  4. PCP: with 100 k MAP mappings live on the real data plane, the requests/s and p50/p99
#     latency of the server on one core through PcpServer::Handle (refresh / ANNOUNCE /
#     malformed mix) and over its UDP socket, each as a ratio to the 50 k/s target (bench/pcp);
#  5. IPFIX: octets per record of each template on the wire beside the operator deck's text
#     formats, and the records/s the encoder + UDP exporter sustains to a loopback collector
#     without loss (bench/ipfix);
#  6. attribution: a month of port-block logs for 32 k subscribers written by the real log:
#     bytes per line beside the deck's 62/124 (and a session line beside 56/114), the rate the
#     index reads them, and `who` latency as a ratio to the 1 s target (bench/attribution).
# Not a test: it prints figures. Takes about 5 minutes. Root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "bench/run.sh: run as root" >&2; exit 1; }
bash "$repo/scripts/install-deps.sh"
bash "$repo/scripts/build.sh" aftrd aftr_microbench aftr_slowpath_bench aftr_e2e_bench aftr_api_bench aftr_pcp_bench \
	aftr_ipfix_bench aftr_attribution_bench
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "== 1. BPF_PROG_TEST_RUN ns/packet"
"$repo/build/bench/microbench/aftr_microbench" "$@"
echo
echo "== 1b. fragment slow path per datagram"
"$repo/build/bench/slowpath/aftr_slowpath_bench"
echo
echo "== 2. end-to-end packets/s"
AFTRD="$repo/build/control/aftrd" bash "$repo/bench/e2e_pps.sh"
echo
echo "== 3. API"
"$repo/build/bench/api/aftr_api_bench"
echo
echo "== 4. PCP"
"$repo/build/bench/pcp/aftr_pcp_bench"
echo
echo "== 5. IPFIX"
"$repo/build/bench/ipfix/aftr_ipfix_bench"
echo
echo "== 6. attribution"
"$repo/build/bench/attribution/aftr_attribution_bench"
