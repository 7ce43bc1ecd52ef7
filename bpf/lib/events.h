/* Ring-buffer events for aftrd's log. A failed reserve (ring full because aftrd is slow) is
 * counted in event_lost, which aftrd reports; nothing is dropped silently. */
#ifndef AFTR_EVENTS_H
#define AFTR_EVENTS_H

#include "lib/maps.h"
#include "lib/stats.h"

static __always_inline struct aftr_event *evt_reserve(struct aftr_counter_row *ctr, __u8 type,
						      const __u8 *b4, __u64 now)
{
	struct aftr_event *e = bpf_ringbuf_reserve(&aftr_events, sizeof(*e), 0);

	if (!e) {
		stat_inc(ctr, AFTR_C_EVENT_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = now;
	e->type = type;
	__builtin_memcpy(e->b4, b4, 16);
	return e;
}

static __always_inline void evt_submit(struct aftr_event *e)
{
	bpf_ringbuf_submit(e, 0);
}

/* Events without session details (limits reached); `public_addr` (0: none) names the
 * public address a limit is about. */
static __always_inline void evt_simple_addr(struct aftr_counter_row *ctr, __u8 type,
					    const __u8 *b4, __u8 proto, __be32 inner_addr,
					    __be16 inner_port, __be32 public_addr, __u64 now)
{
	struct aftr_event *e = evt_reserve(ctr, type, b4, now);

	if (!e)
		return;
	e->proto = proto;
	e->inner_addr = inner_addr;
	e->inner_port = inner_port;
	e->public_addr = public_addr;
	evt_submit(e);
}

static __always_inline void evt_simple(struct aftr_counter_row *ctr, __u8 type, const __u8 *b4,
				       __u8 proto, __be32 inner_addr, __be16 inner_port,
				       __u64 now)
{
	evt_simple_addr(ctr, type, b4, proto, inner_addr, inner_port, 0, now);
}

#endif
