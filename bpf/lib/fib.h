/* Next hop by the kernel's FIB (bpf_fib_lookup), then XDP_TX or a redirect. When the
 * neighbour is not resolved yet the frame goes to the kernel (XDP_PASS), which forwards it
 * and resolves the neighbour for the next packets, as xdp-forward does. */
#ifndef AFTR_FIB_H
#define AFTR_FIB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "lib/stats.h"
#include "lib/slow_path.h"

#define AF_INET 2
#define AF_INET6 10

/* Returns BPF_FIB_LKUP_RET_* so the caller can finish its rewrite only on success. */
static __always_inline int fib_lookup(struct xdp_md *ctx, struct bpf_fib_lookup *p)
{
	p->ifindex = ctx->ingress_ifindex;
	if (slow_path_run(ctx))
		p->tot_len = 0; /* no MTU check: aftrd fragments what the slow path sends */
	return bpf_fib_lookup(ctx, p, sizeof(*p), 0);
}

/* Out of the ingress interface: XDP_TX, or a redirect when `redirect_back` (a constant at
 * each call site). A hairpinned packet asks for the redirect: on a veth whose peer runs no
 * XDP program, XDP_TX frames are never delivered (veth wakes only an XDP peer for them),
 * and hairpinning is rare enough that the redirect's cost does not matter. */
#define AFTR_SAME_IF_TX 0
#define AFTR_SAME_IF_REDIRECT 1

/* Completes a successful lookup: MACs, then out of the right interface. */
static __always_inline int fib_send(struct xdp_md *ctx, struct ethhdr *eth,
				    const struct bpf_fib_lookup *p, struct aftr_counter_row *ctr,
				    int redirect_back)
{
	__builtin_memcpy(eth->h_dest, p->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p->smac, ETH_ALEN);
	if (slow_path_run(ctx))
		slow_path_note(ctx, p->ifindex, p->mtu_result);
	if (p->ifindex == ctx->ingress_ifindex && !redirect_back) {
		stat_inc(ctr, AFTR_C_TX_SAME_IF);
		return XDP_TX;
	}
	stat_inc(ctr, AFTR_C_TX_REDIRECT);
	return bpf_redirect(p->ifindex, 0);
}

extern const volatile struct aftr_dp_config aftr_cfg;

/* The egress MAC of a cached next hop, or NULL when the session must ask the FIB again
 * (never looked up, older than fib_cache_ticks, or caching off). */
static __always_inline struct aftr_if_mac *fib_cache_hit(const struct aftr_fib_cache *c, __u32 now_tick)
{
	__u32 ifindex = c->ifindex;

	/* stamp was stored as now_tick | 1: compare like with like, or a packet in the same
	 * tick as an even stamp computes an age of 2^32 - 1 and misses. */
	if (!aftr_cfg.fib_cache_ticks || !c->stamp ||
	    (now_tick | 1) - c->stamp >= aftr_cfg.fib_cache_ticks)
		return NULL;
	struct aftr_if_mac *m = bpf_map_lookup_elem(&aftr_if_macs, &ifindex);
	return m && m->valid ? m : NULL;
}

static __always_inline int fib_cache_send(struct xdp_md *ctx, struct ethhdr *eth,
					  const struct aftr_fib_cache *c,
					  const struct aftr_if_mac *smac, struct aftr_counter_row *ctr,
					  int redirect_back)
{
	/* Skipping bpf_fib_lookup skips its MTU check too: compare with the MTU it reported
	 * (route or device) when the next hop was cached; cheaper than bpf_check_mtu. */
	__u32 l3_len = ctx->data_end - ctx->data - sizeof(*eth);
	if (slow_path_run(ctx))
		slow_path_note(ctx, c->ifindex, c->mtu); /* aftrd fragments: no MTU check */
	else if (l3_len > c->mtu)
		return DROP(DROP_TOO_BIG);
	__builtin_memcpy(eth->h_dest, c->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac->mac, ETH_ALEN);
	stat_inc(ctr, AFTR_C_FIB_CACHE_HIT);
	if (c->ifindex == ctx->ingress_ifindex && !redirect_back) {
		stat_inc(ctr, AFTR_C_TX_SAME_IF);
		return XDP_TX;
	}
	stat_inc(ctr, AFTR_C_TX_REDIRECT);
	return bpf_redirect(c->ifindex, 0);
}

/* Remembers a successful lookup for the session (and the interface's MAC). */
static __always_inline void fib_cache_store(struct aftr_fib_cache *c, const struct bpf_fib_lookup *p,
					    __u32 now_tick)
{
	__u32 ifindex = p->ifindex;
	struct aftr_if_mac *m;

	if (!aftr_cfg.fib_cache_ticks || ifindex >= AFTR_MAX_IFINDEX)
		return;
	m = bpf_map_lookup_elem(&aftr_if_macs, &ifindex);
	if (!m)
		return;
	__builtin_memcpy(m->mac, p->smac, ETH_ALEN);
	m->valid = 1;
	c->ifindex = ifindex;
	c->mtu = p->mtu_result; /* set by a successful lookup (it shares tot_len's place) */
	__builtin_memcpy(c->dmac, p->dmac, ETH_ALEN);
	c->stamp = now_tick | 1; /* never 0, which means "not looked up" */
}

/* What a failed lookup (`p`) means for the packet. */
static __always_inline int fib_failure(struct xdp_md *ctx, int rc, const struct bpf_fib_lookup *p,
				       struct aftr_counter_row *ctr)
{
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (slow_path_run(ctx))
			slow_path_note_via_kernel(ctx, p->ifindex);
		stat_inc(ctr, AFTR_C_PASS_NO_NEIGH);
		return XDP_PASS;
	}
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		return DROP(DROP_TOO_BIG);
	return DROP(DROP_FIB_FAILED);
}

#endif
