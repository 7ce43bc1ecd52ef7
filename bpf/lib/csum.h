/* Incremental Internet checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 * Values are used in network byte order as loaded: the one's complement sum does not
 * depend on byte order as long as every operand is treated alike (RFC 1071 section 2). */
#ifndef AFTR_CSUM_H
#define AFTR_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline __u16 csum_replace16(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check;
	s += (__u16)~from;
	s += to;
	return ~csum_fold32(s);
}

static __always_inline __u16 csum_replace32(__u16 check, __u32 from, __u32 to)
{
	__u32 s = (__u16)~check;
	s += (~from >> 16) & 0xffff;
	s += ~from & 0xffff;
	s += to >> 16;
	s += to & 0xffff;
	return ~csum_fold32(s);
}

#endif
