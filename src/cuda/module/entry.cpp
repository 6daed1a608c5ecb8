// The entry point of libncsparse_cuda.so (api.hpp): the CUDA backend and, where NCCL was
// found, the device collectives.
#include <algorithm>

#include "cuda/module/api.hpp"
#if defined(NCSPARSE_HAVE_NCCL)
#include "cuda/nccl.hpp"
#endif

namespace ncsparse {
std::unique_ptr<Backend> make_cuda_backend();  // src/cuda/backend_cuda.cu
}

namespace {

using namespace ncsparse;

#if defined(NCSPARSE_HAVE_NCCL)
std::string unique_id() {
  const cuda::NcclId id = cuda::nccl_unique_id();
  return std::string(id.begin(), id.end());
}

std::shared_ptr<DeviceCollectives> connect(const std::string& bytes, int rank, int size, double timeout_s) {
  cuda::NcclId id{};
  std::copy_n(bytes.begin(), std::min(bytes.size(), id.size()), id.begin());
  return cuda::make_nccl_collectives(id, rank, size, timeout_s);
}
#endif

cuda::ModuleApi make_api() {
  cuda::ModuleApi api;
  api.make_backend = &make_cuda_backend;
#if defined(NCSPARSE_HAVE_NCCL)
  api.has_nccl = true;
  api.device_identity = &cuda::device_identity;
  api.nccl_timeout_seconds = &cuda::nccl_timeout_seconds;
  api.nccl_unique_id = &unique_id;
  api.connect = &connect;
#endif
  return api;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const ncsparse::cuda::ModuleApi* ncsparse_cuda_module() {
  static const ncsparse::cuda::ModuleApi api = make_api();
  return &api;
}
