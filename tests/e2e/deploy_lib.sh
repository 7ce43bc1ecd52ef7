# shellcheck shell=bash
# tests/e2e/deploy_lib.sh — building and (un)installing the aftr .deb on the test machine
# itself (a throwaway root VM; no systemd as PID 1). Sourced by the deploy_* tests.
#
#   deb_build DIR          cpack in $AFTR_BUILD_DIR → DIR/aftr_*.deb; prints the path
#   deb_preflight          refuses (exit 77 = skip) when aftr is already installed here
#   deb_cleanup            dpkg --purge aftr, and removes what the test made (the user, the
#                          logs, enable links, /etc/aftr) if it was not there before
AFTR_BUILD_DIR=${AFTR_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
DEB_HAD_USER=0
DEB_HAD_LOGS=0
DEB_HAD_ETC=0

deb_build() {
	cpack --config "$AFTR_BUILD_DIR/CPackConfig.cmake" -B "$1" >"$1/cpack.log" 2>&1 ||
		{ cat "$1/cpack.log" >&2; return 1; }
	ls "$1"/aftr_*.deb
}

deb_preflight() {
	[[ $(id -u) == 0 ]] || { echo "skip: needs root"; exit 77; }
	if dpkg-query -W -f='${Status}' aftr 2>/dev/null | grep -q "ok installed"; then
		echo "skip: package aftr is already installed on this machine; not touching it"
		exit 77
	fi
	getent passwd aftr >/dev/null && DEB_HAD_USER=1
	[[ -e /var/log/aftr ]] && DEB_HAD_LOGS=1
	[[ -e /etc/aftr ]] && DEB_HAD_ETC=1
	return 0
}

deb_cleanup() {
	dpkg --purge aftr >/dev/null 2>&1 || true
	if ((!DEB_HAD_USER)) && getent passwd aftr >/dev/null; then
		userdel aftr 2>/dev/null || true
		groupdel aftr 2>/dev/null || true
	fi
	((DEB_HAD_LOGS)) || rm -rf /var/log/aftr
	((DEB_HAD_ETC)) || rm -rf /etc/aftr
	rm -f /etc/systemd/system/multi-user.target.wants/aftrd.service
	rm -rf /var/cache/aftr
}
