// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark generator: run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on the B4's
 * WAN interface, it returns XDP_TX for every frame, so the kernel transmits it (into the
 * veth toward the AFTR) without any socket or skb. Each run rewrites the whole frame from
 * the template (live frames are recycled without being reset, and the AFTR under test
 * rewrites them in place) and rotates the inner UDP source port over `flows` values so the
 * AFTR sees that many sessions. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define GEN_FRAME_LEN 100 /* Ethernet 14 + IPv6 40 + IPv4 20 + UDP 8 + payload 18 */
#define GEN_UDP_OFF (14 + 40 + 20)

/* Filled by the loader before load (the template carries sport_base and its checksum). */
__u8 frame[GEN_FRAME_LEN] = {};
const volatile __u16 sport_base = 0; /* host order */
const volatile __u32 flows = 1;

__u64 generated = 0; /* frames produced; read by the loader afterwards */

static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check;
	s += (__u16)~from;
	s += to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~(__u16)s;
}

SEC("xdp")
int xdp_dslite_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + GEN_FRAME_LEN > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, frame, GEN_FRAME_LEN);

	__u64 n = generated++; /* one CPU runs the generator: no atomics needed */
	__u16 *sport = data + GEN_UDP_OFF;
	__u16 *check = data + GEN_UDP_OFF + 6;
	__u16 old = *sport;
	__u16 new = bpf_htons((__u16)(sport_base + (__u32)n % flows));
	*sport = new;
	__u16 c = csum_replace16(*check, old, new);
	*check = c ? c : 0xffff;
	return XDP_TX;
}
