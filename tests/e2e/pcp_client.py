#!/usr/bin/env python3
"""A small PCP (RFC 6887, version 2) client for the end-to-end tests.

Written from the RFC, independent of aftrd's C++ codec. Standard library only.

Build requests:
    announce(client_ip, ...)                      24-octet ANNOUNCE
    map_request(client_ip, nonce, proto, port, ...)  MAP (header + 36-octet body + options)
    peer_request(client_ip, nonce, proto, port, remote_port, remote_ip, ...)  PEER (+56)
    header(...), map_body(...), peer_body(...), option(...)  the pieces, for malformed cases
    third_party(addr), prefer_failure(), filter_option(prefix_len, port, addr)

Decode:
    decode_response(data) -> Response  (header, MAP/PEER body, options)
    decode_request(data)  -> Request   (the mirror image; used by the self-test)

Send / receive:
    Client(server, source=..., sock=...).exchange(request_bytes) -> Response or None
    (every exchange is kept in Client.log as (sent, received) for hex dumps)

Addresses are given as strings: an IPv4 "a.b.c.d" is encoded IPv4-mapped (::ffff:a.b.c.d),
anything with a ':' as IPv6. Raw 16-octet bytes are taken as they are.

Run this file to run its self-test (encode/decode round trips, no network).
"""

import os
import socket
import struct
import time

VERSION = 2
PORT = 5351
CLIENT_PORT = 5350  # where a server sends unsolicited responses (RFC 6887 8.1, 14.1.3)
MAX_SIZE = 1100

OP_ANNOUNCE = 0
OP_MAP = 1
OP_PEER = 2
OP_AUTHENTICATION = 3
OPCODE_NAMES = {OP_ANNOUNCE: "ANNOUNCE", OP_MAP: "MAP", OP_PEER: "PEER",
                OP_AUTHENTICATION: "AUTHENTICATION"}

OPT_THIRD_PARTY = 1
OPT_PREFER_FAILURE = 2
OPT_FILTER = 3
OPTION_NAMES = {OPT_THIRD_PARTY: "THIRD_PARTY", OPT_PREFER_FAILURE: "PREFER_FAILURE",
                OPT_FILTER: "FILTER"}

SUCCESS = 0
UNSUPP_VERSION = 1
NOT_AUTHORIZED = 2
MALFORMED_REQUEST = 3
UNSUPP_OPCODE = 4
UNSUPP_OPTION = 5
MALFORMED_OPTION = 6
NETWORK_FAILURE = 7
NO_RESOURCES = 8
UNSUPP_PROTOCOL = 9
USER_EX_QUOTA = 10
CANNOT_PROVIDE_EXTERNAL = 11
ADDRESS_MISMATCH = 12
EXCESSIVE_REMOTE_PEERS = 13
RESULT_NAMES = {
    0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
    4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
    8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA",
    11: "CANNOT_PROVIDE_EXTERNAL", 12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS",
}

HEADER_SIZE = 24
MAP_BODY_SIZE = 36
PEER_BODY_SIZE = 56
FILTER_DATA_SIZE = 20

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def result_name(code):
    return RESULT_NAMES.get(code, "result %d" % code)


# ---- addresses ----

def addr16(addr):
    """16 octets for an address: IPv4 strings IPv4-mapped, IPv6 strings as they are."""
    if isinstance(addr, (bytes, bytearray)):
        if len(addr) != 16:
            raise ValueError("a raw address must be 16 octets, not %d" % len(addr))
        return bytes(addr)
    if ":" in addr:
        return socket.inet_pton(socket.AF_INET6, addr)
    return _V4_MAPPED + socket.inet_pton(socket.AF_INET, addr)


def is_v4_mapped(raw16):
    return raw16[:12] == _V4_MAPPED


def addr_str(raw16):
    """'a.b.c.d' for an IPv4-mapped address, the IPv6 text form otherwise."""
    if is_v4_mapped(raw16):
        return socket.inet_ntop(socket.AF_INET, raw16[12:])
    return socket.inet_ntop(socket.AF_INET6, raw16)


# ---- building requests ----

def header(opcode, lifetime, client_ip, version=VERSION, r_bit=False, reserved=0):
    """The 24-octet request header."""
    return struct.pack("!BBHI16s", version & 0xff, (0x80 if r_bit else 0) | (opcode & 0x7f),
                       reserved & 0xffff, lifetime & 0xffffffff, addr16(client_ip))


def map_body(nonce, protocol, internal_port, ext_port=0, ext_ip="::", reserved=0):
    """The 36-octet MAP body (suggested external port/IP in a request)."""
    if len(nonce) != 12:
        raise ValueError("the nonce is 12 octets")
    return struct.pack("!12sB3sHH16s", nonce, protocol & 0xff, reserved.to_bytes(3, "big"),
                       internal_port & 0xffff, ext_port & 0xffff, addr16(ext_ip))


def peer_body(nonce, protocol, internal_port, remote_port, remote_ip, ext_port=0, ext_ip="::"):
    """The 56-octet PEER body: the MAP body, remote peer port, reserved, remote peer IP."""
    return (map_body(nonce, protocol, internal_port, ext_port, ext_ip) +
            struct.pack("!HH16s", remote_port & 0xffff, 0, addr16(remote_ip)))


def option(code, data=b"", length=None, pad=True):
    """One option: code, reserved, length (of the data, unpadded), data padded to 4.
    length overrides the length field (malformed cases); pad=False omits the padding."""
    data = bytes(data)
    n = len(data) if length is None else length
    out = struct.pack("!BBH", code & 0xff, 0, n & 0xffff) + data
    if pad:
        out += b"\x00" * (-len(data) % 4)
    return out


def third_party(addr):
    return option(OPT_THIRD_PARTY, addr16(addr))


def prefer_failure():
    return option(OPT_PREFER_FAILURE)


def filter_data(prefix_len, remote_port, remote_ip):
    """FILTER data: reserved, prefix length (of the 128-bit form), remote port, remote IP."""
    return struct.pack("!BBH16s", 0, prefix_len & 0xff, remote_port & 0xffff, addr16(remote_ip))


def filter_option(prefix_len, remote_port, remote_ip):
    return option(OPT_FILTER, filter_data(prefix_len, remote_port, remote_ip))


def filter_v4(prefix4, remote_port=0):
    """FILTER for an IPv4 prefix 'a.b.c.d/n': the prefix length on the 128-bit form (96+n)."""
    addr, _, n = prefix4.partition("/")
    return filter_option(96 + int(n or 32), remote_port, addr)


def announce(client_ip, lifetime=0, options=b"", reserved=0):
    return header(OP_ANNOUNCE, lifetime, client_ip, reserved=reserved) + bytes(options)


def map_request(client_ip, nonce, protocol, internal_port, lifetime, ext_port=0, ext_ip="::",
                options=b""):
    return (header(OP_MAP, lifetime, client_ip) +
            map_body(nonce, protocol, internal_port, ext_port, ext_ip) + bytes(options))


def peer_request(client_ip, nonce, protocol, internal_port, remote_port, remote_ip, lifetime,
                 ext_port=0, ext_ip="::", options=b""):
    return (header(OP_PEER, lifetime, client_ip) +
            peer_body(nonce, protocol, internal_port, remote_port, remote_ip, ext_port, ext_ip) +
            bytes(options))


def new_nonce():
    return os.urandom(12)


# ---- decoding ----

class Option:
    def __init__(self, code, data):
        self.code = code
        self.data = data

    @property
    def name(self):
        return OPTION_NAMES.get(self.code, "option %d" % self.code)

    def describe(self):
        if self.code == OPT_THIRD_PARTY and len(self.data) == 16:
            return "THIRD_PARTY %s" % addr_str(self.data)
        if self.code == OPT_FILTER and len(self.data) == FILTER_DATA_SIZE:
            _, plen, port, ip = struct.unpack("!BBH16s", self.data)
            return "FILTER %s/%d port %d" % (addr_str(ip), plen, port)
        return "%s (%d octets)" % (self.name, len(self.data))

    def __eq__(self, other):
        return isinstance(other, Option) and (self.code, self.data) == (other.code, other.data)

    def __hash__(self):
        return hash((self.code, self.data))

    def __repr__(self):
        return "<%s>" % self.describe()


def decode_options(data):
    """(options, problem): options as Option objects; problem a string if they do not parse."""
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 4:
            return out, "%d stray octets at option offset %d" % (len(data) - off, off)
        code, _, length = struct.unpack_from("!BBH", data, off)
        padded = length + (-length % 4)
        if off + 4 + padded > len(data):
            return out, "option %d (length %d) runs past the end" % (code, length)
        out.append(Option(code, bytes(data[off + 4:off + 4 + length])))
        off += 4 + padded
    return out, None


def _body_size(opcode):
    return {OP_MAP: MAP_BODY_SIZE, OP_PEER: PEER_BODY_SIZE}.get(opcode, 0)


class Response:
    """A decoded PCP response. `problem` says what did not decode (None when all did)."""

    def __init__(self, data):
        self.raw = bytes(data)
        self.problem = None
        self.options = []
        self.nonce = self.protocol = self.internal_port = None
        self.ext_port = self.ext_ip_raw = self.remote_port = self.remote_ip_raw = None
        if len(data) < HEADER_SIZE:
            self.problem = "only %d octets (a header is 24)" % len(data)
            self.version = data[0] if data else None
            return
        (self.version, op, self.reserved1, self.result, self.lifetime, self.epoch,
         self.reserved2) = struct.unpack_from("!BBBBII12s", data, 0)
        self.r_bit = bool(op & 0x80)
        self.opcode = op & 0x7f
        size = _body_size(self.opcode)
        if size:
            if len(data) < HEADER_SIZE + size:
                self.problem = "%s response of %d octets (needs %d)" % (
                    OPCODE_NAMES.get(self.opcode), len(data), HEADER_SIZE + size)
                return
            (self.nonce, self.protocol, self.body_reserved, self.internal_port, self.ext_port,
             self.ext_ip_raw) = struct.unpack_from("!12sB3sHH16s", data, HEADER_SIZE)
            if self.opcode == OP_PEER:
                self.remote_port, _, self.remote_ip_raw = struct.unpack_from(
                    "!HH16s", data, HEADER_SIZE + MAP_BODY_SIZE)
        self.options, self.problem = decode_options(data[HEADER_SIZE + size:])

    @property
    def ext_ip(self):
        return addr_str(self.ext_ip_raw) if self.ext_ip_raw is not None else None

    @property
    def remote_ip(self):
        return addr_str(self.remote_ip_raw) if self.remote_ip_raw is not None else None

    def options_of(self, code):
        return [o for o in self.options if o.code == code]

    def third_party(self):
        tp = self.options_of(OPT_THIRD_PARTY)
        return addr_str(tp[0].data) if tp and len(tp[0].data) == 16 else None

    def describe(self):
        if len(self.raw) < HEADER_SIZE:
            return "short response (%d octets)" % len(self.raw)
        s = "v%d %s%s %s lifetime %d epoch %d len %d" % (
            self.version, "R " if self.r_bit else "(no R) ",
            OPCODE_NAMES.get(self.opcode, "opcode %d" % self.opcode), result_name(self.result),
            self.lifetime, self.epoch, len(self.raw))
        if self.nonce is not None:
            s += " nonce %s proto %d int-port %d ext %s:%d" % (
                self.nonce.hex(), self.protocol, self.internal_port, self.ext_ip, self.ext_port)
        if self.remote_port is not None:
            s += " peer %s:%d" % (self.remote_ip, self.remote_port)
        if self.options:
            s += " [" + ", ".join(o.describe() for o in self.options) + "]"
        if self.problem:
            s += " (" + self.problem + ")"
        return s

    __str__ = describe


def decode_response(data):
    return Response(data)


class Request:
    """A decoded PCP request (the self-test checks the encoders with it)."""

    def __init__(self, data):
        self.raw = bytes(data)
        (self.version, op, self.reserved, self.lifetime, client) = struct.unpack_from(
            "!BBHI16s", data, 0)
        self.r_bit = bool(op & 0x80)
        self.opcode = op & 0x7f
        self.client_ip = addr_str(client)
        size = _body_size(self.opcode)
        self.nonce = None
        if size:
            (self.nonce, self.protocol, _, self.internal_port, self.ext_port,
             ext) = struct.unpack_from("!12sB3sHH16s", data, HEADER_SIZE)
            self.ext_ip = addr_str(ext)
            if self.opcode == OP_PEER:
                self.remote_port, _, rip = struct.unpack_from("!HH16s", data,
                                                              HEADER_SIZE + MAP_BODY_SIZE)
                self.remote_ip = addr_str(rip)
        self.options, self.problem = decode_options(data[HEADER_SIZE + size:])


def decode_request(data):
    return Request(data)


def build_response(opcode, result, lifetime, epoch, body=b"", options=b""):
    """A response as a server would send it (the self-test's counterpart of decode)."""
    return (struct.pack("!BBBBII12s", VERSION, 0x80 | opcode, 0, result, lifetime, epoch,
                        b"\x00" * 12) + body + options)


# ---- hex ----

def hexdump(data, indent="    "):
    """Offset, hex and ASCII, 16 octets a line."""
    if data is None:
        return indent + "(nothing)"
    if not data:
        return indent + "(0 octets)"
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        hx = " ".join("%02x" % b for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append("%s%04x  %-47s  %s" % (indent, off, hx, asc))
    return "\n".join(lines)


# ---- the client ----

class Client:
    """UDP client for one source address. `sock` may be a socket made elsewhere (e.g. in
    another network namespace); otherwise one is made and bound to (source, 0).
    Every exchange is appended to self.log as (label, sent, received-or-None); self.sent and
    self.received count the datagrams sent to the server and received from it."""

    def __init__(self, server, port=PORT, source=None, sock=None, family=None, label=""):
        if family is None:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
        self.server = (server, port)
        self.label = label or (source or "client")
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if source:
                sock.bind((source, 0))
        self.sock = sock
        self.source = source or sock.getsockname()[0]
        self.log = []
        self.sent = 0
        self.received = 0

    def close(self):
        self.sock.close()

    def drain(self):
        """Throws away anything already queued (a late reply to an earlier request)."""
        self.sock.setblocking(False)
        try:
            for _ in range(1000):
                try:
                    data = self.sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:  # a pending ICMP error from an earlier send
                    self.log.append((self.label + " stale error: %s" % e, None, None))
                    continue
                self.received += 1
                self.log.append((self.label + " stale", None, data))
        finally:
            self.sock.setblocking(True)

    def send(self, data):
        self.drain()
        self.sock.sendto(data, self.server)
        self.sent += 1

    def recv(self, timeout):
        """The next datagram from the server within timeout seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            except OSError as e:  # e.g. an ICMP port unreachable: nobody listens there
                self.log.append((self.label + " error: %s" % e, None, None))
                return None
            if src[1] == self.server[1]:
                self.received += 1
                return data
            self.log.append((self.label + " from %s" % (src,), None, data))

    def exchange_raw(self, data, timeout=1.5):
        """Sends data, returns the raw reply (or None) and logs the pair."""
        self.send(data)
        reply = self.recv(timeout)
        self.log.append((self.label, bytes(data), reply))
        return reply

    def exchange(self, data, timeout=1.5):
        """Sends data, returns the decoded Response (or None when nothing came back)."""
        reply = self.exchange_raw(data, timeout)
        return None if reply is None else Response(reply)


# ---- self-test ----

def _selftest():
    checks = 0

    def ok(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            raise AssertionError(what)

    # Addresses.
    ok(addr16("192.0.2.10").hex() == "00000000000000000000ffffc000020a", "IPv4-mapped encoding")
    ok(addr_str(addr16("192.0.2.10")) == "192.0.2.10", "IPv4-mapped round trip")
    ok(addr_str(addr16("2001:db8:a::2")) == "2001:db8:a::2", "IPv6 round trip")
    ok(is_v4_mapped(addr16("::ffff:0.0.0.0")) and not is_v4_mapped(addr16("::")), "mapped test")

    # Header layout.
    h = header(OP_MAP, 0x01020304, "2001:db8:a::2", reserved=0xabcd)
    ok(len(h) == 24 and h[0] == 2 and h[1] == 1 and h[2:4] == b"\xab\xcd", "header fields")
    ok(h[4:8] == b"\x01\x02\x03\x04" and h[8:24] == addr16("2001:db8:a::2"), "header lifetime/ip")
    ok(header(OP_MAP, 0, "::", r_bit=True)[1] == 0x81, "R bit")
    ok(header(OP_ANNOUNCE, 0, "::", version=1)[0] == 1, "version override")

    # Options: padding and lengths.
    ok(third_party("192.0.2.10") == b"\x01\x00\x00\x10" + addr16("192.0.2.10"), "THIRD_PARTY")
    ok(prefer_failure() == b"\x02\x00\x00\x00", "PREFER_FAILURE")
    ok(option(200, b"abc") == b"\xc8\x00\x00\x03abc\x00", "padding to 4, length unpadded")
    ok(option(1, b"", length=16) == b"\x01\x00\x00\x10", "length override")
    f = filter_v4("203.0.113.0/24", 80)
    ok(len(f) == 24 and f[4:8] == b"\x00\x78\x00\x50" and f[8:] == addr16("203.0.113.0"),
       "FILTER /24 is prefix length 120")
    ok(filter_v4("203.0.113.10")[5] == 128, "FILTER default /32 is 128")

    # MAP request round trip.
    nonce = bytes(range(12))
    req = map_request("2001:db8:a::2", nonce, 6, 8080, 600, 40000, "198.51.100.1",
                      third_party("192.0.2.10") + prefer_failure() + f)
    ok(len(req) == 24 + 36 + 20 + 4 + 24, "MAP length")
    r = decode_request(req)
    ok((r.version, r.opcode, r.lifetime, r.client_ip) == (2, 1, 600, "2001:db8:a::2"), "MAP hdr")
    ok((r.nonce, r.protocol, r.internal_port, r.ext_port, r.ext_ip) ==
       (nonce, 6, 8080, 40000, "198.51.100.1"), "MAP body")
    ok([o.code for o in r.options] == [1, 2, 3] and r.problem is None, "MAP options")

    # PEER request round trip.
    req = peer_request("2001:db8:b::2", nonce, 17, 5555, 7, "203.0.113.10", 300,
                       options=third_party("192.0.2.10"))
    ok(len(req) == 24 + 56 + 20, "PEER length")
    r = decode_request(req)
    ok((r.opcode, r.protocol, r.internal_port, r.remote_port, r.remote_ip) ==
       (2, 17, 5555, 7, "203.0.113.10"), "PEER body")

    # Responses.
    body = map_body(nonce, 6, 8080, 41000, "198.51.100.3")
    raw = build_response(OP_MAP, SUCCESS, 600, 12345, body, third_party("192.0.2.10"))
    resp = decode_response(raw)
    ok(resp.version == 2 and resp.r_bit and resp.opcode == OP_MAP, "response header")
    ok((resp.result, resp.lifetime, resp.epoch) == (0, 600, 12345), "response values")
    ok((resp.nonce, resp.protocol, resp.internal_port, resp.ext_port, resp.ext_ip) ==
       (nonce, 6, 8080, 41000, "198.51.100.3"), "response MAP body")
    ok(resp.third_party() == "192.0.2.10" and resp.problem is None, "response THIRD_PARTY")
    ok(resp.reserved1 == 0 and resp.reserved2 == b"\x00" * 12, "response reserved fields")

    body = peer_body(nonce, 17, 5555, 7, "203.0.113.10", 42000, "198.51.100.3")
    resp = decode_response(build_response(OP_PEER, SUCCESS, 120, 7, body))
    ok((resp.remote_port, resp.remote_ip, resp.ext_port) == (7, "203.0.113.10", 42000),
       "response PEER body")

    resp = decode_response(build_response(OP_ANNOUNCE, UNSUPP_VERSION, 1800, 9))
    ok(resp.opcode == 0 and resp.result == 1 and resp.nonce is None and not resp.options,
       "bare header")
    resp = decode_response(build_response(OP_MAP, SUCCESS, 1, 1, body[:36], b"\x01\x00\x00\x10"))
    ok(resp.problem and "past the end" in resp.problem, "a truncated option is reported")
    resp = decode_response(build_response(OP_PEER, SUCCESS, 1, 1, body[:36]))
    ok(resp.problem is not None, "a short PEER response is reported")
    ok(decode_response(b"\x02\x80").problem is not None, "a 2-octet response is reported")
    ok("0000  02 80" in hexdump(b"\x02\x80"), "hexdump")
    ok(result_name(11) == "CANNOT_PROVIDE_EXTERNAL" and result_name(99) == "result 99", "names")

    # A loopback exchange through Client (a fake server answering one request).
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    cli = Client("127.0.0.1", port=srv.getsockname()[1], source="127.0.0.1")
    cli.send(announce("::ffff:127.0.0.1"))
    srv.settimeout(2)
    data, src = srv.recvfrom(2048)
    ok(decode_request(data).opcode == OP_ANNOUNCE, "server got the ANNOUNCE")
    srv.sendto(build_response(OP_ANNOUNCE, SUCCESS, 0, 3), src)
    got = cli.recv(2)
    ok(got is not None and decode_response(got).epoch == 3, "client got the reply")
    ok(cli.recv(0.1) is None, "silence is None")
    ok((cli.sent, cli.received) == (1, 1), "one sent, one received")
    srv.close()
    cli.close()
    return checks


if __name__ == "__main__":
    n = _selftest()
    print("pcp_client self-test: %d checks passed" % n)
