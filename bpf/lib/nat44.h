/* NAT44 state: subscribers, their port blocks, and sessions. New sessions are made here, in
 * XDP: the subscriber's blocks are found (or a first block claimed), a port is picked inside
 * them with bounded retries, and the Internet-side entry is inserted first with BPF_NOEXIST
 * (which settles port races between CPUs), then the subscriber-side entry (which settles
 * races for the same flow); a loser rolls back what it inserted. */
#ifndef AFTR_NAT44_H
#define AFTR_NAT44_H

#include <linux/errno.h>
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/events.h"
#include "lib/blocks.h"

#define NAT44_PORT_TRIES 32  /* consecutive candidate ports probed per round */
#define NAT44_ADDR_PROBES 8  /* pool addresses probed for a new subscriber's first block */
#define NAT44_CAS_TRIES 8

struct nat44_flow {
	struct aftr_session_out_key key;
	__be32 remote_addr;
	__u8 softwire_index;
	__u8 tcp_flags;
};

static __always_inline __u32 nat44_b4_hash(const __u8 *b4)
{
	__u32 w[4];

	__builtin_memcpy(w, b4, 16);
	__u32 h = (w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u;
	return h ^ (h >> 15);
}

static __always_inline int nat44_emit_block(struct aftr_counters *ctr, const __u8 *b4,
					    __be32 addr, __u32 block, __u64 now)
{
	struct aftr_event *e = evt_reserve(ctr, AFTR_EV_BLOCK_CLAIMED, b4, now);

	stat_inc(ctr, AFTR_C_BLOCK_CLAIMED);
	if (!e)
		return 0;
	e->public_addr = addr;
	e->public_port = bpf_htons(aftr_cfg.port_min + block * aftr_cfg.block_size);
	e->block_size = aftr_cfg.block_size;
	evt_submit(e);
	return 0;
}

/* Makes the subscriber entry of a B4 seen for the first time: checks its prefix, claims a
 * first block on one public address (paired pooling: every later block comes from the
 * same address). Returns 0 when an entry exists afterwards (ours or a racing CPU's). */
static __always_inline int nat44_subscriber_create(struct aftr_counters *ctr,
						   const struct nat44_flow *f, __u64 now)
{
	struct aftr_b4_prefix_key pk = { .prefixlen = 128 };
	struct aftr_subscriber sub = {};
	struct aftr_pool_addr *pa = NULL;
	__u32 count = aftr_cfg.pool_addr_count;
	__u32 index = 0;
	int block = -1;

	__builtin_memcpy(pk.addr, f->key.b4, 16);
	if (!bpf_map_lookup_elem(&aftr_b4_prefixes, &pk))
		return DROP(DROP_UNKNOWN_B4);
	if (count == 0)
		return DROP(DROP_ADDRESS_EXHAUSTED);

	__u32 start = nat44_b4_hash(f->key.b4) % count;
	for (__u32 i = 0; i <= NAT44_ADDR_PROBES; i++) {
		if (i < NAT44_ADDR_PROBES) {
			index = (start + i) % count;
		} else {
			__u32 zero = 0;
			struct aftr_pool_hint *hint = bpf_map_lookup_elem(&aftr_pool_hint, &zero);
			if (!hint)
				break;
			index = hint->addr_index;
		}
		pa = blk_pool_addr(index);
		if (!pa || (pa->flags & AFTR_POOL_ADDR_DRAINING))
			continue;
		block = blk_claim(pa);
		if (block >= 0)
			break;
	}
	if (block < 0 || !pa) {
		evt_simple(ctr, AFTR_EV_ADDRESS_EXHAUSTED, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_ADDRESS_EXHAUSTED);
	}

	sub.state_sessions = AFTR_SUB_ACTIVE << AFTR_SUB_STATE_SHIFT;
	sub.created_ns = now;
	sub.public_addr = pa->addr;
	sub.addr_index = index;
	sub.n_blocks = 1;
	for (int i = 0; i < AFTR_MAX_BLOCKS_PER_SUB; i++)
		sub.blocks[i] = AFTR_BLOCK_SLOT_EMPTY;
	sub.blocks[0] = block;

	struct aftr_subscriber_key sk;
	__builtin_memcpy(sk.b4, f->key.b4, 16);
	long err = bpf_map_update_elem(&aftr_subscribers, &sk, &sub, BPF_NOEXIST);
	if (err) {
		blk_free(pa, block);
		if (err == -EEXIST) {
			stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
			return 0;
		}
		evt_simple(ctr, AFTR_EV_SUBSCRIBER_TABLE_FULL, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_SUBSCRIBER_TABLE_FULL);
	}
	stat_inc(ctr, AFTR_C_SUBSCRIBER_CREATED);
	nat44_emit_block(ctr, f->key.b4, pa->addr, block, now);
	return 0;
}

/* Counts one more session for the subscriber unless it is retiring or at its limit. */
static __always_inline int nat44_session_reserve(struct aftr_counters *ctr,
						 struct aftr_subscriber *sub,
						 const struct nat44_flow *f, __u64 now)
{
	for (int i = 0; i < NAT44_CAS_TRIES; i++) {
		__u64 old = sub->state_sessions;

		if ((old >> AFTR_SUB_STATE_SHIFT) != AFTR_SUB_ACTIVE)
			return DROP(DROP_SUBSCRIBER_RETIRING);
		if ((__u32)old >= aftr_cfg.max_sessions_per_sub) {
			evt_simple(ctr, AFTR_EV_SESSION_LIMIT, f->key.b4, f->key.proto,
				   f->key.inner_addr, f->key.inner_port, now);
			return DROP(DROP_SESSION_LIMIT);
		}
		if (__sync_val_compare_and_swap(&sub->state_sessions, old, old + 1) == old)
			return 0;
	}
	return DROP(DROP_INTERNAL);
}

static __always_inline void nat44_session_unreserve(struct aftr_subscriber *sub)
{
	__sync_fetch_and_add(&sub->state_sessions, -1ll);
}

/* Tries NAT44_PORT_TRIES consecutive ports of the subscriber's port space (all its blocks,
 * back to back) from a random start, inserting the Internet-side entry with BPF_NOEXIST.
 * `first_slot` limits the search to blocks from that slot on (a block just added).
 * Returns the port (host order) or 0 when every try was taken; < 0 when the table is full. */
static __always_inline int nat44_pick_port(struct aftr_counters *ctr, struct aftr_subscriber *sub,
					   const struct nat44_flow *f, __u32 first_slot, __u64 now)
{
	__u32 n = sub->n_blocks;
	__u32 bs = aftr_cfg.block_size;

	if (n > AFTR_MAX_BLOCKS_PER_SUB)
		n = AFTR_MAX_BLOCKS_PER_SUB;
	if (first_slot >= n || bs == 0)
		return 0;
	__u32 total = (n - first_slot) * bs;
	__u32 idx = bpf_get_prandom_u32() % total;

	struct aftr_session_in_key ik = { .public_addr = sub->public_addr, .proto = f->key.proto };
	struct aftr_session_in iv = {
		.inner_addr = f->key.inner_addr,
		.inner_port = f->key.inner_port,
		.softwire_index = f->softwire_index,
		.last_seen_ns = now,
	};
	__builtin_memcpy(iv.b4, f->key.b4, 16);

	for (int i = 0; i < NAT44_PORT_TRIES; i++, idx++) {
		if (idx >= total)
			idx = 0;
		__u32 slot = first_slot + idx / bs;
		if (slot >= AFTR_MAX_BLOCKS_PER_SUB)
			break;
		__u16 block = sub->blocks[slot];
		if (block == AFTR_BLOCK_SLOT_EMPTY)
			continue; /* reserved by another CPU, not written yet */
		__u32 port = aftr_cfg.port_min + block * bs + idx % bs;
		ik.public_port = bpf_htons(port);
		long err = bpf_map_update_elem(&aftr_sessions_in, &ik, &iv, BPF_NOEXIST);
		if (!err)
			return port;
		if (err != -EEXIST)
			return -1;
		stat_inc(ctr, AFTR_C_PORT_PICK_RETRIES);
	}
	return 0;
}

/* Adds a block on the subscriber's address. Returns the slot it went to, or a drop. */
static __always_inline int nat44_add_block(struct aftr_counters *ctr, struct aftr_subscriber *sub,
					   const struct nat44_flow *f, __u64 now)
{
	__u32 n = sub->n_blocks;

	if (n >= aftr_cfg.max_blocks_per_sub || n >= AFTR_MAX_BLOCKS_PER_SUB) {
		evt_simple(ctr, AFTR_EV_PORTS_EXHAUSTED, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_PORTS_EXHAUSTED);
	}
	struct aftr_pool_addr *pa = blk_pool_addr(sub->addr_index);
	if (!pa)
		return DROP(DROP_INTERNAL);
	int block = blk_claim(pa);
	if (block < 0) {
		evt_simple(ctr, AFTR_EV_ADDRESS_EXHAUSTED, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_ADDRESS_EXHAUSTED);
	}
	/* Reserve slot n; a CPU that lost the race gives its block back and uses the winner's. */
	if (__sync_val_compare_and_swap(&sub->n_blocks, n, n + 1) != n) {
		blk_free(pa, block);
		stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
		return n;
	}
	sub->blocks[n & (AFTR_MAX_BLOCKS_PER_SUB - 1)] = block;
	nat44_emit_block(ctr, f->key.b4, sub->public_addr, block, now);
	return n;
}

/* Creates the session of flow f. Returns the subscriber-side entry or a drop (*drop). */
static __always_inline struct aftr_session_out *
nat44_session_create(struct aftr_counters *ctr, const struct nat44_flow *f, __u64 now, int *drop)
{
	struct aftr_subscriber_key sk;
	struct aftr_subscriber *sub;

	__builtin_memcpy(sk.b4, f->key.b4, 16);
	sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
	if (!sub) {
		*drop = nat44_subscriber_create(ctr, f, now);
		if (*drop)
			return NULL;
		sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
		if (!sub) {
			*drop = DROP(DROP_INTERNAL);
			return NULL;
		}
	}
	*drop = nat44_session_reserve(ctr, sub, f, now);
	if (*drop)
		return NULL;

	int port = nat44_pick_port(ctr, sub, f, 0, now);
	if (port == 0) {
		int slot = nat44_add_block(ctr, sub, f, now);
		if (slot < 0) {
			nat44_session_unreserve(sub);
			*drop = slot;
			return NULL;
		}
		port = nat44_pick_port(ctr, sub, f, slot, now);
		if (port == 0) {
			nat44_session_unreserve(sub);
			*drop = DROP(DROP_PORTS_EXHAUSTED);
			return NULL;
		}
	}
	if (port < 0) {
		nat44_session_unreserve(sub);
		evt_simple(ctr, AFTR_EV_SESSION_TABLE_FULL, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		*drop = DROP(DROP_SESSION_TABLE_FULL);
		return NULL;
	}

	struct aftr_session_in_key ik = {
		.public_addr = sub->public_addr,
		.public_port = bpf_htons(port),
		.proto = f->key.proto,
	};
	struct aftr_session_out ov = {
		.public_addr = sub->public_addr,
		.public_port = bpf_htons(port),
		.tcp_flags = f->tcp_flags,
		.last_seen_ns = now,
	};
	long err = bpf_map_update_elem(&aftr_sessions_out, &f->key, &ov, BPF_NOEXIST);
	if (err) {
		bpf_map_delete_elem(&aftr_sessions_in, &ik);
		nat44_session_unreserve(sub);
		if (err == -EEXIST) {
			/* Another CPU created this very flow first: use its entry. */
			stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
			struct aftr_session_out *o = bpf_map_lookup_elem(&aftr_sessions_out, &f->key);
			if (!o)
				*drop = DROP(DROP_INTERNAL);
			return o;
		}
		evt_simple(ctr, AFTR_EV_SESSION_TABLE_FULL, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		*drop = DROP(DROP_SESSION_TABLE_FULL);
		return NULL;
	}

	stat_inc(ctr, AFTR_C_SESSION_CREATED);
	struct aftr_event *e = evt_reserve(ctr, AFTR_EV_SESSION_CREATE, f->key.b4, now);
	if (e) {
		e->proto = f->key.proto;
		e->inner_addr = f->key.inner_addr;
		e->inner_port = f->key.inner_port;
		e->public_addr = sub->public_addr;
		e->public_port = bpf_htons(port);
		evt_submit(e);
	}
	struct aftr_session_out *o = bpf_map_lookup_elem(&aftr_sessions_out, &f->key);
	if (!o)
		*drop = DROP(DROP_INTERNAL);
	return o;
}

#endif
