// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Benchmark sink: counts the benchmark's IPv4 UDP datagrams to the discard port (9) in a
 * per-CPU array and drops them, so counting is cheap, exact, and tells on which CPU the
 * receive processing ran. Datagrams the generator sent as two fragments (reassembled by the
 * AFTR, recognised by their UDP length) are also counted apart, and so are IPv4 UDP fragments
 * (should the AFTR send a datagram on in pieces); see e2e_gen.h. Everything else (ARP,
 * ICMPv6, test traffic) goes to the kernel. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "e2e_gen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} sink_count SEC(".maps");

static __always_inline void count(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&sink_count, &key);
	if (n)
		*n += 1;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *uh = (void *)(iph + 1); /* the generator sends no IPv4 options */

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
	    iph->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (iph->frag_off & bpf_htons(0x3fff)) { /* MF or an offset */
		count(SINK_FRAGMENTS);
		return XDP_DROP;
	}
	if ((void *)(uh + 1) > end || uh->dest != bpf_htons(GEN_DISCARD_PORT))
		return XDP_PASS;
	count(SINK_DATAGRAMS);
	if (uh->len == bpf_htons(GEN_FRAG_UDP_LEN))
		count(SINK_FRAG_DATAGRAMS);
	return XDP_DROP;
}
