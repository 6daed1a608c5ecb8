# Sourced by compare_builds.sh and bench_job.sh (which define die): checks the two ncsparse
# binaries in $before and $after, makes both paths absolute, and checks that $MPIRUN exists.
check_build_pair() {
  local side exe
  for side in before after; do
    exe=${!side}
    [ -f "$exe" ] && [ -x "$exe" ] || die "$side binary '$exe' is not an executable file"
    "$exe" --version >/dev/null 2>&1 || die "$side binary '$exe' does not run (--version failed)"
  done
  before=$(realpath "$before") after=$(realpath "$after")
  command -v "$MPIRUN" >/dev/null || die "$MPIRUN not found (set MPIRUN)"
}
