/* Per-CPU counters, one row per direction (enum aftr_direction). Every function on the packet
 * path returns an XDP action (>= 0) or the negated counter index of its drop reason; the
 * entry point counts exactly one of them, in the row of the direction the packet came from. */
#ifndef AFTR_STATS_H
#define AFTR_STATS_H

#include "lib/maps.h"

static __always_inline struct aftr_counters *stat_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&aftr_counters, &zero);
}

/* The row of direction `dir` (a constant at every call site), or NULL. */
static __always_inline struct aftr_counter_row *stat_row(enum aftr_direction dir)
{
	struct aftr_counters *all = stat_get();

	return all ? &all->dir[dir] : NULL;
}

static __always_inline void stat_inc(struct aftr_counter_row *ctr, enum aftr_counter c)
{
	if (c < AFTR_COUNTER_MAX)
		ctr->c[c]++;
}

/* A drop reason as a return value: negative, so it cannot be confused with an XDP action. */
#define DROP(reason) (-(int)(AFTR_C_##reason))

#endif
