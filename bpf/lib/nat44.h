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
#include "lib/deterministic.h"

#define NAT44_PORT_TRIES 32  /* consecutive candidate ports probed per round */
#define NAT44_ADDR_PROBES 8  /* pool addresses probed for a new subscriber's first block */
#define NAT44_CAS_TRIES 8

struct nat44_flow {
	struct aftr_session_out_key key;
	__be32 remote_addr;
	__u8 softwire_index;
	__u8 tcp_flags;
};

/* Sessions are only made for packets from a B4: their counters are that direction's. */
static __always_inline struct aftr_counter_row *nat44_counters(void)
{
	return stat_row(AFTR_DIR_FROM_B4);
}

/* aftrd's CreateStaticMapping picks a new subscriber's address with the same hash
 * (control/nat/static_mappings.cc): keep them in step. */
static __always_inline __u32 nat44_b4_hash(const __u8 *b4)
{
	__u32 w[4];

	__builtin_memcpy(w, b4, 16);
	__u32 h = (w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1u;
	return h ^ (h >> 15);
}

static __always_inline int nat44_emit_block(struct aftr_counter_row *ctr, const __u8 *b4,
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
__noinline int nat44_subscriber_create(const struct nat44_flow *flow, __u64 now)
{
	struct aftr_counter_row *ctr = nat44_counters();
	struct aftr_b4_prefix_key pk = { .prefixlen = 128 };
	struct aftr_subscriber sub = {};
	struct aftr_pool_addr *pa;
	struct nat44_flow fl;
	const struct nat44_flow *f = &fl;
	__u32 count = aftr_cfg.pool_addr_count;
	__u32 index = 0;
	int block = -1;

	if (!flow || !ctr)
		return DROP(DROP_INTERNAL);
	__builtin_memcpy(&fl, flow, sizeof(fl));
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
		block = blk_claim(index);
		if (block >= 0)
			break;
	}
	pa = blk_pool_addr(index);
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
static __always_inline int nat44_session_reserve(struct aftr_counter_row *ctr,
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

struct nat44_pick {
	struct aftr_session_in_key ik;
	struct aftr_session_in iv;
	struct aftr_subscriber_key sk;
	__u32 idx;
	__u32 total;
	__u32 first_slot;
	int port; /* result: > 0 found, 0 none free, < 0 table full */
};

/* One candidate port (a bpf_loop callback: verified once, however many tries). */
static long nat44_pick_step(__u32 i, void *data)
{
	struct nat44_pick *c = data;
	__u32 bs = aftr_cfg.block_size;

	if (c->idx >= c->total)
		c->idx = 0;
	__u32 idx = c->idx++;
	struct aftr_subscriber *sub = bpf_map_lookup_elem(&aftr_subscribers, &c->sk);
	if (!sub || bs == 0)
		return 1;
	/* The 6.x verifier forgets the upper half of a register after a 32-bit division and
	 * clang bounds the index with a 32-bit compare, which then does not make the array
	 * access safe: hide the value from clang to get a 64-bit compare. */
	__u64 slot = (__u64)c->first_slot + idx / bs;
	asm volatile("" : "+r"(slot));
	if (slot >= AFTR_MAX_BLOCKS_PER_SUB)
		return 0;
	__u16 block = sub->blocks[slot];
	if (!AFTR_BLOCK_SLOT_USABLE(block)) {
		/* Not written yet (another CPU's), released, or being released by aftrd: go on
		 * with the next slot's first port instead of spending a try per port here. */
		c->idx = ((__u32)slot + 1 - c->first_slot) * bs;
		return 0;
	}
	__u32 port = aftr_cfg.port_min + block * bs + idx % bs;
	c->ik.public_port = bpf_htons(port);
	long err = bpf_map_update_elem(&aftr_sessions_in, &c->ik, &c->iv, BPF_NOEXIST);
	if (!err) {
		c->port = port;
		return 1;
	}
	if (err != -EEXIST) {
		c->port = -1;
		return 1;
	}
	struct aftr_counter_row *ctr = nat44_counters();
	if (ctr)
		stat_inc(ctr, AFTR_C_PORT_PICK_RETRIES);
	return 0;
}

/* Tries NAT44_PORT_TRIES consecutive ports of the subscriber's port space (all its blocks,
 * back to back) from a random start, inserting the Internet-side entry with BPF_NOEXIST.
 * `first_slot` limits the search to blocks from that slot on (a block just added).
 * Returns the port (host order) or 0 when every try was taken; < 0 when the table is full.
 * Global so that its loop context lives in its own stack frame (the chain of frames from
 * aftr_xdp must stay within 512 bytes). */
__noinline int nat44_pick_port(const struct nat44_flow *f, __u32 first_slot, __u64 now)
{
	struct aftr_subscriber_key sk;

	if (!f)
		return -1;
	__builtin_memcpy(sk.b4, f->key.b4, 16);
	struct aftr_subscriber *sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
	if (!sub)
		return 0;
	__u32 n = sub->n_blocks;

	if (n > AFTR_MAX_BLOCKS_PER_SUB)
		n = AFTR_MAX_BLOCKS_PER_SUB;
	if (first_slot >= n || aftr_cfg.block_size == 0)
		return 0;

	struct nat44_pick c = {
		.ik = { .public_addr = sub->public_addr, .proto = f->key.proto },
		.iv = {
			.inner_addr = f->key.inner_addr,
			.inner_port = f->key.inner_port,
			.softwire_index = f->softwire_index,
			.last_seen_ns = now,
		},
		.first_slot = first_slot,
		.total = (n - first_slot) * aftr_cfg.block_size,
	};
	__builtin_memcpy(c.iv.b4, f->key.b4, 16);
	__builtin_memcpy(c.sk.b4, f->key.b4, 16);
	c.idx = bpf_get_prandom_u32() % c.total;
	bpf_loop(NAT44_PORT_TRIES, nat44_pick_step, &c, 0);
	return c.port;
}

/* Adds a block on the subscriber's address. Returns the slot it went to, or a drop.
 * Global (verified once). */
__noinline int nat44_add_block(const struct nat44_flow *flow, __u64 now)
{
	struct aftr_counter_row *ctr = nat44_counters();
	struct aftr_subscriber_key sk;
	struct aftr_subscriber *sub;
	struct nat44_flow fl;
	const struct nat44_flow *f = &fl;

	if (!flow || !ctr)
		return DROP(DROP_INTERNAL);
	__builtin_memcpy(&fl, flow, sizeof(fl));
	__builtin_memcpy(sk.b4, f->key.b4, 16);
	sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
	if (!sub)
		return DROP(DROP_INTERNAL);
	__u32 n = sub->n_blocks;
	/* A slot whose block aftrd released by hand is reused before the slots grow: the
	 * subscriber holds one block fewer than n, so it stays within its quota. */
	int hole = -1;
	for (int i = 0; i < AFTR_MAX_BLOCKS_PER_SUB; i++) {
		if (i < n && sub->blocks[i] == AFTR_BLOCK_SLOT_FREE) {
			hole = i;
			break;
		}
	}
	/* A deterministic subscriber holds its computed range and nothing more. */
	if (sub->addr_index == AFTR_ADDR_INDEX_DETERMINISTIC ||
	    (hole < 0 && (n >= aftr_cfg.max_blocks_per_sub || n >= AFTR_MAX_BLOCKS_PER_SUB))) {
		evt_simple(ctr, AFTR_EV_PORTS_EXHAUSTED, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_PORTS_EXHAUSTED);
	}
	int block = blk_claim(sub->addr_index);
	struct aftr_pool_addr *pa = blk_pool_addr(sub->addr_index);
	if (block < 0 || !pa) {
		/* Paired pooling: no other address may serve it, so this one's ports ran out
		 * (RFC 8158 "NAT ports exhausted"), not the pool's addresses. */
		evt_simple_addr(ctr, AFTR_EV_ADDRESS_PORTS_EXHAUSTED, f->key.b4, f->key.proto,
				f->key.inner_addr, f->key.inner_port, sub->public_addr, now);
		return DROP(DROP_ADDRESS_EXHAUSTED);
	}
	if (hole >= 0) {
		/* One CAS fills the slot with the block, so it never reads EMPTY. A CPU that
		 * lost the race gives its block back and searches from the winner's. */
		if (!blk_slot_cas(sub, hole, AFTR_BLOCK_SLOT_FREE, block)) {
			blk_free(pa, block);
			stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
			return hole;
		}
		nat44_emit_block(ctr, f->key.b4, sub->public_addr, block, now);
		return hole;
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

/* Creates the session of flow f (0, or a drop). A global function: the verifier checks it
 * once on its own instead of once per packet-parsing path that leads here, which kept the
 * inlined version over the 1M-instruction limit (kernel 6.18). */
__noinline int nat44_session_create(const struct nat44_flow *flow, __u64 now)
{
	struct aftr_counter_row *ctr = nat44_counters();
	struct aftr_subscriber_key sk;
	struct aftr_subscriber *sub;
	const struct nat44_flow *f = flow; /* caller's stack, used in place: stack is tight */
	int drop;

	if (!flow || !ctr)
		return DROP(DROP_INTERNAL);
	__builtin_memcpy(sk.b4, f->key.b4, 16);
	sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
	if (!sub) {
		drop = det_subscriber_create(&f->key, now);
		if (drop > 0)
			drop = nat44_subscriber_create(f, now);
		if (drop)
			return drop;
		sub = bpf_map_lookup_elem(&aftr_subscribers, &sk);
		if (!sub)
			return DROP(DROP_INTERNAL);
	}
	drop = nat44_session_reserve(ctr, sub, f, now);
	if (drop)
		return drop;

	int port = nat44_pick_port(f, 0, now);
	if (port == 0) {
		int slot = nat44_add_block(f, now);
		if (slot < 0) {
			nat44_session_unreserve(sub);
			return slot;
		}
		port = nat44_pick_port(f, slot, now);
		if (port == 0) {
			nat44_session_unreserve(sub);
			return DROP(DROP_PORTS_EXHAUSTED);
		}
	}
	if (port < 0) {
		nat44_session_unreserve(sub);
		evt_simple(ctr, AFTR_EV_SESSION_TABLE_FULL, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_SESSION_TABLE_FULL);
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
			/* Another CPU created this very flow first: the caller finds its entry. */
			stat_inc(ctr, AFTR_C_CREATE_RACE_LOST);
			return 0;
		}
		evt_simple(ctr, AFTR_EV_SESSION_TABLE_FULL, f->key.b4, f->key.proto,
			   f->key.inner_addr, f->key.inner_port, now);
		return DROP(DROP_SESSION_TABLE_FULL);
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
	return 0;
}

#endif
