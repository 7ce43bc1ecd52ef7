#!/usr/bin/env python3
"""End-to-end scenarios for aftrd's PCP server (RFC 6887), run by tests/e2e/pcp_test.sh.

Started with `ip netns exec <b4a> pcp_test.py PHASE`: the B4 "b4a" is the main PCP client
(an IGD-PCP interworking function: source = its IPv6 address, Client IP = the same,
THIRD_PARTY = its host 192.0.2.10). Sockets of the other lab namespaces (b4b, h1, h2, inet)
are opened from here by entering them with setns(2) just for socket(2); each socket stays
in its namespace. Real inbound traffic: TCP/UDP listeners in h1/h2 on 192.0.2.10, clients
in inet (203.0.113.10) connecting to the public address/port a MAP assigned.

Phases (the driver restarts aftrd between them):
  main       every protocol case, MAP/PEER/FILTER with traffic, quota, isolation, epoch;
             the operator's view (aftrctl pcp list/delete) and the counters (aftrctl stats);
             leaves one mapping and the epoch origin in $PCP_STATE for the next phases
  restart    after SIGTERM + start: the epoch continues, the mapping refreshes to the same
             port and still carries inbound traffic; no unsolicited ANNOUNCE went out
  ratelimit  with requests_per_second 5, request_burst 10: a burst from b4a is cut to about
             10 answers while b4b is served; notes the epoch before the state loss
  stateloss  after SIGTERM, `aftrd --detach --purge` and a start: unsolicited ANNOUNCEs to
             b4a's port 5350, the epoch starts again, the mapping is gone and its refresh
             makes a new one
  expiry     with min_lifetime 2: a 3 s mapping stops carrying inbound connections
  listen OUT SECONDS   (not a phase) the background receiver on [b4a]:5350 that the driver
             starts before aftrd; restart and stateloss read what it got (PCP_ANNOUNCE_LOG)

Every case prints "ok   - name" or "FAIL - name: why" followed by the hex of each PCP
exchange of that case. Exit status: 0 when every case passed, 1 otherwise.
"""

import ctypes
import ipaddress
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from contextlib import contextmanager

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcp_client as pcp  # noqa: E402
from pcp_client import (  # noqa: E402
    OP_ANNOUNCE, OP_MAP, OP_PEER, OPT_THIRD_PARTY, OPT_PREFER_FAILURE, OPT_FILTER,
    SUCCESS, UNSUPP_VERSION, NOT_AUTHORIZED, MALFORMED_REQUEST, UNSUPP_OPCODE, UNSUPP_OPTION,
    MALFORMED_OPTION, UNSUPP_PROTOCOL, USER_EX_QUOTA, CANNOT_PROVIDE_EXTERNAL,
    ADDRESS_MISMATCH, EXCESSIVE_REMOTE_PEERS, NETWORK_FAILURE, NO_RESOURCES,
    announce, map_request, peer_request, header, map_body, option, third_party,
    prefer_failure, filter_option, filter_v4, new_nonce, result_name, hexdump)

ENV = os.environ
NS = {role: ENV["NS_" + role.upper()] for role in ("h1", "h2", "b4a", "b4b", "aftr", "inet")}
AFTRD = ENV["AFTRD"]
AFTR_CONF = ENV["AFTR_CONF"]
STATE_FILE = ENV["PCP_STATE"]
AFTRCTL = ENV.get("AFTRCTL", "")
API_SOCKET = ENV.get("AFTR_API_SOCKET", "")
CLIENTS_FILE = ENV.get("PCP_CLIENTS_FILE", "")        # pcp.clients_file
ANNOUNCE_LOG = ENV.get("PCP_ANNOUNCE_LOG", "")        # what `pcp_test.py listen` received
RATE = int(ENV.get("PCP_RATE", "1000"))               # pcp.requests_per_second
BURST = int(ENV.get("PCP_BURST", "1000"))             # pcp.request_burst

SERVER = ENV.get("SOFTWIRE_ADDR6", "2001:db8:ffff::1")
B4A = ENV.get("B4A_ADDR6", "2001:db8:a::2")
B4B = ENV.get("B4B_ADDR6", "2001:db8:b::2")
OUTSIDER = ENV.get("PCP_OUTSIDER_ADDR6", "2001:db8:c::2")  # on b4a, outside b4_prefixes
HOST = ENV.get("HOST_ADDR4", "192.0.2.10")
INET = ENV.get("INET_ADDR4", "203.0.113.10")
POOL = ipaddress.ip_network("198.51.100.0/28")
MIN_LIFETIME = int(ENV.get("PCP_MIN_LIFETIME", "120"))
MAX_LIFETIME = 86400
QUOTA = 8
PORT_MIN, BLOCK_SIZE = 1024, 512  # the lab's port_blocks (aftrd.sh, defaults)
TCP, UDP = 6, 17
SHORT_ERRORS = {NETWORK_FAILURE, NO_RESOURCES, USER_EX_QUOTA, CANNOT_PROVIDE_EXTERNAL}
REPLY_TIMEOUT = 1.5
SILENCE_TIMEOUT = 0.7


# ---- network namespaces ----

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def _setns(fd):
    if hasattr(os, "setns"):
        os.setns(fd, os.CLONE_NEWNET)
    elif _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: " + os.strerror(err))


@contextmanager
def in_netns(role):
    """Runs the block in a lab namespace (this thread only), then comes back."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open("/run/netns/" + NS[role], os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(home)
        os.close(home)
        os.close(target)


def socket_in(role, family, kind):
    with in_netns(role):
        return socket.socket(family, kind)


def pcp_client_in(role, source, label):
    sock = socket_in(role, socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    client = pcp.Client(SERVER, sock=sock, source=source, label=label)
    CLIENTS.append(client)
    return client


# ---- the harness ----

class Fail(Exception):
    pass


class Skip(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Fail(msg)


CLIENTS = []
RESULTS = []  # (name, "ok" | "FAIL" | "skip", note)


def dump_exchanges():
    for c in CLIENTS:
        for label, sent, got in c.log:
            if sent is not None:
                print("  [%s -> %s:%d] sent %d octets:" % (label, c.server[0], c.server[1],
                                                           len(sent)))
                print(hexdump(sent, "    "))
                print("  %s" % ("received nothing" if got is None else
                                "received %d octets: %s" % (len(got), pcp.Response(got))))
            else:
                print("  [%s]%s" % (label, "" if got is None else
                                    " %d octets: %s" % (len(got), pcp.Response(got))))
            if got is not None:
                print(hexdump(got, "    "))


def run(name, fn, *args):
    for c in CLIENTS:
        c.log.clear()
    try:
        note = fn(*args)
        status = "ok"
    except Fail as e:
        status, note = "FAIL", str(e)
    except Skip as e:
        status, note = "skip", str(e)
    except Exception as e:  # a bug in the test or an unexpected error: still one case
        status, note = "FAIL", "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
    RESULTS.append((name, status, note))
    if status == "ok":
        print("ok   - %s%s" % (name, " (%s)" % note if note else ""))
    elif status == "skip":
        print("skip - %s (%s)" % (name, note))
    else:
        print("FAIL - %s: %s" % (name, note))
        dump_exchanges()
    sys.stdout.flush()


def summary(phase):
    failed = [n for n, s, _ in RESULTS if s == "FAIL"]
    passed = sum(1 for _, s, _ in RESULTS if s == "ok")
    skipped = sum(1 for _, s, _ in RESULTS if s == "skip")
    print("pcp_test %s: %d passed, %d failed, %d skipped" % (phase, passed, len(failed), skipped))
    for n in failed:
        print("  failed: %s" % n)
    return 1 if failed else 0


# ---- the epoch every response must carry ----

class Epoch:
    origin = None    # CLOCK_MONOTONIC time of epoch 0, estimated from an ANNOUNCE
    last = None      # the last epoch seen


def set_epoch_origin(resp, t_recv):
    Epoch.origin = t_recv - resp.epoch


# ---- PCP exchanges with checks ----

def req_opcode(req):
    return req[1] & 0x7f if len(req) > 1 else None


def ask(client, req, timeout=REPLY_TIMEOUT):
    """Sends req, requires a reply with version 2, R, the request's opcode, zero reserved
    header fields and the current epoch. Returns the decoded Response."""
    t0 = time.monotonic()
    resp = client.exchange(req, timeout)
    t1 = time.monotonic()
    expect(resp is not None, "no response within %.1f s to a %d-octet request" % (timeout, len(req)))
    expect(len(resp.raw) >= 24, "a %d-octet response" % len(resp.raw))
    expect(resp.version == 2, "response version %d, want 2" % resp.version)
    expect(resp.r_bit, "the response's R bit is not set")
    expect(resp.opcode == req_opcode(req), "response opcode %d, want the request's %d" % (
        resp.opcode, req_opcode(req)))
    # RFC 6887 7.2: the reserved 8 bits are 0; the reserved 96 bits are 0 in a success, and
    # an error response may carry the last 96 bits of the request's Client IP there.
    expect(resp.reserved1 == 0, "reserved octet 2 of the response is %d" % resp.reserved1)
    if resp.result == SUCCESS:
        expect(resp.reserved2 == b"\x00" * 12, "the reserved 96 bits of a SUCCESS are %s" %
               resp.reserved2.hex())
    else:
        expect(resp.reserved2 in (b"\x00" * 12, bytes(req[12:24])),
               "the reserved 96 bits of an error are %s, neither 0 nor the request's %s" % (
                   resp.reserved2.hex(), bytes(req[12:24]).hex()))
    if Epoch.origin is not None:
        lo, hi = t0 - Epoch.origin - 2, t1 - Epoch.origin + 2
        expect(lo <= resp.epoch <= hi, "epoch %d, want %.1f..%.1f (from the first ANNOUNCE)" % (
            resp.epoch, lo, hi))
    Epoch.last = resp.epoch
    return resp


def error_lifetime(result):
    return 30 if result in SHORT_ERRORS else 1800


def expect_error(client, req, result, lifetime=None):
    """The reply is `result` with its lifetime (30 s short, 1800 s long, or `lifetime`: a
    number or a (lo, hi) range) and echoes the request (at most 1100 octets) after the
    header; UNSUPP_VERSION is a bare 24-octet header."""
    resp = ask(client, req)
    if resp.result == SUCCESS:
        note_if_created(client, req, resp)
    expect(resp.result == result, "result %s, want %s" % (result_name(resp.result),
                                                          result_name(result)))
    want = error_lifetime(result) if lifetime is None else lifetime
    if isinstance(want, tuple):
        expect(want[0] <= resp.lifetime <= want[1], "lifetime %d, want %d..%d" % (
            resp.lifetime, want[0], want[1]))
    else:
        expect(resp.lifetime == want, "lifetime %d, want %d" % (resp.lifetime, want))
    if result == UNSUPP_VERSION:
        expect(len(resp.raw) == 24, "UNSUPP_VERSION reply of %d octets, want 24" % len(resp.raw))
    else:
        # The request's length, at most 1100, and a PCP message is a multiple of 4 octets:
        # a request of 82 octets is echoed in 84, zero-padded.
        n = min(len(req) + (-len(req) % 4), pcp.MAX_SIZE)
        expect(len(resp.raw) == n, "error reply of %d octets, want %d (the request's %d%s)" % (
            len(resp.raw), n, len(req), ", padded to 4" if n != len(req) else ""))
        echo = (bytes(req) + b"\x00" * 3)[:n]
        if resp.raw[24:] != echo[24:]:
            off = next(i for i in range(24, n) if resp.raw[i] != echo[i])
            raise Fail("the reply does not echo the request: first difference at octet %d" % off)
    return resp


def expect_silence(client, req, timeout=SILENCE_TIMEOUT):
    got = client.exchange_raw(req, timeout)
    expect(got is None, "a %d-octet reply where none is due: %s" % (
        len(got or b""), pcp.Response(got or b"")))


def clamp(lifetime):
    return 0 if lifetime == 0 else min(max(lifetime, MIN_LIFETIME), MAX_LIFETIME)


class Mapping:
    def __init__(self, client, proto, port, nonce, resp, host=HOST):
        self.client, self.proto, self.port, self.nonce, self.host = client, proto, port, nonce, host
        self.ext_ip, self.ext_port, self.lifetime = resp.ext_ip, resp.ext_port, resp.lifetime
        self.granted_at = time.monotonic()

    def key(self):
        return (self.client.label, self.proto, self.port, self.host)

    def __str__(self):
        return "%s:%d -> %s:%d" % (self.host, self.port, self.ext_ip, self.ext_port)


LIVE = {}  # key -> (client, proto, port, host, nonce): MAP mappings to delete when cleaning up


def note_if_created(client, req, resp):
    """A MAP answered SUCCESS with a lifetime: remember it for the cleanup."""
    if req_opcode(req) != OP_MAP or resp.nonce is None or resp.lifetime == 0:
        return
    r = pcp.decode_request(req)
    tp = [o for o in r.options if o.code == OPT_THIRD_PARTY and len(o.data) == 16]
    if not tp or r.protocol == 0:
        return
    host = pcp.addr_str(tp[0].data)
    LIVE[(client.label, r.protocol, r.internal_port, host)] = (client, r.protocol,
                                                                r.internal_port, host, r.nonce)


def map_ok(client, proto, port, lifetime, nonce=None, ext_port=0, ext_ip="::", host=HOST,
           filters=(), pf=False, extra=b"", want_lifetime=None):
    """A MAP that must succeed: every field of the reply checked. Returns a Mapping."""
    nonce = nonce or new_nonce()
    opts = third_party(host) + (prefer_failure() if pf else b"") + b"".join(filters) + extra
    req = map_request(client.source, nonce, proto, port, lifetime, ext_port, ext_ip, opts)
    resp = ask(client, req)
    if resp.result == SUCCESS:
        note_if_created(client, req, resp)
    expect(resp.result == SUCCESS, "result %s, want SUCCESS" % result_name(resp.result))
    expect(resp.problem is None, "the reply does not decode: %s" % resp.problem)
    want = clamp(lifetime) if want_lifetime is None else want_lifetime
    expect(resp.lifetime == want, "lifetime %d, want %d (requested %d)" % (resp.lifetime, want,
                                                                          lifetime))
    expect(resp.nonce == nonce, "nonce not echoed")
    expect(resp.protocol == proto, "protocol %d, want %d" % (resp.protocol, proto))
    expect(resp.internal_port == port, "internal port %d, want %d" % (resp.internal_port, port))
    if lifetime:
        expect(pcp.is_v4_mapped(resp.ext_ip_raw) and
               ipaddress.ip_address(resp.ext_ip) in POOL,
               "assigned external address %s is not in %s" % (resp.ext_ip, POOL))
        expect(resp.ext_port >= 1024, "assigned external port %d" % resp.ext_port)
    expect(resp.third_party() == host, "THIRD_PARTY echoed as %s, want %s" % (
        resp.third_party(), host))
    expect(len(resp.options_of(OPT_THIRD_PARTY)) == 1, "THIRD_PARTY echoed %d times" % len(
        resp.options_of(OPT_THIRD_PARTY)))
    pfs = resp.options_of(OPT_PREFER_FAILURE)
    expect(len(pfs) == (1 if pf else 0), "PREFER_FAILURE echoed %d times, want %d" % (
        len(pfs), 1 if pf else 0))
    sent_filters = sorted(bytes(f[4:24]) for f in filters)
    got_filters = sorted(o.data for o in resp.options_of(OPT_FILTER))
    expect(sent_filters == got_filters, "FILTERs echoed %d (%s), sent %d" % (
        len(got_filters), ", ".join(o.describe() for o in resp.options_of(OPT_FILTER)),
        len(sent_filters)))
    other = [o for o in resp.options if o.code not in (OPT_THIRD_PARTY, OPT_PREFER_FAILURE,
                                                       OPT_FILTER)]
    expect(not other, "options echoed that must not be: %s" % other)
    return Mapping(client, proto, port, nonce, resp, host)


def map_delete(client, proto, port, nonce, host=HOST):
    req = map_request(client.source, nonce, proto, port, 0, options=third_party(host))
    resp = ask(client, req)
    expect(resp.result == SUCCESS, "delete: result %s, want SUCCESS" % result_name(resp.result))
    expect(resp.lifetime == 0, "delete: lifetime %d, want 0" % resp.lifetime)
    if proto == 0:
        for k in [k for k, v in LIVE.items() if v[0] is client and v[3] == host and v[4] == nonce]:
            del LIVE[k]
    else:
        LIVE.pop((client.label, proto, port, host), None)
    return resp


def delete(m):
    return map_delete(m.client, m.proto, m.port, m.nonce, m.host)


def exists(client, proto, port, host=HOST):
    """Whether a MAP mapping exists, without touching it: a delete with a nonce nobody has
    is NOT_AUTHORIZED for an existing mapping, SUCCESS (nothing deleted) otherwise."""
    req = map_request(client.source, new_nonce(), proto, port, 0, options=third_party(host))
    resp = ask(client, req)
    expect(resp.result in (SUCCESS, NOT_AUTHORIZED), "probe: result %s" % result_name(
        resp.result))
    return resp.result == NOT_AUTHORIZED


def cleanup_live():
    for client, proto, port, host, nonce in list(LIVE.values()):
        map_delete(client, proto, port, nonce, host)


# ---- the AFTR's view (aftrd --show reads the pinned maps) ----

def aftr_show(table):
    out = subprocess.run(["ip", "netns", "exec", NS["aftr"], AFTRD, "--config", AFTR_CONF,
                          "--show", table], capture_output=True, text=True, timeout=15)
    return out.stdout


def subscriber(b4):
    """(public address, [(first, last) port blocks]) of a B4, or (None, [])."""
    for line in aftr_show("subscribers").splitlines():
        f = line.split(None, 3)
        if len(f) >= 3 and f[0] == b4:
            blocks = []
            for b in (f[3] if len(f) > 3 else "").split(","):
                b = b.split()[0] if b.split() else ""
                if "-" in b:
                    lo, hi = b.split("-")
                    blocks.append((int(lo), int(hi)))
            return f[1], blocks
    return None, []


def used_public_ports(public):
    ports = set()
    for line in aftr_show("sessions").splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] in ("tcp", "udp", "icmp") and f[3].startswith(public + ":"):
            ports.add(int(f[3].rsplit(":", 1)[1]))
    return ports


def in_blocks(port, blocks):
    return any(lo <= port <= hi for lo, hi in blocks)


def free_port_in_blocks(b4):
    public, blocks = subscriber(b4)
    expect(blocks, "%s has no port blocks in `aftrd --show subscribers`" % b4)
    used = used_public_ports(public)
    for lo, hi in blocks:
        for p in range(lo + 100, hi + 1):
            if p not in used:
                return public, p
    raise Fail("no free port in %s's blocks" % b4)


def port_outside_blocks(b4):
    """A port in the port range that is in none of the B4's blocks."""
    _, blocks = subscriber(b4)
    expect(blocks, "%s has no port blocks" % b4)
    for first in range(PORT_MIN, 65536 - BLOCK_SIZE, BLOCK_SIZE):
        p = first + 77
        if not in_blocks(p, blocks):
            return p
    raise Fail("no port outside %s's blocks" % b4)


# ---- the operator's view: aftrctl over the API's Unix socket ----

def aftrctl(*args, timeout=15):
    """(exit status, stdout, stderr) of `aftrctl --socket <the lab's> ARGS`."""
    expect(AFTRCTL and API_SOCKET, "test bug: AFTRCTL or AFTR_API_SOCKET not set")
    p = subprocess.run([AFTRCTL, "--socket", API_SOCKET] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def aftrctl_json(*args):
    rc, out, err = aftrctl("--json", *args)
    expect(rc == 0, "aftrctl --json %s: exit %d: %s" % (" ".join(args), rc, err.strip()))
    try:
        return json.loads(out)
    except ValueError as e:
        raise Fail("aftrctl --json %s: not JSON (%s): %r" % (" ".join(args), e, out[:300]))


def pcp_list(filt=None):
    """`aftrctl pcp list --all --json [--filter F]`: the list of PcpMapping objects."""
    args = ["pcp", "list", "--all"] + (["--filter", filt] if filt else [])
    return aftrctl_json(*args).get("pcp_mappings", [])


def stats():
    """The controller counters of `aftrctl stats --json` (names -> int)."""
    st = aftrctl_json("stats")
    return {k: int(v) for k, v in st.get("controller_counters", {}).items()}


PCP_COUNTERS = ("pcp_requests", "pcp_dropped_silently", "pcp_rate_limited",
                "pcp_mappings_created", "pcp_mappings_deleted", "pcp_mappings_expired",
                "pcp_unsolicited_sent")


def pcp_counters(st):
    return {k: v for k, v in st.items() if k.startswith("pcp_")}


def expect_deltas(before, after, want, what):
    """Every pcp_* counter moved by want.get(name, 0) between two stats()."""
    missing = [k for k in PCP_COUNTERS + ("pcp_result_success", "pcp_result_malformed_request")
               if k not in after]
    expect(not missing, "counters missing from the statistics: %s" % ", ".join(missing))
    bad = []
    for k in sorted(set(pcp_counters(before)) | set(pcp_counters(after)) | set(want)):
        d = after.get(k, 0) - before.get(k, 0)
        if d != want.get(k, 0):
            bad.append("%s moved by %d, want %d" % (k, d, want.get(k, 0)))
    expect(not bad, "%s: %s" % (what, "; ".join(bad)))


def parse_time(text):
    """An RFC 3339 UTC time from the API's JSON ("...Z", maybe with a fraction): epoch s."""
    expect(text.endswith("Z"), "a time not in UTC: %r" % text)
    main, _, frac = text[:-1].partition(".")
    t = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


# ---- real traffic: listeners on 192.0.2.10 in h1/h2, clients in inet ----

class Listener:
    def __init__(self, role, proto, port, banner):
        kind = socket.SOCK_STREAM if proto == TCP else socket.SOCK_DGRAM
        self.sock = socket_in(role, socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        if proto == TCP:
            self.sock.listen(16)
        self.sock.setblocking(False)
        self.proto, self.port, self.banner, self.role = proto, port, banner, role

    def drain(self):
        for _ in range(100):
            try:
                if self.proto == TCP:
                    self.sock.accept()[0].close()
                else:
                    self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue

    def close(self):
        self.sock.close()


LISTENERS = []


def listener(role, proto, port, banner=None):
    lst = Listener(role, proto, port, banner or ("%s:%d" % (role, port)).encode())
    LISTENERS.append(lst)
    return lst


def tcp_in(ext_ip, ext_port, lst, timeout=2.0, sport=0):
    """Connects from inet to ext_ip:ext_port; (True, detail) when the connection reached
    lst (the right host) from 203.0.113.10 and its banner came back."""
    lst.drain()
    c = socket_in("inet", socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sport:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind((INET, sport))
        c.settimeout(timeout)
        try:
            c.connect((ext_ip, ext_port))
        except OSError as e:
            return False, "connect to %s:%d: %s" % (ext_ip, ext_port, e)
        r, _, _ = select.select([lst.sock], [], [], 1.0)
        if not r:
            return False, "connected to %s:%d, but nothing reached %s" % (ext_ip, ext_port,
                                                                          lst.role)
        conn, peer = lst.sock.accept()
        with conn:
            conn.settimeout(1.0)
            conn.sendall(lst.banner)
            try:
                data = c.recv(64)
            except OSError as e:
                data = b"(%s)" % str(e).encode()
        ok = data == lst.banner and peer[0] == INET
        return ok, "%s saw peer %s:%d, inet got %r" % (lst.role, peer[0], peer[1], data)
    finally:
        c.close()


def udp_in(ext_ip, ext_port, lst, timeout=1.5):
    """A datagram from inet to ext_ip:ext_port reaches the UDP listener lst."""
    lst.drain()
    c = socket_in("inet", socket.AF_INET, socket.SOCK_DGRAM)
    try:
        token = b"pcp-udp-%d" % time.monotonic_ns()
        c.sendto(token, (ext_ip, ext_port))
        r, _, _ = select.select([lst.sock], [], [], timeout)
        if not r:
            return False, "nothing reached %s" % lst.role
        data, peer = lst.sock.recvfrom(256)
        return data == token and peer[0] == INET, "%s got %r from %s:%d" % (
            lst.role, data, peer[0], peer[1])
    finally:
        c.close()


def expect_reach(m, lst, want=True, sport=0):
    ok, detail = tcp_in(m.ext_ip, m.ext_port, lst, timeout=2.0 if want else 1.5, sport=sport)
    if want:
        expect(ok, "inet could not reach %s through %s: %s" % (lst.role, m, detail))
    else:
        expect(not ok, "inet reached %s through %s, which must not be: %s" % (lst.role, m, detail))
    return detail


# ======================================================================================
# The main phase
# ======================================================================================

class S:  # state shared by the cases of a phase
    pass


def tp():
    return third_party(HOST)


def c_announce():
    a = S.a
    req = announce(B4A, lifetime=3600, reserved=0xffff)
    t0 = time.monotonic()
    resp = ask(a, req)
    t1 = time.monotonic()
    expect(resp.result == SUCCESS, "result %s" % result_name(resp.result))
    expect(resp.lifetime == 0, "lifetime %d, want 0" % resp.lifetime)
    expect(len(resp.raw) == 24, "%d octets, want 24" % len(resp.raw))
    if Epoch.origin is None:
        set_epoch_origin(resp, (t0 + t1) / 2)
    return "epoch %d" % resp.epoch


def c_silence_1_octet():
    expect_silence(S.a, b"\x02")


def c_silence_r_bit():
    req = header(OP_MAP, 600, B4A, r_bit=True) + map_body(new_nonce(), TCP, 4444) + tp()
    expect_silence(S.a, req)


def c_silence_short():
    expect_silence(S.a, header(OP_ANNOUNCE, 0, B4A)[:20])


def c_version(version):
    req = header(OP_MAP, 600, B4A, version=version) + map_body(new_nonce(), TCP, 4445) + tp()
    expect_error(S.a, req, UNSUPP_VERSION)


def c_not_multiple_of_4():
    req = map_request(B4A, new_nonce(), TCP, 4446, 600, options=tp()) + b"\x00\x00"
    expect_error(S.a, req, MALFORMED_REQUEST)


def c_too_long():
    base = map_request(B4A, new_nonce(), TCP, 4447, 600, options=tp())
    req = base + option(200, b"\xaa" * (1104 - len(base) - 4))
    expect(len(req) == 1104, "test bug: %d octets" % len(req))
    resp = expect_error(S.a, req, MALFORMED_REQUEST)
    return "reply %d octets" % len(resp.raw)


def c_unknown_opcode(opcode):
    req = header(opcode, 600, B4A) + bytes(range(36))
    expect_error(S.a, req, UNSUPP_OPCODE)


def c_map_too_short():
    req = header(OP_MAP, 600, B4A) + map_body(new_nonce(), TCP, 4448)[:32]
    expect_error(S.a, req, MALFORMED_REQUEST)


def c_peer_too_short():
    req = header(OP_PEER, 600, B4A) + map_body(new_nonce(), TCP, 4449)
    expect_error(S.a, req, MALFORMED_REQUEST)


def c_address_mismatch():
    req = map_request("2001:db8:a::99", new_nonce(), TCP, 4450, 600, options=tp())
    expect_error(S.a, req, ADDRESS_MISMATCH)


# -- options --

def c_unknown_mandatory_option():
    req = map_request(B4A, new_nonce(), TCP, 4451, 600, options=tp() + option(42, b"\x01\x02\x03\x04"))
    expect_error(S.a, req, UNSUPP_OPTION)


def c_unimplemented_options():
    for code in range(4, 14):
        req = map_request(B4A, new_nonce(), TCP, 4452, 600,
                          options=tp() + option(code, b"\x00" * 4))
        try:
            expect_error(S.a, req, UNSUPP_OPTION)
        except Fail as e:
            raise Fail("option %d: %s" % (code, e))
    return "codes 4..13"


def c_optional_option_ignored():
    m = map_ok(S.a, TCP, 4453, 600, extra=option(200, b"optional"))
    delete(m)
    return "granted %s" % m


def c_option_past_end():
    req = map_request(B4A, new_nonce(), TCP, 4454, 600,
                      options=tp() + option(200, b"\x00" * 4, length=8))
    expect_error(S.a, req, MALFORMED_OPTION)


def c_third_party_length():
    req = map_request(B4A, new_nonce(), TCP, 4455, 600, options=option(OPT_THIRD_PARTY,
                                                                        b"\xc0\x00\x02\x0a"))
    expect_error(S.a, req, MALFORMED_OPTION)


def c_third_party_twice():
    req = map_request(B4A, new_nonce(), TCP, 4456, 600, options=tp() + tp())
    expect_error(S.a, req, MALFORMED_OPTION)


def c_prefer_failure_length():
    req = map_request(B4A, new_nonce(), TCP, 4457, 600,
                      options=tp() + option(OPT_PREFER_FAILURE, b"\x00" * 4))
    expect_error(S.a, req, MALFORMED_OPTION)


def c_filter_malformed(what, opt):
    req = map_request(B4A, new_nonce(), TCP, 4458, 600, options=tp() + opt)
    expect_error(S.a, req, MALFORMED_OPTION)


def c_peer_invalid_options():
    for name, opt in (("PREFER_FAILURE", prefer_failure()),
                      ("FILTER", filter_v4(INET + "/32"))):
        req = peer_request(B4A, new_nonce(), TCP, 4459, 80, INET, 600, options=tp() + opt)
        try:
            expect_error(S.a, req, MALFORMED_REQUEST)
        except Fail as e:
            raise Fail("PEER with %s: %s" % (name, e))


def c_announce_with_options():
    for name, opt in (("THIRD_PARTY", tp()), ("PREFER_FAILURE", prefer_failure()),
                      ("FILTER", filter_v4(INET + "/32"))):
        try:
            expect_error(S.a, announce(B4A, options=opt), MALFORMED_REQUEST)
        except Fail as e:
            raise Fail("ANNOUNCE with %s: %s" % (name, e))


def c_third_party_is_source():
    req = map_request(B4A, new_nonce(), TCP, 4460, 600, options=third_party(B4A))
    expect_error(S.a, req, MALFORMED_REQUEST)


# -- who may ask --

def c_outsider():
    req = map_request(OUTSIDER, new_nonce(), TCP, 4461, 600, options=tp())
    expect_error(S.outsider, req, NOT_AUTHORIZED)


def c_no_third_party():
    expect_error(S.a, map_request(B4A, new_nonce(), TCP, 4462, 600), NOT_AUTHORIZED)
    expect_error(S.a, peer_request(B4A, new_nonce(), TCP, 4462, 80, INET, 600), NOT_AUTHORIZED)


def c_third_party_outside(addr):
    req = map_request(B4A, new_nonce(), TCP, 4463, 600, options=third_party(addr))
    expect_error(S.a, req, NOT_AUTHORIZED)


# -- MAP --

def c_map_tcp():
    m = map_ok(S.a, TCP, 8080, 600)
    S.m1 = m
    public, blocks = subscriber(B4A)
    S.public_a = public
    expect(public == m.ext_ip, "assigned %s, but b4a's public address is %s" % (m.ext_ip, public))
    expect(in_blocks(m.ext_port, blocks), "port %d is in none of b4a's blocks %s" % (
        m.ext_port, blocks))
    return "%s, blocks %s" % (m, blocks)


def c_map_traffic():
    return expect_reach(S.m1, S.h1_tcp)


def c_retransmission():
    m = S.m1
    again = map_ok(S.a, TCP, 8080, 600, nonce=m.nonce)
    expect((again.ext_ip, again.ext_port) == (m.ext_ip, m.ext_port),
           "retransmission got %s, first %s" % (again, m))


def c_refresh():
    m = S.m1
    r = map_ok(S.a, TCP, 8080, 300, nonce=m.nonce)
    expect((r.ext_ip, r.ext_port) == (m.ext_ip, m.ext_port), "refresh moved %s to %s" % (m, r))
    S.m1 = r
    S.m1_expires = time.monotonic() + 300
    return "lifetime 300 from now"


def c_refresh_other_nonce():
    m = S.m1
    req = map_request(B4A, new_nonce(), TCP, 8080, 5000, options=tp())
    remaining = int(S.m1_expires - time.monotonic())
    expect_error(S.a, req, NOT_AUTHORIZED, lifetime=(remaining - 2, remaining + 1))
    # Unchanged: still the old remaining lifetime (not 5000), same port, still reachable.
    req = map_request(B4A, new_nonce(), TCP, 8080, 0, options=tp())
    remaining = int(S.m1_expires - time.monotonic())
    expect_error(S.a, req, NOT_AUTHORIZED, lifetime=(remaining - 2, remaining + 1))
    expect_reach(m, S.h1_tcp)
    return "NOT_AUTHORIZED with the remaining %d s" % remaining


def c_delete_other_nonce():
    m = S.m1
    req = map_request(B4A, new_nonce(), TCP, 8080, 0, options=tp())
    remaining = int(S.m1_expires - time.monotonic())
    expect_error(S.a, req, NOT_AUTHORIZED, lifetime=(remaining - 2, remaining + 1))
    expect(exists(S.a, TCP, 8080), "the mapping is gone")
    expect_reach(m, S.h1_tcp)
    again = map_ok(S.a, TCP, 8080, 300, nonce=m.nonce)
    expect(again.ext_port == m.ext_port, "the port moved to %d" % again.ext_port)
    S.m1_expires = time.monotonic() + 300


def c_lifetime_clamp():
    lo = map_ok(S.a, TCP, 8082, 30, want_lifetime=MIN_LIFETIME)
    hi = map_ok(S.a, UDP, 8083, 100000, want_lifetime=MAX_LIFETIME)
    delete(lo)
    delete(hi)
    return "30 -> %d, 100000 -> %d" % (lo.lifetime, hi.lifetime)


def c_suggested_port():
    public, port = free_port_in_blocks(B4A)
    m = map_ok(S.a, TCP, 8084, 600, ext_port=port, ext_ip=public)
    delete(m)
    expect((m.ext_ip, m.ext_port) == (public, port), "suggested %s:%d, got %s:%d" % (
        public, port, m.ext_ip, m.ext_port))
    return "%s:%d" % (public, port)


def c_suggested_ip_ignored():
    other = "198.51.100.14" if S.public_a != "198.51.100.14" else "198.51.100.13"
    got = []
    for ip in (other, "::", "::ffff:0.0.0.0"):
        m = map_ok(S.a, TCP, 8086, 600, ext_ip=ip)
        delete(m)
        expect(m.ext_ip == S.public_a, "suggested %s: assigned %s, want b4a's %s" % (
            ip, m.ext_ip, S.public_a))
        got.append(m.ext_port)
    return "ports %s" % got


def c_map_udp_traffic():
    m = map_ok(S.a, UDP, 8085, 600)
    ok, detail = udp_in(m.ext_ip, m.ext_port, S.h1_udp)
    expect(ok, "a datagram to %s did not reach h1: %s" % (m, detail))
    delete(m)
    time.sleep(0.2)
    ok, detail = udp_in(m.ext_ip, m.ext_port, S.h1_udp, timeout=1.0)
    expect(not ok, "after the delete a datagram to %s still reached h1: %s" % (m, detail))
    return str(m)


def c_bad_protocol_port(proto, port, lifetime, result):
    req = map_request(B4A, new_nonce(), proto, port, lifetime, options=tp())
    expect_error(S.a, req, result)


def c_delete():
    m = S.m1
    resp = delete(m)
    expect(len(resp.raw) == 80, "delete reply of %d octets" % len(resp.raw))
    expect(not exists(S.a, TCP, 8080), "the mapping is still there")
    expect_reach(m, S.h1_tcp, want=False)
    return "inet can no longer connect to %s:%d" % (m.ext_ip, m.ext_port)


def c_delete_copies_suggested():
    """RFC 6887 section 15.1 (and verified erratum 3621): in a lifetime-0 request the
    suggested external address and port are copied into the assigned ones of the reply."""
    m = map_ok(S.a, TCP, 8088, 600)
    req = map_request(B4A, m.nonce, TCP, 8088, 0, 0, "::ffff:0.0.0.0", tp())
    resp = ask(S.a, req)
    expect(resp.result == SUCCESS and resp.lifetime == 0, "delete: %s lifetime %d" % (
        result_name(resp.result), resp.lifetime))
    LIVE.pop((S.a.label, TCP, 8088, HOST), None)
    expect((resp.ext_port, resp.ext_ip_raw) == (0, pcp.addr16("::ffff:0.0.0.0")),
           "the reply's assigned %s:%d is not the request's suggested 0.0.0.0:0" % (
               resp.ext_ip, resp.ext_port))


def c_delete_nothing():
    map_delete(S.a, TCP, 8087, new_nonce())


def c_delete_all():
    n1, n2 = new_nonce(), new_nonce()
    map_ok(S.a, TCP, 7001, 600, nonce=n1)
    map_ok(S.a, UDP, 7002, 600, nonce=n1)
    map_ok(S.a, TCP, 7003, 600, nonce=n2)
    map_delete(S.a, 0, 0, n1)
    expect(not exists(S.a, TCP, 7001), "TCP 7001 (same nonce) is still there")
    expect(not exists(S.a, UDP, 7002), "UDP 7002 (same nonce) is still there")
    expect(exists(S.a, TCP, 7003), "TCP 7003 (another nonce) is gone")
    map_delete(S.a, TCP, 7003, n2)


# -- PREFER_FAILURE --

def c_pf_outside_blocks():
    port = port_outside_blocks(B4A)
    nonce = new_nonce()
    req = map_request(B4A, nonce, TCP, 8301, 600, port, S.public_a, tp() + prefer_failure())
    expect_error(S.a, req, CANNOT_PROVIDE_EXTERNAL)
    m = map_ok(S.a, TCP, 8301, 600, nonce=nonce, ext_port=port, ext_ip=S.public_a)
    delete(m)
    expect(m.ext_port != port, "got the port outside the blocks, %d" % port)
    return "suggested %d; without PREFER_FAILURE %s" % (port, m)


def c_pf_port_held_by_own():
    held = map_ok(S.a, TCP, 8302, 600)
    nonce = new_nonce()
    req = map_request(B4A, nonce, TCP, 8303, 600, held.ext_port, held.ext_ip,
                      tp() + prefer_failure())
    expect_error(S.a, req, CANNOT_PROVIDE_EXTERNAL)
    m = map_ok(S.a, TCP, 8303, 600, nonce=nonce, ext_port=held.ext_port, ext_ip=held.ext_ip)
    delete(m)
    delete(held)
    expect(m.ext_port != held.ext_port, "given the port %d another mapping holds" % m.ext_port)
    return "held %d; without PREFER_FAILURE %d" % (held.ext_port, m.ext_port)


def c_pf_port_held_by_b4b():
    mb = map_ok(S.b, TCP, 8304, 600)
    try:
        # With PREFER_FAILURE the suggested address and port are given both or not at all
        # (RFC 6887 13.2): b4b's address:port cannot be b4a's, whether the two B4s share a
        # public address (the port is in b4b's block) or not (the address is b4b's).
        nonce = new_nonce()
        req = map_request(B4A, nonce, TCP, 8304, 600, mb.ext_port, mb.ext_ip,
                          tp() + prefer_failure())
        expect_error(S.a, req, CANNOT_PROVIDE_EXTERNAL)
        m = map_ok(S.a, TCP, 8304, 600, nonce=nonce, ext_port=mb.ext_port, ext_ip=mb.ext_ip)
        delete(m)
        expect((m.ext_ip, m.ext_port) != (mb.ext_ip, mb.ext_port), "b4a got b4b's %s" % mb)
        return "b4b holds %s; b4a without PREFER_FAILURE got %s" % (mb, m)
    finally:
        delete(mb)


# -- FILTER --

def c_filter_match():
    f = filter_v4(INET + "/32")
    m = map_ok(S.a, TCP, 8080, 600, filters=[f])
    S.mf = m
    return expect_reach(m, S.h1_tcp)


def c_filter_other_peer():
    m = map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=[filter_v4("203.0.113.99/32")])
    expect(m.ext_port == S.mf.ext_port, "the refresh moved the port")
    expect_reach(m, S.h1_tcp, want=False)


def c_filter_four():
    none_match = [filter_v4("203.0.113.99/32"), filter_v4("203.0.113.98/32"),
                  filter_v4("203.0.113.96/30"), filter_v4("203.0.113.0/24", remote_port=1)]
    m = map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=none_match)
    expect_reach(m, S.h1_tcp, want=False)
    one_match = none_match[:3] + [filter_v4("203.0.113.0/24")]
    m = map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=one_match)
    expect_reach(m, S.h1_tcp)
    return "four non-matching: blocked; three + 203.0.113.0/24: reached"


def c_filter_five():
    five = [filter_v4("203.0.113.%d/32" % i) for i in (10, 11, 12, 13, 14)]
    req = map_request(B4A, S.mf.nonce, TCP, 8080, 600, options=tp() + b"".join(five))
    expect_error(S.a, req, EXCESSIVE_REMOTE_PEERS)


def c_filter_port():
    m = map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce,
               filters=[filter_v4(INET + "/32", remote_port=40001)])
    expect_reach(m, S.h1_tcp, sport=40001)
    expect_reach(m, S.h1_tcp, want=False, sport=40002)
    return "from port 40001: reached; from 40002: blocked"


def c_filter_remove_prefix0():
    map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=[filter_v4("203.0.113.99/32")])
    expect_reach(S.mf, S.h1_tcp, want=False)
    f0 = filter_option(0, 0, "::ffff:0.0.0.0")
    req = map_request(B4A, S.mf.nonce, TCP, 8080, 600, options=tp() + f0)
    resp = ask(S.a, req)
    expect(resp.result == SUCCESS, "result %s" % result_name(resp.result))
    expect(resp.ext_port == S.mf.ext_port, "the refresh moved the port")
    expect_reach(S.mf, S.h1_tcp)
    echoed = [o.data for o in resp.options_of(OPT_FILTER)]
    expect(echoed == [f0[4:]], "inet gets in again, but the prefix-0 FILTER is echoed as %s" % (
        [o.describe() for o in resp.options_of(OPT_FILTER)] or "nothing"))


def c_filter_remove_prefix0_zero_peer():
    """Prefix length 0 with the peer fields zero (::, port 0), as RFC 6887 erratum 3891 says a
    client sends them (and a server ignores them)."""
    map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=[filter_v4("203.0.113.99/32")])
    expect_reach(S.mf, S.h1_tcp, want=False)
    req = map_request(B4A, S.mf.nonce, TCP, 8080, 600, options=tp() + filter_option(0, 0, "::"))
    resp = ask(S.a, req)
    expect(resp.result == SUCCESS, "result %s" % result_name(resp.result))
    expect_reach(S.mf, S.h1_tcp)


def c_filter_remove_by_omission():
    map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce, filters=[filter_v4("203.0.113.99/32")])
    expect_reach(S.mf, S.h1_tcp, want=False)
    m = map_ok(S.a, TCP, 8080, 600, nonce=S.mf.nonce)
    expect_reach(m, S.h1_tcp)
    delete(m)


# -- quota --

def c_quota():
    cleanup_live()
    nonce = new_nonce()
    for i in range(QUOTA):
        try:
            map_ok(S.a, TCP, 9001 + i, 600, nonce=nonce)
        except Fail as e:
            raise Fail("mapping %d of %d: %s" % (i + 1, QUOTA, e))
    req = map_request(B4A, nonce, TCP, 9001 + QUOTA, 600, options=tp())
    expect_error(S.a, req, USER_EX_QUOTA)
    map_delete(S.a, 0, 0, nonce)
    expect(not exists(S.a, TCP, 9001), "the delete-all left TCP 9001")
    m = map_ok(S.a, TCP, 9001 + QUOTA, 600)
    delete(m)
    return "%d granted, the next USER_EX_QUOTA; room again after the delete" % QUOTA


# -- isolation between the two B4s (the same host address behind each) --

def c_isolation_delete_other_nonce():
    ma = map_ok(S.a, TCP, 8080, 600)
    S.ma = ma
    resp = map_delete(S.b, TCP, 8080, ma.nonce)
    expect(resp.lifetime == 0, "lifetime %d" % resp.lifetime)
    expect(exists(S.a, TCP, 8080), "b4a's mapping is gone")
    return expect_reach(ma, S.h1_tcp)


def c_isolation_own_mapping():
    mb = map_ok(S.b, TCP, 8080, 600)
    S.mb = mb
    expect((mb.ext_ip, mb.ext_port) != (S.ma.ext_ip, S.ma.ext_port),
           "b4b got b4a's %s" % S.ma)
    expect_reach(mb, S.h2_tcp)
    expect_reach(S.ma, S.h1_tcp)
    return "b4a %s, b4b %s" % (S.ma, mb)


def c_isolation_delete_own():
    delete(S.mb)
    expect_reach(S.mb, S.h2_tcp, want=False)
    expect_reach(S.ma, S.h1_tcp)
    delete(S.ma)


# -- PEER --

def peer_ok(client, proto, port, remote_port, remote_ip, lifetime, nonce=None, ext_port=0,
            ext_ip="::"):
    nonce = nonce or new_nonce()
    req = peer_request(client.source, nonce, proto, port, remote_port, remote_ip, lifetime,
                       ext_port, ext_ip, tp())
    resp = ask(client, req)
    expect(resp.result == SUCCESS, "result %s, want SUCCESS" % result_name(resp.result))
    expect(resp.problem is None, "the reply does not decode: %s" % resp.problem)
    expect(resp.nonce == nonce, "nonce not echoed")
    expect((resp.protocol, resp.internal_port) == (proto, port), "protocol/port not echoed")
    expect((resp.remote_ip, resp.remote_port) == (remote_ip, remote_port),
           "remote peer echoed as %s:%d" % (resp.remote_ip, resp.remote_port))
    expect(ipaddress.ip_address(resp.ext_ip) in POOL if pcp.is_v4_mapped(resp.ext_ip_raw)
           else False, "assigned %s" % resp.ext_ip)
    expect(resp.third_party() == HOST, "THIRD_PARTY echoed as %s" % resp.third_party())
    expect(0 < resp.lifetime <= MAX_LIFETIME, "lifetime %d" % resp.lifetime)
    return resp


def c_peer_with_map():
    m = map_ok(S.a, TCP, 8080, 600)
    S.mp = m
    r = peer_ok(S.a, TCP, 8080, 80, INET, 300)
    expect((r.ext_ip, r.ext_port) == (m.ext_ip, m.ext_port), "PEER got %s:%d, the MAP %s" % (
        r.ext_ip, r.ext_port, m))
    S.peer_nonce = r.nonce
    return "%s:%d" % (r.ext_ip, r.ext_port)


def c_peer_lifetime0():
    r = peer_ok(S.a, TCP, 8080, 80, INET, 0, nonce=S.peer_nonce)
    r2 = peer_ok(S.a, TCP, 8080, 80, INET, 0, nonce=S.peer_nonce)
    expect(r2.lifetime <= r.lifetime, "the remaining lifetime grew")
    expect(exists(S.a, TCP, 8080), "the MAP is gone")
    delete(S.mp)
    return "remaining %d s, still there" % r2.lifetime


def c_peer_new_session():
    r = peer_ok(S.a, UDP, 5555, 7777, INET, 300)
    expect(r.ext_ip == S.public_a, "assigned %s, b4a's address is %s" % (r.ext_ip, S.public_a))
    src = socket_in("h1", socket.AF_INET, socket.SOCK_DGRAM)
    dst = socket_in("inet", socket.AF_INET, socket.SOCK_DGRAM)
    try:
        src.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        src.bind((HOST, 5555))
        dst.bind((INET, 7777))
        dst.settimeout(2.0)
        src.sendto(b"peer-out", (INET, 7777))
        try:
            data, peer = dst.recvfrom(64)
        except socket.timeout:
            raise Fail("the datagram from h1:5555 did not reach inet")
        expect(peer == (r.ext_ip, r.ext_port), "inet saw it from %s:%d, PEER said %s:%d" % (
            peer[0], peer[1], r.ext_ip, r.ext_port))
    finally:
        src.close()
        dst.close()
    return "h1:5555 leaves as %s:%d" % (r.ext_ip, r.ext_port)


def c_peer_malformed():
    for what, (proto, port, rport) in (("protocol 0", (0, 5557, 7)), ("internal port 0", (UDP, 0, 7)),
                                       ("remote port 0", (UDP, 5557, 0))):
        req = peer_request(B4A, new_nonce(), proto, port, rport, INET, 300, options=tp())
        try:
            expect_error(S.a, req, MALFORMED_REQUEST)
        except Fail as e:
            raise Fail("%s: %s" % (what, e))


def c_peer_cannot_provide():
    port = port_outside_blocks(B4A)
    req = peer_request(B4A, new_nonce(), UDP, 5558, 7, INET, 300, port, S.public_a, tp())
    expect_error(S.a, req, CANNOT_PROVIDE_EXTERNAL)
    return "suggested %s:%d" % (S.public_a, port)


# -- the operator's view: aftrctl pcp list / delete --

def map_name(proto, ext_ip, ext_port, remote=None):
    name = "pcpMappings/%s-%s-%d" % ({TCP: "tcp", UDP: "udp"}[proto], ext_ip, ext_port)
    return name + ("-%s-%d" % remote if remote else "")


def listed(name, filt=None):
    return [r for r in pcp_list(filt) if r.get("name") == name]


def expect_fields(row, want, what):
    bad = ["%s is %r, want %r" % (k, row.get(k), v) for k, v in want.items() if row.get(k) != v]
    expect(not bad, "%s: %s; listed as %s" % (what, "; ".join(bad), json.dumps(row)))


def table_row(name):
    rc, out, err = aftrctl("pcp", "list", "--all")
    expect(rc == 0, "aftrctl pcp list: exit %d: %s" % (rc, err.strip()))
    rows = [line for line in out.splitlines() if line.split() and line.split()[-1] == name]
    expect(len(rows) == 1, "%s is on %d lines of the table:\n%s" % (name, len(rows), out))
    return rows[0]


OP_PORT = 8081
OP_FILTERS = [(INET + "/32", 0), ("203.0.113.0/24", 443)]


def c_operator_list_map():
    S.op_lst = listener("h1", TCP, OP_PORT)
    filters = [filter_v4(p, remote_port=port) for p, port in OP_FILTERS]
    m = map_ok(S.a, TCP, OP_PORT, 600, filters=filters)
    t = time.time()
    S.op = m
    name = map_name(TCP, m.ext_ip, m.ext_port)
    rows = listed(name)
    expect(len(rows) == 1, "%s listed %d times by `aftrctl pcp list --json`" % (name, len(rows)))
    r = rows[0]
    expect_fields(r, {"opcode": "MAP", "b4_address": B4A, "protocol": "TCP",
                      "inner_address": HOST, "inner_port": OP_PORT, "public_address": m.ext_ip,
                      "public_port": m.ext_port, "lifetime_seconds": 600,
                      "remote_address": "", "remote_port": 0}, name)
    got = sorted((f.get("remote_prefix"), f.get("remote_port", 0)) for f in r.get("filters", []))
    expect(got == sorted(OP_FILTERS), "filters listed as %s, want %s" % (got, sorted(OP_FILTERS)))
    left = parse_time(r.get("expire_time", "")) - t
    expect(595 <= left <= 602, "expire_time %s is %.1f s from now, want about 600" % (
        r.get("expire_time"), left))
    made = parse_time(r.get("create_time", "")) - t
    expect(-5 <= made <= 2, "create_time %s is %.1f s from the MAP, want about 0" % (
        r.get("create_time"), made))
    # The table: op, protocol, public, inner, B4, filters, expiry, name.
    line = table_row(name)
    f = line.split()
    expect(f[:5] == ["map", "tcp", "%s:%d" % (m.ext_ip, m.ext_port), "%s:%d" % (HOST, OP_PORT),
                     B4A], "table row %r" % line)
    expect("%s, 203.0.113.0/24 port 443" % (INET + "/32") in line or
           "203.0.113.0/24 port 443, %s" % (INET + "/32") in line,
           "the table row does not show both filters: %r" % line)
    # --filter: by B4, protocol, public address.
    expect(len(listed(name, "b4_address = %s" % B4A)) == 1, "not listed with b4_address = b4a")
    expect(not listed(name, "b4_address = %s" % B4B), "listed with b4_address = b4b")
    expect(len(listed(name, "protocol = tcp")) == 1, "not listed with protocol = tcp")
    expect(not listed(name, "protocol = udp"), "listed with protocol = udp")
    expect(len(listed(name, "public_address = %s" % m.ext_ip)) == 1,
           "not listed with public_address = %s" % m.ext_ip)
    expect_reach(m, S.op_lst)
    return "%s: %s" % (name, " ".join(line.split()[5:-1]))


def c_operator_list_peer():
    m = S.op
    r = peer_ok(S.a, TCP, OP_PORT, 80, INET, 300)
    S.op_peer_name = map_name(TCP, r.ext_ip, r.ext_port, (INET, 80))
    rows = listed(S.op_peer_name)
    expect(len(rows) == 1, "%s listed %d times" % (S.op_peer_name, len(rows)))
    expect_fields(rows[0], {"opcode": "PEER", "b4_address": B4A, "protocol": "TCP",
                            "inner_address": HOST, "inner_port": OP_PORT,
                            "public_address": m.ext_ip, "public_port": m.ext_port,
                            "remote_address": INET, "remote_port": 80,
                            "lifetime_seconds": 300}, S.op_peer_name)
    expect(not rows[0].get("filters"), "a PEER listed with filters %s" % rows[0].get("filters"))
    line = table_row(S.op_peer_name)
    f = line.split()
    expect(f[:6] == ["peer", "tcp", "%s:%d" % (m.ext_ip, m.ext_port), "%s:%d" % (HOST, OP_PORT),
                     B4A, "%s:80" % INET], "table row %r" % line)
    expect(len(listed(map_name(TCP, m.ext_ip, m.ext_port))) == 1, "the MAP is no longer listed")
    # The operator deletes the PEER: the MAP stays and still carries traffic.
    rc, out, err = aftrctl("pcp", "delete", S.op_peer_name)
    expect(rc == 0 and out.strip() == "deleted " + S.op_peer_name,
           "aftrctl pcp delete %s: exit %d, %r %r" % (S.op_peer_name, rc, out, err))
    expect(not listed(S.op_peer_name), "the PEER is still listed after its delete")
    expect(len(listed(map_name(TCP, m.ext_ip, m.ext_port))) == 1, "the PEER's delete took the MAP")
    expect(exists(S.a, TCP, OP_PORT), "the server no longer has the MAP")
    expect_reach(m, S.op_lst)
    return "%s listed, deleted; the MAP stays" % S.op_peer_name


def c_operator_delete_map():
    m = S.op
    name = map_name(TCP, m.ext_ip, m.ext_port)
    rc, out, err = aftrctl("pcp", "delete", name)
    expect(rc == 0, "aftrctl pcp delete %s: exit %d: %s" % (name, rc, err.strip()))
    expect(out.strip() == "deleted " + name, "aftrctl pcp delete printed %r" % out)
    rows = [r for r in pcp_list() if r.get("b4_address") == B4A and
            r.get("inner_port") == OP_PORT and r.get("protocol") == "TCP"]
    expect(not rows, "still listed after the delete: %s" % json.dumps(rows))
    expect_reach(m, S.op_lst, want=False)
    expect(not exists(S.a, TCP, OP_PORT), "the server still has the mapping")
    # The B4 refreshes with its nonce: SUCCESS, a new mapping (counted as created).
    before = stats()
    filters = [filter_v4(p, remote_port=port) for p, port in OP_FILTERS]
    r = map_ok(S.a, TCP, OP_PORT, 600, nonce=m.nonce, filters=filters)
    after = stats()
    created = after["pcp_mappings_created"] - before["pcp_mappings_created"]
    expect(created == 1, "the refresh after the operator's delete created %d mappings" % created)
    rows = listed(map_name(TCP, r.ext_ip, r.ext_port))
    expect(len(rows) == 1 and rows[0].get("lifetime_seconds") == 600,
           "the new mapping is listed as %s" % json.dumps(rows))
    expect_reach(r, S.op_lst)
    S.op_deleted = name
    return "%s deleted, inbound stopped; refresh -> %s, inbound again" % (name, r)


def c_operator_bad_names():
    cases = [
        # well-formed, nobody holds it: the server says NOT_FOUND (exit 1)
        ("pcpMappings/tcp-198.51.100.15-1", 1, "NOT_FOUND"),
        ("udp-198.51.100.15-1", 1, "NOT_FOUND"),  # the short form, prefix added by aftrctl
        (S.op_peer_name, 1, "NOT_FOUND"),         # deleted already
        # not a PCP mapping name the server can parse: INVALID_ARGUMENT (exit 1)
        ("pcpMappings/sctp-198.51.100.1-1024", 1, "INVALID_ARGUMENT"),
        ("pcpMappings/tcp-198.51.100.1", 1, "INVALID_ARGUMENT"),
        ("pcpMappings/tcp-198.51.100.1-70000", 1, "INVALID_ARGUMENT"),
        # refused by aftrctl itself: usage (exit 2), nothing sent
        ("pcpMappings/tcp/198.51.100.1-1024", 2, None),
        ("staticMappings/tcp-198.51.100.1-1024", 2, None),
        ("", 2, None),
    ]
    def view():  # the listing without its times (converted anew from the clock each time)
        return sorted(json.dumps({k: v for k, v in r.items()
                                  if k not in ("expire_time", "create_time")},
                                 sort_keys=True) for r in pcp_list())

    before = view()
    bad = []
    for name, want_rc, code in cases:
        rc, out, err = aftrctl("pcp", "delete", name)
        ok = rc == want_rc and err.startswith("aftrctl: ") and (
            code is None or err.startswith("aftrctl: %s: " % code))
        if not ok:
            bad.append("%r: exit %d, stderr %r (want exit %d%s)" % (
                name, rc, err.strip(), want_rc, ", " + code if code else ""))
    expect(not bad, "; ".join(bad))
    after = view()
    expect(before == after, "the failed deletes changed the listing: before %s, after %s" % (
        before, after))
    return "NOT_FOUND/INVALID_ARGUMENT: exit 1; malformed for aftrctl: exit 2"


# -- counters (aftrctl stats: the controller counters) --

def c_counters_phase():
    """The counters of this aftrd (started for this phase) against what the clients did:
    every datagram sent to the server is counted, each answered or dropped silently."""
    st = stats()
    sent = sum(c.sent for c in CLIENTS if c.server == (SERVER, pcp.PORT))
    got = sum(c.received for c in CLIENTS if c.server == (SERVER, pcp.PORT))
    answered = sum(v for k, v in st.items() if k.startswith("pcp_result_"))
    for k in ("pcp_result_success", "pcp_result_malformed_request", "pcp_mappings_created",
              "pcp_mappings_deleted", "pcp_dropped_silently", "pcp_result_unsupp_version",
              "pcp_result_not_authorized", "pcp_result_user_ex_quota"):
        expect(st.get(k, 0) > 0, "%s is %d" % (k, st.get(k, 0)))
    expect(st["pcp_requests"] == sent, "pcp_requests %d, the clients sent %d" % (
        st["pcp_requests"], sent))
    expect(answered == got, "pcp_result_* add up to %d, the clients received %d" % (answered, got))
    expect(answered + st["pcp_dropped_silently"] == st["pcp_requests"],
           "%d answered + %d dropped != %d requests" % (answered, st["pcp_dropped_silently"],
                                                        st["pcp_requests"]))
    expect(st["pcp_rate_limited"] == 0, "pcp_rate_limited %d" % st["pcp_rate_limited"])
    expect(st["pcp_unsolicited_sent"] == 0, "pcp_unsolicited_sent %d" % st["pcp_unsolicited_sent"])
    expect(st["pcp_mappings_deleted"] <= st["pcp_mappings_created"], "more deleted than created")
    return "%d requests, %d answered (%d SUCCESS, %d MALFORMED_REQUEST), %d dropped; %d created" % (
        st["pcp_requests"], answered, st["pcp_result_success"],
        st["pcp_result_malformed_request"], st["pcp_dropped_silently"],
        st["pcp_mappings_created"])


def c_counters_step():
    """A small block of requests moves the counters by exactly as much."""
    before = stats()
    malformed = [map_request(B4A, new_nonce(), TCP, 4446, 600, options=tp()) + b"\x00\x00",
                 header(OP_MAP, 600, B4A) + map_body(new_nonce(), TCP, 4448)[:32],
                 header(OP_PEER, 600, B4A) + map_body(new_nonce(), TCP, 4449)]
    for req in malformed:
        expect_error(S.a, req, MALFORMED_REQUEST)
    expect_error(S.a, header(OP_MAP, 600, B4A, version=1) + map_body(new_nonce(), TCP, 4445),
                 UNSUPP_VERSION)
    for req in (b"\x02", header(OP_ANNOUNCE, 0, B4A)[:20]):
        expect_silence(S.a, req, 0.3)
    m = map_ok(S.a, UDP, 8089, 600)
    delete(m)
    after = stats()
    expect_deltas(before, after, {
        "pcp_requests": len(malformed) + 1 + 2 + 2, "pcp_result_malformed_request": len(malformed),
        "pcp_result_unsupp_version": 1, "pcp_dropped_silently": 2, "pcp_result_success": 2,
        "pcp_mappings_created": 1, "pcp_mappings_deleted": 1}, "after 3 malformed, 1 version 1, "
        "2 silent, 1 MAP and its delete")
    return "malformed +%d, requests +%d" % (
        after["pcp_result_malformed_request"] - before["pcp_result_malformed_request"],
        after["pcp_requests"] - before["pcp_requests"])


# -- epoch, the Internet side --

def c_epoch_elapsed():
    t0 = time.monotonic()
    r0 = ask(S.a, announce(B4A))
    time.sleep(3)
    t1 = time.monotonic()
    r1 = ask(S.a, announce(B4A))
    de, dt = r1.epoch - r0.epoch, t1 - t0
    expect(abs(de - dt) <= 1.05, "epoch moved %d in %.2f s" % (de, dt))
    return "%d -> %d in %.2f s" % (r0.epoch, r1.epoch, dt)


def c_internet_side():
    targets = [S.public_a, "198.51.100.1"]
    for ip in dict.fromkeys(targets):
        sock = socket_in("inet", socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((INET, 0))
        c = pcp.Client(ip, sock=sock, source=INET, label="inet")
        CLIENTS.append(c)
        expect_silence(c, announce("::ffff:" + INET))
        expect_silence(c, map_request("::ffff:" + INET, new_nonce(), TCP, 8080, 600,
                                      options=third_party(HOST)))
    return "nothing from %s" % ", ".join(dict.fromkeys(targets))


def c_persist_for_restart():
    m = map_ok(S.a, TCP, 8090, 3600)
    expect_reach(m, listener("h1", TCP, 8090))
    LIVE.pop(m.key(), None)  # kept on purpose for the next phases
    state = {"epoch_origin": Epoch.origin, "last_epoch": Epoch.last, "main_start": S.main_start,
             "persist": {"nonce": m.nonce.hex(), "ext_ip": m.ext_ip, "ext_port": m.ext_port,
                         "port": m.port}}
    with open(STATE_FILE, "w") as f:
        json.dump(state, f)
    return str(m)


def phase_main():
    S.main_start = time.monotonic()
    S.a = pcp_client_in("b4a", B4A, "b4a")
    S.b = pcp_client_in("b4b", B4B, "b4b")
    S.outsider = pcp_client_in("b4a", OUTSIDER, "outsider")
    S.h1_tcp = listener("h1", TCP, 8080, b"h1")
    S.h2_tcp = listener("h2", TCP, 8080, b"h2")
    S.h1_udp = listener("h1", UDP, 8085, b"h1")

    run("ANNOUNCE: SUCCESS, lifetime 0, 24 octets; requested lifetime and reserved bits ignored",
        c_announce)
    if Epoch.origin is None:
        print("Bail out: the PCP server does not answer an ANNOUNCE at [%s]:5351" % SERVER)
        return
    run("a 1-octet request is not answered", c_silence_1_octet)
    run("a request with the R bit set is not answered", c_silence_r_bit)
    run("a 20-octet version-2 request is not answered", c_silence_short)
    run("version 1: UNSUPP_VERSION, a 24-octet version-2 header", c_version, 1)
    run("version 3: UNSUPP_VERSION, a 24-octet version-2 header", c_version, 3)
    run("a length not a multiple of 4: MALFORMED_REQUEST, echoed", c_not_multiple_of_4)
    run("1104 octets: MALFORMED_REQUEST, reply truncated to 1100", c_too_long)
    run("opcode 5: UNSUPP_OPCODE", c_unknown_opcode, 5)
    run("opcode 3 (AUTHENTICATION): UNSUPP_OPCODE", c_unknown_opcode, 3)
    run("MAP of 56 octets: MALFORMED_REQUEST", c_map_too_short)
    run("PEER of 60 octets: MALFORMED_REQUEST", c_peer_too_short)
    run("Client IP other than the source: ADDRESS_MISMATCH", c_address_mismatch)

    run("mandatory unknown option 42: UNSUPP_OPTION", c_unknown_mandatory_option)
    run("unimplemented mandatory options 4..13: UNSUPP_OPTION", c_unimplemented_options)
    run("optional unknown option 200: ignored, not echoed in the SUCCESS",
        c_optional_option_ignored)
    run("an option running past the end: MALFORMED_OPTION", c_option_past_end)
    run("THIRD_PARTY of length 4: MALFORMED_OPTION", c_third_party_length)
    run("THIRD_PARTY twice: MALFORMED_OPTION", c_third_party_twice)
    run("PREFER_FAILURE with data: MALFORMED_OPTION", c_prefer_failure_length)
    run("FILTER of length 16: MALFORMED_OPTION", c_filter_malformed, "length 16",
        option(OPT_FILTER, pcp.filter_data(128, 0, INET)[:16]))
    run("FILTER prefix length 129: MALFORMED_OPTION", c_filter_malformed, "129",
        filter_option(129, 0, INET))
    run("FILTER prefix length 95 on an IPv4-mapped peer: MALFORMED_OPTION", c_filter_malformed,
        "95", filter_option(95, 0, INET))
    run("FILTER with an IPv6 peer: MALFORMED_OPTION", c_filter_malformed, "IPv6",
        filter_option(128, 0, "2001:db8::1"))
    run("PREFER_FAILURE or FILTER in a PEER: MALFORMED_REQUEST", c_peer_invalid_options)
    run("THIRD_PARTY, PREFER_FAILURE or FILTER in an ANNOUNCE: MALFORMED_REQUEST",
        c_announce_with_options)
    run("THIRD_PARTY equal to the source: MALFORMED_REQUEST", c_third_party_is_source)

    run("source outside b4_prefixes (%s): NOT_AUTHORIZED" % OUTSIDER, c_outsider)
    run("MAP and PEER without THIRD_PARTY: NOT_AUTHORIZED", c_no_third_party)
    run("THIRD_PARTY outside internal_prefixes (198.51.100.9): NOT_AUTHORIZED",
        c_third_party_outside, "198.51.100.9")
    run("THIRD_PARTY not IPv4-mapped: NOT_AUTHORIZED", c_third_party_outside, "2001:db8:a::10")

    run("MAP TCP 8080: SUCCESS, b4a's public address, a port of its blocks, fields echoed",
        c_map_tcp)
    if getattr(S, "m1", None) is None:
        print("Bail out: no MAP mapping to go on with")
        return
    run("MAP TCP 8080: inet reaches h1 192.0.2.10:8080 at the assigned address:port",
        c_map_traffic)
    run("an exact retransmission gets the same port", c_retransmission)
    run("a refresh (same nonce): same port, lifetime from now", c_refresh)
    run("a refresh with another nonce: NOT_AUTHORIZED, remaining lifetime, mapping unchanged",
        c_refresh_other_nonce)
    run("a delete with another nonce: NOT_AUTHORIZED, the mapping stays", c_delete_other_nonce)
    run("lifetimes clamped into [min_lifetime, max_lifetime]", c_lifetime_clamp)
    run("a free suggested port in b4a's blocks is honoured", c_suggested_port)
    run("a suggested external IP not b4a's, ::, ::ffff:0.0.0.0: no preference",
        c_suggested_ip_ignored)
    run("MAP UDP: a datagram from inet reaches h1, and no longer after the delete",
        c_map_udp_traffic)
    run("protocol 0 with internal port 8080: MALFORMED_REQUEST", c_bad_protocol_port,
        0, 8080, 600, MALFORMED_REQUEST)
    run("protocol 0, port 0, lifetime > 0: NOT_AUTHORIZED", c_bad_protocol_port,
        0, 0, 600, NOT_AUTHORIZED)
    run("TCP with internal port 0, lifetime > 0: NOT_AUTHORIZED", c_bad_protocol_port,
        TCP, 0, 600, NOT_AUTHORIZED)
    run("protocol 132 (SCTP): UNSUPP_PROTOCOL", c_bad_protocol_port, 132, 8080, 600,
        UNSUPP_PROTOCOL)
    run("delete (lifetime 0): SUCCESS lifetime 0, and inet can no longer connect", c_delete)
    run("delete of a mapping that does not exist: SUCCESS lifetime 0", c_delete_nothing)
    run("a delete's reply copies the suggested external address/port (RFC 6887 15.1, "
        "erratum 3621)", c_delete_copies_suggested)
    run("delete with protocol 0 port 0: that nonce's mappings of the host go, others stay",
        c_delete_all)

    run("PREFER_FAILURE, a port outside b4a's blocks: CANNOT_PROVIDE_EXTERNAL; without: "
        "another port", c_pf_outside_blocks)
    run("PREFER_FAILURE, a port another mapping holds: CANNOT_PROVIDE_EXTERNAL; without: "
        "another port", c_pf_port_held_by_own)
    run("PREFER_FAILURE, the port b4b's mapping holds: CANNOT_PROVIDE_EXTERNAL",
        c_pf_port_held_by_b4b)

    run("FILTER 203.0.113.10/32: echoed, inet reaches h1", c_filter_match)
    if getattr(S, "mf", None) is not None:
        run("FILTER 203.0.113.99/32 (refresh): inet cannot reach h1", c_filter_other_peer)
        run("four FILTERs: enforced in the data plane (only a matching peer gets in)",
            c_filter_four)
        run("five FILTERs: EXCESSIVE_REMOTE_PEERS", c_filter_five)
        run("FILTER with a remote port: only that source port gets in", c_filter_port)
        run("a refresh with one FILTER of prefix length 0 removes the filters",
            c_filter_remove_prefix0)
        run("a refresh with FILTER prefix length 0 and a zero peer (::) removes the filters",
            c_filter_remove_prefix0_zero_peer)
        run("a refresh without FILTER leaves no filters", c_filter_remove_by_omission)

    run("quota: mapping %d of b4a is USER_EX_QUOTA" % (QUOTA + 1), c_quota)

    run("isolation: b4b deleting with b4a's nonce: SUCCESS, b4a's mapping untouched",
        c_isolation_delete_other_nonce)
    if getattr(S, "ma", None) is not None:
        run("isolation: b4b's own mapping for the same host/port is distinct, reaches h2",
            c_isolation_own_mapping)
        if getattr(S, "mb", None) is not None:
            run("isolation: b4b deleting its own leaves b4a's working", c_isolation_delete_own)

    run("PEER with a MAP of that host/port: SUCCESS, the MAP's port, remote peer echoed",
        c_peer_with_map)
    if getattr(S, "peer_nonce", None) is not None:
        run("PEER lifetime 0 does not delete: the remaining lifetime", c_peer_lifetime0)
    run("PEER without a session: SUCCESS, and h1's datagrams leave with that port",
        c_peer_new_session)
    run("PEER with protocol, internal port or remote port 0: MALFORMED_REQUEST",
        c_peer_malformed)
    run("PEER with a suggested port that cannot be given: CANNOT_PROVIDE_EXTERNAL",
        c_peer_cannot_provide)

    run("operator: `aftrctl pcp list` shows a MAP (B4, inner, public, lifetime, filters; "
        "--json, table, --filter)", c_operator_list_map)
    if getattr(S, "op", None) is not None:
        run("operator: a PEER is listed as peer with its remote; `aftrctl pcp delete` of it "
            "leaves the MAP", c_operator_list_peer)
        run("operator: `aftrctl pcp delete` ends the MAP (inbound stops); the B4's refresh "
            "makes a new one (inbound again)", c_operator_delete_map)
    if getattr(S, "op_peer_name", None) is not None:
        run("operator: bad names: NOT_FOUND / INVALID_ARGUMENT exit 1, malformed exit 2",
            c_operator_bad_names)

    run("epoch: two ANNOUNCEs 3 s apart differ by the elapsed time +-1", c_epoch_elapsed)
    run("requests from the Internet side to a pool address are not answered",
        c_internet_side)
    run("cleanup: every mapping this phase made is deleted", cleanup_live)
    run("a mapping for the restart (TCP 8090, 3600 s) reaches h1", c_persist_for_restart)
    run("counters: pcp_requests = datagrams sent, pcp_result_* = replies received, "
        "+ dropped = requests", c_counters_phase)
    run("counters: 3 malformed, 1 version 1, 2 silent, MAP + delete move them by exactly that",
        c_counters_step)


# ======================================================================================
# After a restart
# ======================================================================================

def load_state():
    with open(STATE_FILE) as f:
        st = json.load(f)
    S.state = st
    p = st["persist"]
    S.persist_nonce = bytes.fromhex(p["nonce"])
    S.persist_ext = (p["ext_ip"], p["ext_port"])
    S.persist_port = p["port"]


def save_state(**kv):
    with open(STATE_FILE) as f:
        st = json.load(f)
    st.update(kv)
    with open(STATE_FILE + ".tmp", "w") as f:
        json.dump(st, f)
    os.rename(STATE_FILE + ".tmp", STATE_FILE)


def announce_log(timeout=15.0):
    """What the background `pcp_test.py listen` on [b4a]:5350 received (it writes its file
    when it ends)."""
    expect(ANNOUNCE_LOG, "test bug: PCP_ANNOUNCE_LOG not set")
    deadline = time.monotonic() + timeout
    while not os.path.exists(ANNOUNCE_LOG):
        expect(time.monotonic() < deadline, "the listener on [%s]:%d wrote nothing in %.0f s" % (
            B4A, pcp.CLIENT_PORT, timeout))
        time.sleep(0.1)
    with open(ANNOUNCE_LOG) as f:
        return json.load(f)


def c_no_unsolicited():
    log = announce_log()
    launched, up = float(ENV["PCP_AFTRD_LAUNCHED"]), float(ENV["PCP_AFTRD_UP"])
    expect(log["bound"] <= launched, "test bug: the listener bound %.2f s after aftrd's launch" % (
        log["bound"] - launched))
    expect(log["end"] - up >= 3.0, "test bug: listened only %.1f s after aftrd was up" % (
        log["end"] - up))
    ds = log["datagrams"]
    expect(not ds, "%d datagrams on [%s]:%d after a plain restart: %s" % (
        len(ds), B4A, pcp.CLIENT_PORT, ", ".join("%.2f s after the launch from [%s]:%d: %s" % (
            d["t"] - launched, d["src"], d["port"], d["hex"]) for d in ds)))
    return "nothing on [%s]:%d for %.1f s after aftrd was up" % (B4A, pcp.CLIENT_PORT,
                                                                 log["end"] - up)


def c_epoch_continues():
    t0 = time.monotonic()
    resp = S.a.exchange(announce(B4A))
    t1 = time.monotonic()
    expect(resp is not None, "no reply to an ANNOUNCE")
    want = (t0 + t1) / 2 - S.state["epoch_origin"]
    try:
        expect(resp.result == SUCCESS, "result %s" % result_name(resp.result))
        expect(abs(resp.epoch - want) <= 2, "epoch %d, want about %.1f (before: %d)" % (
            resp.epoch, want, S.state["last_epoch"]))
        return "epoch %d, about %.1f expected" % (resp.epoch, want)
    finally:
        set_epoch_origin(resp, (t0 + t1) / 2)  # the other cases check against this one


def c_restart_refresh():
    m = map_ok(S.a, TCP, S.persist_port, 3600, nonce=S.persist_nonce)
    expect((m.ext_ip, m.ext_port) == S.persist_ext, "refreshed to %s, was %s:%d" % (
        m, *S.persist_ext))
    S.persist = m
    return str(m)


def c_restart_traffic():
    return expect_reach(S.persist, listener("h1", TCP, S.persist_port))


def phase_restart():
    load_state()
    S.a = pcp_client_in("b4a", B4A, "b4a")
    Epoch.origin = S.state["epoch_origin"]
    run("after the restart the epoch continues", c_epoch_continues)
    run("after the restart the mapping refreshes with the same nonce to the same port",
        c_restart_refresh)
    if getattr(S, "persist", None) is not None:
        run("after the restart the mapping still carries inbound traffic", c_restart_traffic)
    run("a plain restart (pinned state kept) sends no unsolicited ANNOUNCE to b4a's port 5350",
        c_no_unsolicited)


# ======================================================================================
# Rate limit (aftrd restarted with requests_per_second 5, request_burst 10)
# ======================================================================================

BLAST = 50


def c_rate_limit():
    before = stats()
    b_got = []

    def paced():  # b4b, at the same moment: 5 requests, 0.15 s apart
        for _ in range(5):
            t = time.monotonic()
            b_got.append(S.b.exchange(announce(B4B), 1.0))
            time.sleep(max(0.0, 0.15 - (time.monotonic() - t)))

    th = threading.Thread(target=paced)
    req = announce(B4A)
    S.a.drain()
    th.start()
    t0 = time.monotonic()
    for _ in range(BLAST):  # back to back, no waiting for replies
        S.a.sock.sendto(req, S.a.server)
    t_sent = time.monotonic()
    replies = []
    while True:
        got = S.a.recv(0.5)
        if got is None:
            break
        replies.append(got)
    th.join(10)
    S.a.log.append(("b4a: %d ANNOUNCEs sent back to back, %d replies" % (BLAST, len(replies)),
                    None, None))
    bad = [pcp.Response(r) for r in replies]
    bad = [r for r in bad if len(r.raw) != 24 or r.version != 2 or not r.r_bit or
           r.opcode != OP_ANNOUNCE or r.result != SUCCESS]
    expect(not bad, "replies that are not ANNOUNCE SUCCESS: %s" % ", ".join(map(str, bad)))
    n = len(replies)
    hi = min(BURST + int(RATE * (t_sent - t0)) + 2, 15)
    expect(BURST <= n <= hi, "%d of %d back-to-back ANNOUNCEs answered (sent in %.3f s), want "
           "%d..%d" % (n, BLAST, t_sent - t0, BURST, hi))
    b_ok = [r for r in b_got if r is not None and r.result == SUCCESS]
    expect(len(b_got) == 5 and len(b_ok) == 5, "b4b, at the same moment: %d of 5 answered "
           "(%s)" % (len(b_ok), ", ".join(str(r) for r in b_got)))
    after = stats()
    expect_deltas(before, after, {
        "pcp_requests": BLAST + 5, "pcp_rate_limited": BLAST - n,
        "pcp_dropped_silently": BLAST - n, "pcp_result_success": n + 5},
        "after %d ANNOUNCEs from b4a (%d answered) and 5 from b4b" % (BLAST, n))
    S.blast_end = time.monotonic()
    return "b4a: %d of %d answered (sent in %.1f ms), pcp_rate_limited +%d; b4b: 5 of 5" % (
        n, BLAST, (t_sent - t0) * 1000, BLAST - n)


def c_rate_limit_recovers():
    time.sleep(max(0.0, S.blast_end + 1.1 - time.monotonic()))  # >= 5 tokens again
    for i in range(3):
        resp = ask(S.a, announce(B4A))
        expect(resp.result == SUCCESS, "ANNOUNCE %d: %s" % (i + 1, result_name(resp.result)))
    return "3 ANNOUNCEs answered 1 s after the burst"


def c_clients_file():
    expect(CLIENTS_FILE and os.path.exists(CLIENTS_FILE), "no clients file %r" % CLIENTS_FILE)
    with open(CLIENTS_FILE) as f:
        text = f.read()
    known = []
    for line in text.split():
        try:
            known.append(ipaddress.ip_address(line))
        except ValueError:
            raise Fail("a line of %s is not an address: %r" % (CLIENTS_FILE, line))
    for b4 in (B4A, B4B):
        expect(ipaddress.ip_address(b4) in known, "%s is not in %s: %r" % (b4, CLIENTS_FILE, text))
    expect(ipaddress.ip_address(OUTSIDER) not in known, "the outsider is in %s" % CLIENTS_FILE)
    expect(len(known) == len(set(known)), "duplicates in %s: %r" % (CLIENTS_FILE, text))
    return ", ".join(map(str, known))


def c_pre_loss_epoch():
    resp = ask(S.b, announce(B4B))
    t = time.monotonic()
    ran = t - S.state["main_start"]
    expect(resp.epoch >= ran - 1, "epoch %d, but the phases have run %.1f s since aftrd's first "
           "start" % (resp.epoch, ran))
    save_state(pre_loss_epoch=resp.epoch, pre_loss_time=t)
    return "epoch %d, %.1f s since the main phase began" % (resp.epoch, ran)


def phase_ratelimit():
    load_state()
    S.a = pcp_client_in("b4a", B4A, "b4a")
    S.b = pcp_client_in("b4b", B4B, "b4b")
    Epoch.origin = S.state["epoch_origin"]
    run("rate limit %d/s burst %d: of %d back-to-back ANNOUNCEs from b4a about %d are answered, "
        "b4b's 5 all are; pcp_rate_limited counts the rest" % (RATE, BURST, BLAST, BURST),
        c_rate_limit)
    if getattr(S, "blast_end", None) is not None:
        run("rate limit: b4a is answered again a second later", c_rate_limit_recovers)
    run("pcp.clients_file lists b4a and b4b (they held mappings), not the outsider",
        c_clients_file)
    run("before the state loss: the epoch has counted since aftrd's first start",
        c_pre_loss_epoch)


# ======================================================================================
# State loss (aftrd stopped, `aftrd --detach --purge`, started again)
# ======================================================================================

def c_loss_epoch():
    launched = float(ENV["PCP_AFTRD_LAUNCHED"])
    t0, w0 = time.monotonic(), time.time()
    resp = S.a.exchange(announce(B4A))
    t1 = time.monotonic()
    expect(resp is not None and resp.result == SUCCESS, "ANNOUNCE: %s" % resp)
    set_epoch_origin(resp, (t0 + t1) / 2)
    pre = S.state.get("pre_loss_epoch")
    expect(pre is not None, "no epoch from before the loss (the rate-limit phase failed?)")
    since = w0 - launched
    expect(resp.epoch <= since + 1, "epoch %d, but aftrd was launched %.1f s ago" % (
        resp.epoch, since))
    expect(resp.epoch < pre, "epoch %d, not below the %d before the loss" % (resp.epoch, pre))
    return "epoch %d (aftrd launched %.1f s ago); %d before the loss" % (resp.epoch, since, pre)


def c_loss_mapping_gone():
    rows = pcp_list()
    expect(not rows, "listed after the state loss: %s" % json.dumps(rows))
    expect(not exists(S.a, TCP, S.persist_port), "the server has TCP %d" % S.persist_port)
    S.persist_lst = listener("h1", TCP, S.persist_port)
    ok, detail = tcp_in(S.persist_ext[0], S.persist_ext[1], S.persist_lst, timeout=1.5)
    expect(not ok, "inet still reaches h1 at the old %s:%d: %s" % (*S.persist_ext, detail))
    return "nothing listed; %s:%d unreachable" % S.persist_ext


def c_loss_refresh():
    before = stats()
    m = map_ok(S.a, TCP, S.persist_port, 3600, nonce=S.persist_nonce)
    after = stats()
    created = after["pcp_mappings_created"] - before["pcp_mappings_created"]
    expect(created == 1, "the refresh created %d mappings, want 1 (a new one)" % created)
    rows = listed(map_name(TCP, m.ext_ip, m.ext_port))
    expect(len(rows) == 1 and rows[0].get("lifetime_seconds") == 3600,
           "listed as %s" % json.dumps(rows))
    expect_reach(m, S.persist_lst)
    return "old %s:%d, new %s" % (*S.persist_ext, m)


def c_unsolicited():
    log = announce_log()
    launched = float(ENV["PCP_AFTRD_LAUNCHED"])
    expect(log["bound"] <= launched, "test bug: the listener bound %.2f s after aftrd's launch" % (
        log["bound"] - launched))
    ds = log["datagrams"]
    for d in ds:
        raw = bytes.fromhex(d["hex"])
        S.a.log.append(("[%s]:%d -> [%s]:%d, %.3f s after the launch" % (
            d["src"], d["port"], B4A, pcp.CLIENT_PORT, d["t"] - launched), None, raw))
    problems = []
    for i, d in enumerate(ds):
        raw = bytes.fromhex(d["hex"])
        what = "datagram %d" % (i + 1)
        if (d["src"], d["port"]) != (SERVER, pcp.PORT):
            problems.append("%s from [%s]:%d, want [%s]:%d" % (what, d["src"], d["port"], SERVER,
                                                               pcp.PORT))
        if len(raw) != 24:
            problems.append("%s has %d octets, want 24" % (what, len(raw)))
            continue
        r = pcp.Response(raw)
        if r.version != 2 or raw[1] != 0x80 or r.reserved1 != 0 or r.result != 0 or \
                r.lifetime != 0 or r.epoch > 10 or r.reserved2 != b"\x00" * 12:
            problems.append("%s is %s (want version 2, 0x80, reserved 0, SUCCESS, lifetime 0, "
                            "epoch <= 10)" % (what, r))
    expect(not problems, "; ".join(problems))
    # Timed from when aftrd said it was running (its start-up takes seconds on a loaded
    # machine; the ANNOUNCEs begin just before).
    up = float(ENV["PCP_AFTRD_UP"])
    within = [d for d in ds if d["t"] - up <= 5.0]
    expect(len(within) >= 3, "%d unsolicited ANNOUNCEs within 5 s of aftrd being up (%d in "
           "all, listened %.1f s after)" % (len(within), len(ds), log["end"] - up))
    expect(len(ds) <= 5, "%d unsolicited ANNOUNCEs, want at most 5" % len(ds))
    if ds and log["end"] - ds[0]["t"] >= 4.2:
        expect(len(ds) == 5, "%d unsolicited ANNOUNCEs in the %.1f s after the first, want 5" % (
            len(ds), log["end"] - ds[0]["t"]))
    # At 0, 0.25, 0.75, 1.75, 3.75 s: intervals 0.25, 0.5, 1, 2 s, each timed from the last
    # send, which may come up to ~0.1 s late (the server's thread polls every 100 ms).
    times = [d["t"] - ds[0]["t"] for d in ds]
    gaps = [b - a for a, b in zip(times, times[1:])]
    want = [0.25, 0.5, 1.0, 2.0][:len(gaps)]
    expect(all(w - 0.05 <= g <= w + 0.2 for g, w in zip(gaps, want)),
           "intervals %s s, want %s s (each up to 0.2 s late)" % (
               ", ".join("%.2f" % g for g in gaps), ", ".join("%.2f" % w for w in want)))
    epochs = [pcp.Response(bytes.fromhex(d["hex"])).epoch for d in ds]
    expect(epochs == sorted(epochs), "epochs %s go backwards" % epochs)
    S.unsolicited = len(ds)
    return "%d, at +%s s after the first (%.2f s after the launch), epochs %s" % (
        len(ds), ", +".join("%.2f" % t for t in times), ds[0]["t"] - launched, epochs)


def c_unsolicited_counter():
    with open(CLIENTS_FILE) as f:
        known = len(f.read().split())
    st = stats()
    want = 5 * known
    got = st.get("pcp_unsolicited_sent")
    expect(got == want, "pcp_unsolicited_sent %s, want %d (5 rounds to the %d B4s of %s)" % (
        got, want, known, CLIENTS_FILE))
    return "%d" % want


def phase_stateloss():
    load_state()
    S.a = pcp_client_in("b4a", B4A, "b4a")
    run("after the state loss a fresh ANNOUNCE's epoch starts again from 0", c_loss_epoch)
    run("after the state loss the mapping is gone: not listed, not on the server, no traffic",
        c_loss_mapping_gone)
    if getattr(S, "persist_lst", None) is not None:
        run("after the state loss the refresh with the old nonce makes a new mapping; inbound "
            "works again", c_loss_refresh)
    run("after the state loss b4a gets unsolicited ANNOUNCEs from [%s]:%d on port %d" % (
        SERVER, pcp.PORT, pcp.CLIENT_PORT), c_unsolicited)
    run("pcp_unsolicited_sent counts the unsolicited ANNOUNCEs", c_unsolicited_counter)


# ======================================================================================
# The listener for unsolicited ANNOUNCEs (run in the background in b4a's namespace)
# ======================================================================================

def listen(out, seconds):
    """Binds [b4a]:5350, creates OUT.ready, records every datagram for SECONDS (or until 0.5 s
    after the fifth), then writes OUT (JSON: bound, end, datagrams with wall times)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((B4A, pcp.CLIENT_PORT))
    bound = time.time()
    open(out + ".ready", "w").close()
    got = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(2048)
        except socket.timeout:
            break
        except OSError:
            continue
        got.append({"t": time.time(), "src": src[0], "port": src[1], "hex": data.hex()})
        if len(got) >= 5:
            deadline = min(deadline, time.monotonic() + 0.5)
    sock.close()
    with open(out + ".tmp", "w") as f:
        json.dump({"bound": bound, "end": time.time(), "datagrams": got}, f)
    os.rename(out + ".tmp", out)
    return 0


# ======================================================================================
# Expiry (aftrd restarted with min_lifetime 2)
# ======================================================================================

def c_min_lifetime_2():
    m = map_ok(S.a, UDP, 8096, 1, want_lifetime=2)
    delete(m)


def c_expiry():
    lst = listener("h1", TCP, 8095)
    m = map_ok(S.a, TCP, 8095, 3, want_lifetime=3)
    expires = m.granted_at + 3
    expect_reach(m, lst)
    deadline = expires + 8
    first_fail = None
    while time.monotonic() < deadline:
        ok, detail = tcp_in(m.ext_ip, m.ext_port, lst, timeout=1.0)
        now = time.monotonic()
        if not ok:
            first_fail = now
            break
        expect(now < expires + 6, "still reachable %.1f s after the expiry" % (now - expires))
        time.sleep(0.3)
    expect(first_fail is not None, "still reachable %.1f s after the expiry" % (
        time.monotonic() - expires))
    expect(first_fail > expires - 1.0, "unreachable %.1f s before the expiry" % (
        expires - first_fail))
    ok, detail = tcp_in(m.ext_ip, m.ext_port, lst, timeout=1.0)
    expect(not ok, "reachable again: %s" % detail)
    expect(not exists(S.a, TCP, 8095), "the server still has the mapping")
    LIVE.pop(m.key(), None)
    return "stopped %.1f s after the 3 s lifetime ended" % (first_fail - expires)


def phase_expiry():
    load_state()
    S.a = pcp_client_in("b4a", B4A, "b4a")
    resp = S.a.exchange(announce(B4A))
    if resp is not None:
        set_epoch_origin(resp, time.monotonic())
    run("min_lifetime 2: a request for 1 s is granted 2 s", c_min_lifetime_2)
    run("a 3 s mapping stops carrying inbound connections soon after it expires", c_expiry)


def main():
    phase = sys.argv[1] if len(sys.argv) > 1 else "main"
    if phase == "listen" and len(sys.argv) == 4:
        return listen(sys.argv[2], float(sys.argv[3]))
    fn = {"main": phase_main, "restart": phase_restart, "ratelimit": phase_ratelimit,
          "stateloss": phase_stateloss, "expiry": phase_expiry}.get(phase)
    if fn is None:
        print("usage: pcp_test.py main|restart|ratelimit|stateloss|expiry | listen OUT SECONDS")
        return 2
    try:
        fn()
    finally:
        for lst in LISTENERS:
            lst.close()
        for c in CLIENTS:
            c.close()
    if not RESULTS:
        print("pcp_test %s: no case ran" % phase)
        return 1
    return summary(phase)


if __name__ == "__main__":
    sys.exit(main())
