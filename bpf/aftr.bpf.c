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

/* The translatable part of a packet: where its port (or ICMP echo id) and L4 checksum are. */
struct l4_view {
	__be16 *port;     /* source port outbound, destination port inbound */
	__u16 *check;     /* NULL for a UDP datagram without checksum */
	struct tcphdr *tcp; /* set for TCP */
	__u8 tcp_flags;   /* AFTR_TCP_SEEN_* */
	__u8 pseudo;      /* checksum covers the IPv4 pseudo header (TCP, UDP) */
};

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
		/* Echo is translated by its identifier (RFC 5508 section 3.1); errors are not yet. */
		if (ic->type != (outbound ? ICMP_ECHO : ICMP_ECHOREPLY))
			return DROP(DROP_UNSUPPORTED_ICMP);
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
static __always_inline void tcp_clamp_mss(struct tcphdr *th, void *end, struct aftr_counters *ctr)
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

/* TTL - 1 with the header checksum fixed. */
static __always_inline void ipv4_dec_ttl(struct iphdr *iph)
{
	__u16 *word = (__u16 *)&iph->ttl; /* TTL and protocol share one checksum word */
	__u16 old = *word;

	iph->ttl--;
	iph->check = csum_replace16(iph->check, old, *word);
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

/* B4 → Internet: decapsulate, translate the source, forward. */
static __always_inline int aftr_from_b4(struct xdp_md *ctx, struct aftr_counters *ctr,
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
		if (fh->nexthdr == IPPROTO_IPIP)
			return DROP(DROP_FRAGMENT);
	}
	if (next != IPPROTO_IPIP) {
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
		return DROP(DROP_FRAGMENT);
	if (iph->ttl <= 1)
		return DROP(DROP_TTL_EXPIRED);

	struct l4_view v = {};
	int rc = l4_parse(iph, ihl, end, 1, &v);
	if (rc)
		return rc;

	struct nat44_flow f = {};
	__builtin_memcpy(f.key.b4, &ip6->saddr, 16);
	f.key.inner_addr = iph->saddr;
	f.key.inner_port = *v.port;
	f.key.proto = iph->protocol;
	f.remote_addr = iph->daddr;
	f.softwire_index = sw;
	f.tcp_flags = v.tcp_flags;

	__u64 now = bpf_ktime_get_coarse_ns();
	struct aftr_session_out *s = bpf_map_lookup_elem(&aftr_sessions_out, &f.key);
	if (s) {
		session_touch(&s->last_seen_ns, &s->tcp_flags, v.tcp_flags, now);
	} else {
		rc = nat44_session_create(&f, now);
		if (rc)
			return rc;
		s = bpf_map_lookup_elem(&aftr_sessions_out, &f.key);
		if (!s)
			return DROP(DROP_INTERNAL);
	}
	if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT) {
		struct aftr_filter_key fk = { .public_addr = s->public_addr,
					      .remote_addr = iph->daddr,
					      .public_port = s->public_port,
					      .proto = iph->protocol };
		if (!bpf_map_lookup_elem(&aftr_filter_peers, &fk))
			bpf_map_update_elem(&aftr_filter_peers, &fk, &now, BPF_ANY);
	}

	l4_rewrite(iph, &iph->saddr, s->public_addr, &v, s->public_port);
	if (v.tcp)
		tcp_clamp_mss(v.tcp, end, ctr);
	stat_inc(ctr, AFTR_C_OUT_TRANSLATED);

	rc = sw_decap(ctx, outer);
	if (rc)
		return rc;
	void *data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > end)
		return DROP(DROP_INTERNAL);

	__u32 now_tick = now >> AFTR_FIB_TICK_SHIFT;
	struct aftr_if_mac *smac = fib_cache_hit(&s->fib, now_tick);
	if (smac) {
		ipv4_dec_ttl(iph);
		return fib_cache_send(ctx, eth, &s->fib, smac, ctr);
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
		return fib_failure(rc, ctr); /* on NO_NEIGH the kernel forwards, TTL and all */
	fib_cache_store(&s->fib, &p, now_tick);
	ipv4_dec_ttl(iph);
	return fib_send(ctx, eth, &p, ctr);
}

/* Internet → B4: translate the destination back, encapsulate, forward. */
static __always_inline int aftr_from_internet(struct xdp_md *ctx, struct aftr_counters *ctr,
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
		return DROP(DROP_FRAGMENT);

	struct l4_view v = {};
	int rc = l4_parse(iph, ihl, end, 0, &v);
	if (rc)
		return rc;

	struct aftr_session_in_key ik = {
		.public_addr = iph->daddr,
		.public_port = *v.port,
		.proto = iph->protocol,
	};
	struct aftr_session_in *s = bpf_map_lookup_elem(&aftr_sessions_in, &ik);
	if (!s)
		return DROP(DROP_NO_SESSION);
	if (aftr_cfg.filtering == AFTR_FILTER_ADDRESS_DEPENDENT) {
		struct aftr_filter_key fk = { .public_addr = iph->daddr,
					      .remote_addr = iph->saddr,
					      .public_port = *v.port,
					      .proto = iph->protocol };
		if (!bpf_map_lookup_elem(&aftr_filter_peers, &fk))
			return DROP(DROP_FILTERED);
	}
	if (iph->ttl <= 1)
		return DROP(DROP_TTL_EXPIRED);

	__u64 now = bpf_ktime_get_coarse_ns();
	session_touch(&s->last_seen_ns, &s->tcp_flags, v.tcp_flags, now);
	l4_rewrite(iph, &iph->daddr, s->inner_addr, &v, s->inner_port);
	if (v.tcp)
		tcp_clamp_mss(v.tcp, end, ctr);
	ipv4_dec_ttl(iph);
	stat_inc(ctr, AFTR_C_IN_TRANSLATED);

	__u16 inner_len = bpf_ntohs(iph->tot_len);
	rc = sw_encap(ctx, s->b4, s->softwire_index, inner_len);
	if (rc)
		return rc;
	void *data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > end)
		return DROP(DROP_INTERNAL);

	__u32 now_tick = now >> AFTR_FIB_TICK_SHIFT;
	struct aftr_if_mac *smac = fib_cache_hit(&s->fib, now_tick);
	if (smac)
		return fib_cache_send(ctx, eth, &s->fib, smac, ctr);
	struct bpf_fib_lookup p = {
		.family = AF_INET6,
		.l4_protocol = IPPROTO_IPIP,
		.tot_len = sizeof(*ip6) + inner_len,
	};
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	rc = fib_lookup(ctx, &p);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return fib_failure(rc, ctr);
	fib_cache_store(&s->fib, &p, now_tick);
	return fib_send(ctx, eth, &p, ctr);
}

SEC("xdp")
int aftr_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct aftr_counters *ctr = stat_get();
	int rc;

	if (!ctr)
		return XDP_ABORTED; /* cannot happen: a one-entry array always has its entry */
	stat_inc(ctr, AFTR_C_RX_PACKETS);

	struct ethhdr *eth = parse_eth(data, end);
	if (!eth) {
		rc = DROP(DROP_MALFORMED_ETH);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		rc = aftr_from_b4(ctx, ctr, eth, end);
	} else if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		rc = aftr_from_internet(ctx, ctr, eth, end);
	} else {
		stat_inc(ctr, AFTR_C_PASS_NOT_OURS); /* ARP, VLANs, anything else */
		rc = XDP_PASS;
	}
	if (rc < 0) {
		stat_inc(ctr, -rc);
		return XDP_DROP;
	}
	return rc;
}

/* ---- aftr_ctl: run by aftrd through BPF_PROG_TEST_RUN ---- */

SEC("syscall")
int aftr_ctl(struct aftr_ctl_args *args)
{
	struct aftr_subscriber_key sk;
	struct aftr_subscriber *sub;
	struct aftr_pool_addr *pa;
	__u64 bit;

	switch (args->op) {
	case AFTR_CTL_SESSIONS_SUB:
	case AFTR_CTL_RETIRE:
		__builtin_memcpy(sk.b4, args->b4, 16);
		sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
		if (!sub)
			return -ENOENT;
		for (int i = 0; i < NAT44_CAS_TRIES; i++) {
			__u64 old = sub->state_sessions, new;
			if (args->op == AFTR_CTL_RETIRE) {
				if (old != AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT)
					return 0; /* has sessions, or already retired */
				new = AFTR_SUB_RETIRED << AFTR_SUB_STATE_SHIFT;
			} else {
				__u32 live = (__u32)old;
				new = old - (live < args->count ? live : args->count);
			}
			if (__sync_val_compare_and_swap(&sub->state_sessions, old, new) == old)
				return 1;
		}
		return -EAGAIN;
	case AFTR_CTL_BLOCK_FREE:
	case AFTR_CTL_BLOCK_TAKE:
		pa = blk_pool_addr(args->addr_index);
		if (!pa || args->block >= AFTR_MAX_BLOCKS_PER_ADDR)
			return -EINVAL;
		bit = 1ull << (args->block % 64);
		if (args->op == AFTR_CTL_BLOCK_FREE) {
			__sync_fetch_and_and(&pa->used[(args->block / 64) % AFTR_BLOCK_WORDS], ~bit);
			return 1;
		}
		return !(__sync_fetch_and_or(&pa->used[(args->block / 64) % AFTR_BLOCK_WORDS], bit) & bit);
	}
	return -EINVAL;
}
