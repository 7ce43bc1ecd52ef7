#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test suite through
# ctest — unit (Catch2), bpf (the production XDP object under BPF_PROG_TEST_RUN) and e2e
# (network namespaces, real kernel, real traffic) — then the same unit and bpf tests, and two
# e2e tests, again in the sanitizer tree build-asan/ (ASan + UBSan, scripts/build-asan.sh), and
# prints how many of each passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "test.sh: run as root (BPF, XDP, namespaces)" >&2; exit 1; }
bash "$repo/scripts/install-deps.sh" || exit 1
bash "$repo/scripts/build.sh" || exit 1

total_pass=0
total_fail=0
summary=()
# run_label NAME DIR CTEST-ARGS...: runs ctest in DIR and adds "NAME: P passed, F failed" to the
# summary.
run_label() {
	local name=$1 dir=$2
	shift 2
	local log line failed of passed
	log=$(mktemp)
	(cd "$dir" && ctest "$@" --output-on-failure --timeout 600) 2>&1 | tee "$log"
	# ctest's own closing line: "NN% tests passed, F tests failed out of T"
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
	rm -f "$log"
	if [[ -z $line ]]; then
		summary+=("$name: no tests found")
		total_fail=$((total_fail + 1))
		return
	fi
	failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	of=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	passed=$((of - failed))
	summary+=("$name: $passed passed, $failed failed")
	total_pass=$((total_pass + passed))
	total_fail=$((total_fail + failed))
}

for label in unit bpf e2e; do
	run_label "$label" "$repo/build" -L "^${label}\$"
done

# The sanitizer tree (scripts/build-asan.sh): the daemon, aftrctl and the unit and bpf tests
# under ASan + UBSan, then two e2e tests with the sanitized aftrd (AFTRD points there), whose
# reports go to files (the scripts would not show its stderr) that must stay absent.
start=$(date +%s)
if bash "$repo/scripts/build-asan.sh"; then
	# shellcheck source=../tests/sanitizers/env.sh
	. "$repo/tests/sanitizers/env.sh"
	run_label "asan unit" "$repo/build-asan" -L '^unit$'
	# The differential test's million packets exercise the program, already done above; here
	# the harness and model code only need to run, so a fifth of them.
	AFTR_DIFF_PACKETS=200000 run_label "asan bpf" "$repo/build-asan" -L '^bpf$'
	san_logs=$(mktemp -d)
	AFTR_ASAN_EXTRA="log_path=$san_logs/asan" . "$repo/tests/sanitizers/env.sh"
	export UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$san_logs/ubsan"
	run_label "asan e2e" "$repo/build-asan" -R '^e2e:(aftr_traffic|pcp)$'
	if compgen -G "$san_logs/*" >/dev/null; then
		echo "== sanitizer reports from the e2e runs"
		cat "$san_logs"/*
		summary+=("asan e2e: sanitizer reports (above)")
		total_fail=$((total_fail + 1))
	fi
	rm -rf "$san_logs"
else
	summary+=("asan: build failed")
	total_fail=$((total_fail + 1))
fi
echo "sanitizer tree: $(($(date +%s) - start)) s (build and tests)"

echo
echo "== test summary"
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
