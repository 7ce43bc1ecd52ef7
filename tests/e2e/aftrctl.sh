# shellcheck shell=bash
# tests/e2e/aftrctl.sh — aftrctl against the lab's aftrd (its API Unix socket). Sourced after
# lib.sh and aftrd.sh by the lab (scripts/lab.sh) and tests/e2e/aftrctl_test.sh.
#
#   aftrctl_run ARGS...   aftrctl --socket <the lab's socket> ARGS...
#   aftrctl_show          subscribers, port blocks, sessions and non-zero counters, as tables

AFTRCTL=${AFTRCTL:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/control/cli/aftrctl}
# The socket aftrctl uses; empty = the one aftrd.sh put in the lab's configuration.
AFTRCTL_SOCKET=${AFTRCTL_SOCKET:-}

aftrctl_run() {
	"$AFTRCTL" --socket "${AFTRCTL_SOCKET:-$AFTR_API_SOCKET}" "$@"
}

# aftrctl_counter NAME: one of aftrd's own counters (aftrctl stats), 0 when absent.
aftrctl_counter() {
	aftrctl_run --json stats | /usr/bin/python3 -c \
		'import json, sys; print(int(json.load(sys.stdin).get("controller_counters", {}).get(sys.argv[1], 0)))' "$1"
}

aftrctl_show() {
	echo "== subscribers (aftrctl subscribers list)"
	aftrctl_run subscribers list --all
	echo
	echo "== port blocks (aftrctl blocks list)"
	aftrctl_run blocks list --all
	echo
	echo "== sessions (aftrctl sessions list)"
	aftrctl_run sessions list --all
	echo
	echo "== counters (aftrctl stats --nonzero)"
	aftrctl_run stats --nonzero
}
