# Sourced first by the shell tests (tests/cli, tests/io, tests/study, tests/faults): what each of
# them needs before its cases. Sets tmp (a fresh directory, removed at exit; a script that sets
# its own EXIT trap removes it there), passed, failed and py; defines ok, fail, check,
# error_why and report.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
py=/usr/bin/python3

ok() { echo "ok:   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() {  # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# error_why RC CODE PATTERN: why the command that exited RC, with its stderr in $tmp/err and its
# stdout in $tmp/out, did not fail as promised: exit CODE, exactly one line on stderr starting
# "ncsparse: error: " and containing PATTERN (a fixed string), nothing on stdout. Prints nothing
# when it did. RC 124 is timeout's: a hang.
error_why() {
  local rc=$1 code=$2 pattern=$3 lines
  lines=$(grep -c . "$tmp/err")
  if [ "$rc" -eq 124 ]; then
    echo "hung (killed by timeout)"
  elif [ "$rc" -ne "$code" ]; then
    echo "exit code $rc, expected $code"
  elif [ "$lines" -ne 1 ]; then
    echo "$lines lines on stderr, expected 1"
  elif ! grep -q '^ncsparse: error: ' "$tmp/err"; then
    echo "stderr does not start with 'ncsparse: error: '"
  elif ! grep -qF -- "$pattern" "$tmp/err"; then
    echo "stderr does not mention '$pattern'"
  elif [ -s "$tmp/out" ]; then
    echo "something was printed on stdout"
  fi
}

# report WHAT RC WHY: a case that failed as promised (WHY empty) or not, with its stderr.
report() {
  if [ -n "$3" ]; then
    fail "$1: $3"
    sed 's/^/    stderr: /' "$tmp/err" | head -n 20
  else
    ok "$1 -> $2: $(cat "$tmp/err")"
  fi
}
