// The backend registry: the one place that knows the backends by name, what each name makes
// and how its ranks connect their devices for the collectives. Part of the kernels library:
// no MPI here (src/comm drives the setup over MPI).
#include <algorithm>
#include <cstdlib>

#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#if defined(NCSPARSE_HAVE_NCCL)
#include "cuda/nccl.hpp"
#endif

namespace ncsparse {

std::unique_ptr<Backend> make_cpu_backend();  // src/cpu/local_pass_cpu.cpp
#if defined(NCSPARSE_HAVE_CUDA)
std::unique_ptr<Backend> make_cuda_backend();  // src/cuda/backend_cuda.cu
#endif

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") {
#if defined(NCSPARSE_HAVE_CUDA)
    return make_cuda_backend();
#else
    throw Error(kExitUnavailable,
                "--backend cuda: this build has no CUDA backend (rebuild with the CUDA toolkit and "
                "-DNCSPARSE_CUDA=ON, or use --backend cpu)");
#endif
  }
  throw usage_error("--backend: unknown backend '" + name + "' (use cpu or cuda)");
}

std::optional<DeviceCollectivesSetup> device_collectives_setup(const std::string& name) {
  if (name != "cuda") return std::nullopt;
  DeviceCollectivesSetup setup;
#if defined(NCSPARSE_HAVE_NCCL)
  if (const char* env = std::getenv("NCSPARSE_NCCL"); env != nullptr && std::string(env) == "0") {
    setup.unavailable = "mpi (NCSPARSE_NCCL=0)";
  }
  // NCCL refuses two ranks on one GPU: then every rank keeps MPI.
  setup.shared_device = "a GPU; NCCL needs one rank per GPU";
  // The timeout is read with the identity: a bad NCSPARSE_NCCL_TIMEOUT is found before any NCCL call.
  auto timeout = std::make_shared<double>(0);
  setup.device_identity = [timeout] {
    std::string identity = cuda::device_identity();
    *timeout = cuda::nccl_timeout_seconds();
    return identity;
  };
  setup.make_id = [] {
    const cuda::NcclId id = cuda::nccl_unique_id();
    return std::string(id.begin(), id.end());
  };
  setup.connect = [timeout](const std::string& bytes, int rank, int size) -> std::shared_ptr<DeviceCollectives> {
    cuda::NcclId id{};
    std::copy_n(bytes.begin(), std::min(bytes.size(), id.size()), id.begin());
    return cuda::make_nccl_collectives(id, rank, size, *timeout);
  };
#else
  setup.unavailable = "mpi (this build has no NCCL)";
#endif
  return setup;
}

}  // namespace ncsparse
