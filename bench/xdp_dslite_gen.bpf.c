// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark generator: run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the B4's
 * WAN interface, it returns XDP_TX for every frame, so the kernel transmits it (into the
 * veth toward the AFTR) without any socket or skb. Each run rewrites the whole frame from
 * the template (live frames are recycled without being reset, and the AFTR under test
 * rewrites them in place) and rotates the inner UDP source port over `flows` values so the
 * AFTR sees that many sessions.
 *
 * With frag_every = N > 1, the runs go in cycles of N + 1 frames: N - 1 unfragmented
 * datagrams, then one datagram as two IPv4 fragments (frag1, frag2; e2e_gen.h) with an IP
 * identification of its own: 1 datagram in N is fragmented. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "e2e_gen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Filled by the loader before load (the templates carry sport_base and their checksums). */
__u8 frame[GEN_FRAME_LEN] = {};
__u8 frag1[GEN_FRAME_LEN] = {}; /* GEN_FRAG1_LEN bytes used */
__u8 frag2[GEN_FRAME_LEN] = {};
const volatile __u16 sport_base = 0; /* host order */
const volatile __u32 flows = 1;
const volatile __u32 frag_every = 0; /* 0: no fragments */

__u64 generated = 0;      /* frames produced; read by the loader afterwards */
__u64 frag_datagrams = 0; /* of which fragmented datagrams (counted at their first fragment) */

static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check;
	s += (__u16)~from;
	s += to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~(__u16)s;
}

/* Sets the IPv4 identification (network order) of the frame at data, fixing its checksum. */
static __always_inline void set_ip_id(void *data, __u16 id)
{
	__u16 *ip_id = data + 14 + 40 + 4;
	__u16 *check = data + 14 + 40 + 10;

	*check = csum_replace16(*check, *ip_id, id);
	*ip_id = id;
}

SEC("xdp")
int xdp_dslite_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 n = generated++; /* one CPU runs the generator: no atomics needed */
	__u32 pos = frag_every > 1 ? (__u32)(n % (frag_every + 1)) : 0;

	if (frag_every > 1 && pos == frag_every - 1) { /* first fragment: a shorter frame */
		if (bpf_xdp_adjust_tail(ctx, GEN_FRAG1_LEN - GEN_FRAME_LEN))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		if (data + GEN_FRAG1_LEN > end)
			return XDP_ABORTED;
		__builtin_memcpy(data, frag1, GEN_FRAG1_LEN);
		set_ip_id(data, bpf_htons((__u16)frag_datagrams));
		frag_datagrams++;
	} else if (frag_every > 1 && pos == frag_every) { /* second fragment: no UDP header */
		if (data + GEN_FRAME_LEN > end)
			return XDP_ABORTED;
		__builtin_memcpy(data, frag2, GEN_FRAME_LEN);
		set_ip_id(data, bpf_htons((__u16)(frag_datagrams - 1)));
		return XDP_TX;
	} else {
		if (data + GEN_FRAME_LEN > end)
			return XDP_ABORTED;
		__builtin_memcpy(data, frame, GEN_FRAME_LEN);
	}

	__u16 *sport = data + GEN_UDP_OFF;
	__u16 *check = data + GEN_UDP_OFF + 6;
	__u16 old = *sport;
	__u16 new = bpf_htons((__u16)(sport_base + (__u32)n % flows));
	*sport = new;
	__u16 c = csum_replace16(*check, old, new);
	*check = c ? c : 0xffff;
	return XDP_TX;
}
