/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one header shared by the XDP programs and the C++ controller: map keys and values,
 * ring-buffer event records, the rodata configuration block, and the counter / drop-reason
 * lists whose names every consumer prints. Includes only <linux/types.h>; no pointers, no
 * bitfields, explicit padding. Bump AFTR_ABI_VERSION on any change. */
#ifndef AFTR_ABI_H
#define AFTR_ABI_H

#include <linux/types.h>

#define AFTR_ABI_VERSION 15

#ifdef __cplusplus
#define AFTR_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define AFTR_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Limits compiled into the data plane. */
#define AFTR_MAX_SOFTWIRE_ADDRS 4   /* AFTR tunnel endpoint addresses */
#define AFTR_MAX_POOL_PREFIXES 8    /* public IPv4 prefixes (fast "is this ours?" check) */
#define AFTR_MAX_BLOCKS_PER_SUB 8   /* port blocks one subscriber may own */
#define AFTR_BLOCK_WORDS 16         /* 16 x 64 bits: at most 1024 port blocks per address */
#define AFTR_MAX_BLOCKS_PER_ADDR (AFTR_BLOCK_WORDS * 64)
#define AFTR_MAX_DET_RANGES 4       /* deterministic NAT ranges (RFC 7422 style) */
/* A subscriber's block slot holds a block index (< AFTR_MAX_BLOCKS_PER_ADDR), or: */
#define AFTR_BLOCK_SLOT_EMPTY 0xffff /* reserved by nat44_add_block, not written yet */
#define AFTR_BLOCK_SLOT_FREE 0xfffe  /* its block was released by aftrd; the slot may be reused */
#define AFTR_BLOCK_SLOT_RELEASING 0x8000 /* flag on a block index: aftrd is releasing it, so
					  * no new session may use it (its bit is still owned) */
/* Only slots below this hold a block that new sessions may use. */
#define AFTR_BLOCK_SLOT_USABLE(v) ((v) < AFTR_BLOCK_SLOT_RELEASING)

/* Every counter the data plane keeps, in one list (X-macro): verdicts first, then one entry
 * per drop reason. C and C++ expand it to the enum and to the printed names. */
#define AFTR_COUNTER_LIST(X)                                                   \
	X(RX_PACKETS, "rx_packets")                                            \
	X(PASS_NOT_OURS, "pass_not_ours")                                      \
	X(PASS_LOCAL_CONTROL, "pass_local_control")                            \
	X(PASS_NO_NEIGH, "pass_no_neigh")                                      \
	X(OUT_TRANSLATED, "out_translated")                                    \
	X(IN_TRANSLATED, "in_translated")                                      \
	X(IN_ICMP_ERROR_TRANSLATED, "in_icmp_error_translated")                \
	X(OUT_ICMP_ERROR_TRANSLATED, "out_icmp_error_translated")              \
	X(HAIRPIN_TRANSLATED, "hairpin_translated")                            \
	X(TX_REDIRECT, "tx_redirect")                                          \
	X(TX_SAME_IF, "tx_same_if")                                            \
	X(FIB_CACHE_HIT, "fib_cache_hit")                                      \
	X(SESSION_CREATED, "session_created")                                  \
	X(SUBSCRIBER_CREATED, "subscriber_created")                            \
	X(BLOCK_CLAIMED, "block_claimed")                                      \
	X(PORT_PICK_RETRIES, "port_pick_retries")                              \
	X(CREATE_RACE_LOST, "create_race_lost")                                \
	X(MSS_CLAMPED, "mss_clamped")                                          \
	X(EVENT_LOST, "event_lost")                                            \
	X(SLOW_PATH_QUEUED, "slow_path_queued")                                \
	X(PASS_IPV6_FRAGMENT, "pass_ipv6_fragment")                            \
	X(ICMP_FRAG_NEEDED_SENT, "icmp_frag_needed_sent")                      \
	X(ICMP_TIME_EXCEEDED_SENT, "icmp_time_exceeded_sent")                  \
	X(ICMP_RATE_LIMITED, "icmp_rate_limited")                              \
	X(RELAYED_MTU_LOWERED, "relayed_mtu_lowered")                          \
	X(ICMP6_ERROR_TRANSLATED, "icmp6_error_translated")                    \
	X(ICMP6_PTB_LEARNED, "icmp6_ptb_learned")                              \
	/* drop reasons: every XDP_DROP increments exactly one of these */     \
	X(DROP_MALFORMED_ETH, "drop_malformed_eth")                            \
	X(DROP_MALFORMED_IPV6, "drop_malformed_ipv6")                          \
	X(DROP_MALFORMED_EXT_HDR, "drop_malformed_ext_hdr")                    \
	X(DROP_MALFORMED_IPV4, "drop_malformed_ipv4")                          \
	X(DROP_MALFORMED_L4, "drop_malformed_l4")                              \
	X(DROP_TTL_EXPIRED, "drop_ttl_expired")                                \
	X(DROP_FRAGMENT, "drop_fragment")                                      \
	X(DROP_UNSUPPORTED_PROTO, "drop_unsupported_proto")                    \
	X(DROP_UNSUPPORTED_ICMP, "drop_unsupported_icmp")                      \
	X(DROP_ICMP_ERROR_MALFORMED, "drop_icmp_error_malformed")              \
	X(DROP_ICMP_ERROR_NO_SESSION, "drop_icmp_error_no_session")            \
	X(DROP_ICMP6_ERROR_MALFORMED, "drop_icmp6_error_malformed")            \
	X(DROP_ICMP6_ERROR_NO_SESSION, "drop_icmp6_error_no_session")          \
	X(DROP_ICMP6_ERROR_NOT_SENT, "drop_icmp6_error_not_sent")              \
	X(DROP_ICMP6_PTB_NO_DF, "drop_icmp6_ptb_no_df")                        \
	X(DROP_ICMP6_PARAM_PROBLEM, "drop_icmp6_param_problem")                \
	X(DROP_UNKNOWN_B4, "drop_unknown_b4")                                  \
	X(DROP_SUBSCRIBER_RETIRING, "drop_subscriber_retiring")                \
	X(DROP_SUBSCRIBER_TABLE_FULL, "drop_subscriber_table_full")            \
	X(DROP_ADDRESS_EXHAUSTED, "drop_address_exhausted")                    \
	X(DROP_PORTS_EXHAUSTED, "drop_ports_exhausted")                        \
	X(DROP_SESSION_LIMIT, "drop_session_limit")                            \
	X(DROP_SESSION_TABLE_FULL, "drop_session_table_full")                  \
	X(DROP_NO_SESSION, "drop_no_session")                                  \
	X(DROP_FILTERED, "drop_filtered")                                      \
	X(DROP_ENCAP_FAILED, "drop_encap_failed")                              \
	X(DROP_FIB_FAILED, "drop_fib_failed")                                  \
	X(DROP_TOO_BIG, "drop_too_big")                                        \
	X(DROP_SLOW_PATH_FULL, "drop_slow_path_full")                          \
	X(DROP_SLOW_PATH_TOO_BIG, "drop_slow_path_too_big")                    \
	X(DROP_INTERNAL, "drop_internal")

#define AFTR_COUNTER_ENUM(id, name) AFTR_C_##id,
enum aftr_counter { AFTR_COUNTER_LIST(AFTR_COUNTER_ENUM) AFTR_COUNTER_MAX };
#undef AFTR_COUNTER_ENUM

/* Which way a packet came: every counter is kept once per direction. The entry point knows
 * it from the EtherType before anything else, so the per-packet cost is one offset. */
enum aftr_direction {
	AFTR_DIR_FROM_B4 = 0,       /* arriving as IPv6: the softwire side */
	AFTR_DIR_FROM_INTERNET = 1, /* arriving as IPv4 */
	AFTR_DIR_OTHER = 2,         /* neither, or not even a whole Ethernet header */
	AFTR_DIR_MAX
};
#define AFTR_DIRECTION_LIST(X)                                                 \
	X(FROM_B4, "from_b4")                                                  \
	X(FROM_INTERNET, "from_internet")                                      \
	X(OTHER, "other")

/* One direction's counters. */
struct aftr_counter_row {
	__u64 c[AFTR_COUNTER_MAX];
};

/* Value of the single-entry per-CPU array aftr_counters: one lookup per packet. */
struct aftr_counters {
	struct aftr_counter_row dir[AFTR_DIR_MAX];
};

/* Filtering behaviour for inbound packets (RFC 4787 section 5). */
enum aftr_filtering {
	AFTR_FILTER_ENDPOINT_INDEPENDENT = 0,
	AFTR_FILTER_ADDRESS_DEPENDENT = 1,
};

/* A deterministic NAT range (RFC 7422 style), computed by aftrd from the configuration
 * (control/nat/deterministic). A B4 inside the prefix is subscriber
 * i = (b4 >> shift) & index_mask (the address read as a 128-bit host-order number) and
 * holds public address pool_base + i / per_addr and the blocks_per_sub consecutive port
 * blocks from block (i % per_addr) * blocks_per_sub. */
struct aftr_det_range {
	__u64 prefix_hi, prefix_lo; /* B4 prefix, host order, host bits zero */
	__u64 mask_hi, mask_lo;
	__u32 pool_base;            /* host order */
	__u32 per_addr;             /* subscribers per public address, >= 1 */
	__u32 index_mask;           /* 2^(subscriber bits) - 1 */
	__u8 shift;                 /* 128 - subscriber prefix length */
	__u8 blocks_per_sub;        /* ports_per_subscriber / block_size, 1..AFTR_MAX_BLOCKS_PER_SUB */
	__u16 pad;
};

/* Configuration set in .rodata before the program is loaded (const volatile in BPF). */
struct aftr_dp_config {
	__u8 softwire_addrs[AFTR_MAX_SOFTWIRE_ADDRS][16];
	__be32 pool_prefix_addr[AFTR_MAX_POOL_PREFIXES];
	__be32 pool_prefix_mask[AFTR_MAX_POOL_PREFIXES];
	__u32 softwire_addr_count;
	__u32 pool_prefix_count;
	__u32 pool_addr_count;     /* entries in aftr_pool_addrs */
	__u16 port_min;            /* first port of block 0 */
	__u16 block_size;          /* ports per block */
	__u32 blocks_per_addr;     /* <= AFTR_MAX_BLOCKS_PER_ADDR */
	__u32 max_blocks_per_sub;  /* <= AFTR_MAX_BLOCKS_PER_SUB */
	__u32 max_sessions_per_sub;
	__u32 filtering;           /* enum aftr_filtering */
	__u16 tcp_mss_clamp;       /* 0: off */
	__u8 hop_limit;            /* of the IPv6 header we push toward the B4 */
	__u8 pad0;
	__u32 fib_cache_ticks;     /* how long a session reuses its next hop (AFTR_FIB_TICK units);
	                            * 0: FIB lookup every packet */
	__u32 abi_version;
	__u32 det_count;           /* deterministic ranges in det[]; their pool prefixes are also
	                            * in pool_prefix_addr/mask (inbound) */
	__u16 softwire_mtu;        /* IPv6 MTU of the path to the B4s (1280..9216) */
	__u16 pad1;
	__u32 icmp_errors_per_second; /* ICMP errors each CPU may generate; 0: none */
	struct aftr_det_range det[AFTR_MAX_DET_RANGES];
};

/* ---- Maps (definitions in bpf/lib/maps.h; the types live here) ---- */

/* aftr_b4_prefixes (LPM trie): which B4 source addresses may become subscribers. */
struct aftr_b4_prefix_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* aftr_pool_addrs (array, index = pool address index): one public address and the
 * ownership bitmap of its port blocks (bit set = owned by a subscriber or unusable). */
struct aftr_pool_addr {
	__be32 addr;
	__u32 flags; /* AFTR_POOL_ADDR_* */
	__u64 used[AFTR_BLOCK_WORDS];
};
#define AFTR_POOL_ADDR_DRAINING 1u /* no new subscribers or blocks on this address */

/* aftr_pool_meta (array of 1, aftrd only): what the pinned pool was laid out with, so that a
 * restart or a reload knows the prefixes behind the pool addresses (active ones from the
 * configuration, draining ones removed from it but still owning blocks) and refuses a port
 * geometry that would reinterpret every block index. Addresses are appended to
 * aftr_pool_addrs and keep their index forever (subscribers store it). */
struct aftr_pool_prefix {
	__be32 addr;
	__u8 len;
	__u8 flags; /* AFTR_POOL_ADDR_DRAINING */
	__u16 pad;
};
struct aftr_pool_meta {
	__u32 abi_version; /* 0: never written */
	__u16 port_min;
	__u16 port_max;
	__u16 block_size;
	__u16 prefix_count;
	__u32 pad;
	struct aftr_pool_prefix prefixes[AFTR_MAX_POOL_PREFIXES];
};

/* aftr_pool_hint (array of 1): an address index the controller last saw with free blocks;
 * the data plane tries it when the hashed probe finds nothing. */
struct aftr_pool_hint {
	__u32 addr_index;
	__u32 pad;
};

/* aftr_subscribers (hash, key: B4 IPv6 address). state_sessions packs the lifecycle state
 * (high 32 bits) with the live session count (low 32) so that "add a session unless the
 * subscriber is retiring" and "retire unless it has sessions" are each one compare-and-swap. */
struct aftr_subscriber_key {
	__u8 b4[16];
};
#define AFTR_SUB_ACTIVE 0ull
#define AFTR_SUB_RETIRED 1ull
#define AFTR_SUB_STATE_SHIFT 32
/* addr_index of a deterministic subscriber: its address is in no aftr_pool_addrs entry, its
 * blocks (the range computed from its prefix) in no bitmap, and it never gets another. */
#define AFTR_ADDR_INDEX_DETERMINISTIC 0xffffffffu
struct aftr_subscriber {
	__u64 state_sessions;
	__u64 created_ns;
	__be32 public_addr;
	__u32 addr_index;
	__u32 n_blocks; /* slots reserved; a slot may briefly read AFTR_BLOCK_SLOT_EMPTY */
	__u16 blocks[AFTR_MAX_BLOCKS_PER_SUB];
	__u32 pad;
};

/* Next-hop cache time unit: 2^20 ns (about 1.05 ms), so the data plane gets it from the
 * nanosecond clock with a shift rather than a 64-bit division per packet. */
#define AFTR_FIB_TICK_SHIFT 20
#define AFTR_FIB_MS_TO_TICKS(ms) \
	((__u32)((((__u64)(ms)) * 1000000 + (1u << AFTR_FIB_TICK_SHIFT) - 1) >> AFTR_FIB_TICK_SHIFT))

/* A session's next hop, reused for fib_cache_ticks instead of a bpf_fib_lookup per packet (the
 * lookup is most of the per-packet cost). The source MAC is the egress interface's, kept
 * once per interface in aftr_if_macs. Refreshed without atomics: two CPUs refreshing one
 * session's entry at once write the same values. */
struct aftr_fib_cache {
	__u32 stamp; /* bpf_ktime_get_coarse_ns() >> AFTR_FIB_TICK_SHIFT, wraps; 0 = never */
	__u32 ifindex;
	__u8 dmac[6];
	__u16 mtu; /* of the route/device, from the lookup: larger packets are dropped too big */
};

/* aftr_icmp_budget (per-CPU array of 1, XDP only, not pinned): the token bucket of the ICMP
 * errors this CPU generates. Tokens are kept as nanoseconds of credit: each error costs
 * 1e9 / icmp_errors_per_second, the credit grows with time up to one second's worth. */
struct aftr_icmp_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

/* aftr_b4_mtu (LRU hash, key struct aftr_subscriber_key = the B4's address; XDP only, not
 * pinned): the IPv6 path MTU toward a B4 learned from an ICMPv6 Packet Too Big about a softwire
 * packet (RFC 8201), within AFTR_IPV6_MIN_MTU..softwire_mtu, forgotten AFTR_B4_MTU_TTL_NS
 * after it was learned (RFC 8201 section 4's "at least 5 minutes", 10 recommended). */
#define AFTR_IPV6_MIN_MTU 1280
#define AFTR_B4_MTU_TTL_NS (600ull * 1000000000ull)
#define AFTR_B4_MTU_ENTRIES 16384
struct aftr_b4_mtu {
	__u64 learned_ns; /* bpf_ktime_get_coarse_ns() */
	__u32 mtu;
	__u32 pad;
};

/* aftr_if_macs (array, index = ifindex): the MAC of each egress interface seen by the FIB. */
#define AFTR_MAX_IFINDEX 4096
struct aftr_if_mac {
	__u8 mac[6];
	__u16 valid;
};

/* aftr_sessions_out (hash): subscriber side key. Inner address and port are those the host
 * behind the B4 uses; for ICMP echo the port is the identifier. */
struct aftr_session_out_key {
	__u8 b4[16];
	__be32 inner_addr;
	__be16 inner_port;
	__u8 proto;
	__u8 pad;
};
struct aftr_session_out {
	__be32 public_addr;
	__be16 public_port;
	__u8 tcp_flags; /* AFTR_TCP_SEEN_* seen outbound */
	__u8 flags;     /* AFTR_SESSION_STATIC */
	__u64 last_seen_ns; /* bpf_ktime_get_coarse_ns() */
	struct aftr_fib_cache fib; /* toward the Internet */
};

/* aftr_sessions_in (hash): Internet side key → where the packet goes back to. */
struct aftr_session_in_key {
	__be32 public_addr;
	__be16 public_port;
	__u8 proto;
	__u8 pad;
};
struct aftr_session_in {
	__u8 b4[16];
	__be32 inner_addr;
	__be16 inner_port;
	__u8 softwire_index; /* which AFTR address the B4 talks to: replies come from it */
	__u8 tcp_flags;      /* AFTR_TCP_SEEN_* seen inbound, | AFTR_SESSION_STATIC (the
			      * struct has no spare byte and 48 bytes is the budget) */
	__u64 last_seen_ns;
	struct aftr_fib_cache fib; /* toward the B4 */
};

/* Session flags, set in session_out.flags and in session_in.tcp_flags (whose low bits are
 * the AFTR_TCP_SEEN_* flags).
 * STATIC: an operator's static mapping (port forward): never expired by aftrd, counted as a
 * session of its subscriber (so it keeps the subscriber and its blocks), and reachable
 * inbound from any peer even with address-dependent filtering.
 * PCP_MAP: a PCP MAP mapping, the same kind of port forward, whose lifetime aftrd's PCP
 * server keeps (never idle-expired; deleted when the PCP lifetime ends).
 * PCP_PEER: a PCP PEER holds this session until its PCP lifetime ends (not idle-expired
 * before; inbound behaviour unchanged).
 * FILTERED: inbound only from the peers in the session's aftr_pcp_filters entry (PCP
 * FILTER); no entry means no peer. */
#define AFTR_SESSION_STATIC 0x80
#define AFTR_SESSION_PCP_MAP 0x40
#define AFTR_SESSION_FILTERED 0x20
#define AFTR_SESSION_PCP_PEER 0x10
/* Reachable from any peer (unless FILTERED), whatever the filtering of dynamic sessions. */
#define AFTR_SESSION_FORWARD (AFTR_SESSION_STATIC | AFTR_SESSION_PCP_MAP)
/* Never expired for idleness by the sweeper. */
#define AFTR_SESSION_HELD (AFTR_SESSION_STATIC | AFTR_SESSION_PCP_MAP | AFTR_SESSION_PCP_PEER)
#define AFTR_SESSION_FLAG_MASK 0xf0

/* TCP flags remembered per direction; the controller derives the RFC 5382 / 7857 state. */
#define AFTR_TCP_SEEN_SYN 1
#define AFTR_TCP_SEEN_FIN 2
#define AFTR_TCP_SEEN_RST 4
#define AFTR_TCP_SEEN_MASK 7

/* aftr_filter_peers (LRU hash, address-dependent filtering only): remote addresses a
 * mapping has sent to. Losing an entry only blocks inbound until the next outbound packet. */
struct aftr_filter_key {
	__be32 public_addr;
	__be32 remote_addr;
	__be16 public_port;
	__u8 proto;
	__u8 pad;
};

/* aftr_pcp_filters (hash, key: aftr_session_in_key of a FILTERED session): the remote peers
 * a PCP MAP mapping accepts (RFC 6887 FILTER option). A peer matches when
 * (source & mask) == addr and, if port is non-zero, its source port is port. */
#define AFTR_PCP_MAX_FILTERS 4
struct aftr_pcp_filter {
	__be32 addr;
	__be32 mask;
	__be16 port; /* 0: any */
	__u16 pad;
};
struct aftr_pcp_filter_set {
	__u32 count; /* <= AFTR_PCP_MAX_FILTERS */
	struct aftr_pcp_filter f[AFTR_PCP_MAX_FILTERS];
};

/* aftr_pcp_mappings (hash, aftrd only): the PCP server's record of each mapping it granted,
 * pinned beside the sessions it holds so that both survive a restart together (and are lost
 * together, which is when the PCP epoch restarts). MAP records have opcode 1 and a zero
 * peer; PEER records opcode 2 and the remote peer. */
struct aftr_pcp_key {
	struct aftr_session_out_key session;
	__be32 peer_addr;
	__be16 peer_port;
	__u8 opcode;
	__u8 pad;
};
struct aftr_pcp_mapping {
	__u8 nonce[12];
	__u32 lifetime;     /* seconds granted by the last request */
	__u64 expires_ns;   /* CLOCK_MONOTONIC */
	__u64 created_ns;   /* CLOCK_MONOTONIC */
};

/* aftr_pcp_state (array of 1, aftrd only): when the PCP epoch began. Zero in a fresh map:
 * the mapping state is new, so the epoch starts at 0 and the known clients are told. */
struct aftr_pcp_state {
	__u64 epoch_origin_ns; /* CLOCK_MONOTONIC of epoch 0 */
	__u64 pad;
};

/* ---- Ring-buffer events ---- */
enum aftr_event_type {
	AFTR_EV_SESSION_CREATE = 1,
	AFTR_EV_SESSION_DELETE = 2,   /* emitted by the controller, same record shape */
	AFTR_EV_BLOCK_CLAIMED = 3,
	AFTR_EV_BLOCK_RELEASED = 4,   /* emitted by the controller */
	AFTR_EV_PORTS_EXHAUSTED = 5,  /* subscriber at block quota and its blocks are full */
	AFTR_EV_ADDRESS_EXHAUSTED = 6, /* no free block in the pool for a new subscriber */
	AFTR_EV_SESSION_LIMIT = 7,    /* subscriber at max_sessions_per_sub */
	AFTR_EV_SESSION_TABLE_FULL = 8,
	AFTR_EV_SUBSCRIBER_TABLE_FULL = 9,
	/* A subscriber needs another block and its public address (paired pooling: it gets
	 * none elsewhere) has none free, or is draining; public_addr names the address. */
	AFTR_EV_ADDRESS_PORTS_EXHAUSTED = 10,
};

struct aftr_event {
	__u64 ts_ns; /* bpf_ktime_get_coarse_ns(), CLOCK_MONOTONIC_COARSE */
	__u8 b4[16];
	__be32 inner_addr;
	__be32 public_addr;
	__be16 inner_port;
	__be16 public_port; /* block events: first port of the block */
	__u16 block_size;   /* block events */
	__u8 type;          /* enum aftr_event_type */
	__u8 proto;
};

/* ---- The fragment slow path (RFC 6333 section 6.3) ----
 * What XDP cannot translate alone (IPv4 fragments; whole packets too big for the egress
 * MTU) it copies into the ring aftr_slow_path and drops. aftrd reassembles, then runs
 * aftr_xdp itself on the whole datagram with BPF_PROG_TEST_RUN, marking the run with
 * struct aftr_slow_meta in the XDP metadata: the program translates exactly as for a
 * received frame (same maps, counters, events), skips every MTU check and reports the
 * egress interface and its MTU in the metadata; aftrd sends the result, fragmenting it. */
enum aftr_slow_kind {
	AFTR_SLOW_INET_FRAGMENT = 1,     /* IPv4 fragment from the Internet to a pool address */
	AFTR_SLOW_SOFTWIRE_FRAGMENT = 2, /* IPv6 to a softwire address carrying an IPv4 fragment */
	AFTR_SLOW_OVERSIZE = 3,          /* a whole packet (either side) larger than the egress MTU */
};
#define AFTR_SLOW_MAX_FRAME 9216 /* larger frames are dropped (drop_slow_path_too_big) */
/* A ring record: this header, then frame_len bytes of the frame from its Ethernet header. */
struct aftr_slow_record {
	__u32 frame_len;
	__u32 ifindex; /* ingress */
	__u32 kind;    /* enum aftr_slow_kind */
	__u32 pad;
};
#define AFTR_SLOW_META_MAGIC 0x534c4f57u /* "SLOW" */
/* XDP metadata of a slow-path run. aftrd sets magic (the rest 0); the program fills in
 * egress_ifindex and mtu (of the route or device, from the FIB) when it sends the frame,
 * and, when it passes the frame because the next hop's neighbour is not resolved (the fast
 * path's XDP_PASS, for the kernel to forward), also flags AFTR_SLOW_META_VIA_KERNEL: aftrd
 * then hands the translated packet to the kernel's IP stack, which resolves the neighbour. */
#define AFTR_SLOW_META_VIA_KERNEL 1u
struct aftr_slow_meta {
	__u32 magic;
	__u32 egress_ifindex;
	__u32 mtu;
	__u32 flags;
};

/* ---- Controller-side helper program (SEC("syscall")) ----
 * User space cannot do atomic read-modify-write on map values, so the controller runs this
 * program (BPF_PROG_TEST_RUN) for every update that races with the data plane. One run is
 * also one step that a killed daemon cannot interrupt halfway: each op below leaves the maps
 * consistent whether or not the next one ever runs. aftrd runs one op at a time. */
enum aftr_ctl_op {
	AFTR_CTL_SESSIONS_SUB = 1, /* subtract `count` from a subscriber's session count */
	AFTR_CTL_RETIRE = 2,       /* ACTIVE with 0 sessions → RETIRED; result 1 if done */
	AFTR_CTL_BLOCK_FREE = 3,   /* clear bit `block` of pool address `addr_index` */
	AFTR_CTL_BLOCK_TAKE = 4,   /* set bit; result 1 if it was free */
	/* Deletes the session (b4, inner_addr, inner_port, proto): its Internet-side twin, the
	 * subscriber-side entry, and one from its subscriber's count. Refused with -EPERM when
	 * AFTR_CTL_F_DYNAMIC_ONLY is set and the session is static, with -EBUSY when
	 * `last_seen_ns` is set and either entry was seen after it (traffic resumed), with
	 * -ESRCH when `public_port` is set and the session is not on that port; -ENOENT if gone. */
	AFTR_CTL_SESSION_DELETE = 5,
	/* Removes `block` from subscriber b4's slots (marks the slot FREE) and clears its bit in
	 * the pool, together. -ENOENT: not the subscriber's. */
	AFTR_CTL_BLOCK_RELEASE = 6,
	/* Sets the flags of pool address `addr_index` to `count` (AFTR_POOL_ADDR_DRAINING),
	 * leaving its bitmap alone. */
	AFTR_CTL_POOL_FLAGS = 7,
	/* Takes bit `block` of pool address `addr_index` and inserts subscriber b4 owning it,
	 * together, created at `last_seen_ns`. -EEXIST: the subscriber exists (nothing taken); -EBUSY: block not free;
	 * -EADDRNOTAVAIL: the address is draining. */
	AFTR_CTL_SUBSCRIBER_CREATE = 8,
	/* Takes bit `block` on subscriber b4's address and gives it a slot (a FREE one, else a
	 * new one within max_blocks_per_sub); result: the slot. -EBUSY: block not free;
	 * -ENOSPC: at the block quota; -EADDRNOTAVAIL: draining; -ESTALE: retired. */
	AFTR_CTL_BLOCK_ADD = 9,
	/* Counts one more session for subscriber b4 and inserts both entries (public_addr,
	 * public_port, session flags `flags`, softwire `softwire_index`), last seen at
	 * `last_seen_ns` (aftrd's CLOCK_MONOTONIC_COARSE).
	 * The port must lie in one of the subscriber's usable blocks on its address (-ENXIO).
	 * -EADDRINUSE: the public port is taken; -EEXIST: the flow already has a session;
	 * -EDQUOT: at max_sessions_per_sub; -ESTALE: retired. */
	AFTR_CTL_SESSION_CREATE = 10,
	/* ORs `flags` (session flags) into both entries of the session, in place; with
	 * AFTR_CTL_F_CLEAR in ctl_flags, clears them instead. */
	AFTR_CTL_SESSION_FLAGS = 11,
	/* Marks `block` in subscriber b4's slots as being released (AFTR_BLOCK_SLOT_RELEASING):
	 * no new session lands in it, the bit stays owned. -ENOENT: not the subscriber's. */
	AFTR_CTL_BLOCK_MARK_RELEASING = 12,
	/* Makes the deterministic subscriber b4 (its range computed as XDP does), created at
	 * `last_seen_ns`. 0: made or already there; 1: b4 is in no deterministic range; < 0:
	 * the subscriber table is full. */
	AFTR_CTL_DET_SUBSCRIBER_CREATE = 13,
};
#define AFTR_CTL_F_DYNAMIC_ONLY 1 /* ctl_args.ctl_flags for AFTR_CTL_SESSION_DELETE: refuse
				   * a held session (AFTR_SESSION_HELD) with -EPERM */
#define AFTR_CTL_F_CLEAR 2        /* for AFTR_CTL_SESSION_FLAGS */

struct aftr_ctl_args {
	__u8 b4[16];
	__u32 op;
	__u32 count;
	__u32 addr_index;
	__u32 block;
	__s32 result; /* unused: each op answers with the program's return value */
	__be32 inner_addr;
	__be32 public_addr;
	__be16 inner_port;
	__be16 public_port;
	__u8 proto;
	__u8 flags;          /* session flags (AFTR_SESSION_*) */
	__u8 ctl_flags;      /* AFTR_CTL_F_* */
	__u8 softwire_index;
	__u32 pad;
	__u64 last_seen_ns;
};

AFTR_STATIC_ASSERT(sizeof(struct aftr_session_out_key) == 24, "abi: session_out_key");
AFTR_STATIC_ASSERT(sizeof(struct aftr_session_out) == 32, "abi: session_out");
AFTR_STATIC_ASSERT(sizeof(struct aftr_session_in_key) == 8, "abi: session_in_key");
AFTR_STATIC_ASSERT(sizeof(struct aftr_session_in) == 48, "abi: session_in");
AFTR_STATIC_ASSERT(sizeof(struct aftr_fib_cache) == 16, "abi: fib_cache");
AFTR_STATIC_ASSERT(sizeof(struct aftr_if_mac) == 8, "abi: if_mac");
AFTR_STATIC_ASSERT(sizeof(struct aftr_subscriber) == 48, "abi: subscriber");
AFTR_STATIC_ASSERT(sizeof(struct aftr_pool_addr) == 8 + 8 * AFTR_BLOCK_WORDS, "abi: pool_addr");
AFTR_STATIC_ASSERT(sizeof(struct aftr_event) == 40, "abi: event");
AFTR_STATIC_ASSERT(sizeof(struct aftr_filter_key) == 12, "abi: filter_key");
AFTR_STATIC_ASSERT(sizeof(struct aftr_ctl_args) == 64, "abi: ctl_args");
AFTR_STATIC_ASSERT(sizeof(struct aftr_pcp_filter_set) == 4 + 12 * AFTR_PCP_MAX_FILTERS, "abi: pcp_filter_set");
AFTR_STATIC_ASSERT(sizeof(struct aftr_pcp_key) == 32, "abi: pcp_key");
AFTR_STATIC_ASSERT(sizeof(struct aftr_pcp_mapping) == 32, "abi: pcp_mapping");
AFTR_STATIC_ASSERT(sizeof(struct aftr_pool_meta) == 16 + 8 * AFTR_MAX_POOL_PREFIXES, "abi: pool_meta");
AFTR_STATIC_ASSERT(sizeof(struct aftr_counters) == 8 * AFTR_COUNTER_MAX * AFTR_DIR_MAX, "abi: counters");
AFTR_STATIC_ASSERT(sizeof(struct aftr_dp_config) % 4 == 0, "abi: dp_config");
AFTR_STATIC_ASSERT(sizeof(struct aftr_det_range) == 48, "abi: det_range");
AFTR_STATIC_ASSERT(sizeof(struct aftr_slow_record) == 16, "abi: slow_record");
AFTR_STATIC_ASSERT(sizeof(struct aftr_slow_meta) == 16, "abi: slow_meta");

#endif /* AFTR_ABI_H */
