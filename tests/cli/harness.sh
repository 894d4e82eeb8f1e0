# The shell tests' common start (sourced): a scratch folder $T removed on exit, pass/fail
# counters with ok/bad, and expect_error NAME PATTERN CMD...: the command must exit non-zero
# (not by a signal) with stderr matching PATTERN. A test may define its own expect_error after.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect_error() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ]; then bad "$name: exit 0"; return; fi
  if [ $rc -ge 128 ]; then bad "$name: crashed (rc $rc)"; cat "$T/err"; return; fi
  if ! grep -q -- "$pattern" "$T/err"; then bad "$name: stderr lacks '$pattern':"; cat "$T/err"; return; fi
  ok
}
