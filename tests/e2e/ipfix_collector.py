#!/usr/bin/env python3
"""A minimal IPFIX-over-TCP collector for tests/e2e/ipfix_test.sh (stdlib only).

  ipfix_collector.py HOST PORT DIR SECONDS

Listens on HOST:PORT and accepts the exporter. When DIR/away appears it "goes away"
cleanly: shuts its side (FIN), reads the exporter's connection to its end, closes the
listener, and waits for DIR/back; then it listens again on the same port, and keeps reading
until the exporter closes (aftrd stops) or SECONDS pass. Writes DIR/collector.json: every
message (connection, sequence, set ids, NAT records, data records, last statistics values)
and DIR/stream.bin, the raw bytes received. Writes DIR/ready each time it listens.
"""
import json
import os
import socket
import struct
import sys
import time

STATS_TEMPLATE = 262
PORTS_EXHAUSTED_TEMPLATE = 263
RECORD_BYTES = {257: None, 256: None, 258: 13, 259: 33, 260: 17, 261: 17, STATS_TEMPLATE: 28,
                PORTS_EXHAUSTED_TEMPLATE: 29}


def records_in(set_id, body):
    """Counts the records of a data set (256/257 end in a 1-octet-length userName)."""
    if set_id in (256, 257):
        fixed = 38 if set_id == 256 else 37
        n, i = 0, 0
        while i + fixed + 1 <= len(body):
            i += fixed + 1 + body[i + fixed]
            n += 1
        return n
    size = RECORD_BYTES.get(set_id)
    return len(body) // size if size else 0


def parse(conn_no, msg, out):
    version, length, export_time, seq, odid = struct.unpack("!HHIII", msg[:16])
    entry = {"conn": conn_no, "seq": seq, "odid": odid, "version": version, "sets": [],
             "nat": 0, "data": 0, "ports_exhausted": []}
    i = 16
    while i + 4 <= length:
        set_id, set_len = struct.unpack("!HH", msg[i:i + 4])
        if set_len < 4:
            break
        body = msg[i + 4:i + set_len]
        entry["sets"].append(set_id)
        if set_id >= 256:
            n = records_in(set_id, body)
            entry["data"] += n
            if set_id != STATS_TEMPLATE:
                entry["nat"] += n
            if set_id == PORTS_EXHAUSTED_TEMPLATE:
                # natEvent, postNATSourceIPv4Address, sourceIPv6Address of each record
                for k in range(n):
                    r = body[29 * k:29 * (k + 1)]
                    entry["ports_exhausted"].append(
                        [r[8], socket.inet_ntop(socket.AF_INET, r[9:13]),
                         socket.inet_ntop(socket.AF_INET6, r[13:29])])
            else:
                for k in range(n):
                    r = body[28 * k:28 * (k + 1)]
                    dom, msgs, recs, notsent = struct.unpack("!IQQQ", r)
                    entry["stats"] = {"odid": dom, "messages": msgs, "records": recs,
                                      "not_sent": notsent}
        i += set_len
    out.append(entry)


def serve(listener, conn_no, directory, deadline, messages, raw, leave_on_away):
    listener.settimeout(0.2)
    conn = None
    while conn is None and time.time() < deadline:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
    if conn is None:
        return
    conn.settimeout(0.2)
    buf = b""
    going = False
    while time.time() < deadline:
        if leave_on_away and not going and os.path.exists(os.path.join(directory, "away")):
            conn.shutdown(socket.SHUT_WR)  # FIN: the exporter closes, we read to the end
            going = True
        try:
            data = conn.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        raw.append(data)
        buf += data
        while len(buf) >= 16:
            length = struct.unpack("!H", buf[2:4])[0]
            if len(buf) < length:
                break
            parse(conn_no, buf[:length], messages)
            buf = buf[length:]
    conn.close()


def listen(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(4)
    return s


def main():
    host, port, directory, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    deadline = time.time() + seconds
    messages, raw = [], []
    listener = listen(host, port)
    open(os.path.join(directory, "ready"), "w").close()
    serve(listener, 1, directory, deadline, messages, raw, True)
    listener.close()
    open(os.path.join(directory, "gone"), "w").close()
    while not os.path.exists(os.path.join(directory, "back")) and time.time() < deadline:
        time.sleep(0.1)
    listener = listen(host, port)
    serve(listener, 2, directory, deadline, messages, raw, False)
    listener.close()
    with open(os.path.join(directory, "stream.bin"), "wb") as f:
        f.write(b"".join(raw))
    with open(os.path.join(directory, "collector.json"), "w") as f:
        json.dump(messages, f)


if __name__ == "__main__":
    main()
