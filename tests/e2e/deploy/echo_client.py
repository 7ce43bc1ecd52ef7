#!/usr/bin/python3
"""A long-lived TCP connection across an AFTR restart: sends a numbered line every 0.2 s and
reads its echo, until STOP_FILE exists (or MAX_SECONDS pass). Exit 0 only if every line came
back in order on the same connection; prints how many."""
import os
import socket
import sys
import time

host, port, stop_file, max_seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.create_connection((host, port), timeout=5)
f = s.makefile("rwb")
n = 0
deadline = time.monotonic() + max_seconds
while not os.path.exists(stop_file) and time.monotonic() < deadline:
    line = f"line {n}\n".encode()
    f.write(line)
    f.flush()
    if f.readline() != line:
        print(f"echo of line {n} missing or wrong")
        sys.exit(1)
    n += 1
    time.sleep(0.2)
print(f"{n} lines echoed on one connection")
sys.exit(0 if n > 0 else 1)
