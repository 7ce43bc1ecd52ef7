#!/usr/bin/env python3
"""Checks for tests/e2e/ipfix_test.sh over IPFIX messages (stdlib only).

  ipfix_check.py udp PAYLOADS_HEX_FILE   one UDP payload (hex) per line, capture order
  ipfix_check.py tcp COLLECTOR_JSON      what ipfix_collector.py received

Prints "key=value" lines: messages, nat records, sequence gaps, template messages, the last
statistics record, the ports exhausted records (template 263) as natEvent/address/B4;
exits 1 on a sequence-number gap.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ipfix_collector import parse  # noqa: E402


def check(messages):
    expected, gaps, nat, templates, stats, exhausted = None, 0, 0, 0, None, []
    for m in messages:
        if expected is not None and m["seq"] != expected:
            print(f"gap: expected {expected} got {m['seq']}", file=sys.stderr)
            gaps += 1
        expected = (m["seq"] + m["data"]) % 2**32
        nat += m["nat"]
        if 2 in m["sets"]:
            templates += 1
        if "stats" in m:
            stats = m["stats"]
        exhausted += m.get("ports_exhausted", [])
    print(f"messages={len(messages)}")
    print(f"nat_records={nat}")
    print(f"template_messages={templates}")
    print(f"gaps={gaps}")
    print(f"first_seq={messages[0]['seq'] if messages else -1}")
    print(f"ports_exhausted_records={len(exhausted)}")
    print("ports_exhausted=" + " ".join(sorted({f"{e}/{a}/{b4}" for e, a, b4 in exhausted})))
    if stats:
        print(f"stats_records={stats['records']}")
        print(f"stats_not_sent={stats['not_sent']}")
    return gaps == 0


def main():
    kind, path = sys.argv[1], sys.argv[2]
    messages = []
    if kind == "udp":
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    parse(0, bytes.fromhex(line.replace(":", "")), messages)
    else:
        with open(path) as f:
            messages = json.load(f)
        conns = sorted({m["conn"] for m in messages})
        firsts = [next(m for m in messages if m["conn"] == c) for c in conns]
        print(f"connections={len(conns)}")
        print("connections_start_with_templates=%d" % all(2 in m["sets"] for m in firsts))
    sys.exit(0 if check(messages) else 1)


if __name__ == "__main__":
    main()
