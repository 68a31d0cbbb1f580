# cli_lib.sh — what the CLI contract tests share (sourced, not run): the
# binary under test ($1), a scratch directory removed on exit, pass/fail
# counting, the one-line-error check, and the verdict.
#   source "$(dirname "$0")/cli_lib.sh" "$@"   ...   finish <name>
nm="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0; pass=0
ok()  { pass=$((pass+1)); }
bad() { echo "FAIL $*"; fail=$((fail+1)); }

# expect_error WHAT ARGS...: the CLI exits non-zero with exactly one line,
# "netmoments: ...", on stderr.
expect_error() {
  local what="$1"; shift
  local err
  err=$("$nm" "$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [ "${err#netmoments: }" != "$err" ]; then ok
  else bad "$what: rc=$rc stderr='$err'"; fi
}

# need_mnist: skip the whole test (CTest's SKIP_RETURN_CODE 77) when the
# digits scripts/setup.sh fetches are absent.
need_mnist() {
  [ -f "${NETMOMENTS_DATA:-data}/mnist/test-images-idx3-ubyte.gz" ] || { echo "skip: no MNIST digits (run scripts/setup.sh)"; exit 77; }
}

finish() {
  echo "$1: $pass passed, $fail failed"
  [ $fail -eq 0 ]
}
