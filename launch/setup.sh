#!/usr/bin/env bash
# Installs what ncsparse needs to build and test, from Debian's archive only.
# Idempotent and quiet: packages already present are not touched, apt-get runs only
# when something is missing. Safe to run as often as you like.
set -euo pipefail

packages=(
  build-essential cmake pkg-config      # toolchain
  openmpi-bin libopenmpi-dev            # MPI: launch and collectives
  libopenblas-dev                       # BLAS: score tiles (sgemm)
  libcli11-dev                          # command-line parsing
  librandom123-dev                      # Philox counter-based RNG
  libgtest-dev libbenchmark-dev         # tests and microbenchmarks
  libhdf5-openmpi-dev                   # parallel HDF5: inputs, results, checkpoints
  libtomlplusplus-dev                   # study files
  python3-h5py python3-numpy python3-matplotlib  # plots of study results (launch/plot_study.py)
  python3-faiss python3-torch           # CPU peers of benchmarks/compare_peers.sh (apt: 98 s measured)
  slurmctld slurmd slurm-client         # a one-node Slurm for tests/slurm (ctest -L slurm)
  pybind11-dev python3-dev              # the Python module (python/): import ncsparse
  python3-mpi4py python3-pytest python3-pandas  # its multi-rank use, its tests, its result tables
  clang libclang-rt-14-dev libomp-dev   # the libFuzzer harnesses (launch/fuzz.sh): clang 14, its fuzzer runtime, its OpenMP
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
