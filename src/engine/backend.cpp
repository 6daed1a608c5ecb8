// The one place that turns a backend name into a backend.
#include "ncsparse/backend.hpp"

#include "ncsparse/error.hpp"

namespace ncsparse {

std::unique_ptr<Backend> make_cpu_backend();  // src/cpu/backend_cpu.cpp
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

}  // namespace ncsparse
