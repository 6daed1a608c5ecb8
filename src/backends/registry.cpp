// The backend registry: the one place that knows the backends by name, what each name makes
// and how its ranks connect their devices for the collectives. Part of the kernels library:
// no MPI here (src/comm drives the setup over MPI). The CUDA backend lives in a module loaded
// on first use (src/cuda/module/api.hpp), so that processes on the CPU never load CUDA.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <sys/stat.h>

#include "ncsparse/backend.hpp"
#include "ncsparse/error.hpp"
#if defined(NCSPARSE_HAVE_CUDA)
#include "cuda/module/api.hpp"
#endif

namespace ncsparse {

std::unique_ptr<Backend> make_cpu_backend();  // src/cpu/local_pass_cpu.cpp

#if defined(NCSPARSE_HAVE_CUDA)
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Where the module is: NCSPARSE_CUDA_MODULE, else beside the executable, else in ../lib/ncsparse
// of an install prefix, else where this build tree put it.
std::string module_path() {
  if (const char* env = std::getenv("NCSPARSE_CUDA_MODULE"); env != nullptr && *env != '\0') return env;
  std::string exe(4096, '\0');
  const ssize_t len = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  if (len > 0) {
    exe.resize(static_cast<std::size_t>(len));
    const std::string dir = exe.substr(0, exe.rfind('/'));
    for (const std::string& p : {dir + "/libncsparse_cuda.so", dir + "/../lib/ncsparse/libncsparse_cuda.so"}) {
      if (is_file(p)) return p;
    }
  }
  return NCSPARSE_CUDA_MODULE_PATH;
}

// Loads the module once per process (never unloaded: the objects it made outlive any caller).
const cuda::ModuleApi& cuda_module() {
  static std::once_flag once;
  static const cuda::ModuleApi* api = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    const std::string path = module_path();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      failure = "cannot load the CUDA backend " + path + ": " + (why ? why : "unknown error");
      return;
    }
    using Entry = const cuda::ModuleApi* (*)();
    auto entry = reinterpret_cast<Entry>(::dlsym(handle, "ncsparse_cuda_module"));
    if (entry == nullptr || entry() == nullptr || entry()->version != cuda::kModuleVersion) {
      failure = path + " is not this build's CUDA backend (no entry point of version " +
                std::to_string(cuda::kModuleVersion) + ")";
      return;
    }
    api = entry();
  });
  if (api == nullptr) {
    throw Error(kExitUnavailable, "--backend cuda: " + failure +
                                      " (install the CUDA runtime and cuBLAS, point NCSPARSE_CUDA_MODULE at "
                                      "libncsparse_cuda.so, or use --backend cpu)");
  }
  return *api;
}

}  // namespace
#endif

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") {
#if defined(NCSPARSE_HAVE_CUDA)
    return cuda_module().make_backend();
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
  // The module is loaded when the identity is asked for, on every rank: a failure to load it is
  // then an agreed error of the setup, as any other.
  if (const char* env = std::getenv("NCSPARSE_NCCL"); env != nullptr && std::string(env) == "0") {
    setup.unavailable = "mpi (NCSPARSE_NCCL=0)";
  }
  // NCCL refuses two ranks on one GPU: then every rank keeps MPI.
  setup.shared_device = "a GPU; NCCL needs one rank per GPU";
  // The timeout is read with the identity: a bad NCSPARSE_NCCL_TIMEOUT is found before any NCCL call.
  auto timeout = std::make_shared<double>(0);
  setup.device_identity = [timeout] {
    const cuda::ModuleApi& m = cuda_module();
    if (!m.has_nccl) throw Error(kExitInternal, "the CUDA backend module was built without NCCL");
    std::string identity = m.device_identity();
    *timeout = m.nccl_timeout_seconds();
    return identity;
  };
  setup.make_id = [] { return cuda_module().nccl_unique_id(); };
  setup.connect = [timeout](const std::string& bytes, int rank, int size) -> std::shared_ptr<DeviceCollectives> {
    return cuda_module().connect(bytes, rank, size, *timeout);
  };
#else
  setup.unavailable = "mpi (this build has no NCCL)";
#endif
  return setup;
}

}  // namespace ncsparse
