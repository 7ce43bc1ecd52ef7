/* ICMPv6 errors about softwire packets (RFC 2473 section 8, RFC 6333 sections 5.3 and 6.3): a
 * router on the IPv6 path toward a B4 (or the B4) answers a packet we encapsulated toward it
 * with Destination Unreachable, Packet Too Big, Time Exceeded or Parameter Problem, sent to
 * our softwire address. The Internet host whose IPv4 packet it was learns of it only if we
 * tell it in ICMPv4; a Packet Too Big also lowers what we send toward that B4 (lib/b4_mtu.h).
 * Included by aftr.bpf.c after the helpers it reuses (pool_contains, pcp_filter_allows,
 * icmp_error_gen). */
#ifndef AFTR_ICMP6_ERROR_H
#define AFTR_ICMP6_ERROR_H

#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ADM_PROHIBITED 1 /* code of ICMPV6_DEST_UNREACH */
#define ICMP_HOST_UNREACH 1
#define ICMP_PKT_FILTERED 13    /* communication administratively prohibited (RFC 1812) */
#define ICMP6_ERROR_HDR 8
/* Where a quote of ours starts: after the error's IPv6 and ICMPv6 headers, our IPv6 header
 * (we push no extension headers: anything else quoted is not ours). */
#define ICMP6_QUOTE_IPV4 (sizeof(struct ipv6hdr) + ICMP6_ERROR_HDR + sizeof(struct ipv6hdr))

/* B4 side, an ICMPv6 message to our softwire address (aftr_from_b4 found its next header
 * ICMPv6, right after the IPv6 header). What it does:
 *
 *   not an error (types 1-4), or     XDP_PASS, counted pass_local_control, as before (echo,
 *   not quoting our encapsulation    neighbour discovery, errors about the kernel's own
 *   (quoted IPv6 source = the error's  packets from that address)
 *   destination, next header IPv4)
 *   ours, but cut before the quoted  drop_icmp6_error_malformed; also a quoted IPv6 payload
 *   IPv4 header and 8 bytes of L4,   length other than the IPv4 total length (we encapsulate
 *   or a later fragment              nothing else), a Packet Too Big reporting an MTU that
 *                                    the quoted packet fitted
 *   no session of that B4 (quoted    drop_icmp6_error_no_session (TCP, UDP and echo replies
 *   destination = inner address,     only: all we send toward B4s). Never creates or
 *   port or echo id)                 refreshes one (RFC 5508)
 *   filtered                         drop_filtered: the quoted source must be a peer the
 *                                    session may hear from (as icmp_error_in's rule), or a
 *                                    forged error would reflect off us at any address
 *   Parameter Problem                drop_icmp6_param_problem: it is about the IPv6 header we
 *                                    built (no extension headers, nothing the host chose);
 *                                    an ICMPv4 parameter problem would point into the host's
 *                                    own header, at nothing wrong there
 *   Packet Too Big                   the MTU learned for the B4 (clamped to 1280 ..
 *                                    softwire_mtu, never raised, counted icmp6_ptb_learned
 *                                    when it changes); then, if the quoted packet had DF,
 *                                    "fragmentation needed" with that MTU - 40; without DF
 *                                    drop_icmp6_ptb_no_df (the host did not ask to know:
 *                                    later packets go to the slow path, fragmented smaller)
 *   Destination Unreachable          ICMPv4 3/13 for code 1 (administratively prohibited),
 *                                    3/1 host unreachable for every other (the B4 is not the
 *                                    destination: its port unreachable says the host is)
 *   Time Exceeded                    ICMPv4 11/0
 *
 * The ICMPv4 error (icmp_error_gen, called by aftr_from_b4 when this returns ICMP6_ERROR_GEN;
 * rate-limited by its token bucket; refused:
 * drop_icmp6_error_not_sent) goes from the session's public address to the quoted source,
 * routed by the FIB, and quotes the quoted IPv4 header and 8 bytes translated back to what the
 * host sent: destination, port or echo id public again, TTL + 1 (our decrement undone), the
 * IPv4 and UDP or echo checksums updated incrementally: so its socket matches it. A hairpinned
 * packet's source is our own public address: drop_icmp6_error_not_sent (its MTU is learned).
 * The ICMPv6 checksum is not verified (the quote may be 1232 bytes): a forger must still name
 * a live session and a peer it talks to.
 *
 * Out of line, given ctx and ctr only (the entry point's stack is at the verifier's limit). */
static __noinline int icmp6_error_from_b4(struct xdp_md *ctx, struct aftr_counter_row *ctr)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u8 *ic6 = (__u8 *)(ip6 + 1);
	struct ipv6hdr *q6 = (void *)(ic6 + ICMP6_ERROR_HDR);

	if ((void *)(ic6 + ICMP6_ERROR_HDR) > end || ic6[0] < ICMPV6_DEST_UNREACH ||
	    ic6[0] > ICMPV6_PARAMPROB)
		goto not_ours;
	/* The quoted IPv6 header: from the address the error came to, carrying IPv4. */
	if ((void *)(q6 + 1) > end || q6->version != 6 || q6->nexthdr != IPPROTO_IPIP)
		goto not_ours;
	const __u32 *a = (const __u32 *)&q6->saddr, *b = (const __u32 *)&ip6->daddr;
	if (a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3])
		goto not_ours;

	/* Ours: the rest must hold together. Quoted bytes within the error's payload length. */
	__u32 payload = bpf_ntohs(ip6->payload_len);
	if ((void *)(ip6 + 1) + payload > end || payload < ICMP6_QUOTE_IPV4 - sizeof(*ip6))
		return DROP(DROP_ICMP6_ERROR_MALFORMED);
	__u32 quoted = payload - (ICMP6_QUOTE_IPV4 - sizeof(*ip6));
	struct iphdr *q = (void *)(q6 + 1);
	if ((void *)(q + 1) > end || quoted < sizeof(*q))
		return DROP(DROP_ICMP6_ERROR_MALFORMED);
	__u32 qihl = q->ihl * 4;
	if (q->version != 4 || qihl < sizeof(*q) || quoted < qihl + 8 ||
	    (q->frag_off & bpf_htons(IPV4_FRAG_OFFSET)) || q6->payload_len != q->tot_len)
		return DROP(DROP_ICMP6_ERROR_MALFORMED);
	__u8 *l4 = (__u8 *)q + (qihl & 0x3c);
	if ((void *)(l4 + 8) > end)
		return DROP(DROP_ICMP6_ERROR_MALFORMED);

	/* What the session is found by: the quoted destination port, or an echo reply's id. */
	__be16 *port = (__be16 *)(l4 + 2);
	__u16 *check = NULL;
	__be16 peer_port = *(__be16 *)l4;
	switch (q->protocol) {
	case IPPROTO_TCP:
		break; /* its checksum is past the 8 bytes the ICMPv4 error quotes */
	case IPPROTO_UDP:
		if (((__u16 *)l4)[3])
			check = (__u16 *)(l4 + 6);
		break;
	case IPPROTO_ICMP:
		if (l4[0] != ICMP_ECHOREPLY)
			return DROP(DROP_ICMP6_ERROR_NO_SESSION);
		port = (__be16 *)(l4 + 4);
		check = (__u16 *)(l4 + 2);
		peer_port = 0;
		break;
	default:
		return DROP(DROP_ICMP6_ERROR_NO_SESSION);
	}
	struct aftr_session_out_key ok = {
		.inner_addr = q->daddr,
		.inner_port = *port,
		.proto = q->protocol,
	};
	__builtin_memcpy(ok.b4, &q6->daddr, 16);
	struct aftr_session_out *s = bpf_map_lookup_elem(&aftr_sessions_out, &ok);
	if (!s)
		return DROP(DROP_ICMP6_ERROR_NO_SESSION);
	__be32 pub = s->public_addr, remote = q->saddr;
	__be16 pub_port = s->public_port;
	if (s->flags & AFTR_SESSION_FILTERED) {
		struct aftr_session_in_key ik = { .public_addr = pub, .public_port = pub_port,
						  .proto = q->protocol };
		if (!pcp_filter_allows(&ik, remote, peer_port))
			return DROP(DROP_FILTERED);
	} else if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
		   !(s->flags & AFTR_SESSION_FORWARD)) {
		struct aftr_filter_key fk = { .public_addr = pub, .remote_addr = remote,
					      .public_port = pub_port, .proto = q->protocol };
		if (!bpf_map_lookup_elem(&aftr_filter_peers, &fk))
			return DROP(DROP_FILTERED);
	}

	__u32 what;
	switch (ic6[0]) {
	case ICMPV6_PARAMPROB:
		return DROP(DROP_ICMP6_PARAM_PROBLEM);
	case ICMPV6_TIME_EXCEED:
		what = ICMP_GEN(ICMP_TIME_EXCEEDED, 0, 0);
		break;
	case ICMPV6_DEST_UNREACH:
		what = ICMP_GEN(ICMP_DEST_UNREACH,
				ic6[1] == ICMPV6_ADM_PROHIBITED ? ICMP_PKT_FILTERED : ICMP_HOST_UNREACH, 0);
		break;
	default: { /* Packet Too Big */
		__u32 mtu = bpf_ntohl(*(__be32 *)(ic6 + 4));
		if (mtu < AFTR_IPV6_MIN_MTU) /* RFC 8201 section 4: never below the minimum */
			mtu = AFTR_IPV6_MIN_MTU;
		/* The packet we sent must have been too big for it (RFC 1191: the report is about
		 * that packet; one it fitted is wrong, or forged). */
		if (mtu >= sizeof(struct ipv6hdr) + bpf_ntohs(q6->payload_len))
			return DROP(DROP_ICMP6_ERROR_MALFORMED);
		if (mtu > aftr_cfg.softwire_mtu)
			mtu = aftr_cfg.softwire_mtu;
		struct aftr_subscriber_key bk;
		__builtin_memcpy(bk.b4, &q6->daddr, 16);
		__u64 now = clock_now();
		struct aftr_b4_mtu *cur = bpf_map_lookup_elem(&aftr_b4_mtu, &bk);
		/* Never raised by a Packet Too Big (RFC 8201 section 4): only time forgets. */
		if (!cur || now - cur->learned_ns >= AFTR_B4_MTU_TTL_NS || mtu < cur->mtu) {
			struct aftr_b4_mtu v = { .learned_ns = now, .mtu = mtu };
			if (!bpf_map_update_elem(&aftr_b4_mtu, &bk, &v, BPF_ANY)) {
				aftr_b4_mtu_live_until_ns = now + AFTR_B4_MTU_TTL_NS;
				stat_inc(ctr, AFTR_C_ICMP6_PTB_LEARNED);
			}
		}
		if (!(q->frag_off & bpf_htons(IPV4_DF)))
			return DROP(DROP_ICMP6_PTB_NO_DF);
		what = ICMP_GEN_FRAG_NEEDED(mtu - sizeof(struct ipv6hdr));
	}
	}
	if (pool_contains(remote)) /* hairpinned: the "host" would be us */
		return DROP(DROP_ICMP6_ERROR_NOT_SENT);

	/* The quote as the host sent it: destination and port (or id) public, TTL + 1. */
	__be32 inner = q->daddr;
	__be16 inner_port = *port;
	if (check) {
		__u16 c = *check;
		if (q->protocol == IPPROTO_UDP)
			c = csum_replace32(c, inner, pub);
		c = csum_replace16(c, inner_port, pub_port);
		if (c == 0 && q->protocol == IPPROTO_UDP)
			c = 0xffff;
		*check = c;
	}
	*port = pub_port;
	q->daddr = pub;
	q->check = csum_replace32(q->check, inner, pub);
	if (q->ttl < 255) {
		__u16 *ttl_word = (__u16 *)&q->ttl; /* TTL and protocol share a checksum word */
		__u16 old = *ttl_word;
		q->ttl++;
		q->check = csum_replace16(q->check, old, *ttl_word);
	}

	/* Keep the Ethernet header, drop everything before the quoted IPv4 packet: the frame is
	 * then that packet as if it had come from the Internet, and icmp_error_gen answers it. */
	__u8 macs[2 * ETH_ALEN];
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, (int)ICMP6_QUOTE_IPV4))
		return DROP(DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return DROP(DROP_INTERNAL);
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = bpf_htons(ETH_P_IP);
	return ICMP6_ERROR_GEN | what; /* the caller calls icmp_error_gen */

not_ours:
	stat_inc(ctr, AFTR_C_PASS_LOCAL_CONTROL); /* echo, neighbour discovery, the kernel's own */
	return XDP_PASS;
}

#endif
