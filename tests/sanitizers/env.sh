# Sourced by scripts/test.sh (and by hand: `. tests/sanitizers/env.sh`) before running the
# tests of build-asan/: every report is fatal, with a symbolised stack, and the checked-in
# suppressions apply. Each suppression file says why each entry is there.
_aftr_san=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS="abort_on_error=0:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1:detect_odr_violation=2:suppressions=$_aftr_san/asan.supp${AFTR_ASAN_EXTRA:+:$AFTR_ASAN_EXTRA}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$_aftr_san/ubsan.supp"
export LSAN_OPTIONS="suppressions=$_aftr_san/lsan.supp:print_suppressions=0"
unset _aftr_san
