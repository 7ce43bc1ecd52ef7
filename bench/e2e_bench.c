// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* aftr_e2e_bench: the BPF pieces of bench/e2e_pps.sh, run inside the lab's namespaces.
 *
 *   sink-attach --dev IF --pin FILE
 *       attach xdp_count (native) on IF, pin its per-CPU counter map at FILE (bpffs)
 *   sink-read --pin FILE
 *       print the counter: "total=N cpu0=N cpu1=N ..."
 *   ceiling-attach --dev IF --out IF --src-mac MAC --dst-mac MAC --saddr IPV4
 *       attach xdp_decap_min (native) on IF, redirecting out of --out with those MACs
 *   gen --dev IF --src-mac MAC --dst-mac MAC --src6 IPV6 --dst6 IPV6 --src4 IPV4 --dst4 IPV4
 *       [--dport 9] [--sport-base 20000] [--flows 64] [--warmup S] [--seconds S] [--cpu N]
 *       [--sink FILE] [--rx-threads PID,PID...] [--frag-every N]
 *       send 100-byte DS-Lite frames out of IF (XDP_TX under BPF_PROG_TEST_RUN with live
 *       frames, one long call stopped by a signal) for warmup + seconds; with --sink, read
 *       the sink counter at the end of the warm-up and of the measurement window and print
 *       the delivered rate; with --rx-threads, also the share of the window those threads
 *       (the receive side: NAPI thread, ksoftirqd) spent on a CPU and waiting for one
 *       (/proc/PID/schedstat). With --frag-every N (> 1), 1 datagram in N is sent as two
 *       IPv4 fragments inside the softwire (e2e_gen.h); with --sink, the fragmented
 *       datagrams generated over the whole run and those that reached the sink by 0.5 s
 *       after it (frag_sent=, frag_arrived=, and sink_fragments=: fragments that reached
 *       it), and the same for all datagrams (datagrams_sent=, datagrams_arrived=).
 *       Output: key=value pairs on one line.
 *
 * XDP attached with sink-attach/ceiling-attach stays after this program exits (netlink
 * attach); remove it with `ip link set dev IF xdp off`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "xdp_count.skel.h"
#include "xdp_decap_min.skel.h"
#include "xdp_dslite_gen.skel.h"

#include "e2e_gen.h"
#define REPEAT_FOREVER 0xffffffffu /* the call is stopped by a signal long before this */

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("aftr_e2e_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

struct opts {
	const char *dev, *out, *pin, *sink, *rx_threads;
	uint8_t src_mac[6], dst_mac[6];
	int have_src_mac, have_dst_mac;
	struct in6_addr src6, dst6;
	int have_src6, have_dst6;
	struct in_addr src4, dst4, saddr;
	int have_src4, have_dst4, have_saddr;
	unsigned dport, sport_base, flows, cpu, frag_every;
	double warmup, seconds;
};

static void parse_mac(const char *s, uint8_t mac[6])
{
	if (sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
		   &mac[4], &mac[5]) != 6)
		die("bad MAC address '%s'", s);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "dev", required_argument, 0, 'd' },	   { "out", required_argument, 0, 'o' },
		{ "pin", required_argument, 0, 'p' },	   { "sink", required_argument, 0, 'k' },
		{ "src-mac", required_argument, 0, 'm' },  { "dst-mac", required_argument, 0, 'M' },
		{ "src6", required_argument, 0, '6' },	   { "dst6", required_argument, 0, '7' },
		{ "src4", required_argument, 0, '4' },	   { "dst4", required_argument, 0, '5' },
		{ "saddr", required_argument, 0, 'a' },	   { "dport", required_argument, 0, 'P' },
		{ "sport-base", required_argument, 0, 'b' }, { "flows", required_argument, 0, 'f' },
		{ "warmup", required_argument, 0, 'w' },   { "seconds", required_argument, 0, 's' },
		{ "cpu", required_argument, 0, 'c' },	   { "rx-threads", required_argument, 0, 'r' },
		{ "frag-every", required_argument, 0, 'F' },
		{ 0, 0, 0, 0 },
	};
	int c;

	*o = (struct opts){ .dport = 9, .sport_base = 20000, .flows = 64, .warmup = 1,
			    .seconds = 5, .cpu = 0 };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->dev = optarg; break;
		case 'o': o->out = optarg; break;
		case 'p': o->pin = optarg; break;
		case 'k': o->sink = optarg; break;
		case 'm': parse_mac(optarg, o->src_mac); o->have_src_mac = 1; break;
		case 'M': parse_mac(optarg, o->dst_mac); o->have_dst_mac = 1; break;
		case '6': o->have_src6 = inet_pton(AF_INET6, optarg, &o->src6) == 1; break;
		case '7': o->have_dst6 = inet_pton(AF_INET6, optarg, &o->dst6) == 1; break;
		case '4': o->have_src4 = inet_pton(AF_INET, optarg, &o->src4) == 1; break;
		case '5': o->have_dst4 = inet_pton(AF_INET, optarg, &o->dst4) == 1; break;
		case 'a': o->have_saddr = inet_pton(AF_INET, optarg, &o->saddr) == 1; break;
		case 'P': o->dport = strtoul(optarg, NULL, 0); break;
		case 'b': o->sport_base = strtoul(optarg, NULL, 0); break;
		case 'f': o->flows = strtoul(optarg, NULL, 0); break;
		case 'w': o->warmup = strtod(optarg, NULL); break;
		case 's': o->seconds = strtod(optarg, NULL); break;
		case 'c': o->cpu = strtoul(optarg, NULL, 0); break;
		case 'r': o->rx_threads = optarg; break;
		case 'F': o->frag_every = strtoul(optarg, NULL, 0); break;
		default: die("unknown option (see the header of bench/e2e_bench.c)");
		}
	}
}

static int ifindex_of(const char *name)
{
	int ifindex;

	if (!name)
		die("--dev/--out is required");
	ifindex = if_nametoindex(name);
	if (!ifindex)
		die("no interface '%s' in this namespace", name);
	return ifindex;
}

static void attach_native(int ifindex, int prog_fd, const char *dev)
{
	int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		die("attaching XDP (native) to %s: %s", dev, strerror(-err));
}

/* ---- sink ---- */

static int cmd_sink_attach(const struct opts *o)
{
	int ifindex = ifindex_of(o->dev);
	struct xdp_count *skel;
	int err;

	if (!o->pin)
		die("--pin is required");
	skel = xdp_count__open_and_load();
	if (!skel)
		die("loading xdp_count: %s", strerror(errno));
	err = bpf_map__pin(skel->maps.sink_count, o->pin);
	if (err)
		die("pinning the sink map at %s: %s", o->pin, strerror(-err));
	attach_native(ifindex, bpf_program__fd(skel->progs.xdp_count), o->dev);
	xdp_count__destroy(skel); /* the attached program keeps itself and its map */
	return 0;
}

/* Sums the per-CPU counter `key` (e2e_gen.h); fills per_cpu[] (up to max_cpus) when given. */
static uint64_t sink_read_key(int map_fd, uint32_t key, uint64_t *per_cpu, int max_cpus)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t values[ncpus > 0 ? ncpus : 1];
	uint64_t total = 0;

	if (ncpus <= 0 || bpf_map_lookup_elem(map_fd, &key, values))
		die("reading the sink counter: %s", strerror(errno));
	for (int i = 0; i < ncpus; i++) {
		total += values[i];
		if (per_cpu && i < max_cpus)
			per_cpu[i] = values[i];
	}
	return total;
}

/* The datagram counter (all whole datagrams to the discard port). */
static uint64_t sink_read(int map_fd, uint64_t *per_cpu, int max_cpus)
{
	return sink_read_key(map_fd, SINK_DATAGRAMS, per_cpu, max_cpus);
}

static int open_pinned(const char *path)
{
	int fd = bpf_obj_get(path);
	if (fd < 0)
		die("opening pinned map %s: %s", path, strerror(errno));
	return fd;
}

static int cmd_sink_read(const struct opts *o)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t per_cpu[256] = {};
	uint64_t total;

	if (!o->pin)
		die("--pin is required");
	int fd = open_pinned(o->pin);

	total = sink_read(fd, per_cpu, 256);
	printf("total=%llu", (unsigned long long)total);
	for (int i = 0; i < ncpus && i < 256; i++)
		printf(" cpu%d=%llu", i, (unsigned long long)per_cpu[i]);
	printf(" frag_datagrams=%llu fragments=%llu\n",
	       (unsigned long long)sink_read_key(fd, SINK_FRAG_DATAGRAMS, NULL, 0),
	       (unsigned long long)sink_read_key(fd, SINK_FRAGMENTS, NULL, 0));
	return 0;
}

/* ---- ceiling ---- */

static int cmd_ceiling_attach(const struct opts *o)
{
	int ifindex = ifindex_of(o->dev);
	int out_ifindex = ifindex_of(o->out);
	struct xdp_decap_min *skel;

	if (!o->have_src_mac || !o->have_dst_mac || !o->have_saddr)
		die("--src-mac, --dst-mac and --saddr are required");
	skel = xdp_decap_min__open();
	if (!skel)
		die("opening xdp_decap_min: %s", strerror(errno));
	skel->rodata->out_ifindex = out_ifindex;
	memcpy((void *)skel->rodata->out_src_mac, o->src_mac, 6);
	memcpy((void *)skel->rodata->out_dst_mac, o->dst_mac, 6);
	skel->rodata->public_addr = o->saddr.s_addr;
	if (xdp_decap_min__load(skel))
		die("loading xdp_decap_min: %s", strerror(errno));
	attach_native(ifindex, bpf_program__fd(skel->progs.xdp_decap_min), o->dev);
	xdp_decap_min__destroy(skel);
	return 0;
}

/* ---- generator ---- */

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t csum_add(uint32_t s, const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		s += (uint32_t)b[len - 1] << 8;
	return s;
}

/* Ethernet + IPv6 (next header 4) + IPv4 + UDP + payload, GEN_FRAME_LEN bytes in all. */
static void build_frame(const struct opts *o, uint8_t *f)
{
	const size_t ip4_len = GEN_FRAME_LEN - 14 - 40;
	const size_t udp_len = ip4_len - 20;
	uint8_t *ip6 = f + 14, *ip4 = ip6 + 40, *udp = ip4 + 20;
	uint32_t s;

	memset(f, 0, GEN_FRAME_LEN);
	memcpy(f, o->dst_mac, 6);
	memcpy(f + 6, o->src_mac, 6);
	f[12] = 0x86, f[13] = 0xdd;

	ip6[0] = 0x60;
	ip6[4] = ip4_len >> 8, ip6[5] = ip4_len & 0xff;
	ip6[6] = IPPROTO_IPIP;
	ip6[7] = 64;
	memcpy(ip6 + 8, &o->src6, 16);
	memcpy(ip6 + 24, &o->dst6, 16);

	ip4[0] = 0x45;
	ip4[2] = ip4_len >> 8, ip4[3] = ip4_len & 0xff;
	ip4[6] = 0x40; /* DF */
	ip4[8] = 64;
	ip4[9] = IPPROTO_UDP;
	memcpy(ip4 + 12, &o->src4, 4);
	memcpy(ip4 + 16, &o->dst4, 4);
	s = ~csum_fold(csum_add(0, ip4, 20)) & 0xffff;
	ip4[10] = s >> 8, ip4[11] = s & 0xff;

	udp[0] = o->sport_base >> 8, udp[1] = o->sport_base & 0xff;
	udp[2] = o->dport >> 8, udp[3] = o->dport & 0xff;
	udp[4] = udp_len >> 8, udp[5] = udp_len & 0xff;
	memcpy(udp + 8, "DS-Lite benchmark", udp_len - 8 < 17 ? udp_len - 8 : 17);
	s = csum_add(0, ip4 + 12, 8); /* pseudo header: addresses, protocol, length */
	s += IPPROTO_UDP + udp_len;
	s = csum_add(s, udp, udp_len);
	s = ~csum_fold(s) & 0xffff;
	if (!s)
		s = 0xffff;
	udp[6] = s >> 8, udp[7] = s & 0xff;
}

/* The datagram sent in two fragments (e2e_gen.h): IPv4 with UDP of GEN_FRAG_UDP_LEN bytes to
 * the same addresses and ports, cut after GEN_FRAG1_PAYLOAD bytes of IPv4 payload; each
 * fragment behind its own copy of the Ethernet and IPv6 headers. */
static void build_fragments(const struct opts *o, uint8_t *frag1, uint8_t *frag2)
{
	const size_t ip4_len = 20 + GEN_FRAG_UDP_LEN, udp_len = GEN_FRAG_UDP_LEN;
	uint8_t whole[14 + 40 + 20 + GEN_FRAG_UDP_LEN];
	uint8_t *ip4 = whole + 14 + 40, *udp = ip4 + 20;
	uint32_t s;

	build_frame(o, frag1); /* Ethernet, IPv6 and IPv4 headers to adjust */
	memset(whole, 0, sizeof(whole));
	memcpy(whole, frag1, 14 + 40 + 20);
	ip4[2] = ip4_len >> 8, ip4[3] = ip4_len & 0xff;
	ip4[6] = 0; /* no DF: a datagram that is fragmented */
	udp[0] = o->sport_base >> 8, udp[1] = o->sport_base & 0xff;
	udp[2] = o->dport >> 8, udp[3] = o->dport & 0xff;
	udp[4] = udp_len >> 8, udp[5] = udp_len & 0xff;
	memcpy(udp + 8, "DS-Lite benchmark, fragmented datagram", udp_len - 8 < 38 ? udp_len - 8 : 38);
	s = csum_add(0, ip4 + 12, 8);
	s += IPPROTO_UDP + udp_len;
	s = csum_add(s, udp, udp_len);
	s = ~csum_fold(s) & 0xffff;
	if (!s)
		s = 0xffff;
	udp[6] = s >> 8, udp[7] = s & 0xff;

	/* piece: IPv4 payload bytes [off, off + len) of the whole datagram, MF as given */
	for (int i = 0; i < 2; i++) {
		uint8_t *f = i == 0 ? frag1 : frag2;
		size_t off = i == 0 ? 0 : GEN_FRAG1_PAYLOAD;
		size_t len = i == 0 ? GEN_FRAG1_PAYLOAD : GEN_FRAG_UDP_LEN - GEN_FRAG1_PAYLOAD;
		uint8_t *fip6 = f + 14, *fip4 = fip6 + 40;
		uint16_t frag_off = (uint16_t)(off / 8) | (i == 0 ? 0x2000 : 0); /* MF on the first */

		memset(f, 0, GEN_FRAME_LEN);
		memcpy(f, whole, 14 + 40 + 20);
		fip6[4] = (20 + len) >> 8, fip6[5] = (20 + len) & 0xff;
		fip4[2] = (20 + len) >> 8, fip4[3] = (20 + len) & 0xff;
		fip4[6] = frag_off >> 8, fip4[7] = frag_off & 0xff;
		fip4[10] = fip4[11] = 0;
		s = ~csum_fold(csum_add(0, fip4, 20)) & 0xffff;
		fip4[10] = s >> 8, fip4[11] = s & 0xff;
		memcpy(fip4 + 20, ip4 + 20 + off, len);
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Sums, over the comma-separated PIDs, the nanoseconds spent on a CPU and waiting on a run
 * queue (the first two fields of /proc/PID/schedstat). */
static void schedstat_sum(const char *pids, uint64_t *run_ns, uint64_t *wait_ns)
{
	char path[64];
	const char *p = pids;

	*run_ns = *wait_ns = 0;
	while (p && *p) {
		unsigned long long run = 0, wait = 0;
		long pid = strtol(p, NULL, 10);
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%llu %llu", &run, &wait) != 2)
				run = wait = 0;
			fclose(f);
		}
		*run_ns += run;
		*wait_ns += wait;
		p = strchr(p, ',');
		if (p)
			p++;
	}
}

struct window {
	pthread_t generator;
	const struct opts *o;
	int sink_fd;
	double t0, t1;
	uint64_t c0, c1;
	uint64_t all0, frag0, fragments0; /* the sink's counters before the run */
	uint64_t per_cpu0[256], per_cpu1[256];
	uint64_t run0, run1, wait0, wait1; /* schedstat of --rx-threads */
	_Atomic int generator_done; /* set once the BPF_PROG_TEST_RUN call has returned */
};

static void on_alarm(int sig) { (void)sig; }

/* Sleeps through the warm-up, samples the sink around the measurement window, then stops
 * the generator's BPF_PROG_TEST_RUN call with a signal (the kernel checks for pending
 * signals between batches and returns EINTR). The window is the sink's view, so the rate
 * is what was delivered, not what was offered. */
static void *window_thread(void *arg)
{
	struct window *w = arg;

	sleep_s(w->o->warmup);
	w->t0 = now_s();
	if (w->sink_fd >= 0)
		w->c0 = sink_read(w->sink_fd, w->per_cpu0, 256);
	schedstat_sum(w->o->rx_threads, &w->run0, &w->wait0);
	sleep_s(w->o->seconds);
	w->t1 = now_s();
	if (w->sink_fd >= 0)
		w->c1 = sink_read(w->sink_fd, w->per_cpu1, 256);
	schedstat_sum(w->o->rx_threads, &w->run1, &w->wait1);
	/* Repeated until it lands: a signal that arrives just before the call starts is lost. */
	while (!w->generator_done) {
		pthread_kill(w->generator, SIGUSR1);
		sleep_s(0.05);
	}
	return NULL;
}

static int cmd_gen(const struct opts *o)
{
	int ifindex = ifindex_of(o->dev);
	uint8_t frame[GEN_FRAME_LEN];
	struct xdp_dslite_gen *skel;
	struct window w = { .o = o, .sink_fd = -1 };
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	struct xdp_md ctx_in = { .data_end = GEN_FRAME_LEN, .ingress_ifindex = ifindex };
	pthread_t tid;
	cpu_set_t cpus;
	double start, elapsed;
	int err, ran_on;

	if (!o->have_src_mac || !o->have_dst_mac || !o->have_src6 || !o->have_dst6 ||
	    !o->have_src4 || !o->have_dst4)
		die("gen needs --src-mac --dst-mac --src6 --dst6 --src4 --dst4");
	if (o->flows < 1 || o->flows > 65535 || o->sport_base + o->flows > 65536)
		die("--flows must be 1..65535 and fit above --sport-base");
	if (o->seconds <= 0 || o->warmup < 0)
		die("--seconds must be > 0 and --warmup >= 0");

	CPU_ZERO(&cpus);
	CPU_SET(o->cpu, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		die("pinning to CPU %u: %s", o->cpu, strerror(errno));

	if (o->frag_every == 1)
		die("--frag-every must be 0 (none) or > 1");
	build_frame(o, frame);
	skel = xdp_dslite_gen__open();
	if (!skel)
		die("opening xdp_dslite_gen: %s", strerror(errno));
	memcpy(skel->bss->frame, frame, GEN_FRAME_LEN);
	build_fragments(o, skel->bss->frag1, skel->bss->frag2);
	skel->rodata->sport_base = o->sport_base;
	skel->rodata->flows = o->flows;
	skel->rodata->frag_every = o->frag_every;
	if (xdp_dslite_gen__load(skel))
		die("loading xdp_dslite_gen: %s", strerror(errno));

	if (o->sink) {
		w.sink_fd = open_pinned(o->sink);
		w.all0 = sink_read(w.sink_fd, NULL, 0);
		w.frag0 = sink_read_key(w.sink_fd, SINK_FRAG_DATAGRAMS, NULL, 0);
		w.fragments0 = sink_read_key(w.sink_fd, SINK_FRAGMENTS, NULL, 0);
	}
	sigaction(SIGUSR1, &sa, NULL);
	w.generator = pthread_self();
	if (pthread_create(&tid, NULL, window_thread, &w))
		die("pthread_create failed");

	LIBBPF_OPTS(bpf_test_run_opts, topts, .data_in = frame, .data_size_in = GEN_FRAME_LEN,
		    .ctx_in = &ctx_in, .ctx_size_in = sizeof(ctx_in),
		    .repeat = REPEAT_FOREVER, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	start = now_s();
	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xdp_dslite_gen), &topts);
	elapsed = now_s() - start;
	w.generator_done = 1;
	if (err && errno != EINTR)
		die("BPF_PROG_TEST_RUN (live frames) on %s: %s", o->dev, strerror(errno));
	ran_on = sched_getcpu();
	pthread_join(tid, NULL);

	uint64_t generated = skel->bss->generated;
	printf("gen_cpu=%d generated=%llu gen_seconds=%.3f offered_pps=%.0f", ran_on,
	       (unsigned long long)generated, elapsed, generated / elapsed);
	if (w.sink_fd >= 0) {
		double win = w.t1 - w.t0;
		int ncpus = libbpf_num_possible_cpus();
		printf(" delivered=%llu window_seconds=%.3f delivered_pps=%.0f",
		       (unsigned long long)(w.c1 - w.c0), win, (w.c1 - w.c0) / win);
		for (int i = 0; i < ncpus && i < 256; i++)
			printf(" sink_cpu%d=%llu", i,
			       (unsigned long long)(w.per_cpu1[i] - w.per_cpu0[i]));
		if (o->frag_every) {
			sleep_s(0.5); /* what the AFTR's slow path still holds gets through */
			/* a pair is two frames, one datagram */
			printf(" datagrams_sent=%llu datagrams_arrived=%llu",
			       (unsigned long long)(generated - skel->bss->frag_datagrams),
			       (unsigned long long)(sink_read(w.sink_fd, NULL, 0) - w.all0));
			printf(" frag_sent=%llu frag_arrived=%llu sink_fragments=%llu",
			       (unsigned long long)skel->bss->frag_datagrams,
			       (unsigned long long)(sink_read_key(w.sink_fd, SINK_FRAG_DATAGRAMS,
								  NULL, 0) - w.frag0),
			       (unsigned long long)(sink_read_key(w.sink_fd, SINK_FRAGMENTS, NULL,
								  0) - w.fragments0));
		}
	}
	if (o->rx_threads) {
		double win_ns = (w.t1 - w.t0) * 1e9;
		printf(" rx_busy=%.3f rx_wait=%.3f", (w.run1 - w.run0) / win_ns,
		       (w.wait1 - w.wait0) / win_ns);
	}
	printf("\n");
	xdp_dslite_gen__destroy(skel);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	const char *cmd;

	if (argc < 2)
		die("usage: aftr_e2e_bench sink-attach|sink-read|ceiling-attach|gen [options]");
	cmd = argv[1];
	parse_opts(argc - 1, argv + 1, &o);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	if (!strcmp(cmd, "sink-attach"))
		return cmd_sink_attach(&o);
	if (!strcmp(cmd, "sink-read"))
		return cmd_sink_read(&o);
	if (!strcmp(cmd, "ceiling-attach"))
		return cmd_ceiling_attach(&o);
	if (!strcmp(cmd, "gen"))
		return cmd_gen(&o);
	die("unknown command '%s'", cmd);
	return 1;
}
