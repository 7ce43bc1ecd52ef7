/* The softwire: IPv4-in-IPv6 (RFC 6333, RFC 2473). Recognises packets for the AFTR's tunnel
 * addresses, skips a Destination Options header (Linux ip6tnl B4s add one carrying the
 * Tunnel Encapsulation Limit option), and removes or pushes the outer IPv6 header. */
#ifndef AFTR_SOFTWIRE_H
#define AFTR_SOFTWIRE_H

#include "lib/parse.h"
#include "lib/stats.h"

extern const volatile struct aftr_dp_config aftr_cfg;

#define SW_MAX_DSTOPT_LEN 64 /* longer Destination Options headers are not softwire traffic */
#define SW_OPT_PAD1 0
#define SW_OPT_PADN 1
#define SW_OPT_TUNNEL_ENCAP_LIMIT 4

/* Index of the AFTR tunnel address `addr`, or -1. */
static __always_inline int sw_address_index(const struct in6_addr *addr)
{
	for (__u32 i = 0; i < AFTR_MAX_SOFTWIRE_ADDRS; i++) {
		if (i >= aftr_cfg.softwire_addr_count)
			break;
		const __u32 *a = (const __u32 *)addr;
		const volatile __u32 *b = (const volatile __u32 *)aftr_cfg.softwire_addrs[i];
		if (a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3])
			return i;
	}
	return -1;
}

/* Walks a Destination Options header at `opts` and returns its length in bytes if it may
 * be skipped, 0 if the header is not ours to handle (the kernel gets the packet), or a
 * drop reason. RFC 8200 section 4.2: an unknown option whose type has the top two bits 00
 * is skipped; any other unknown option means the packet must be discarded. */
static __always_inline int sw_skip_dstopts(struct ipv6_opt_hdr *opts, void *end, __u8 *next)
{
	if ((void *)(opts + 1) > end)
		return DROP(DROP_MALFORMED_EXT_HDR);
	__u32 len = (opts->hdrlen + 1) * 8;
	if (len > SW_MAX_DSTOPT_LEN)
		return 0;
	if ((void *)opts + len > end)
		return DROP(DROP_MALFORMED_EXT_HDR);

	__u32 off = 2;
	for (int i = 0; i < SW_MAX_DSTOPT_LEN - 2; i++) {
		if (off >= len)
			break;
		__u8 *p = (__u8 *)opts + (off & (SW_MAX_DSTOPT_LEN - 1));
		if ((void *)(p + 1) > end)
			return DROP(DROP_MALFORMED_EXT_HDR);
		if (*p == SW_OPT_PAD1) {
			off++;
			continue;
		}
		if ((void *)(p + 2) > end)
			return DROP(DROP_MALFORMED_EXT_HDR);
		__u8 type = p[0], olen = p[1];
		if (off + 2 + olen > len)
			return DROP(DROP_MALFORMED_EXT_HDR);
		if (type == SW_OPT_TUNNEL_ENCAP_LIMIT && olen != 1)
			return DROP(DROP_MALFORMED_EXT_HDR);
		if (type != SW_OPT_PADN && type != SW_OPT_TUNNEL_ENCAP_LIMIT && (type & 0xc0))
			return DROP(DROP_MALFORMED_EXT_HDR);
		off += 2 + olen;
	}
	if (off != len)
		return DROP(DROP_MALFORMED_EXT_HDR);
	*next = opts->nexthdr;
	return len;
}

/* What sw_decap and sw_encap do with the Ethernet header's MAC addresses: keep them (the
 * frame may go to the kernel, which wants its own MAC as the destination), or leave them to
 * the caller, which writes both (a session's cached next hop) and saves the copy. */
#define SW_MACS_KEEP 1
#define SW_MACS_REWRITTEN 0

/* Removes `outer_len` bytes (IPv6 header and its extension headers) after the Ethernet
 * header, which becomes EtherType IPv4 (MACs as `keep_macs` says). */
static __always_inline int sw_decap(struct xdp_md *ctx, __u32 outer_len, int keep_macs)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr eth;

	if (keep_macs) {
		if (data + sizeof(eth) > end)
			return DROP(DROP_INTERNAL);
		__builtin_memcpy(&eth, data, sizeof(eth));
	}
	if (bpf_xdp_adjust_head(ctx, (int)outer_len))
		return DROP(DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(eth) > end)
		return DROP(DROP_INTERNAL);
	if (keep_macs)
		__builtin_memcpy(data, &eth, ETH_ALEN * 2);
	((struct ethhdr *)data)->h_proto = bpf_htons(ETH_P_IP);
	return 0;
}

/* Pushes an IPv6 header from AFTR address `sw_index` to `b4` (a map value's, which stays
 * valid across the head adjustment) in front of the IPv4 packet; the Ethernet header becomes
 * EtherType IPv6 (MACs as `keep_macs` says). */
static __always_inline int sw_encap(struct xdp_md *ctx, const __u8 *b4, __u32 sw_index,
				    __u16 inner_len, int keep_macs)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr eth;

	if (keep_macs) {
		if (data + sizeof(eth) > end)
			return DROP(DROP_INTERNAL);
		__builtin_memcpy(&eth, data, sizeof(eth));
	}
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct ipv6hdr)))
		return DROP(DROP_ENCAP_FAILED);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(eth);
	if ((void *)(ip6 + 1) > end)
		return DROP(DROP_ENCAP_FAILED);
	if (keep_macs)
		__builtin_memcpy(data, &eth, ETH_ALEN * 2);
	((struct ethhdr *)data)->h_proto = bpf_htons(ETH_P_IPV6);
	*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, traffic class 0, flow label 0 */
	ip6->payload_len = bpf_htons(inner_len);
	ip6->nexthdr = IPPROTO_IPIP;
	ip6->hop_limit = aftr_cfg.hop_limit;
	__builtin_memcpy(&ip6->saddr, (const void *)aftr_cfg.softwire_addrs[sw_index & 3], 16);
	__builtin_memcpy(&ip6->daddr, b4, 16);
	return 0;
}

#endif
