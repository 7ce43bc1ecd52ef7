#!/usr/bin/env bash
# aftrd --check_config: the example configuration passes; a broken one fails with exit 1 and
# an error naming the field; neither touches the system (no bpffs pins, no XDP).
set -euo pipefail
aftrd=$1
example=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$aftrd" --check_config "$example" 2>&1) || { echo "example rejected: $out"; exit 1; }
grep -q "configuration OK" <<<"$out" || { echo "no OK line: $out"; exit 1; }

sed 's/^pool_prefixes:.*/pool_prefixes: "198.51.100.1\/28"/' "$example" >"$tmp/bad.conf"
grep -q '198.51.100.1/28' "$tmp/bad.conf" || { echo "test setup: no pool_prefixes line in example"; exit 1; }
rc=0
out=$("$aftrd" --check_config "$tmp/bad.conf" 2>&1) || rc=$?
[[ $rc == 1 ]] || { echo "bad config: exit $rc, want 1: $out"; exit 1; }
grep -q 'pool_prefixes\[0\]' <<<"$out" || { echo "error does not name the field: $out"; exit 1; }

printf 'interfaces: "x"\nno_such_field: 1\n' >"$tmp/unknown.conf"
rc=0
out=$("$aftrd" --check_config "$tmp/unknown.conf" 2>&1) || rc=$?
[[ $rc == 1 ]] && grep -q 'no_such_field' <<<"$out" || { echo "unknown field: exit $rc: $out"; exit 1; }

rc=0
out=$("$aftrd" --check_config "$tmp/missing.conf" 2>&1) || rc=$?
[[ $rc == 1 ]] && grep -q 'missing.conf' <<<"$out" || { echo "missing file: exit $rc: $out"; exit 1; }
echo "aftrd --check_config: ok"
