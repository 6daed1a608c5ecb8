#!/usr/bin/env bash
# Reproduces the experiments of the three papers (n^C sparsity, the one-pass Taylor sketch,
# feature sparsification; and the studies that go past them) with `ncsparse study` under mpirun,
# then writes plots and a Markdown report. See --help and
# docs/experiments.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
all_studies=(collapse windows trained taylor taylor_range sparsify sparsify_scale approx)
fit_studies=" collapse windows trained "  # the top-k studies: ncsparse fit applies to them

usage() {
  cat <<EOF
Usage: ./launch/reproduce.sh [--full] [--out DIR | DIR] [--np P] [--force] [--restart] [--report-only] [NAME ...]

Runs the paper-reproduction studies through mpirun (ncsparse study, checkpointed and
resumable), then ncsparse report and ncsparse fit, draws the figures (launch/plot_experiments.py)
and writes DIR/report.md with the tables, fits and PNGs of every study run.

  NAME        collapse (Figure 1: entries above eps vs n, B/R/d grid), windows (Figure 2 and
              Table 1: error vs n at equal compute, and cert:delta), trained (RoPE, sinks,
              causal; sink:4,w vs power and cert); taylor (the one-pass Taylor sketch vs n, and
              top-k at equal memory), taylor_range (the sketch vs the score range), sparsify
              (feature sparsification in its paper's regime, d >> n), sparsify_scale (the same
              at transformer scale, next to top-k), approx (top-k, taylor and features side by
              side on the same inputs). Default: all eight.
  --full      the full studies (data/studies/NAME.toml, n up to 2^22; about 10 minutes on
              2 cores for the first three, about 11 more for the other five, measured on
              2026-12-04 at 9253d0d; docs/experiments.md). Default: the
              reduced ones (data/studies/quick/NAME.toml, n up to 2^18; a few minutes).
  --out DIR   output directory (or give DIR as a positional argument that is not a NAME);
              default ./reproduce-quick, or ./reproduce-full with --full.
  --np P      MPI ranks (default \$NCSPARSE_NP or 2).
  --force     use a DIR that holds something else, and let the studies overwrite results
              files that are not theirs (ncsparse study --force).
  --restart   discard the results of a changed study file (ncsparse study --restart).
  --report-only  run no study: redo the fits, figures and report.md from the results in DIR
              (also from an interrupted, incomplete study, which the report says).

Rerunning the same command resumes where it stopped: finished configurations are kept. Exit
codes are those of ncsparse (64 bad usage, 73 output exists or is locked, 75 interrupted: rerun
to resume). Needs /usr/bin/python3 with numpy, h5py and matplotlib (launch/setup.sh).
EOF
}

die() {
  echo "reproduce.sh: error: $2" >&2
  exit "$1"
}

full=0 out="" np=${NCSPARSE_NP:-2} force=0 restart=0 report_only=0 names=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --full) full=1 ;;
    --out) [ $# -ge 2 ] || die 64 "--out needs a directory"; out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --np) [ $# -ge 2 ] || die 64 "--np needs a number of ranks"; np=$2; shift ;;
    --np=*) np=${1#--np=} ;;
    --force) force=1 ;;
    --restart) restart=1 ;;
    --report-only) report_only=1 ;;
    -*) die 64 "unknown option '$1' (see --help)" ;;
    *)
      if [[ " ${all_studies[*]} " == *" $1 "* ]]; then
        [[ " ${names[*]-} " == *" $1 "* ]] || names+=("$1")
      elif [ -z "$out" ]; then
        out=$1
      else
        die 64 "'$1' is not a study (use ${all_studies[*]}) and the output directory is already '$out'"
      fi
      ;;
  esac
  shift
done
[[ $np =~ ^[1-9][0-9]*$ ]] || die 64 "--np '$np': give a positive number of ranks"
[ ${#names[@]} -gt 0 ] || names=("${all_studies[@]}")
mode=$([ $full = 1 ] && echo full || echo quick)
[ -n "$out" ] || out=./reproduce-$mode
study_dir=$root/data/studies$([ $full = 1 ] || echo /quick)

# The output directory: new, empty, or an earlier output of this script in the same mode.
marker=$out/.ncsparse-reproduce
if [ -e "$out" ] && [ ! -d "$out" ]; then
  die 73 "$out exists and is not a directory (choose another --out)"
fi
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ $force = 0 ]; then
  if [ ! -f "$marker" ]; then
    die 73 "$out is not empty and was not written by reproduce.sh (choose another --out, or --force)"
  fi
  if [ "$(cat "$marker")" != "$mode" ]; then
    die 73 "$out holds the $(cat "$marker") studies, not the $mode ones (choose another --out, or --force)"
  fi
fi
mkdir -p "$out" || die 73 "cannot create $out"
out=$(cd "$out" && pwd)
echo "$mode" >"$marker"

/usr/bin/python3 -c "import numpy, h5py, matplotlib" 2>/dev/null ||
  die 69 "/usr/bin/python3 lacks numpy, h5py or matplotlib (run launch/setup.sh)"

# NCSPARSE_LAUNCHER: a command that runs ranks in place of `mpirun -np P` (launch/slurm/step.sh
# under Slurm); the build must then exist, and nothing is installed or built.
if [ -z "${NCSPARSE_LAUNCHER:-}" ]; then
  echo "reproduce.sh: building (launch/build.sh)" >&2
  "$root/launch/build.sh"
fi
bin=${NCSPARSE_BUILD_DIR:-$root/build}/ncsparse
flags=(-q -np "$np")
[ "$np" -gt "$(nproc)" ] && flags+=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
launcher=(mpirun "${flags[@]}")
[ -z "${NCSPARSE_LAUNCHER:-}" ] || launcher=("$NCSPARSE_LAUNCHER")
study_flags=()
[ $force = 1 ] && study_flags+=(--force)
[ $restart = 1 ] && study_flags+=(--restart)

start=$(date +%s)
for name in "${names[@]}"; do
  file=$study_dir/$name.toml
  if [ $report_only = 1 ]; then
    [ -f "$out/$name/results.h5" ] || continue
  else
    mkdir -p "$out/$name"
    echo "reproduce.sh: [$name] mpirun -np $np ncsparse study ${file#"$root"/} --out $out/$name/results.h5" >&2
    t0=$(date +%s)
    rc=0
    "${launcher[@]}" "$bin" study "$file" --out "$out/$name/results.h5" ${study_flags[@]+"${study_flags[@]}"} || rc=$?
    if [ $rc -ne 0 ]; then
      [ $rc -eq 75 ] && echo "reproduce.sh: interrupted; rerun the same command to resume" >&2
      exit $rc
  fi
  echo $(($(date +%s) - t0)) >"$out/$name/seconds"
  fi
  "$bin" report "$out/$name/results.h5" --format markdown >"$out/$name/report_full.md.tmp"
  mv "$out/$name/report_full.md.tmp" "$out/$name/report_full.md"
  if [[ $fit_studies == *" $name "* ]]; then
    "$bin" fit "$out/$name/results.h5" --format markdown >"$out/$name/fit.md.tmp"
    mv "$out/$name/fit.md.tmp" "$out/$name/fit.md"
  fi
  /usr/bin/python3 "$root/launch/plot_experiments.py" "$name" "$out/$name/results.h5" --out "$out/$name/plots" \
    --report-dir "$out" >"$out/$name/section.md.tmp"
  mv "$out/$name/section.md.tmp" "$out/$name/section.md"
done

# The report: every study found in DIR (also those of earlier runs), in the usual order.
declare -A titles
titles[collapse]="Sparsity and collapse (the paper's Figure 1)"
titles[windows]="Error versus n at equal compute (the paper's Figure 2 and Table 1) and the certified window"
titles[trained]="Inputs closer to trained models: RoPE, sinks, causal; StreamingLLM against power and cert"
titles[taylor]="The one-pass Taylor sketch: error and memory vs n, top-k at equal memory"
titles[taylor_range]="The Taylor sketch vs the score range: where it breaks"
titles[sparsify]="Feature sparsification in its paper's regime (Q = K, d >> n, small scores): error vs e and r"
titles[sparsify_scale]="Feature sparsification at transformer scale, next to top-k"
titles[approx]="Top-k, the Taylor sketch and feature sparsification side by side"
{
  echo "# ncsparse: the three papers' experiments ($mode studies)"
  echo
  echo "Written by \`./launch/reproduce.sh$([ $full = 1 ] && echo " --full")\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
  echo "$np MPI ranks on $(nproc) cores ($(uname -m)), ncsparse commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "The claims, verdicts and their discussion are in docs/experiments.md; this page holds the measurements."
  echo
  for name in "${all_studies[@]}"; do
    [ -f "$out/$name/section.md" ] || continue
    file=$study_dir/$name.toml
    echo "## $name: ${titles[$name]}"
    echo
    echo "Study file \`${file#"$root"/}\`; rerun: \`./launch/reproduce.sh$([ $full = 1 ] && echo " --full") $name\`"
    echo "(study wall time $(cat "$out/$name/seconds" 2>/dev/null || echo '?') s in the run that finished it)."
    echo "Its parameter choices, as the file states them:"
    echo
    echo '```'
    sed -n '/^#/p;/^\[study\]/q' "$file" | sed 's/^# \{0,1\}//'
    echo '```'
    echo
    cat "$out/$name/section.md"
    echo
    if [ -f "$out/$name/fit.md" ]; then
      echo "### Fitted sparsity exponents (\`ncsparse fit $name/results.h5\`)"
      echo
      cat "$out/$name/fit.md"
      echo
    fi
    echo "Every configuration and strategy: [$name/report_full.md]($name/report_full.md)."
    echo
  done
} >"$out/report.md.tmp"
mv "$out/report.md.tmp" "$out/report.md"
echo "reproduce.sh: done in $(($(date +%s) - start)) s after the build; report: $out/report.md" >&2
