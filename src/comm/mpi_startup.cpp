#include "comm/mpi_startup.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace ncsparse {

namespace {

std::string g_chosen;       // what prepare_mpi_startup chose
std::string g_description;  // that, and what finish_mpi_startup did last

bool is(const char* value, const char* expected) { return value != nullptr && std::strcmp(value, expected) == 0; }

// A connected TCP socket whose peer is this host (127.0.0.0/8 or ::1).
bool loopback_tcp(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  sockaddr_storage peer{};
  len = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
  if (peer.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (peer.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
  }
  return false;
}

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
  g_chosen = g_description = s.description;
}

int finish_mpi_startup() {
  if (is(std::getenv("NCSPARSE_MPI_DEFAULTS"), "library")) return 0;
  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (const dirent* e = readdir(dir)) {
      char* end = nullptr;
      const long fd = std::strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0' && fd != dirfd(dir)) fds.push_back(static_cast<int>(fd));
    }
    closedir(dir);
  }
  int set = 0;
  for (const int fd : fds) {
    const int one = 1;
    if (loopback_tcp(fd) && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0) ++set;
  }
  g_description = g_chosen;
  if (set > 0) g_description += "; TCP_NODELAY on " + std::to_string(set) + " loopback socket" + (set > 1 ? "s" : "") + " (PMIx)";
  return set;
}

const std::string& mpi_startup_description() { return g_description; }

}  // namespace ncsparse
