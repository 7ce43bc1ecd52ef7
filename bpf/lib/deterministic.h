/* Deterministic NAT (RFC 7422 style): a new B4 inside a configured range (aftr_cfg.det)
 * becomes a subscriber whose public address and port blocks follow from its prefix. Nothing
 * comes from the pool (the range's addresses are in no aftr_pool_addrs entry, so no dynamic
 * subscriber ever gets them) and no block event is emitted: the configuration is the log.
 * Ports are then picked in its blocks exactly as in a dynamic subscriber's. */
#ifndef AFTR_DETERMINISTIC_H
#define AFTR_DETERMINISTIC_H

#include <linux/errno.h>
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/events.h"

extern const volatile struct aftr_dp_config aftr_cfg;

/* Fills `sub` for the B4 address (hi, lo: host order) if a range holds it; 0 if none does.
 * The arithmetic is control/nat/deterministic.cc's: keep them in step. */
static __always_inline int det_compute(__u64 hi, __u64 lo, struct aftr_subscriber *sub)
{
	for (__u32 i = 0; i < AFTR_MAX_DET_RANGES; i++) {
		if (i >= aftr_cfg.det_count)
			break;
		const volatile struct aftr_det_range *r = &aftr_cfg.det[i];
		if ((hi & r->mask_hi) != r->prefix_hi || (lo & r->mask_lo) != r->prefix_lo)
			continue;
		__u32 s = r->shift & 127;
		__u64 v;
		if (s >= 64)
			v = hi >> (s - 64);
		else if (s == 0)
			v = lo;
		else
			v = (lo >> s) | (hi << (64 - s));
		__u32 index = (__u32)v & r->index_mask;
		__u32 per = r->per_addr;
		__u32 k = r->blocks_per_sub;
		if (per == 0 || k == 0 || k > AFTR_MAX_BLOCKS_PER_SUB)
			return 0; /* aftrd never writes these: treat as no range */
		__u32 first = (index % per) * k;
		sub->public_addr = bpf_htonl(r->pool_base + index / per);
		sub->addr_index = AFTR_ADDR_INDEX_DETERMINISTIC;
		sub->n_blocks = k;
		for (__u32 j = 0; j < AFTR_MAX_BLOCKS_PER_SUB; j++)
			sub->blocks[j] = j < k ? first + j : AFTR_BLOCK_SLOT_EMPTY;
		return 1;
	}
	return 0;
}

/* Makes the subscriber of key->b4 if a deterministic range holds it. Returns 1 when no range
 * does (the caller goes on with the pool), 0 when the subscriber exists afterwards (ours or
 * a racing CPU's), or a drop. Out of line with its own small frame: session creation's call
 * chain is at the verifier's 512-byte stack limit. Also run by aftr_ctl (aftrd's static
 * and PCP mappings for a B4 that has sent nothing yet). */
__noinline int det_subscriber_create(const struct aftr_session_out_key *key, __u64 now)
{
	struct aftr_counter_row *ctr = stat_row(AFTR_DIR_FROM_B4);
	struct aftr_subscriber sub = {};
	struct aftr_subscriber_key sk;
	__u64 w[2];

	if (!key || !ctr)
		return DROP(DROP_INTERNAL);
	if (aftr_cfg.det_count == 0)
		return 1;
	__builtin_memcpy(w, key->b4, 16);
	if (!det_compute(__builtin_bswap64(w[0]), __builtin_bswap64(w[1]), &sub))
		return 1;
	sub.state_sessions = AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT;
	sub.created_ns = now;
	__builtin_memcpy(sk.b4, key->b4, 16);
	long err = bpf_map_update_elem(&aftr_subscribers, &sk, &sub, BPF_NOEXIST);
	if (err == -EEXIST) {
		stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
		return 0;
	}
	if (err) {
		evt_simple(ctr, AFTR_EV_SUBSCRIBER_TABLE_FULL, key->b4, key->proto, key->inner_addr,
			   key->inner_port, now);
		return DROP(DROP_SUBSCRIBER_TABLE_FULL);
	}
	stat_inc(ctr, AFTR_C_SUBSCRIBER_CREATED);
	return 0;
}

#endif
