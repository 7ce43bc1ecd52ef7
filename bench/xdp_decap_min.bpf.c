// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The benchmark's "ceiling": the least an AFTR can do per packet. Strips the 40-byte IPv6
 * header of a DS-Lite frame (keeping an Ethernet header, now EtherType IPv4), rewrites the
 * IPv4 source to one fixed public address with incremental checksums (IPv4 header and the
 * UDP/TCP pseudo header), and redirects out of one fixed interface with fixed MACs: no
 * session table, no FIB lookup. Anything that is not IPv4-in-IPv6 goes to the kernel. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/csum.h" /* the data plane's own checksum helpers: same cost as aftrd */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile __u32 out_ifindex = 0;
const volatile __u8 out_src_mac[ETH_ALEN] = {};
const volatile __u8 out_dst_mac[ETH_ALEN] = {};
const volatile __be32 public_addr = 0;

SEC("xdp")
int xdp_decap_min(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);

	if ((void *)(ip6 + 1) > end || eth->h_proto != bpf_htons(ETH_P_IPV6) ||
	    ip6->nexthdr != IPPROTO_IPIP)
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, (int)sizeof(*ip6)))
		return XDP_DROP;

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > end)
		return XDP_DROP;
	for (int i = 0; i < ETH_ALEN; i++) {
		eth->h_dest[i] = out_dst_mac[i];
		eth->h_source[i] = out_src_mac[i];
	}
	eth->h_proto = bpf_htons(ETH_P_IP);

	__be32 old = iph->saddr;
	__be32 new = public_addr;
	iph->saddr = new;
	iph->check = csum_replace32(iph->check, old, new);
	if (iph->ihl == 5) {
		if (iph->protocol == IPPROTO_UDP) {
			struct udphdr *uh = (void *)(iph + 1);
			if ((void *)(uh + 1) <= end && uh->check) {
				__u16 c = csum_replace32(uh->check, old, new);
				uh->check = c ? c : 0xffff;
			}
		} else if (iph->protocol == IPPROTO_TCP) {
			struct tcphdr *th = (void *)(iph + 1);
			if ((void *)(th + 1) <= end)
				th->check = csum_replace32(th->check, old, new);
		}
	}
	return bpf_redirect(out_ifindex, 0);
}
