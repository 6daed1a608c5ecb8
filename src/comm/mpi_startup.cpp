#include "comm/mpi_startup.hpp"

#include <cstdlib>
#include <cstring>

namespace ncsparse {

namespace {

std::string g_description;

bool is(const char* value, const char* expected) { return value != nullptr && std::strcmp(value, expected) == 0; }

}  // namespace

MpiStartup choose_mpi_startup(const std::function<const char*(const char*)>& env) {
  MpiStartup s;
  if (is(env("NCSPARSE_MPI_DEFAULTS"), "library")) {
    s.description = "library defaults (NCSPARSE_MPI_DEFAULTS=library)";
    return s;
  }
  if (const char* pml = env("OMPI_MCA_pml")) {
    s.description = std::string("pml ") + pml + " (OMPI_MCA_pml, the user's)";
    return s;
  }
  const char* world = env("OMPI_COMM_WORLD_SIZE");
  const char* local = env("OMPI_COMM_WORLD_LOCAL_SIZE");
  const bool launched = world != nullptr || env("PMIX_RANK") != nullptr || env("PMI_RANK") != nullptr;
  if (!launched) {
    // Started without a launcher: one process, nothing to spawn.
    s.set.emplace_back("OMPI_MCA_pml", "ob1");
    if (env("OMPI_MCA_ess_singleton_isolated") == nullptr) s.set.emplace_back("OMPI_MCA_ess_singleton_isolated", "1");
    s.description = "pml ob1, isolated (one process, no launcher)";
    return s;
  }
  bool one_node = false;
  if (world != nullptr) {
    one_node = local != nullptr && std::strcmp(world, local) == 0;
  } else {
    one_node = is(env("SLURM_STEP_NUM_NODES"), "1");  // srun: the step's own node count
  }
  if (!one_node) {
    s.description = "library defaults (ranks on several nodes, or the node count unknown)";
    return s;
  }
  s.set.emplace_back("OMPI_MCA_pml", "ob1");
  s.description = "pml ob1 (all ranks on one node)";
  return s;
}

void prepare_mpi_startup() {
  const MpiStartup s = choose_mpi_startup([](const char* name) { return std::getenv(name); });
  for (const auto& [name, value] : s.set) setenv(name.c_str(), value.c_str(), 0);
  g_description = s.description;
}

const std::string& mpi_startup_description() { return g_description; }

}  // namespace ncsparse
