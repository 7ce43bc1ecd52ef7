/* ICMP errors the AFTR makes itself (RFC 792, RFC 1191, RFC 1812 section 4.3, RFC 6333
 * sections 5.3 and 6.3, RFC 2473 section 7): "fragmentation needed" for an IPv4 packet with
 * DF that does not fit the egress (the softwire toward a B4, or the IPv4 route toward the
 * Internet), and "time exceeded" for one whose TTL runs out here. Included by aftr.bpf.c
 * after the helpers it reuses (pool_contains, fib.h, softwire.h).
 *
 * Every function here is out of line and given few arguments: the entry point's stack is at
 * the verifier's 512-byte limit, and these rare paths must not add to it. */
#ifndef AFTR_ICMP_GEN_H
#define AFTR_ICMP_GEN_H

/* 192.0.0.1: the AFTR's well-known IPv4 address (RFC 6333 section 5.7), the source of the
 * errors it sends to hosts behind a B4 (they have no route to our public addresses' router,
 * and the B4 side has no other IPv4 address of ours). */
#define AFTR_WELL_KNOWN_IPV4 0xc0000001u
#define ICMP_FRAG_NEEDED 4      /* code of ICMP_DEST_UNREACH */
#define ICMP_ERROR_TOS 0xc0     /* precedence 6, internetwork control (RFC 1812 4.3.2.5) */
#define ICMP_ERROR_TTL 64
#define ICMP_ERROR_HDRS 28      /* the error's IPv4 header and ICMP header */
#define ICMP_QUOTE_MAX (60 + 8) /* the quoted IPv4 header and the 8 bytes after it */

/* What icmp_error_gen is asked for: the ICMP code in bits 24-30, the type in bits 16-23, the
 * next-hop MTU of a "fragmentation needed" below; bit 31 (ICMP_GEN_TRANSLATED) marks an error
 * translated from ICMPv6 (lib/icmp6_error.h): counted icmp6_error_translated, and a refusal is
 * drop_icmp6_error_not_sent. */
#define ICMP_GEN_TRANSLATED (1u << 31)
#define ICMP_GEN(type, code, mtu) \
	((((__u32)(code) & 0x7f) << 24) | ((__u32)(type) << 16) | ((mtu) & 0xffff))
#define ICMP_GEN_FRAG_NEEDED(mtu) ICMP_GEN(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu)
#define ICMP_GEN_TIME_EXCEEDED ICMP_GEN(ICMP_TIME_EXCEEDED, 0, 0)

/* Whether an address may be the subject of an error (RFC 1122 3.2.2, RFC 1812 4.3.2.7):
 * not "this network" (0/8), loopback, multicast, reserved or broadcast. */
static __always_inline int icmp_addr_ok(__be32 addr)
{
	__u32 first = bpf_ntohl(addr) >> 24;

	return first != 0 && first != 127 && first < 224;
}

/* Takes one error from this CPU's token bucket (icmp_errors_per_second; a burst of at most
 * one second's worth). 0: none left, or none allowed at all. */
static __always_inline int icmp_rate_take(void)
{
	__u32 rate = aftr_cfg.icmp_errors_per_second;
	__u32 zero = 0;

	if (!rate)
		return 0;
	struct aftr_icmp_bucket *b = bpf_map_lookup_elem(&aftr_icmp_budget, &zero);
	if (!b)
		return 0;
	__u64 now = clock_now();
	__u64 cost = NS_PER_SEC / rate; /* rare path: the division is affordable */
	__u64 credit = b->credit_ns + (now - b->last_ns);
	if (credit > NS_PER_SEC)
		credit = NS_PER_SEC;
	b->last_ns = now;
	if (credit < cost) {
		b->credit_ns = credit;
		return 0;
	}
	b->credit_ns = credit - cost;
	return 1;
}

/* Replaces the IPv4 packet at `outer` bytes after the Ethernet header (0: a frame from the
 * Internet; otherwise a softwire frame from a B4, `outer` bytes of IPv6 headers) by an ICMP
 * error about it, and sends that:
 *
 *   from the Internet  ours (the packet's destination, a public address) -> its source,
 *                      out by a FIB lookup toward the source (the route back need not be
 *                      the interface it came in on: asymmetric routing is common on the
 *                      Internet side), XDP_PASS when the neighbour is not resolved yet (the
 *                      kernel forwards the error)
 *   from a B4          192.0.0.1 -> the inner source, in IPv6 from the softwire address the
 *                      B4 used to the B4, back out of the interface it came in on with the
 *                      MACs swapped (the B4 side is where it came from; no lookup)
 *
 * The error quotes the IPv4 header and the 8 bytes after it as the source sent them
 * (untranslated; RFC 792's minimum, all that the host needs to find its socket), has TTL 64,
 * both checksums computed. `what` is ICMP_GEN_FRAG_NEEDED(mtu) or ICMP_GEN_TIME_EXCEEDED,
 * or, from icmp6_error_from_b4, ICMP_GEN(type, code, mtu) | ICMP_GEN_TRANSLATED about the
 * quoted packet it made the frame (then counted icmp6_error_translated, refused as
 * drop_icmp6_error_not_sent).
 *
 * No error (the packet is dropped as too big or TTL expired) about an ICMP error (RFC 1122
 * 3.2.2: only echo and echo reply are answered), a fragment past the first, a packet shorter
 * than its header and 8 bytes, from or to an address of icmp_addr_ok's exceptions, or past
 * this CPU's rate (counted icmp_rate_limited).
 *
 * Returns only constants (XDP_REDIRECT, XDP_PASS or a drop reason), never 0: the
 * callers that go on with the packet when a check returns 0 have had its pointers
 * invalidated by the head adjustment, and the verifier must see that they cannot. */
static __noinline int icmp_error_gen(struct xdp_md *ctx, struct aftr_counter_row *ctr,
				     __u32 outer, __u32 what)
{
	__u8 type = what >> 16;
	int drop = what & ICMP_GEN_TRANSLATED	      ? DROP(DROP_ICMP6_ERROR_NOT_SENT)
		   : type == ICMP_TIME_EXCEEDED ? DROP(DROP_TTL_EXPIRED)
						: DROP(DROP_TOO_BIG);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth) + (outer & 0xff);

	if ((void *)(eth + 1) > end || (void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u32 ihl = iph->ihl * 4;
	__u8 *l4 = (__u8 *)iph + (ihl & 0x3c);
	__u32 quote = (ihl & 0x3c) + 8;
	if (ihl < sizeof(*iph) || bpf_ntohs(iph->tot_len) < quote || (void *)(l4 + 8) > end)
		return drop;
	if (iph->frag_off & bpf_htons(IPV4_FRAG_OFFSET))
		return drop;
	if (!icmp_addr_ok(iph->saddr) || !icmp_addr_ok(iph->daddr))
		return drop;
	if (iph->protocol == IPPROTO_ICMP && l4[0] != ICMP_ECHO && l4[0] != ICMP_ECHOREPLY)
		return drop;
	if (!icmp_rate_take()) {
		stat_inc(ctr, AFTR_C_ICMP_RATE_LIMITED);
		return drop;
	}

	/* What the new headers are made of, saved before they are written over it. */
	__u8 macs[2 * ETH_ALEN];
	struct in6_addr b4 = {}, sw = {};
	__be32 dst = iph->saddr;
	__be32 src = outer ? bpf_htonl(AFTR_WELL_KNOWN_IPV4) : iph->daddr;
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (outer) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return DROP(DROP_INTERNAL);
		__builtin_memcpy(&b4, &ip6->saddr, 16);
		__builtin_memcpy(&sw, &ip6->daddr, 16);
	}

	/* Room for the new headers in front of the quote, which stays where it is; then the
	 * frame ends with the quote. */
	int hdrs = sizeof(struct ethhdr) + (outer ? sizeof(struct ipv6hdr) : 0) + ICMP_ERROR_HDRS;
	if (bpf_xdp_adjust_head(ctx, (int)(sizeof(struct ethhdr) + (outer & 0xff)) - hdrs))
		return DROP(DROP_INTERNAL);
	if (bpf_xdp_adjust_tail(ctx, hdrs + (int)quote - (int)bpf_xdp_get_buff_len(ctx)))
		return DROP(DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;

	eth = data;
	struct iphdr *e4;
	if (outer) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		e4 = (void *)(ip6 + 1);
		if ((void *)e4 + ICMP_ERROR_HDRS > end)
			return DROP(DROP_INTERNAL);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(ICMP_ERROR_HDRS + quote);
		ip6->nexthdr = IPPROTO_IPIP;
		ip6->hop_limit = aftr_cfg.hop_limit;
		__builtin_memcpy(&ip6->saddr, &sw, 16);
		__builtin_memcpy(&ip6->daddr, &b4, 16);
	} else {
		e4 = (void *)(eth + 1);
		if ((void *)e4 + ICMP_ERROR_HDRS > end)
			return DROP(DROP_INTERNAL);
		/* As it came, until the FIB names the next hop (the kernel takes it so if the
		 * neighbour is not resolved yet). */
		__builtin_memcpy(eth, macs, sizeof(macs));
		eth->h_proto = bpf_htons(ETH_P_IP);
	}
	*(__u16 *)e4 = bpf_htons(0x4500 | ICMP_ERROR_TOS);
	e4->tot_len = bpf_htons(ICMP_ERROR_HDRS + quote);
	e4->id = 0;
	e4->frag_off = 0;
	e4->ttl = ICMP_ERROR_TTL;
	e4->protocol = IPPROTO_ICMP;
	e4->check = 0;
	e4->saddr = src;
	e4->daddr = dst;
	__u32 sum = 0;
	__u16 *w = (__u16 *)e4;
#pragma clang loop unroll(full)
	for (int i = 0; i < 10; i++)
		sum += w[i];
	e4->check = ~csum_fold32(sum);

	struct icmphdr *ic = (void *)(e4 + 1);
	ic->type = type;
	ic->code = (what >> 24) & 0x7f;
	ic->checksum = 0;
	ic->un.echo.id = 0;
	ic->un.echo.sequence = type == ICMP_DEST_UNREACH ? bpf_htons(what & 0xffff) : 0;
	/* The ICMP checksum covers its header and the quote (no pseudo header). */
	sum = 0;
	w = (__u16 *)ic;
#pragma clang loop unroll(full)
	for (int i = 0; i < (sizeof(*ic) + ICMP_QUOTE_MAX) / 2; i++) {
		if (i * 2 >= sizeof(*ic) + quote || (void *)(w + i + 1) > end)
			break;
		sum += w[i];
	}
	ic->checksum = ~csum_fold32(sum);

	enum aftr_counter sent = what & ICMP_GEN_TRANSLATED  ? AFTR_C_ICMP6_ERROR_TRANSLATED
				 : type == ICMP_DEST_UNREACH ? AFTR_C_ICMP_FRAG_NEEDED_SENT
							     : AFTR_C_ICMP_TIME_EXCEEDED_SENT;
	__u32 ifindex = ctx->ingress_ifindex;
	if (outer) {
		__builtin_memcpy(eth->h_dest, macs + ETH_ALEN, ETH_ALEN);
		__builtin_memcpy(eth->h_source, macs, ETH_ALEN);
		goto send;
	}
	struct bpf_fib_lookup p = {
		.family = AF_INET,
		.l4_protocol = IPPROTO_ICMP,
		.tot_len = ICMP_ERROR_HDRS + quote,
		.ipv4_src = src,
		.ipv4_dst = dst,
	};
	int rc = fib_lookup(ctx, &p);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (slow_path_run(ctx)) /* about a reassembled datagram: aftrd hands it to the kernel */
			slow_path_note_via_kernel(ctx, p.ifindex);
		stat_inc(ctr, sent);
		stat_inc(ctr, AFTR_C_PASS_NO_NEIGH);
		return XDP_PASS;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return DROP(DROP_FIB_FAILED);
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	ifindex = p.ifindex;
send:
	/* A redirect even back out of the interface it came in on: XDP_TX on a veth whose peer
	 * runs no XDP program leaves the frame in the peer's ring without waking it (veth's
	 * XDP_TX flush wakes only an XDP peer; a redirect's flush always does). Errors are rare:
	 * the redirect's cost does not matter. */
	if (bpf_redirect(ifindex, 0) != XDP_REDIRECT)
		return DROP(DROP_INTERNAL);
	if (slow_path_run(ctx)) /* about a reassembled datagram: aftrd sends the error */
		slow_path_note(ctx, ifindex, ICMP_ERROR_HDRS + ICMP_QUOTE_MAX + sizeof(struct ipv6hdr));
	stat_inc(ctr, sent);
	stat_inc(ctr, AFTR_C_TX_REDIRECT);
	return XDP_REDIRECT;
}

/* Internet → B4, before translation: 0 when the packet fits the tunnel, else its verdict.
 * The tunnel's MTU is softwire_mtu, or the session's cached IPv6 route MTU or the MTU a Packet
 * Too Big taught us toward its B4 when smaller (the cache in use, the learned one live); the
 * IPv4 packet gets that less the 40 bytes we push. */
static __noinline int in_mtu_check(struct xdp_md *ctx, struct aftr_counter_row *ctr,
				   struct aftr_session_in *s)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr);

	if (slow_path_run(ctx)) /* aftrd fragments what the slow path sends */
		return 0;
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u32 mtu = aftr_cfg.softwire_mtu;
	__u64 now = clock_now();
	if (fib_cache_hit(&s->fib, now >> AFTR_FIB_TICK_SHIFT) && s->fib.mtu < mtu)
		mtu = s->fib.mtu;
	__u32 learned = b4_mtu_live(s->b4, now); /* from a Packet Too Big (lib/b4_mtu.h) */
	if (learned && learned < mtu)
		mtu = learned;
	if (bpf_ntohs(iph->tot_len) + sizeof(struct ipv6hdr) <= mtu)
		return 0;
	if (!(iph->frag_off & bpf_htons(IPV4_DF)))
		return slow_path_queue(ctx, ctr, AFTR_SLOW_OVERSIZE); /* fragmented there */
	return icmp_error_gen(ctx, ctr, 0, ICMP_GEN_FRAG_NEEDED(mtu - sizeof(struct ipv6hdr)));
}

/* B4 → Internet, the common case, checked inline before any call: the session's fresh
 * cached next hop takes the packet, and so would a softwire were it hairpinned. Otherwise
 * out_mtu_check decides. */
static __always_inline int out_mtu_fits_cached(const struct aftr_session_out *s, __u32 len,
					       __u64 now)
{
	return aftr_cfg.fib_cache_ticks && s->fib.stamp &&
	       ((__u32)(now >> AFTR_FIB_TICK_SHIFT) | 1) - s->fib.stamp < aftr_cfg.fib_cache_ticks &&
	       len <= s->fib.mtu && len + sizeof(struct ipv6hdr) <= aftr_cfg.softwire_mtu;
}

/* B4 → Internet, before translation, when out_mtu_fits_cached could not tell: 0 when the
 * inner packet fits its egress, else its verdict. The egress MTU is the session's cached one when the cache is in use, else the
 * FIB's (a lookup now, from the session's public address; out_decap_send looks again: the
 * result cannot wait on the entry point's stack); a hairpinned packet's egress is another
 * softwire (softwire_mtu less the 40-byte header). */
static __noinline int out_mtu_check(struct xdp_md *ctx, struct aftr_counter_row *ctr,
				    struct aftr_session_out *s, __u32 outer, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr) + (outer & 0xff);

	if (slow_path_run(ctx)) /* aftrd fragments what the slow path sends */
		return 0;
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u32 len = bpf_ntohs(iph->tot_len);
	__u32 mtu;
	if (pool_contains(iph->daddr)) {
		mtu = aftr_cfg.softwire_mtu - sizeof(struct ipv6hdr);
	} else if (fib_cache_hit(&s->fib, now >> AFTR_FIB_TICK_SHIFT)) {
		mtu = s->fib.mtu;
	} else {
		struct bpf_fib_lookup p = {
			.family = AF_INET,
			.tos = iph->tos,
			.l4_protocol = iph->protocol,
			.tot_len = len,
			.ipv4_src = s->public_addr,
			.ipv4_dst = iph->daddr,
		};
		/* Anything but "too big" is for out_decap_send's own lookup to act on. */
		if (fib_lookup(ctx, &p) != BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return 0;
		mtu = p.mtu_result;
	}
	if (len <= mtu)
		return 0;
	if (!(iph->frag_off & bpf_htons(IPV4_DF)))
		return slow_path_queue(ctx, ctr, AFTR_SLOW_OVERSIZE); /* fragmented there */
	return icmp_error_gen(ctx, ctr, outer, ICMP_GEN_FRAG_NEEDED(mtu));
}

#endif
