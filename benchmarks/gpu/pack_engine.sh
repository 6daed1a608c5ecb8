#!/usr/bin/env bash
# Packs a built ncsparse (with the CUDA backend) and the Debian run-time libraries it needs,
# OpenMPI's launcher and components included, into .gpu/engine.tar.xz, so that a GPU machine
# without OpenMPI or HDF5 (and without a package archive) can run the whole engine:
# benchmarks/gpu/device_check.sh --engine unpacks it and compares --backend cuda with cpu.
# Glibc, libstdc++ and the CUDA libraries are left out: the GPU machine has its own.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${1:-$root/build/ncsparse}
[ -x "$bin" ] || { echo "pack_engine.sh: $bin is not built (./launch/build.sh)" >&2; exit 66; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib" "$root/.gpu"
strip -o "$tmp/bin/ncsparse" "$bin"
# The CUDA backend is a module loaded beside the executable (src/cuda/module/api.hpp).
module=$(dirname "$bin")/libncsparse_cuda.so
[ -f "$module" ] || { echo "pack_engine.sh: $module is not built (a build with the CUDA toolkit makes it)" >&2; exit 66; }
strip --strip-unneeded -o "$tmp/bin/libncsparse_cuda.so" "$module"
# The gpu tests and the local-pass benchmark of the same build, when built: the device machine
# then needs no compiler run (device_check.sh --engine-only runs them).
for extra in tests/gpu/gpu_tests tests/gpu/gpu_nccl_tests benchmarks/gpu/bench_cuda; do
  [ -x "$(dirname "$bin")/$extra" ] && strip -o "$tmp/bin/$(basename "$extra")" "$(dirname "$bin")/$extra"
done
cp -L /usr/bin/orterun "$tmp/bin/mpirun"
cp -L /usr/bin/orted "$tmp/bin/orted"
cp -a /usr/lib/x86_64-linux-gnu/openmpi "$tmp/openmpi"
cp -a /usr/lib/x86_64-linux-gnu/pmix2 "$tmp/pmix2"
cp -a /usr/share/openmpi "$tmp/share-openmpi"
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libnccl)'
{ ldd "$bin"; ldd "$module"; for b in "$tmp"/bin/gpu_*; do [ -f "$b" ] && ldd "$b"; done; ldd /usr/bin/orterun; ldd /usr/bin/orted; find /usr/lib/x86_64-linux-gnu/openmpi /usr/lib/x86_64-linux-gnu/pmix2 -name '*.so*' -exec ldd {} \; 2>/dev/null; } |
  awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
    [[ $name =~ $skip ]] || cp -L "$path" "$tmp/lib/$name"
  done
XZ_OPT=-1 tar cJf "$root/.gpu/engine.tar.xz" -C "$tmp" .
echo "wrote $root/.gpu/engine.tar.xz ($(du -h "$root/.gpu/engine.tar.xz" | cut -f1))"
