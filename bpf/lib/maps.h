/* Every map of the data plane, each with key, value, writer, reader and sizing. All are pinned
 * by name under the configured bpffs directory so a daemon restart adopts them. Capacities
 * marked "set by aftrd" are overridden from the configuration before load. */
#ifndef AFTR_MAPS_H
#define AFTR_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aftr/abi.h"

/* Per-CPU counters, one entry holding every counter once per direction (enum
 * aftr_direction): one lookup per packet. Writer: XDP. Reader: aftrd (sums the CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_counters SEC(".maps");

/* Allowed B4 prefixes. Key: prefix length + IPv6 address. Writer: aftrd (config).
 * Reader: XDP, only when a new subscriber appears. Sizing: configured prefixes. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct aftr_b4_prefix_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_b4_prefixes SEC(".maps");

/* Public pool: address + block ownership bitmap, index = pool address index. Append-only:
 * an address keeps its index forever (subscribers store it); the first aftr_cfg.pool_addr_count
 * entries are in use, removed prefixes stay as DRAINING entries. Writers: aftrd (appends
 * entries nobody can reach yet; flags and bits only through aftr_ctl), XDP (claims bits
 * atomically). Sizing: tables.max_pool_addresses (set by aftrd). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct aftr_pool_addr);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pool_addrs SEC(".maps");

/* The pool's layout (prefixes, active or draining; port geometry) as aftrd last wrote it.
 * Writer and reader: aftrd only (on start and on reprogramming; XDP has the prefixes in its
 * rodata). One entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_pool_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pool_meta SEC(".maps");

/* Where to look for free blocks when the hashed probe fails. Writer: aftrd each sweep.
 * Reader: XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_pool_hint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pool_hint SEC(".maps");

/* Subscribers by B4 address. Writers: XDP (create, add block, session count +1), aftrd
 * (through aftr_ctl: session counts, retire, static mappings, block release; delete once
 * retired and empty). Sizing: tables.max_subscribers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct aftr_subscriber_key);
	__type(value, struct aftr_subscriber);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_subscribers SEC(".maps");

/* Sessions, subscriber side and Internet side. Plain hash maps, not LRU: nothing may vanish
 * without aftrd logging its deletion. Writers: XDP (create, last_seen, TCP flags), aftrd
 * through aftr_ctl (expiry, static mappings, block release). Sizing: tables.max_sessions each. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct aftr_session_out_key);
	__type(value, struct aftr_session_out);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_sessions_out SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct aftr_session_in_key);
	__type(value, struct aftr_session_in);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_sessions_in SEC(".maps");

/* Address-dependent filtering: (mapping, remote address) pairs seen outbound. LRU on
 * purpose: an evicted pair only means inbound from that peer waits for the next outbound
 * packet. Writer/reader: XDP, only in that filtering mode. Sizing: tables.max_sessions. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, struct aftr_filter_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_filter_peers SEC(".maps");

/* Source MAC per egress ifindex, for sessions whose next hop is cached. Writer/reader: XDP.
 * Sizing: AFTR_MAX_IFINDEX (interfaces with a larger index just skip the cache). */
/* PCP FILTER sets of FILTERED sessions (written by aftrd's PCP server). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct aftr_session_in_key);
	__type(value, struct aftr_pcp_filter_set);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pcp_filters SEC(".maps");

/* The PCP server's records and epoch (aftrd only: pinned with the sessions they describe). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct aftr_pcp_key);
	__type(value, struct aftr_pcp_mapping);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pcp_mappings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_pcp_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_pcp_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AFTR_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct aftr_if_mac);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_if_macs SEC(".maps");

/* The per-CPU token bucket of generated ICMP errors (struct aftr_icmp_bucket). Not pinned:
 * a reload starts every bucket full again. Writer/reader: XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_icmp_bucket);
} aftr_icmp_budget SEC(".maps");

/* The per-B4 tunnel MTU learned from ICMPv6 Packet Too Big (struct aftr_b4_mtu). LRU: a
 * flood of forged errors evicts old entries (a forgotten MTU is relearned from the next
 * error) and never fills it. Not pinned: a reload relearns. Writer/reader: XDP. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, AFTR_B4_MTU_ENTRIES);
	__type(key, struct aftr_subscriber_key);
	__type(value, struct aftr_b4_mtu);
} aftr_b4_mtu SEC(".maps");

/* The data plane's clock, read at most once per jiffy on each CPU (lib/clock.h). Not pinned:
 * a cache. Writer/reader: XDP. */
struct aftr_clock_cache {
	__u64 jiffies; /* bpf_jiffies64() when now_ns was read */
	__u64 now_ns;  /* bpf_ktime_get_coarse_ns() then */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_clock_cache);
} aftr_clock SEC(".maps");

/* Events for aftrd's log. Writer: XDP. Reader: aftrd's drain thread. Sizing:
 * event_ring_bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_events SEC(".maps");

/* The fragment slow path: frames XDP hands to aftrd (struct aftr_slow_record + the frame).
 * Writer: XDP (slow_path_queue). Reader: aftrd's slow-path thread. Its own ring, so a fragment
 * flood fills this one and never costs the event log a record. Sizing: fixed, 4 MiB. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} aftr_slow_path SEC(".maps");

/* Per-CPU scratch where slow_path_queue gathers a record before one bpf_ringbuf_output of
 * exactly its size (a reserve must be of a constant size: 9 KiB for every 60-byte fragment). */
struct aftr_slow_scratch {
	struct aftr_slow_record hdr;
	__u8 frame[AFTR_SLOW_MAX_FRAME];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aftr_slow_scratch);
} aftr_slow_scratch SEC(".maps");

#endif
