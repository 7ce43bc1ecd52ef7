// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The microbenchmark's reference programs, timed under BPF_PROG_TEST_RUN beside aftr_xdp:
 *  - mb_empty: does nothing. Its time is the fixed cost every figure carries (frame setup,
 *    the clock reads around the run), so the data plane's paths are quoted as a ratio to it.
 *  - mb_fib4 / mb_fib6: one bpf_fib_lookup each, with the parameters aftr_xdp uses on its
 *    outbound (IPv4) and inbound (IPv6) paths; XDP_PASS when it succeeds, XDP_DROP if not.
 *    The _direct variants pass BPF_FIB_LOOKUP_DIRECT (what skipping policy rules would save).
 *  - mb_lookup_out: one aftr_sessions_out lookup keyed from an outbound DS-Lite frame (the
 *    loader points mb_sessions_out at aftr_xdp's map); XDP_PASS on a hit, XDP_DROP on a miss.
 * Together they show where the time of a path goes. Addresses: documentation ranges, the same
 * as the benchmark's table (bench/microbench/microbench.cc). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "../../bpf/include/aftr/abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

/* Same type, key and value as aftr_sessions_out; replaced by that map's fd before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct aftr_session_out_key);
	__type(value, struct aftr_session_out);
} mb_sessions_out SEC(".maps");

SEC("xdp")
int mb_empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}

static __always_inline int fib4(struct xdp_md *ctx, __u32 flags)
{
	struct bpf_fib_lookup p = {
		.family = AF_INET,
		.l4_protocol = IPPROTO_UDP,
		.tot_len = 46,
		.ipv4_src = bpf_htonl(0xc6336401), /* 198.51.100.1, a pool address */
		.ipv4_dst = bpf_htonl(0xcb00710a), /* 203.0.113.10 */
		.ifindex = ctx->ingress_ifindex,
	};

	return bpf_fib_lookup(ctx, &p, sizeof(p), flags) == BPF_FIB_LKUP_RET_SUCCESS ? XDP_PASS : XDP_DROP;
}

static __always_inline int fib6(struct xdp_md *ctx, __u32 flags)
{
	struct bpf_fib_lookup p = {
		.family = AF_INET6,
		.l4_protocol = IPPROTO_IPIP,
		.tot_len = sizeof(struct ipv6hdr) + 46,
		.ifindex = ctx->ingress_ifindex,
		/* 2001:db8:ffff::1 (the softwire address) → 2001:db8:100:1::1 (a B4) */
		.ipv6_src = { bpf_htonl(0x20010db8), bpf_htonl(0xffff0000), 0, bpf_htonl(1) },
		.ipv6_dst = { bpf_htonl(0x20010db8), bpf_htonl(0x01000001), 0, bpf_htonl(1) },
	};

	return bpf_fib_lookup(ctx, &p, sizeof(p), flags) == BPF_FIB_LKUP_RET_SUCCESS ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int mb_fib4(struct xdp_md *ctx)
{
	return fib4(ctx, 0); /* as lib/fib.h calls it */
}

SEC("xdp")
int mb_fib6(struct xdp_md *ctx)
{
	return fib6(ctx, 0);
}

/* BPF_FIB_LOOKUP_DIRECT: the main table only, no policy routing rules. */
SEC("xdp")
int mb_fib4_direct(struct xdp_md *ctx)
{
	return fib4(ctx, BPF_FIB_LOOKUP_DIRECT);
}

SEC("xdp")
int mb_fib6_direct(struct xdp_md *ctx)
{
	return fib6(ctx, BPF_FIB_LOOKUP_DIRECT);
}

/* Ethernet, IPv6 without extension headers, IPv4 without options, UDP: the benchmark's frame. */
SEC("xdp")
int mb_lookup_out(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct iphdr *iph = (void *)(ip6 + 1);
	struct udphdr *uh = (void *)(iph + 1);
	struct aftr_session_out_key k = {};

	if ((void *)(uh + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(k.b4, &ip6->saddr, 16);
	k.inner_addr = iph->saddr;
	k.inner_port = uh->source;
	k.proto = iph->protocol;
	return bpf_map_lookup_elem(&mb_sessions_out, &k) ? XDP_PASS : XDP_DROP;
}
