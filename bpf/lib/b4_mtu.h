/* The tunnel MTU toward each B4 as ICMPv6 Packet Too Big messages teach it (RFC 8201, RFC 2473
 * section 7.1, RFC 6333 section 5.3): learned by icmp6_error_from_b4 (lib/icmp6_error.h), used
 * by in_mtu_check (the inbound MTU check) and slow_path_note (the MTU aftrd fragments to). */
#ifndef AFTR_B4_MTU_H
#define AFTR_B4_MTU_H

#include "lib/maps.h"

/* Until when (coarse clock, ns) some learned MTU may still be live; 0: none. The established
 * inbound path reads this global (no lookup, no stack) and pays the map lookup only while a
 * Packet Too Big was learned in the last AFTR_B4_MTU_TTL_NS and only for a packet past
 * AFTR_IPV6_MIN_MTU once encapsulated (no learned MTU is smaller). Cleared by in_mtu_check
 * once past. */
volatile __u64 aftr_b4_mtu_live_until_ns;

/* The learned IPv6 path MTU toward `b4`, or 0 when none is live. Callers are out of line: the
 * key costs stack. */
static __always_inline __u32 b4_mtu_get(const void *b4, __u64 now)
{
	struct aftr_subscriber_key k;

	__builtin_memcpy(k.b4, b4, 16);
	struct aftr_b4_mtu *m = bpf_map_lookup_elem(&aftr_b4_mtu, &k);
	if (!m || now - m->learned_ns >= AFTR_B4_MTU_TTL_NS)
		return 0;
	return m->mtu;
}

/* b4_mtu_get behind the global gate, which it clears when it is past (a CAS: a learner that
 * has just moved it on keeps its value). */
static __always_inline __u32 b4_mtu_live(const void *b4, __u64 now)
{
	__u64 until = aftr_b4_mtu_live_until_ns;

	if (!until)
		return 0;
	if (now >= until) {
		__sync_val_compare_and_swap(&aftr_b4_mtu_live_until_ns, until, 0);
		return 0;
	}
	return b4_mtu_get(b4, now);
}

#endif
