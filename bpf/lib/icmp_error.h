/* ICMP errors from behind a B4 (RFC 5508 section 4, the mirror of icmp_error_in): a host
 * answers a packet that came in from the Internet with an error (port unreachable, time
 * exceeded, fragmentation needed, parameter problem). Included by aftr.bpf.c after the
 * helpers it reuses (out_decap_send). */
#ifndef AFTR_ICMP_ERROR_H
#define AFTR_ICMP_ERROR_H

/* B4 → Internet, an ICMP error about a packet we translated in. The quoted packet came from
 * the Internet peer to (inner address, inner port or echo id) of a session of this B4; the
 * error goes to that peer with the quote translated back to what the peer sent:
 *
 *   session                    subscriber side (B4, quoted destination, its port or echo
 *                              id, protocol); none: drop_icmp_error_no_session
 *   outer source               -> the session's public address (whoever behind the B4 sent
 *                              the error, the host or a router of the home network)
 *   quoted destination, port   inner -> public (quoted IPv4 checksum; quoted TCP/UDP
 *   or id                      checksum when quoted, a UDP 0 staying 0; echo checksum)
 *   ICMP checksum              for every quoted byte changed
 *   outer TTL                  - 1 (out_decap_send)
 *
 * then decapsulated and sent like any outbound packet (out_decap_send). Type, code and the
 * rest of the ICMP header are left alone: a "fragmentation needed" keeps the MTU the host
 * reported. The error must go back to the quoted packet's source (else malformed), and it
 * never creates or refreshes a session (RFC 5508), nor is it filtered: the quoted packet
 * passed the inbound filters to reach the host.
 *
 * A quote whose source is one of our public addresses is about a hairpinned packet: once
 * translated here the error is an inbound error for the other subscriber: decapsulated and
 * returned as ICMP_ERROR_HAIRPINNED for the caller to hand to icmp_error_in as it stands
 * (counted there, TTL decremented there only).
 *
 * Out of line, given ctx, ctr and `outer` only (the entry point's stack is at the limit). */
static __noinline int icmp_error_out(struct xdp_md *ctx, struct aftr_counter_row *ctr, __u32 outer)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct iphdr *iph = (void *)ip6 + (outer & 0xff);
	if ((void *)(ip6 + 1) > end || (void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u32 ihl = iph->ihl * 4;
	struct icmphdr *ic = (void *)iph + (ihl & 0x3c);
	if ((void *)(ic + 1) > end)
		return DROP(DROP_INTERNAL);
	struct iphdr *q = (void *)(ic + 1);
	/* Within the IPv4 packet (l4_parse checked the ICMP header fits: no wrap). */
	__u32 quoted = bpf_ntohs(iph->tot_len) - ihl - sizeof(*ic);

	if ((void *)(q + 1) > end || quoted < sizeof(*q))
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	__u32 qihl = q->ihl * 4;
	/* A whole header and the 8 bytes after it (RFC 792); not a later fragment. */
	if (q->version != 4 || qihl < sizeof(*q) || quoted < qihl + 8 ||
	    (q->frag_off & bpf_htons(IPV4_FRAG_OFFSET)))
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	if (q->saddr != iph->daddr)
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	__u8 *l4 = (__u8 *)q + (qihl & 0x3c);
	if ((void *)(l4 + 8) > end)
		return DROP(DROP_ICMP_ERROR_MALFORMED);

	__be16 *port = (__be16 *)(l4 + 2); /* the quoted destination port: the inner one */
	__u16 *check = NULL;
	switch (q->protocol) {
	case IPPROTO_TCP:
		if (quoted >= qihl + 18 && (void *)(l4 + 18) <= end)
			check = (__u16 *)(l4 + 16);
		break;
	case IPPROTO_UDP:
		if (((__u16 *)l4)[3])
			check = (__u16 *)(l4 + 6);
		break;
	case IPPROTO_ICMP:
		/* Echo replies come in from the Internet; echo requests and replies hairpinned. */
		if (l4[0] != ICMP_ECHOREPLY && l4[0] != ICMP_ECHO)
			return DROP(DROP_ICMP_ERROR_NO_SESSION);
		port = (__be16 *)(l4 + 4);
		check = (__u16 *)(l4 + 2);
		break;
	default:
		return DROP(DROP_ICMP_ERROR_NO_SESSION);
	}

	struct aftr_session_out_key ok = {
		.inner_addr = q->daddr,
		.inner_port = *port,
		.proto = q->protocol,
	};
	__builtin_memcpy(ok.b4, &ip6->saddr, 16);
	struct aftr_session_out *s = bpf_map_lookup_elem(&aftr_sessions_out, &ok);
	if (!s)
		return DROP(DROP_ICMP_ERROR_NO_SESSION);

	__be32 inner = q->daddr, pub = s->public_addr;
	__be16 inner_port = *port, pub_port = s->public_port;
	__u16 icmp_check = ic->checksum;
	if (check) {
		__u16 old = *check, c = old;
		if (q->protocol != IPPROTO_ICMP)
			c = csum_replace32(c, inner, pub);
		c = csum_replace16(c, inner_port, pub_port);
		if (c == 0 && q->protocol == IPPROTO_UDP)
			c = 0xffff;
		*check = c;
		icmp_check = csum_replace16(icmp_check, old, c);
	}
	*port = pub_port;
	icmp_check = csum_replace16(icmp_check, inner_port, pub_port);
	__u16 old_qcheck = q->check;
	q->check = csum_replace32(q->check, inner, pub);
	q->daddr = pub;
	icmp_check = csum_replace32(icmp_check, inner, pub);
	icmp_check = csum_replace16(icmp_check, old_qcheck, q->check);
	ic->checksum = icmp_check;

	__be32 old_src = iph->saddr;
	iph->saddr = pub;
	iph->check = csum_replace32(iph->check, old_src, pub);

	if (pool_contains(iph->daddr)) {
		int rc = sw_decap(ctx, outer, SW_MACS_KEEP);
		return rc ? rc : ICMP_ERROR_HAIRPINNED;
	}
	stat_inc(ctr, AFTR_C_OUT_ICMP_ERROR_TRANSLATED); /* TTL - 1 at sending */
	return out_decap_send(ctx, ctr, s, outer, clock_now());
}

#endif
