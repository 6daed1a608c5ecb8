#!/usr/bin/env bash
# Packs what the kernels-only build needs besides CUDA and CMake into .gpu/deps.tar.xz, from
# this Debian machine's packages (launch/setup.sh installs them): OpenBLAS (the pthread build,
# with libgfortran and libquadmath), its cblas.h, Random123's headers and GoogleTest's sources.
# For GPU machines that cannot reach a package archive; benchmarks/gpu/device_check.sh unpacks it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib" "$tmp/include" "$root/.gpu"
lib=/usr/lib/x86_64-linux-gnu
cp -L "$lib/openblas-pthread/libopenblas.so.0" "$lib/libgfortran.so.5" "$lib/libquadmath.so.0" "$tmp/lib/"
cp "$lib/../../include/x86_64-linux-gnu/openblas-pthread/"*.h "$tmp/include/"
cp -r /usr/include/Random123 "$tmp/include/"
cp -r /usr/src/googletest "$tmp/googletest"
tar cJf "$root/.gpu/deps.tar.xz" -C "$tmp" .
echo "wrote $root/.gpu/deps.tar.xz ($(du -h "$root/.gpu/deps.tar.xz" | cut -f1))"
