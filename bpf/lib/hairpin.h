/* Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7, RFC 7857 section 2): a host
 * behind a B4 sending to one of our own public addresses reaches the subscriber behind it
 * (another one, or itself), seeing the sender's public address and port as the source.
 * Included by aftr.bpf.c after the inbound helpers it reuses (l4_rewrite, in_filter_allows,
 * in_encap_send). */
#ifndef AFTR_HAIRPIN_H
#define AFTR_HAIRPIN_H

/* B4 → B4. aftr_from_b4 has translated the source as for any outbound packet (the sender's
 * session made or refreshed, the packet still in its softwire frame, `outer` bytes of IPv6
 * headers). The destination is then treated as a packet from the Internet would be, with
 * the sender's public end as the peer:
 *
 *   session     the inbound one of (destination, port or echo id, protocol); none: dropped
 *               as drop_no_session, nothing made for the target
 *   filtering   that of inbound traffic (in_filter_allows): endpoint-independent, or the
 *               target must have sent to the sender's public address; PCP FILTER sets
 *   rewrite     destination to the target's inner address and port (checksums incrementally),
 *               TTL - 1 (the only decrement: aftr_from_b4 does its own at sending)
 *   out         the softwire header swapped for one toward the target's B4 (in_encap_send)
 *
 * ICMP echo is found by its identifier on both sides: the sender's public identifier is the
 * "port" at the target, which an echo reaches when the target's session owns that id (the
 * sender itself, or a mapping of that id). Out of line, given ctx, ctr and `outer` only: the
 * entry point's stack is at the verifier's limit. */
static __noinline int hairpin_to_b4(struct xdp_md *ctx, struct aftr_counter_row *ctr, __u32 outer)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr) + (outer & 0xff);
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u8 *l4 = (__u8 *)iph + ((iph->ihl * 4) & 0x3c);
	/* aftr_from_b4 checked the L4 header: these fail only for the verifier. */
	if ((void *)(l4 + 8) > end)
		return DROP(DROP_INTERNAL);

	struct l4_view v = {};
	__be16 peer_port = 0;
	if (iph->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)l4;
		if ((void *)(th + 1) > end)
			return DROP(DROP_INTERNAL);
		v.port = &th->dest;
		v.check = (__u16 *)&th->check;
		v.pseudo = 1;
		v.tcp_flags = (th->syn ? AFTR_TCP_SEEN_SYN : 0) | (th->fin ? AFTR_TCP_SEEN_FIN : 0) |
			      (th->rst ? AFTR_TCP_SEEN_RST : 0);
		peer_port = th->source;
	} else if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)l4;
		v.port = &uh->dest;
		v.check = uh->check ? (__u16 *)&uh->check : NULL;
		v.pseudo = 1;
		peer_port = uh->source;
	} else { /* ICMP echo or echo reply: l4_parse let nothing else through */
		struct icmphdr *ic = (void *)l4;
		v.port = &ic->un.echo.id;
		v.check = (__u16 *)&ic->checksum;
	}

	struct aftr_session_in_key ik = {
		.public_addr = iph->daddr,
		.public_port = *v.port,
		.proto = iph->protocol,
	};
	struct aftr_session_in *s = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	if (!s)
		return DROP(DROP_NO_SESSION);
	if (!in_filter_allows(&ik, s, iph->saddr, peer_port))
		return DROP(DROP_FILTERED);

	__u64 now = clock_now();
	session_touch(&s->last_seen_ns, &s->tcp_flags, v.tcp_flags, now);
	l4_rewrite(iph, &iph->daddr, s->inner_addr, &v, s->inner_port);
	ipv4_dec_ttl(iph);
	stat_inc(ctr, AFTR_C_HAIRPIN_TRANSLATED);
	__u16 len = bpf_ntohs(iph->tot_len);
	int rc = sw_decap(ctx, outer, SW_MACS_KEEP);
	if (rc)
		return rc;
	return in_encap_send(ctx, ctr, s, len, now, AFTR_SAME_IF_REDIRECT); /* see fib_send */
}

#endif
