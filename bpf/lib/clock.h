/* The data plane's clock: CLOCK_MONOTONIC_COARSE, as bpf_ktime_get_coarse_ns() reads it, which
 * only moves when the kernel's tick moves jiffies. So each CPU reads it once per jiffy and
 * keeps it (aftr_clock): bpf_jiffies64() is inlined by the verifier into one load and the
 * per-CPU array lookup into a few instructions, where the helper call cost about 6 ns per
 * packet in a profile of the lab under load and 10-20 ns under BPF_PROG_TEST_RUN.
 *
 * The kernel advances jiffies a moment before the coarse clock, so a CPU that reads in that
 * window keeps the previous tick's time for one tick: `now` may lag the coarse clock by one
 * more tick (4 ms at HZ=250) than the coarse clock lags real time, never more and never
 * backwards on one CPU. Sessions' last_seen (kept to a quarter second) and timeouts (seconds
 * and more) do not see it; next-hop cache ages (fib_cache_ms) and event times, already only
 * as fine as a tick, may read one tick older. */
#ifndef AFTR_CLOCK_H
#define AFTR_CLOCK_H

#include "lib/maps.h"

static __always_inline __u64 clock_now(void)
{
	__u32 zero = 0;
	struct aftr_clock_cache *c = bpf_map_lookup_elem(&aftr_clock, &zero);
	__u64 jiffies = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns(); /* cannot happen: a one-entry array */
	/* now_ns 0: never read on this CPU (jiffies may be 0 once, 5 minutes after boot). */
	if (c->jiffies != jiffies || !c->now_ns) {
		c->now_ns = bpf_ktime_get_coarse_ns();
		c->jiffies = jiffies;
	}
	return c->now_ns;
}

#endif
