/* The fragment slow path (RFC 6333 section 6.3): frames XDP cannot translate alone are copied
 * to aftrd through the aftr_slow_path ring (slow_path_queue); aftrd reassembles and runs
 * aftr_xdp on the whole datagram, marking the run with struct aftr_slow_meta in the XDP
 * metadata. In such a run the program skips its MTU checks and writes the egress interface
 * and MTU into the metadata (slow_path_note), and aftrd fragments what it sends. */
#ifndef AFTR_SLOW_PATH_H
#define AFTR_SLOW_PATH_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/b4_mtu.h"
#include "lib/clock.h"

extern const volatile struct aftr_dp_config aftr_cfg;

/* Whether this run is aftrd's slow-path run: metadata holding the magic. A received frame
 * has no metadata (data_meta == data), so the fast path pays one compare. */
static __always_inline int slow_path_run(struct xdp_md *ctx)
{
	struct aftr_slow_meta *m = (void *)(long)ctx->data_meta;

	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 0;
	return m->magic == AFTR_SLOW_META_MAGIC;
}

/* In a slow-path run (callers have checked slow_path_run), reports where the frame goes; out
 * of line so that the session-creation chain (at the verifier's stack limit) gains no locals.
 * The bounds are checked again for the verifier, which does not carry them across the call. */
static __noinline int slow_path_note(struct xdp_md *ctx, __u32 ifindex, __u32 mtu)
{
	struct aftr_slow_meta *m = (void *)(long)ctx->data_meta;
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(m + 1) > (void *)eth || (void *)(eth + 1) > (void *)(long)ctx->data_end)
		return 0;
	/* Toward a B4 (our encapsulation) the tunnel carries softwire_mtu at most, whatever the
	 * IPv6 route says, and less when a Packet Too Big taught us less (lib/b4_mtu.h). */
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if (mtu > aftr_cfg.softwire_mtu)
			mtu = aftr_cfg.softwire_mtu;
		if ((void *)(ip6 + 1) <= (void *)(long)ctx->data_end) {
			__u32 learned = b4_mtu_live(&ip6->daddr, clock_now());
			if (learned && learned < mtu)
				mtu = learned;
		}
	}
	m->egress_ifindex = ifindex;
	m->mtu = mtu;
	return 1;
}

/* In a slow-path run whose next hop has no resolved neighbour (the program passes the frame
 * for the kernel to forward, as in the fast path): aftrd is to hand it to the kernel's IP
 * stack, out of `ifindex`, within that device's MTU (the tunnel's at most toward a B4). */
static __noinline int slow_path_note_via_kernel(struct xdp_md *ctx, __u32 ifindex)
{
	__u32 mtu = 0;

	if (bpf_check_mtu(ctx, ifindex, &mtu, 0, 0) < 0)
		mtu = 0; /* no such device: aftrd counts it not forwarded */
	slow_path_note(ctx, ifindex, mtu);

	struct aftr_slow_meta *m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 0;
	m->flags |= AFTR_SLOW_META_VIA_KERNEL;
	return 1;
}

/* Copies the whole frame with a record header into aftr_slow_path and drops it here:
 * aftrd takes it from there. `kind` is an enum aftr_slow_kind. A slow-path run never queues
 * again (what aftrd hands back is whole; a fragment then would loop): DROP_FRAGMENT. */
static __noinline int slow_path_queue(struct xdp_md *ctx, struct aftr_counter_row *ctr, __u32 kind)
{
	__u32 zero = 0;

	if (!ctr)
		return DROP(DROP_INTERNAL);
	if (slow_path_run(ctx))
		return DROP(DROP_FRAGMENT);
	struct aftr_slow_scratch *s = bpf_map_lookup_elem(&aftr_slow_scratch, &zero);
	if (!s)
		return DROP(DROP_INTERNAL);
	__u32 len = ctx->data_end - ctx->data;
	if (len > AFTR_SLOW_MAX_FRAME)
		return DROP(DROP_SLOW_PATH_TOO_BIG);
	if (len < 14)
		return DROP(DROP_INTERNAL);
	s->hdr.frame_len = len;
	s->hdr.ifindex = ctx->ingress_ifindex;
	s->hdr.kind = kind;
	s->hdr.pad = 0;
	if (bpf_xdp_load_bytes(ctx, 0, s->frame, len))
		return DROP(DROP_INTERNAL);
	__u64 record = (__u64)(len & 0x3fff) + sizeof(s->hdr); /* the mask, a no-op, bounds it */
	if (bpf_ringbuf_output(&aftr_slow_path, s, record, 0))
		return DROP(DROP_SLOW_PATH_FULL);
	stat_inc(ctr, AFTR_C_SLOW_PATH_QUEUED);
	return XDP_DROP;
}

#endif
