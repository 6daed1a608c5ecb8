#!/usr/bin/env bash
# Builds the kernels-only target on a GPU machine, runs the `gpu` tests and the GPU benchmarks
# (bench_cuda: the local pass against its floors and the bare GEMM; torch_topk.py: cuBLAS GEMM +
# torch.topk on the same data), and writes the logs into $OUT (default ./gpu-out).
#
#   benchmarks/gpu/device_check.sh [--quick] [--no-bench] [--engine] [--engine-only] [--big] [--cpu-probe] [--precision]
#
# --engine also runs the whole engine (ncsparse run, 1-3 ranks) with --backend cuda against cpu
# (benchmarks/gpu/engine_check.py), from .gpu/engine.tar.xz made here by pack_engine.sh: a built
# ncsparse with the Debian libraries it needs and OpenMPI's launcher. --engine-only builds
# nothing there: it runs the gpu tests carried in the same archive (when packed), then the engine
# check; --big adds its large cases (n = 2^20 compared, n = 2^22 timed on the GPU), --cpu-probe
# the CPU's thread scaling on that machine, --precision the tensor-core filters (--score-precision
# tf32, bf16) against the CPU and their timings (engine_check.py says what each does).
#
# The prepared check for the GPU issue (about 8 minutes of device time, from a warm start):
#   benchmarks/gpu/pack_engine.sh   # here, once: .gpu/engine.tar.xz with the gpu tests
#   run (carry [".gpu"]): OUT=$OUT benchmarks/gpu/device_check.sh --engine-only --big --precision
#
# Needs: nvcc, CMake, a C++ compiler, and either Debian's OpenBLAS, Random123 and GoogleTest
# packages or the same carried as .gpu/deps.tar.xz (benchmarks/gpu/pack_deps.sh makes it on a
# Debian machine; the GPU machines of our workplace have no package archive). PyTorch for the peer.
# .gpu/ is ignored by git: name it in the device tool's carry list ([".gpu"]) so it travels.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${OUT:-$root/gpu-out}
quick="" bench=1 engine=0 tests=1 check_args=()
for a in "$@"; do
  case $a in
    --big|--cpu-probe|--precision) check_args+=("$a") ;;
    --quick) quick=--quick ;;
    --no-bench) bench=0 ;;
    --engine) engine=1 ;;
    --engine-only) engine=1 bench=0 tests=0 ;;
    *) echo "usage: device_check.sh [--quick] [--no-bench] [--engine] [--engine-only] [--big] [--cpu-probe] [--precision]" >&2; exit 64 ;;
  esac
done
mkdir -p "$out"
log() { echo "== $(date -u +%H:%M:%S) $*"; }
{
  log "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
  nvcc --version | tail -2; cmake --version | head -1; c++ --version | head -1; nproc
  lscpu | grep -E "^(Model name|Socket|Core|Thread|NUMA|CPU\(s\)|Flags)" | cut -c1-400
  cat /sys/fs/cgroup/cpu.max 2>/dev/null; cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; free -g | head -2
} 2>&1 | tee "$out/machine.txt"

status=0
if [ "$tests" -eq 1 ] || [ "$bench" -eq 1 ]; then
  cmake_args=(-DNCSPARSE_KERNELS_ONLY=ON -DNCSPARSE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release)
  if [ -f "$root/.gpu/deps.tar.xz" ]; then
    deps=/tmp/ncsparse-deps
    rm -rf "$deps" && mkdir -p "$deps" && tar xJf "$root/.gpu/deps.tar.xz" -C "$deps" || exit 1
    log "googletest from the carried sources"
    cmake -S "$deps/googletest" -B "$deps/gt-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_GMOCK=OFF \
      -DCMAKE_INSTALL_PREFIX="$deps/gt" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >/dev/null &&
      cmake --build "$deps/gt-build" >/dev/null && cmake --install "$deps/gt-build" >/dev/null || exit 1
    cmake_args+=(-DBLAS_LIBRARIES="$deps/lib/libopenblas.so.0" -DCBLAS_INCLUDE_DIR="$deps/include"
                 -DRANDOM123_INCLUDE_DIR="$deps/include" -DCMAKE_PREFIX_PATH="$deps/gt")
    export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi

  # NCCL: beside the toolkit, or from PyTorch's wheel (nvidia/nccl) on machines that have only that.
  if [ ! -f /usr/local/cuda/include/nccl.h ]; then
    nccl_root=$(python3 -c "import nvidia.nccl as m; print(list(m.__path__)[0])" 2>/dev/null || true)
    if [ -n "$nccl_root" ]; then
      cmake_args+=(-DNCCL_ROOT="$nccl_root")
      export LD_LIBRARY_PATH="$nccl_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
  fi

  log "configure and build (kernels only)"
  build=$root/build-gpu
  cmake -S "$root" -B "$build" -G Ninja "${cmake_args[@]}" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  grep -E "ncsparse (CUDA|NCCL)" "$out/configure.log"
  cmake --build "$build" 2>&1 | tee "$out/build.log" | grep -E "error|warning: " | head -40
  [ "${PIPESTATUS[0]}" -eq 0 ] || { tail -30 "$out/build.log"; exit 1; }

  log "gpu tests"
  timeout 400 ctest --test-dir "$build" -V --timeout 200 >"$out/gpu_tests.log" 2>&1
  status=$?
  grep -E "\[ *(OK|FAILED|SKIPPED) *\]|tests passed|Skipped|Failed|Passed" "$out/gpu_tests.log" | sed 's/^[0-9]*: //'
  [ $status -eq 0 ] || grep -B5 -A20 "Failure" "$out/gpu_tests.log" | head -80

fi

if [ "$bench" -eq 1 ]; then
  log "bench_cuda"
  dump=/tmp/ncsparse-dump && rm -rf "$dump" && mkdir -p "$dump"
  timeout 300 "$build/benchmarks/gpu/bench_cuda" $quick --profile --dump "$dump" 2>&1 | tee "$out/bench_cuda.log"
  log "torch peer"
  PYTHONUNBUFFERED=1 timeout 200 python3 "$root/benchmarks/gpu/torch_topk.py" "$dump" 2>&1 | tee "$out/torch_topk.log"
fi
if [ "$engine" -eq 1 ]; then
  log "engine: ncsparse run --backend cuda vs cpu"
  e=/tmp/ncsparse-engine
  rm -rf "$e" && mkdir -p "$e" && tar xJf "$root/.gpu/engine.tar.xz" -C "$e" || exit 1
  (
    export LD_LIBRARY_PATH="$e/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mca_base_component_show_load_errors=0
    export OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_plm=isolated OMPI_MCA_rmaps_base_oversubscribe=1
    # The carried OpenMPI's own components and daemon, not those of an OpenMPI the machine may have.
    export OMPI_MCA_mca_base_component_path="$e/openmpi/lib/openmpi3" PMIX_MCA_mca_base_component_path="$e/pmix2/lib/pmix"
    export PATH="$e/bin:$PATH"
    "$e/bin/ncsparse" --version
    failed=0
    if [ "$tests" -eq 0 ]; then
      for t in gpu_tests gpu_nccl_tests; do
        [ -x "$e/bin/$t" ] || continue
        log "$t (carried build)"
        timeout 240 "$e/bin/$t" 2>&1 | tee "$out/$t.log" |
          grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|Failure|differs|Expected|Which is" | head -60
        [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "$t FAILED"; failed=1; }
      done
    fi
    PYTHONUNBUFFERED=1 timeout 420 python3 "$root/benchmarks/gpu/engine_check.py" "$e/bin/ncsparse" "$e/bin/mpirun" "${check_args[@]}" || failed=1
    exit $failed
  ) 2>&1 | tee "$out/engine_check.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi
log "done"
exit $status
