#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test suite through
# ctest — unit (Catch2), bpf (the production XDP object under BPF_PROG_TEST_RUN) and e2e
# (network namespaces, real kernel, real traffic) — then prints how many of each passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (BPF, XDP, namespaces)" >&2; exit 1; }
bash "$repo/scripts/install-deps.sh" || exit 1
bash "$repo/scripts/build.sh" || exit 1

cd "$repo/build" || exit 1
total_pass=0
total_fail=0
summary=()
for label in unit bpf e2e; do
	log=$(mktemp)
	ctest -L "^${label}\$" --output-on-failure --timeout 600 2>&1 | tee "$log"
	# ctest's own closing line: "NN% tests passed, F tests failed out of T"
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
	rm -f "$log"
	if [[ -z $line ]]; then
		summary+=("$label: no tests found")
		total_fail=$((total_fail + 1))
		continue
	fi
	failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	of=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	passed=$((of - failed))
	summary+=("$label: $passed passed, $failed failed")
	total_pass=$((total_pass + passed))
	total_fail=$((total_fail + failed))
done
echo
echo "== test summary"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
