/* Bounds-checked header parsing. Each parser takes the frame end and returns the header or
 * NULL when the frame is too short, so callers turn NULL into their layer's drop reason. */
#ifndef AFTR_PARSE_H
#define AFTR_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* ICMP header as far as echo and errors need it (<linux/icmp.h> drags in libc's socket
 * headers). */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
	} un;
};
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3 /* code 4: fragmentation needed, next-hop MTU in un.echo.sequence */
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define PARSE_HDR(type, name)                                                   \
	static __always_inline type *parse_##name(void *pos, void *end)         \
	{                                                                       \
		if (pos + sizeof(type) > end)                                   \
			return NULL;                                            \
		return pos;                                                     \
	}
PARSE_HDR(struct ethhdr, eth)
PARSE_HDR(struct ipv6hdr, ipv6)
PARSE_HDR(struct iphdr, ipv4)
PARSE_HDR(struct tcphdr, tcp)
PARSE_HDR(struct udphdr, udp)
PARSE_HDR(struct icmphdr, icmp)
#undef PARSE_HDR

#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset */
#define IPV4_FRAG_OFFSET 0x1fff
#define IPV4_DF 0x4000

/* An IPv4 header that can be translated: version 4, sane IHL, total length within the
 * frame. Returns the header length in bytes, or 0 if malformed. */
static __always_inline __u32 parse_ipv4_len(struct iphdr *iph, void *end)
{
	__u32 ihl = iph->ihl * 4;

	if (iph->version != 4 || ihl < sizeof(*iph))
		return 0;
	if ((void *)iph + ihl > end)
		return 0;
	if (bpf_ntohs(iph->tot_len) < ihl || (void *)iph + bpf_ntohs(iph->tot_len) > end)
		return 0;
	return ihl;
}

#endif
