// The CUDA backend as a module loaded on demand (libncsparse_cuda.so): what the registry
// (src/backends/registry.cpp) gets from it. cuBLAS alone costs about 0.35 s to load (its
// static initialisers), so the ncsparse executable and its tests do not link CUDA: only
// --backend cuda loads it. The module holds its own copy of the kernels library, with every
// symbol hidden but the entry point; objects it makes (the backend, NCCL collectives) are
// used through their virtual interfaces, and its errors are ncsparse::Error like any other.
#pragma once

#include <memory>
#include <string>

#include "ncsparse/backend.hpp"
#include "ncsparse/collectives.hpp"

namespace ncsparse::cuda {

inline constexpr int kModuleVersion = 1;  // raised whenever ModuleApi changes

struct ModuleApi {
  int version = kModuleVersion;
  std::unique_ptr<Backend> (*make_backend)() = nullptr;
  bool has_nccl = false;
  // Only when has_nccl (cuda/nccl.hpp says what each does).
  std::string (*device_identity)() = nullptr;
  double (*nccl_timeout_seconds)() = nullptr;
  std::string (*nccl_unique_id)() = nullptr;  // ncclUniqueId as bytes
  std::shared_ptr<DeviceCollectives> (*connect)(const std::string& id, int rank, int size, double timeout_s) = nullptr;
};

}  // namespace ncsparse::cuda

// The module's one exported symbol.
extern "C" const ncsparse::cuda::ModuleApi* ncsparse_cuda_module();
