/* Port blocks: the ownership bitmap of each pool address, claimed and freed with atomic
 * fetch-or / fetch-and so that CPUs (and aftrd, through aftr_ctl) never hand out one block
 * twice. A claim that loses a race sees the bit already set in the returned old value and
 * moves on; nothing is held across the packet. */
#ifndef AFTR_BLOCKS_H
#define AFTR_BLOCKS_H

#include "lib/maps.h"

extern const volatile struct aftr_dp_config aftr_cfg;

/* Index of the single set bit of x (x != 0). BPF has no ctz instruction; six compares. */
static __always_inline __u32 blk_bit_index(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffull)) { n += 32; x >>= 32; }
	if (!(x & 0xffffull)) { n += 16; x >>= 16; }
	if (!(x & 0xffull)) { n += 8; x >>= 8; }
	if (!(x & 0xfull)) { n += 4; x >>= 4; }
	if (!(x & 0x3ull)) { n += 2; x >>= 2; }
	if (!(x & 0x1ull)) n += 1;
	return n;
}

static __always_inline struct aftr_pool_addr *blk_pool_addr(__u32 index)
{
	return bpf_map_lookup_elem(&aftr_pool_addrs, &index);
}

/* Claims a free block of pool address `addr_index`; returns its index or -1 if none is free
 * (or the address is draining). Bits past blocks_per_addr are preset by aftrd, so they
 * never look free. A global function: verified once, not once per caller's path. */
__noinline int blk_claim(__u32 addr_index)
{
	struct aftr_pool_addr *pa = blk_pool_addr(addr_index);

	if (!pa || (pa->flags & AFTR_POOL_ADDR_DRAINING))
		return -1;
	__u32 start = bpf_get_prandom_u32() % AFTR_BLOCK_WORDS;

	for (__u32 i = 0; i < AFTR_BLOCK_WORDS; i++) {
		__u32 w = (start + i) % AFTR_BLOCK_WORDS;
		__u64 word = pa->used[w];

		if (word == ~0ull)
			continue;
		__u64 bit = ~word & (word + 1); /* lowest clear bit */
		__u64 old = __sync_fetch_and_or(&pa->used[w], bit);

		if (old & bit)
			continue; /* another CPU took it between the read and the claim */
		__u32 block = w * 64 + blk_bit_index(bit);
		if (block >= aftr_cfg.blocks_per_addr) {
			__sync_fetch_and_and(&pa->used[w], ~bit);
			continue;
		}
		return block;
	}
	return -1;
}

static __always_inline void blk_free(struct aftr_pool_addr *pa, __u32 block)
{
	__u32 w = block / 64;

	if (w < AFTR_BLOCK_WORDS)
		__sync_fetch_and_and(&pa->used[w], ~(1ull << (block % 64)));
}

/* Sets bit `block` (< AFTR_MAX_BLOCKS_PER_ADDR); 1 if it was free. */
static __always_inline int blk_take(struct aftr_pool_addr *pa, __u32 block)
{
	__u64 bit = 1ull << (block % 64);

	return !(__sync_fetch_and_or(&pa->used[(block / 64) % AFTR_BLOCK_WORDS], bit) & bit);
}

/* A subscriber's block slots are 16 bits each and BPF has no 16-bit compare-and-swap, so a
 * slot changes by a 32-bit CAS of the aligned pair holding it (blocks[] starts 4-byte
 * aligned): slot s is the low half of the pair when s is even (little-endian only). A CAS
 * that fails because the neighbour slot changed meanwhile is retried by the caller.
 * Returns 1 if slot `slot` went from `expect` to `value`. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slot pairs assume little-endian");
_Static_assert(__builtin_offsetof(struct aftr_subscriber, blocks) % 4 == 0, "blocks[] alignment");
static __always_inline int blk_slot_cas(struct aftr_subscriber *sub, __u32 slot, __u16 expect,
					__u16 value)
{
	__u32 *pair = (__u32 *)&sub->blocks[slot & (AFTR_MAX_BLOCKS_PER_SUB - 2)];
	__u32 shift = (slot & 1) * 16;

	for (int i = 0; i < 4; i++) {
		__u32 old = *pair;
		if (((old >> shift) & 0xffff) != expect)
			return 0;
		__u32 new = (old & ~(0xffffu << shift)) | ((__u32)value << shift);
		if (__sync_val_compare_and_swap(pair, old, new) == old)
			return 1;
	}
	return 0;
}

#endif
