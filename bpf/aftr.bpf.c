// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The AFTR data plane. aftr_xdp runs on every interface aftrd attaches to and sorts each
 * frame: softwire traffic from a B4 (IPv4-in-IPv6 to an AFTR address) is decapsulated and
 * NATed; IPv4 to a public pool address is NATed back and encapsulated toward its B4;
 * everything else goes to the kernel untouched. aftr_ctl is run by aftrd (never attached)
 * for the map updates that race with the data plane. */
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/stats.h"
#include "lib/clock.h"
#include "lib/events.h"
#include "lib/softwire.h"
#include "lib/nat44.h"
#include "lib/fib.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct aftr_dp_config aftr_cfg = {};

#define NS_PER_SEC 1000000000ull
#define LAST_SEEN_GRANULARITY_NS (NS_PER_SEC / 4) /* skip the write when fresher than this */
#define TCP_MAX_OPTION_WALK 12
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2

/* l4_parse: an ICMP error, translated by the packet it quotes (icmp_error_in from the
 * Internet, icmp_error_out from a B4). Positive, so it is neither 0 nor a drop reason; never
 * returned to the entry point. */
#define L4_ICMP_ERROR 1
/* icmp_error_out: the error is about a hairpinned packet and, translated for its sender's
 * side, is now an inbound error for the other subscriber: the caller hands it to
 * icmp_error_in (called from here, not from icmp_error_out: one call deeper and the chain
 * would pass the verifier's 512-byte stack limit). Neither an XDP action (icmp_error_out
 * also returns those) nor a drop reason; never returned to the entry point. */
#define ICMP_ERROR_HAIRPINNED 0x100

/* The translatable part of a packet: where its port (or ICMP echo id) and L4 checksum are. */
struct l4_view {
	__be16 *port;     /* source port outbound, destination port inbound */
	__u16 *check;     /* NULL for a UDP datagram without checksum */
	struct tcphdr *tcp; /* set for TCP */
	__u8 tcp_flags;   /* AFTR_TCP_SEEN_* */
	__u8 pseudo;      /* checksum covers the IPv4 pseudo header (TCP, UDP) */
};

static __always_inline int pool_contains(__be32 addr);

/* Finds the port to translate. `outbound` picks source (from a B4) or destination. */
static __always_inline int l4_parse(struct iphdr *iph, __u32 ihl, void *end, int outbound,
				    struct l4_view *v)
{
	void *l4 = (void *)iph + (ihl & 0x3c);
	/* Headers must fit in the IPv4 packet, not merely in the frame: Ethernet pads short
	 * frames, and padding is not a header. (parse_ipv4_len checked tot_len >= ihl.) */
	__u32 l4_len = bpf_ntohs(iph->tot_len) - ihl;

	switch (iph->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *th = parse_tcp(l4, end);
		if (!th || th->doff < 5 || th->doff * 4 > l4_len)
			return DROP(DROP_MALFORMED_L4);
		v->port = outbound ? &th->source : &th->dest;
		v->check = (__u16 *)&th->check;
		v->tcp = th;
		v->pseudo = 1;
		v->tcp_flags = (th->syn ? AFTR_TCP_SEEN_SYN : 0) | (th->fin ? AFTR_TCP_SEEN_FIN : 0) |
			       (th->rst ? AFTR_TCP_SEEN_RST : 0);
		return 0;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = parse_udp(l4, end);
		if (!uh || l4_len < sizeof(*uh))
			return DROP(DROP_MALFORMED_L4);
		v->port = outbound ? &uh->source : &uh->dest;
		v->check = uh->check ? (__u16 *)&uh->check : NULL;
		v->pseudo = 1;
		return 0;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ic = parse_icmp(l4, end);
		if (!ic || l4_len < sizeof(*ic))
			return DROP(DROP_MALFORMED_L4);
		/* Echo is translated by its identifier (RFC 5508 section 3.1); errors by the
		 * packet they quote. An echo reply from a B4 answers an echo hairpinned to its
		 * host: it goes back to a pool address, by the session the echo came in on. */
		if (ic->type != (outbound ? ICMP_ECHO : ICMP_ECHOREPLY)) {
			if (ic->type == ICMP_DEST_UNREACH || ic->type == ICMP_TIME_EXCEEDED ||
			    ic->type == ICMP_PARAMETERPROB)
				return L4_ICMP_ERROR;
			if (!outbound || ic->type != ICMP_ECHOREPLY || !pool_contains(iph->daddr))
				return DROP(DROP_UNSUPPORTED_ICMP);
		}
		v->port = &ic->un.echo.id;
		v->check = (__u16 *)&ic->checksum;
		return 0;
	}
	}
	return DROP(DROP_UNSUPPORTED_PROTO);
}

/* Rewrites one IPv4 address (source or destination) and the port in `v`, fixing both
 * checksums. A UDP checksum that becomes 0 is sent as 0xffff (RFC 768). */
static __always_inline void l4_rewrite(struct iphdr *iph, __be32 *addr, __be32 new_addr,
				       struct l4_view *v, __be16 new_port)
{
	__be32 old_addr = *addr;
	__be16 old_port = *v->port;

	*addr = new_addr;
	iph->check = csum_replace32(iph->check, old_addr, new_addr);
	if (v->check) {
		__u16 c = *v->check;
		if (v->pseudo)
			c = csum_replace32(c, old_addr, new_addr);
		c = csum_replace16(c, old_port, new_port);
		if (c == 0 && iph->protocol == IPPROTO_UDP)
			c = 0xffff;
		*v->check = c;
	}
	*v->port = new_port;
}

/* Lowers the MSS option of a SYN to the softwire's (RFC 6333 section 5.3: the tunnel costs
 * 40 bytes, so endpoints must not send full-size IPv4 segments). */
static __always_inline void tcp_clamp_mss(struct tcphdr *th, void *end, struct aftr_counter_row *ctr)
{
	__u16 clamp = aftr_cfg.tcp_mss_clamp;
	__u32 optlen = th->doff * 4 - sizeof(*th);
	__u8 *opts = (__u8 *)(th + 1);
	__u32 off = 0;

	if (!clamp || !th->syn)
		return;
	for (int i = 0; i < TCP_MAX_OPTION_WALK; i++) {
		if (off >= optlen)
			return;
		__u8 *p = opts + (off & 0x3f);
		if ((void *)(p + 1) > end)
			return;
		if (p[0] == TCPOPT_EOL)
			return;
		if (p[0] == TCPOPT_NOP) {
			off++;
			continue;
		}
		if ((void *)(p + 4) > end)
			return;
		if (p[0] == TCPOPT_MSS && p[1] == 4) {
			__be16 *mssp = (__be16 *)(p + 2);
			if (bpf_ntohs(*mssp) > clamp) {
				__be16 new_mss = bpf_htons(clamp);
				th->check = csum_replace16(th->check, *mssp, new_mss);
				*mssp = new_mss;
				stat_inc(ctr, AFTR_C_MSS_CLAMPED);
			}
			return;
		}
		if (p[1] < 2)
			return;
		off += p[1];
	}
}

/* TTL - 1 with the header checksum fixed. TTL and protocol share one checksum word, computed
 * in a register and stored whole: a byte store followed by a load of its word stalls on store
 * forwarding (a few ns per packet). Callers have sent an ICMP error for TTL <= 1; a TTL of 0
 * is left alone rather than borrowed from the protocol byte. */
static __always_inline void ipv4_dec_ttl(struct iphdr *iph)
{
	__u16 *word = (__u16 *)&iph->ttl;
	__u16 old = *word;
	__u16 new = old - bpf_htons(0x0100); /* the TTL is the word's first byte on the wire */

	if (!(old & bpf_htons(0xff00)))
		return;
	*word = new;
	iph->check = csum_replace16(iph->check, old, new);
}

static __always_inline void session_touch(__u64 *last_seen, __u8 *flags, __u8 new_flags, __u64 now)
{
	/* Written without atomics: a flow is processed by one CPU at a time (RSS), and a lost
	 * update only makes the session look a fraction of a second older. */
	if (now - *last_seen > LAST_SEEN_GRANULARITY_NS)
		*last_seen = now;
	if (new_flags & ~*flags)
		*flags |= new_flags;
}

/* Whether `addr` is one of our public addresses: the pool's prefixes, active and draining
 * (a draining address still has sessions whose replies must come back). */
static __always_inline int pool_contains(__be32 addr)
{
	for (__u32 i = 0; i < AFTR_MAX_POOL_PREFIXES; i++) {
		if (i >= aftr_cfg.pool_prefix_count)
			break;
		if ((addr & aftr_cfg.pool_prefix_mask[i]) == aftr_cfg.pool_prefix_addr[i])
			return 1;
	}
	return 0;
}

/* The end of every packet toward the Internet, once its IPv4 packet is translated: the
 * softwire's `outer` bytes removed, then out by the session's cached next hop or a FIB
 * lookup, TTL - 1 (after the lookup: on NO_NEIGH the kernel forwards it, TTL and all). */
static __always_inline int out_decap_send(struct xdp_md *ctx, struct aftr_counter_row *ctr,
					  struct aftr_session_out *s, __u32 outer, __u64 now)
{
	__u32 now_tick = now >> AFTR_FIB_TICK_SHIFT;
	struct aftr_if_mac *smac = fib_cache_hit(&s->fib, now_tick);
	int rc = sw_decap(ctx, outer, smac ? SW_MACS_REWRITTEN : SW_MACS_KEEP);
	if (rc)
		return rc;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);

	if (smac) {
		ipv4_dec_ttl(iph);
		return fib_cache_send(ctx, eth, &s->fib, smac, ctr, AFTR_SAME_IF_TX);
	}
	struct bpf_fib_lookup p = {
		.family = AF_INET,
		.tos = iph->tos,
		.l4_protocol = iph->protocol,
		.tot_len = bpf_ntohs(iph->tot_len),
		.ipv4_src = iph->saddr,
		.ipv4_dst = iph->daddr,
	};
	rc = fib_lookup(ctx, &p);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failure(ctx, rc, &p, ctr);
	fib_cache_store(&s->fib, &p, now_tick);
	ipv4_dec_ttl(iph);
	return fib_send(ctx, eth, &p, ctr, AFTR_SAME_IF_TX);
}

#include "lib/icmp_gen.h"

/* Out of line (lib/hairpin.h, lib/icmp_error.h): rare paths that must not cost the entry
 * point stack. */
static __noinline int hairpin_to_b4(struct xdp_md *ctx, struct aftr_counter_row *ctr, __u32 outer);
static __noinline int icmp_error_out(struct xdp_md *ctx, struct aftr_counter_row *ctr, __u32 outer);
static __noinline int icmp_error_in(struct xdp_md *ctx, struct aftr_counter_row *ctr,
				 int hairpinned);
static __noinline int icmp6_error_from_b4(struct xdp_md *ctx, struct aftr_counter_row *ctr);
#define IPPROTO_ICMPV6_ 58 /* <linux/in6.h> defines IPPROTO_ICMPV6 only without libc headers */
/* icmp6_error_from_b4: the frame is now the quoted IPv4 packet translated back; the caller
 * hands it to icmp_error_gen with the error in the low bits (ICMP_GEN without its bit 31).
 * Neither an XDP action nor a drop reason (positive, past them). */
#define ICMP6_ERROR_GEN (1 << 30)
#define ICMP6_GEN_WHAT(rc) (((__u32)(rc) & (ICMP6_ERROR_GEN - 1)) | ICMP_GEN_TRANSLATED)

/* Address-dependent filtering: the peer a session's packet went to may answer (RFC 4787
 * REQ-8). Out of line: its key would cost the entry point's stack. */
static __noinline void filter_peer_note(const struct aftr_session_out *s, __be32 remote,
					__u8 proto, __u64 now)
{
	struct aftr_filter_key fk = { .public_addr = s->public_addr,
				      .remote_addr = remote,
				      .public_port = s->public_port,
				      .proto = proto };

	if (!bpf_map_lookup_elem(&aftr_filter_peers, &fk))
		bpf_map_update_elem(&aftr_filter_peers, &fk, &now, BPF_ANY);
}

/* B4 → Internet: decapsulate, translate the source, forward. A packet to one of our own
 * public addresses is hairpinned instead (hairpin_to_b4). */
static __always_inline int aftr_from_b4(struct xdp_md *ctx, struct aftr_counter_row *ctr,
					struct ethhdr *eth, void *end)
{
	struct ipv6hdr *ip6 = parse_ipv6(eth + 1, end);
	if (!ip6 || ip6->version != 6)
		return DROP(DROP_MALFORMED_IPV6);

	int sw = sw_address_index(&ip6->daddr);
	if (sw < 0) {
		stat_inc(ctr, AFTR_C_PASS_NOT_OURS);
		return XDP_PASS;
	}
	__u8 next = ip6->nexthdr;
	__u32 outer = sizeof(*ip6);
	if (next == IPPROTO_DSTOPTS) {
		int len = sw_skip_dstopts((void *)(ip6 + 1), end, &next);
		if (len < 0)
			return len;
		if (len == 0) {
			stat_inc(ctr, AFTR_C_PASS_LOCAL_CONTROL);
			return XDP_PASS;
		}
		outer += len & (SW_MAX_DSTOPT_LEN * 2 - 1);
	}
	if (next == IPPROTO_FRAGMENT) {
		struct frag_hdr { __u8 nexthdr, reserved; __be16 off; __be32 id; } *fh =
			(void *)ip6 + (outer & 0xff);
		if ((void *)(fh + 1) > end)
			return DROP(DROP_MALFORMED_EXT_HDR);
		/* The kernel reassembles it: the softwire address is a local address of the
		 * AFTR, and aftrd reads the whole payload from its IPPROTO_IPIP raw socket. */
		if (fh->nexthdr == IPPROTO_IPIP) {
			stat_inc(ctr, AFTR_C_PASS_IPV6_FRAGMENT);
			return XDP_PASS;
		}
	}
	if (next != IPPROTO_IPIP) {
		/* An ICMPv6 error about a softwire packet is translated for the Internet host. */
		if (ip6->nexthdr == IPPROTO_ICMPV6_) {
			int rc = icmp6_error_from_b4(ctx, ctr);
			/* icmp_error_gen called from here: one call deeper would pass the limit. */
			return rc >= ICMP6_ERROR_GEN ? icmp_error_gen(ctx, ctr, 0, ICMP6_GEN_WHAT(rc)) : rc;
		}
		stat_inc(ctr, AFTR_C_PASS_LOCAL_CONTROL); /* PCP, ICMPv6, management */
		return XDP_PASS;
	}
	/* A payload length past the frame is a truncated packet: not translated. */
	if ((void *)(ip6 + 1) + bpf_ntohs(ip6->payload_len) > end)
		return DROP(DROP_MALFORMED_IPV6);

	struct iphdr *iph = parse_ipv4((void *)ip6 + (outer & 0xff), end);
	if (!iph)
		return DROP(DROP_MALFORMED_IPV4);
	__u32 ihl = parse_ipv4_len(iph, end);
	if (!ihl || bpf_ntohs(ip6->payload_len) < outer - sizeof(*ip6) + bpf_ntohs(iph->tot_len))
		return DROP(DROP_MALFORMED_IPV4);
	if (iph->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return slow_path_queue(ctx, ctr, AFTR_SLOW_SOFTWIRE_FRAGMENT);
	if (iph->ttl <= 1) /* before any session is made or refreshed */
		return icmp_error_gen(ctx, ctr, outer, ICMP_GEN_TIME_EXCEEDED);

	struct l4_view v = {};
	int rc = l4_parse(iph, ihl, end, 1, &v);
	if (rc) {
		if (rc != L4_ICMP_ERROR)
			return rc;
		rc = icmp_error_out(ctx, ctr, outer);
		return rc == ICMP_ERROR_HAIRPINNED ? icmp_error_in(ctx, ctr, AFTR_SAME_IF_REDIRECT) : rc;
	}

	struct nat44_flow f = {};
	__builtin_memcpy(f.key.b4, &ip6->saddr, 16);
	f.key.inner_addr = iph->saddr;
	f.key.inner_port = *v.port;
	f.key.proto = iph->protocol;
	f.remote_addr = iph->daddr;
	f.softwire_index = sw;
	f.tcp_flags = v.tcp_flags;

	__u64 now = clock_now();
	struct aftr_session_out *s = bpf_map_lookup_elem(&aftr_sessions_out, &f.key);
	if (s) {
		session_touch(&s->last_seen_ns, &s->tcp_flags, v.tcp_flags, now);
	} else {
		/* An echo reply (l4_parse let one through toward a pool address only) is
		 * translated by a session, never makes one. v.port is its identifier: the type
		 * is 4 bytes before (read there, a flag in v would cost the entry point stack). */
		if (f.key.proto == IPPROTO_ICMP && *((__u8 *)v.port - 4) == ICMP_ECHOREPLY)
			return DROP(DROP_NO_SESSION);
		rc = nat44_session_create(&f, now);
		if (rc)
			return rc;
		s = bpf_map_lookup_elem(&aftr_sessions_out, &f.key);
		if (!s)
			return DROP(DROP_INTERNAL);
	}
	if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT)
		filter_peer_note(s, iph->daddr, iph->protocol, now);
	/* Too big for its egress: an ICMP error or the slow path, about the packet as the host
	 * sent it (the session stays, as for any packet of the flow). */
	if (!out_mtu_fits_cached(s, bpf_ntohs(iph->tot_len), now)) {
		rc = out_mtu_check(ctx, ctr, s, outer, now);
		if (rc)
			return rc;
	}

	l4_rewrite(iph, &iph->saddr, s->public_addr, &v, s->public_port);
	if (v.tcp)
		tcp_clamp_mss(v.tcp, end, ctr);
	if (pool_contains(f.remote_addr)) /* f is on the stack already: no spill */
		return hairpin_to_b4(ctx, ctr, outer);
	stat_inc(ctr, AFTR_C_OUT_TRANSLATED);
	return out_decap_send(ctx, ctr, s, outer, now);
}

/* Whether a FILTERED session's PCP FILTER set lets the peer (saddr, sport) in. No set: no. */
static __noinline int pcp_filter_allows(struct aftr_session_in_key *ik, __be32 saddr,
					 __be16 sport)
{
	struct aftr_pcp_filter_set *fs = bpf_map_lookup_elem(&aftr_pcp_filters, ik);
	if (!fs)
		return 0;
	for (int i = 0; i < AFTR_PCP_MAX_FILTERS; i++) {
		if (i >= fs->count)
			break;
		struct aftr_pcp_filter *f = &fs->f[i];
		if ((saddr & f->mask) == f->addr && (!f->port || f->port == sport))
			return 1;
	}
	return 0;
}

/* Whether the Internet peer (addr, port) may reach the session `s` found under `ik`: the
 * rule aftr_from_internet applies (written out there, where a shared copy cost the entry
 * point 8 bytes of stack, and it has none to spare under the verifier's 512-byte limit). */
static __always_inline int in_filter_allows(struct aftr_session_in_key *ik,
					    const struct aftr_session_in *s, __be32 addr,
					    __be16 port)
{
	if (s->tcp_flags & AFTR_SESSION_FILTERED)
		return pcp_filter_allows(ik, addr, port);
	if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
	    !(s->tcp_flags & AFTR_SESSION_FORWARD)) {
		struct aftr_filter_key fk = { .public_addr = ik->public_addr,
					      .remote_addr = addr,
					      .public_port = ik->public_port,
					      .proto = ik->proto };
		return bpf_map_lookup_elem(&aftr_filter_peers, &fk) != NULL;
	}
	return 1;
}

/* The end of every packet toward a B4, once its IPv4 packet (`inner_len` bytes after the
 * Ethernet header) is translated: encapsulated from the softwire address the B4 talks to,
 * then out by the session's cached next hop or a FIB lookup. */
static __always_inline int in_encap_send(struct xdp_md *ctx, struct aftr_counter_row *ctr,
					 struct aftr_session_in *s, __u16 inner_len, __u64 now,
					 int redirect_back)
{
	__u32 now_tick = now >> AFTR_FIB_TICK_SHIFT;
	struct aftr_if_mac *smac = fib_cache_hit(&s->fib, now_tick);
	int rc = sw_encap(ctx, s->b4, s->softwire_index, inner_len,
			  smac ? SW_MACS_REWRITTEN : SW_MACS_KEEP);
	if (rc)
		return rc;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end)
		return DROP(DROP_INTERNAL);

	if (smac)
		return fib_cache_send(ctx, eth, &s->fib, smac, ctr, redirect_back);
	struct bpf_fib_lookup p = {
		.family = AF_INET6,
		.l4_protocol = IPPROTO_IPIP,
		.tot_len = sizeof(*ip6) + inner_len,
	};
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	rc = fib_lookup(ctx, &p);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failure(ctx, rc, &p, ctr);
	fib_cache_store(&s->fib, &p, now_tick);
	return fib_send(ctx, eth, &p, ctr, redirect_back);
}

/* Internet → B4, an ICMP error (destination unreachable, time exceeded, parameter problem)
 * about a packet we translated out, as RFC 5508 section 4 has a NAT do (RFC 6333 makes the
 * AFTR's NAT follow it). The quoted packet left from (public address, public port or echo
 * id); its session gives the host, and the error goes to it with the quoted packet
 * translated back as the host sent it:
 *
 *   outer destination          public address -> inner address (IPv4 header checksum)
 *   quoted source, port or id  public -> inner (quoted IPv4 checksum; quoted TCP/UDP checksum
 *                              if quoted, a UDP 0 staying 0; echo checksum for the id)
 *   ICMP checksum              for every quoted byte changed (it has no pseudo header)
 *   outer TTL                  - 1
 *
 * then encapsulated toward the B4 exactly like a translated packet (in_encap_send). Type,
 * code and the rest of the ICMP header are left alone: a "fragmentation needed" keeps its
 * next-hop MTU, lowered to softwire_mtu - 40 when the router reports more than the tunnel
 * carries (counted relayed_mtu_lowered).
 *
 * An error never creates a session and never refreshes one (RFC 5508: errors must not keep
 * mappings alive, or a stream of forged errors would). Filtering applies to the peer the
 * quoted packet was sent to, never to the error's source: that is a router on the path (or
 * the peer itself), which the mapping has not sent to and need not have. So an error passes
 * where the peer's own reply would, and a forger must name a live mapping and a peer it talks
 * to. The ICMP checksum is not verified (RFC 5508 REQ-3 would have it checked; the quote
 * may be up to 548 bytes): updated incrementally, a wrong checksum stays wrong, and the host
 * drops the error instead.
 *
 * Out of line, reached only by ICMP errors, and given nothing but ctx and ctr: the entry
 * point's stack stays as it was (the verifier's 512-byte limit covers the deepest call
 * chain, and session creation's already reaches it). in_encap_send is inlined here a second
 * time, the price of leaving the established inbound path without a call. */
static __noinline int icmp_error_in(struct xdp_md *ctx, struct aftr_counter_row *ctr,
				 int hairpinned)
{
	/* Found again from ctx: arguments the caller keeps live would cost it stack. */
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct iphdr *iph = data + sizeof(struct ethhdr);
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);
	__u32 ihl = iph->ihl * 4;
	struct icmphdr *ic = (void *)iph + (ihl & 0x3c);
	if ((void *)(ic + 1) > end)
		return DROP(DROP_INTERNAL);
	struct iphdr *q = (void *)(ic + 1);
	/* The quoted bytes within the IPv4 packet, not the frame (l4_parse checked that the
	 * ICMP header fits, so this does not wrap). */
	__u32 quoted = bpf_ntohs(iph->tot_len) - ihl - sizeof(*ic);

	if ((void *)(q + 1) > end || quoted < sizeof(*q))
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	__u32 qihl = q->ihl * 4;
	/* A whole IPv4 header and the 8 bytes after it (RFC 792), which hold the ports; a
	 * fragment past the first has no L4 header to find the session by. */
	if (q->version != 4 || qihl < sizeof(*q) || quoted < qihl + 8 ||
	    (q->frag_off & bpf_htons(IPV4_FRAG_OFFSET)))
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	/* We sent the quoted packet from a public address: the error must come back to it. */
	if (q->saddr != iph->daddr)
		return DROP(DROP_ICMP_ERROR_MALFORMED);
	__u8 *l4 = (__u8 *)q + (qihl & 0x3c);
	if ((void *)(l4 + 8) > end)
		return DROP(DROP_ICMP_ERROR_MALFORMED);

	__be16 *port = (__be16 *)l4; /* the quoted source port: our public port */
	__be16 peer_port = 0;
	__u16 *check = NULL;
	switch (q->protocol) {
	case IPPROTO_TCP:
		peer_port = ((__be16 *)l4)[1];
		/* The checksum is at offset 16: fixed if the router quoted that far. */
		if (quoted >= qihl + 18 && (void *)(l4 + 18) <= end)
			check = (__u16 *)(l4 + 16);
		break;
	case IPPROTO_UDP:
		peer_port = ((__be16 *)l4)[1];
		if (((__u16 *)l4)[3])
			check = (__u16 *)(l4 + 6); /* 0: sent without checksum, stays so */
		break;
	case IPPROTO_ICMP:
		/* Only echo requests go out (echo from the Internet is not translated). */
		if (l4[0] != ICMP_ECHO)
			return DROP(DROP_ICMP_ERROR_NO_SESSION);
		port = (__be16 *)(l4 + 4);
		check = (__u16 *)(l4 + 2);
		break;
	default:
		return DROP(DROP_ICMP_ERROR_NO_SESSION);
	}

	struct aftr_session_in_key ik = {
		.public_addr = q->saddr,
		.public_port = *port,
		.proto = q->protocol,
	};
	struct aftr_session_in *s = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	if (!s)
		return DROP(DROP_ICMP_ERROR_NO_SESSION);
	if (!in_filter_allows(&ik, s, q->daddr, peer_port))
		return DROP(DROP_FILTERED);
	if (iph->ttl <= 1)
		return DROP(DROP_TTL_EXPIRED);

	__be32 pub = q->saddr, inner = s->inner_addr;
	__be16 pub_port = *port, inner_port = s->inner_port;
	__u16 icmp_check = ic->checksum;
	if (check) {
		__u16 old = *check, c = old;
		if (q->protocol != IPPROTO_ICMP) /* TCP and UDP sum the pseudo header */
			c = csum_replace32(c, pub, inner);
		c = csum_replace16(c, pub_port, inner_port);
		if (c == 0 && q->protocol == IPPROTO_UDP)
			c = 0xffff;
		*check = c;
		icmp_check = csum_replace16(icmp_check, old, c);
	}
	*port = inner_port;
	icmp_check = csum_replace16(icmp_check, pub_port, inner_port);
	__u16 old_qcheck = q->check;
	q->check = csum_replace32(q->check, pub, inner);
	q->saddr = inner;
	icmp_check = csum_replace32(icmp_check, pub, inner);
	icmp_check = csum_replace16(icmp_check, old_qcheck, q->check);
	ic->checksum = icmp_check;

	/* The host must learn the smaller of the two paths: the IPv4 one beyond us that the
	 * router reports, and the softwire's (its MTU less the 40 bytes we push). */
	if (ic->type == ICMP_DEST_UNREACH && ic->code == ICMP_FRAG_NEEDED &&
	    bpf_ntohs(ic->un.echo.sequence) > aftr_cfg.softwire_mtu - sizeof(struct ipv6hdr)) {
		__be16 lowered = bpf_htons(aftr_cfg.softwire_mtu - sizeof(struct ipv6hdr));
		ic->checksum = csum_replace16(ic->checksum, ic->un.echo.sequence, lowered);
		ic->un.echo.sequence = lowered;
		stat_inc(ctr, AFTR_C_RELAYED_MTU_LOWERED);
	}
	iph->daddr = inner;
	iph->check = csum_replace32(iph->check, pub, inner);
	ipv4_dec_ttl(iph);
	stat_inc(ctr, AFTR_C_IN_ICMP_ERROR_TRANSLATED);
	/* hairpinned: about a hairpinned packet, back toward a B4 (redirected, see fib_send) */
	return in_encap_send(ctx, ctr, s, bpf_ntohs(iph->tot_len), clock_now(),
			     hairpinned);
}

#include "lib/hairpin.h"
#include "lib/icmp_error.h"
#include "lib/icmp6_error.h"

/* Internet → B4: translate the destination back, encapsulate, forward. */
static __always_inline int aftr_from_internet(struct xdp_md *ctx, struct aftr_counter_row *ctr,
					      struct ethhdr *eth, void *end)
{
	struct iphdr *iph = parse_ipv4(eth + 1, end);
	if (!iph)
		return DROP(DROP_MALFORMED_IPV4);
	if (!pool_contains(iph->daddr)) {
		stat_inc(ctr, AFTR_C_PASS_NOT_OURS);
		return XDP_PASS;
	}
	__u32 ihl = parse_ipv4_len(iph, end);
	if (!ihl)
		return DROP(DROP_MALFORMED_IPV4);
	if (iph->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return slow_path_queue(ctx, ctr, AFTR_SLOW_INET_FRAGMENT);

	struct l4_view v = {};
	int rc = l4_parse(iph, ihl, end, 0, &v);
	if (rc) {
		if (rc == L4_ICMP_ERROR)
			return icmp_error_in(ctx, ctr, AFTR_SAME_IF_TX);
		return rc;
	}

	struct aftr_session_in_key ik = {
		.public_addr = iph->daddr,
		.public_port = *v.port,
		.proto = iph->protocol,
	};
	struct aftr_session_in *s = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	if (!s)
		return DROP(DROP_NO_SESSION);
	/* A static or PCP mapping is a port forward: reachable from any peer (RFC 6887's MAP with
	 * endpoint-independent filtering) or from its FILTER peers, whatever the filtering of
	 * dynamic sessions. (in_filter_allows is the same rule, for icmp_error_in.) */
	if (s->tcp_flags & AFTR_SESSION_FILTERED) {
		/* TCP and UDP (pseudo): the source port is the field before the destination. */
		if (!pcp_filter_allows(&ik, iph->saddr, v.pseudo ? v.port[-1] : 0))
			return DROP(DROP_FILTERED);
	} else if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT &&
		   !(s->tcp_flags & AFTR_SESSION_FORWARD)) {
		struct aftr_filter_key fk = { .public_addr = iph->daddr,
					      .remote_addr = iph->saddr,
					      .public_port = *v.port,
					      .proto = iph->protocol };
		if (!bpf_map_lookup_elem(&aftr_filter_peers, &fk))
			return DROP(DROP_FILTERED);
	}
	if (iph->ttl <= 1)
		return icmp_error_gen(ctx, ctr, 0, ICMP_GEN_TIME_EXCEEDED);

	/* Past the tunnel's MTU (a cheap test first: most packets are far below it; a learned
	 * per-B4 MTU only while one is live, and never below 1280): an ICMP error or the slow
	 * path, about the packet as its source sent it. */
	__u32 len6 = bpf_ntohs(iph->tot_len) + sizeof(struct ipv6hdr);
	if (len6 > aftr_cfg.softwire_mtu || (s->fib.stamp && len6 > s->fib.mtu) ||
	    (len6 > AFTR_IPV6_MIN_MTU && aftr_b4_mtu_live_until_ns)) {
		rc = in_mtu_check(ctx, ctr, s);
		if (rc)
			return rc;
	}
	l4_rewrite(iph, &iph->daddr, s->inner_addr, &v, s->inner_port);
	if (v.tcp)
		tcp_clamp_mss(v.tcp, end, ctr);
	ipv4_dec_ttl(iph);
	stat_inc(ctr, AFTR_C_IN_TRANSLATED);
	/* The clock read late: kept across the calls above, it would cost the entry point stack. */
	__u64 now = clock_now();
	session_touch(&s->last_seen_ns, &s->tcp_flags, v.tcp_flags, now);
	return in_encap_send(ctx, ctr, s, bpf_ntohs(iph->tot_len), now, AFTR_SAME_IF_TX);
}

SEC("xdp")
int aftr_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct aftr_counters *all = stat_get();
	struct aftr_counter_row *ctr;
	int rc;

	if (!all)
		return XDP_ABORTED; /* cannot happen: a one-entry array always has its entry */

	/* The direction picks the counter row before the first count: one offset, no branch
	 * beyond the EtherType test the program makes anyway. */
	struct ethhdr *eth = parse_eth(data, end);
	if (!eth) {
		ctr = &all->dir[AFTR_DIR_OTHER];
		stat_inc(ctr, AFTR_C_RX_PACKETS);
		rc = DROP(DROP_MALFORMED_ETH);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ctr = &all->dir[AFTR_DIR_FROM_B4];
		stat_inc(ctr, AFTR_C_RX_PACKETS);
		rc = aftr_from_b4(ctx, ctr, eth, end);
	} else if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		ctr = &all->dir[AFTR_DIR_FROM_INTERNET];
		stat_inc(ctr, AFTR_C_RX_PACKETS);
		rc = aftr_from_internet(ctx, ctr, eth, end);
	} else {
		ctr = &all->dir[AFTR_DIR_OTHER];
		stat_inc(ctr, AFTR_C_RX_PACKETS);
		stat_inc(ctr, AFTR_C_PASS_NOT_OURS); /* ARP, VLANs, anything else */
		rc = XDP_PASS;
	}
	if (rc < 0) {
		stat_inc(ctr, -rc);
		return XDP_DROP;
	}
	return rc;
}

/* ---- aftr_ctl: run by aftrd through BPF_PROG_TEST_RUN ----
 * Every op is one program run: a daemon killed between two ops leaves the maps consistent
 * (no block both owned and free, no session without its count). aftrd serialises its runs,
 * so the races below are only with the data plane, each settled where it is written. */

static __always_inline struct aftr_subscriber *ctl_subscriber(const struct aftr_ctl_args *a)
{
	struct aftr_subscriber_key sk;

	__builtin_memcpy(sk.b4, a->b4, 16);
	return bpf_map_lookup_elem(&aftr_subscribers, &sk);
}

/* The slot of `sub` holding `value`, or -1. */
static __always_inline int ctl_find_slot(const struct aftr_subscriber *sub, __u16 value)
{
	__u32 n = sub->n_blocks;

	for (int i = 0; i < AFTR_MAX_BLOCKS_PER_SUB; i++) {
		if (i < n && sub->blocks[i] == value)
			return i;
	}
	return -1;
}

static __always_inline int ctl_same_b4(const __u8 *a, const __u8 *b)
{
	__u64 x[2], y[2];

	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return x[0] == y[0] && x[1] == y[1];
}

/* Lowers the session count by `count` (not below 0), or retires (ACTIVE with no session →
 * RETIRED). A CAS against XDP's increments in nat44_session_reserve. */
static __always_inline int ctl_sessions(struct aftr_subscriber *sub, __u32 op, __u32 count)
{
	for (int i = 0; i < NAT44_CAS_TRIES; i++) {
		__u64 old = sub->state_sessions, new;
		if (op == AFTR_CTL_RETIRE) {
			if (old != AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT)
				return 0; /* has sessions, or already retired */
			new = AFTR_SUB_RETIRED << AFTR_SUB_STATE_SHIFT;
		} else {
			__u32 live = (__u32)old;
			new = old - (live < count ? live : count);
		}
		if (__sync_val_compare_and_swap(&sub->state_sessions, old, new) == old)
			return 1;
	}
	return -EAGAIN;
}

static __always_inline void ctl_out_key(const struct aftr_ctl_args *a, struct aftr_session_out_key *k)
{
	__builtin_memcpy(k->b4, a->b4, 16);
	k->inner_addr = a->inner_addr;
	k->inner_port = a->inner_port;
	k->proto = a->proto;
	k->pad = 0;
}

/* Race with XDP: a packet of the flow between the two deletes finds one entry or the
 * other and is translated or dropped as for any expired session; a new packet after both
 * makes a new session. The subscriber-side entry is deleted first and decides who owns the
 * deletion (and the count): of two deleters only one sees it succeed. */
static __always_inline int ctl_session_delete(struct aftr_ctl_args *a)
{
	struct aftr_session_out_key ok;

	ctl_out_key(a, &ok);
	struct aftr_session_out *out = bpf_map_lookup_elem(&aftr_sessions_out, &ok);
	if (!out)
		return -ENOENT;
	if ((a->ctl_flags & AFTR_CTL_F_DYNAMIC_ONLY) && (out->flags & AFTR_SESSION_HELD))
		return -EPERM;
	if (a->public_port &&
	    (out->public_port != a->public_port || (a->public_addr && out->public_addr != a->public_addr)))
		return -ESRCH;
	struct aftr_session_in_key ik = {
		.public_addr = out->public_addr,
		.public_port = out->public_port,
		.proto = a->proto,
	};
	__u64 out_seen = out->last_seen_ns;
	struct aftr_session_in *in = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	int twin = in && ctl_same_b4(in->b4, a->b4) && in->inner_addr == a->inner_addr &&
		   in->inner_port == a->inner_port;
	/* The sweeper decided from a snapshot: traffic since then keeps the session. */
	if (a->last_seen_ns && (out_seen > a->last_seen_ns || (twin && in->last_seen_ns > a->last_seen_ns)))
		return -EBUSY;
	if (bpf_map_delete_elem(&aftr_sessions_out, &ok))
		return -ENOENT;
	if (twin)
		bpf_map_delete_elem(&aftr_sessions_in, &ik);
	struct aftr_subscriber *sub = ctl_subscriber(a);
	if (sub)
		ctl_sessions(sub, AFTR_CTL_SESSIONS_SUB, 1);
	return 1;
}

/* Race with XDP: nat44_pick_step reads a slot, then inserts a session on a port of its
 * block. After the slot changes no new reader uses the block; a reader that read it just
 * before may still insert one. BLOCK_MARK_RELEASING is therefore followed, in aftrd, by a
 * wait for every running XDP program to end before the block's sessions are collected, and
 * only then by BLOCK_RELEASE (control/nat/block_release.cc). */
static __always_inline int ctl_block_slot(struct aftr_ctl_args *a)
{
	struct aftr_subscriber *sub = ctl_subscriber(a);
	__u16 block = a->block & (AFTR_BLOCK_SLOT_RELEASING - 1);
	__u16 releasing = block | AFTR_BLOCK_SLOT_RELEASING;

	if (!sub || a->block >= AFTR_MAX_BLOCKS_PER_ADDR)
		return -ENOENT;
	for (int i = 0; i < NAT44_CAS_TRIES; i++) {
		int slot = ctl_find_slot(sub, block);
		if (slot < 0)
			slot = ctl_find_slot(sub, releasing);
		if (slot < 0)
			return -ENOENT;
		if (a->op == AFTR_CTL_BLOCK_MARK_RELEASING) {
			if (sub->blocks[slot & (AFTR_MAX_BLOCKS_PER_SUB - 1)] == releasing ||
			    blk_slot_cas(sub, slot, block, releasing))
				return 1;
			continue;
		}
		__u16 cur = sub->blocks[slot & (AFTR_MAX_BLOCKS_PER_SUB - 1)];
		if (!blk_slot_cas(sub, slot, cur, AFTR_BLOCK_SLOT_FREE))
			continue;
		struct aftr_pool_addr *pa = blk_pool_addr(sub->addr_index);
		if (pa)
			blk_free(pa, block);
		return 1;
	}
	return -EAGAIN;
}

/* Race with XDP: nat44_subscriber_create inserts with BPF_NOEXIST too; the loser gives its
 * block back. */
static __always_inline int ctl_subscriber_create(struct aftr_ctl_args *a)
{
	struct aftr_pool_addr *pa = blk_pool_addr(a->addr_index);

	if (!pa || !pa->addr || a->addr_index >= aftr_cfg.pool_addr_count ||
	    a->block >= aftr_cfg.blocks_per_addr || a->block >= AFTR_MAX_BLOCKS_PER_ADDR)
		return -EINVAL;
	if (pa->flags & AFTR_POOL_ADDR_DRAINING)
		return -EADDRNOTAVAIL;
	if (ctl_subscriber(a))
		return -EEXIST;
	if (!blk_take(pa, a->block))
		return -EBUSY;
	struct aftr_subscriber sub = {
		.state_sessions = AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT,
		.created_ns = a->last_seen_ns, /* aftrd's CLOCK_MONOTONIC_COARSE: syscall programs
					       * may not read the coarse clock (kernel 6.18) */
		.public_addr = pa->addr,
		.addr_index = a->addr_index,
		.n_blocks = 1,
	};
	for (int i = 0; i < AFTR_MAX_BLOCKS_PER_SUB; i++)
		sub.blocks[i] = AFTR_BLOCK_SLOT_EMPTY;
	sub.blocks[0] = a->block;
	struct aftr_subscriber_key sk;
	__builtin_memcpy(sk.b4, a->b4, 16);
	long err = bpf_map_update_elem(&aftr_subscribers, &sk, &sub, BPF_NOEXIST);
	if (err) {
		blk_free(pa, a->block);
		return err;
	}
	return 1;
}

/* As nat44_add_block, with the block chosen by aftrd: the same CAS on a FREE slot or on
 * n_blocks settles a race with XDP adding a block at the same time. */
static __always_inline int ctl_block_add(struct aftr_ctl_args *a)
{
	struct aftr_subscriber *sub = ctl_subscriber(a);

	if (!sub)
		return -ENOENT;
	if ((sub->state_sessions >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE)
		return -ESTALE;
	if (a->block >= aftr_cfg.blocks_per_addr || a->block >= AFTR_MAX_BLOCKS_PER_ADDR)
		return -EINVAL;
	struct aftr_pool_addr *pa = blk_pool_addr(sub->addr_index);
	if (!pa)
		return -EINVAL;
	if (pa->flags & AFTR_POOL_ADDR_DRAINING)
		return -EADDRNOTAVAIL;
	int hole = ctl_find_slot(sub, AFTR_BLOCK_SLOT_FREE);
	__u32 n = sub->n_blocks;
	if (hole < 0 && (n >= aftr_cfg.max_blocks_per_sub || n >= AFTR_MAX_BLOCKS_PER_SUB))
		return -ENOSPC;
	if (!blk_take(pa, a->block))
		return -EBUSY;
	if (hole >= 0) {
		if (blk_slot_cas(sub, hole, AFTR_BLOCK_SLOT_FREE, a->block))
			return hole;
	} else if (__sync_val_compare_and_swap(&sub->n_blocks, n, n + 1) == n) {
		sub->blocks[n & (AFTR_MAX_BLOCKS_PER_SUB - 1)] = a->block;
		return n;
	}
	blk_free(pa, a->block);
	return -EAGAIN;
}

/* Race with XDP: both entries are inserted with BPF_NOEXIST, Internet side first, exactly
 * as nat44_session_create does, so a port or a flow is never given twice. */
static __always_inline int ctl_session_create(struct aftr_ctl_args *a)
{
	struct aftr_subscriber *sub = ctl_subscriber(a);
	__u32 port = bpf_ntohs(a->public_port);

	if (!sub)
		return -ENOENT;
	if (a->public_addr != sub->public_addr || port < aftr_cfg.port_min || !aftr_cfg.block_size)
		return -ENXIO;
	__u32 block = (port - aftr_cfg.port_min) / aftr_cfg.block_size;
	if (block >= aftr_cfg.blocks_per_addr || ctl_find_slot(sub, block) < 0)
		return -ENXIO;
	int reserved = 0;
	for (int i = 0; i < NAT44_CAS_TRIES && !reserved; i++) {
		__u64 old = sub->state_sessions;
		if ((old >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE)
			return -ESTALE;
		if ((__u32)old >= aftr_cfg.max_sessions_per_sub)
			return -EDQUOT;
		reserved = __sync_val_compare_and_swap(&sub->state_sessions, old, old + 1) == old;
	}
	if (!reserved)
		return -EAGAIN;

	__u64 now = a->last_seen_ns; /* given by aftrd, as for SUBSCRIBER_CREATE */
	struct aftr_session_in_key ik = {
		.public_addr = a->public_addr,
		.public_port = a->public_port,
		.proto = a->proto,
	};
	struct aftr_session_in iv = {
		.inner_addr = a->inner_addr,
		.inner_port = a->inner_port,
		.softwire_index = a->softwire_index < aftr_cfg.softwire_addr_count ? a->softwire_index : 0,
		.tcp_flags = a->flags & AFTR_SESSION_FLAG_MASK,
		.last_seen_ns = now,
	};
	__builtin_memcpy(iv.b4, a->b4, 16);
	long err = bpf_map_update_elem(&aftr_sessions_in, &ik, &iv, BPF_NOEXIST);
	if (err) {
		ctl_sessions(sub, AFTR_CTL_SESSIONS_SUB, 1);
		return err == -EEXIST ? -EADDRINUSE : err;
	}
	struct aftr_session_out_key ok;
	ctl_out_key(a, &ok);
	struct aftr_session_out ov = {
		.public_addr = a->public_addr,
		.public_port = a->public_port,
		.flags = a->flags & AFTR_SESSION_FLAG_MASK,
		.last_seen_ns = now,
	};
	err = bpf_map_update_elem(&aftr_sessions_out, &ok, &ov, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&aftr_sessions_in, &ik);
		ctl_sessions(sub, AFTR_CTL_SESSIONS_SUB, 1);
		return err;
	}
	return 1;
}

/* Race with XDP: the data plane rewrites last_seen and TCP flags in place without atomics,
 * so OR-ing a bit into the same bytes could be undone by its store. Each entry is replaced
 * whole instead (BPF_EXIST): XDP's update of the old copy in that instant is lost, which
 * costs a fraction of a second of last_seen; the flag cannot be lost. */
static __always_inline int ctl_session_flags(struct aftr_ctl_args *a)
{
	struct aftr_session_out_key ok;

	ctl_out_key(a, &ok);
	struct aftr_session_out *out = bpf_map_lookup_elem(&aftr_sessions_out, &ok);
	if (!out)
		return -ENOENT;
	__u8 set = a->ctl_flags & AFTR_CTL_F_CLEAR ? 0 : a->flags & AFTR_SESSION_FLAG_MASK;
	__u8 keep = a->ctl_flags & AFTR_CTL_F_CLEAR ? ~a->flags : 0xff;
	struct aftr_session_out ov = *out;
	ov.flags = (ov.flags & keep) | set;
	struct aftr_session_in_key ik = {
		.public_addr = ov.public_addr,
		.public_port = ov.public_port,
		.proto = a->proto,
	};
	struct aftr_session_in *in = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	if (in && ctl_same_b4(in->b4, a->b4) && in->inner_addr == a->inner_addr &&
	    in->inner_port == a->inner_port) {
		struct aftr_session_in iv = *in;
		iv.tcp_flags = (iv.tcp_flags & (keep | AFTR_TCP_SEEN_MASK)) | set;
		bpf_map_update_elem(&aftr_sessions_in, &ik, &iv, BPF_EXIST);
	}
	if (bpf_map_update_elem(&aftr_sessions_out, &ok, &ov, BPF_EXIST))
		return -ENOENT;
	return 1;
}

SEC("syscall")
int aftr_ctl(struct aftr_ctl_args *args)
{
	struct aftr_subscriber *sub;
	struct aftr_pool_addr *pa;

	switch (args->op) {
	case AFTR_CTL_SESSIONS_SUB:
	case AFTR_CTL_RETIRE:
		sub = ctl_subscriber(args);
		if (!sub)
			return -ENOENT;
		return ctl_sessions(sub, args->op, args->count);
	case AFTR_CTL_BLOCK_FREE:
	case AFTR_CTL_BLOCK_TAKE:
		pa = blk_pool_addr(args->addr_index);
		if (!pa || args->block >= AFTR_MAX_BLOCKS_PER_ADDR)
			return -EINVAL;
		if (args->op == AFTR_CTL_BLOCK_FREE) {
			blk_free(pa, args->block);
			return 1;
		}
		return blk_take(pa, args->block);
	case AFTR_CTL_POOL_FLAGS:
		pa = blk_pool_addr(args->addr_index);
		if (!pa)
			return -EINVAL;
		pa->flags = args->count; /* one 32-bit store; XDP reads it before each claim */
		return 1;
	case AFTR_CTL_SESSION_DELETE:
		return ctl_session_delete(args);
	case AFTR_CTL_BLOCK_RELEASE:
	case AFTR_CTL_BLOCK_MARK_RELEASING:
		return ctl_block_slot(args);
	case AFTR_CTL_SUBSCRIBER_CREATE:
		return ctl_subscriber_create(args);
	case AFTR_CTL_BLOCK_ADD:
		return ctl_block_add(args);
	case AFTR_CTL_SESSION_CREATE:
		return ctl_session_create(args);
	case AFTR_CTL_SESSION_FLAGS:
		return ctl_session_flags(args);
	case AFTR_CTL_DET_SUBSCRIBER_CREATE: {
		struct aftr_session_out_key k;
		ctl_out_key(args, &k);
		return det_subscriber_create(&k, args->last_seen_ns);
	}
	}
	return -EINVAL;
}
