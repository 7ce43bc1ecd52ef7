/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The frames of bench/e2e_pps.sh's generator, shared by the generator (xdp_dslite_gen.bpf.c),
 * its loader (e2e_bench.c, which builds the templates) and the counting sink (xdp_count.bpf.c).
 *
 * Every frame: Ethernet 14 + IPv6 40 (next header 4) + IPv4. An unfragmented datagram is
 * IPv4 20 + UDP 8 + 18 bytes: GEN_FRAME_LEN in all. A fragmented one (--frag-every) is
 * IPv4 20 + UDP GEN_FRAG_UDP_LEN, sent as two IPv4 fragments of one datagram inside the
 * softwire: the first carries the UDP header and 16 bytes (GEN_FRAG1_LEN frame bytes), the
 * second the other 26 at offset 24 (GEN_FRAME_LEN). Reassembled it is 70 bytes of IPv4, under
 * every MTU, so the AFTR forwards it whole; the sink tells it apart by its UDP length. */
#ifndef AFTR_BENCH_E2E_GEN_H
#define AFTR_BENCH_E2E_GEN_H

#define GEN_FRAME_LEN 100
#define GEN_UDP_OFF (14 + 40 + 20)
#define GEN_FRAG1_PAYLOAD 24 /* IPv4 payload of the first fragment: a multiple of 8 */
#define GEN_FRAG1_LEN (14 + 40 + 20 + GEN_FRAG1_PAYLOAD)
#define GEN_FRAG_UDP_LEN (GEN_FRAG1_PAYLOAD + GEN_FRAME_LEN - 14 - 40 - 20)
#define GEN_DISCARD_PORT 9

/* Sink counters (index of its per-CPU array). */
enum {
	SINK_DATAGRAMS = 0,      /* whole UDP datagrams to the discard port (all of them) */
	SINK_FRAG_DATAGRAMS = 1, /* of which generated as two fragments (reassembled by the AFTR) */
	SINK_FRAGMENTS = 2,      /* IPv4 UDP fragments (the AFTR sent a datagram on in pieces) */
	SINK_COUNTERS
};

#endif
