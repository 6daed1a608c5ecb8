// The PML and singleton settings chosen before MPI_Init (src/comm/mpi_startup.hpp), from the
// environment each launcher gives.
#include "comm/mpi_startup.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

namespace ncsparse {
namespace {

MpiStartup choose(const std::map<std::string, std::string>& vars) {
  return choose_mpi_startup([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

using Settings = std::vector<std::pair<std::string, std::string>>;

TEST(MpiStartup, WithoutALauncherOneIsolatedProcessOnOb1) {
  const MpiStartup s = choose({});
  EXPECT_EQ(s.set, (Settings{{"OMPI_MCA_pml", "ob1"}, {"OMPI_MCA_ess_singleton_isolated", "1"}}));
  EXPECT_NE(s.description.find("no launcher"), std::string::npos);
  // The user's own singleton setting is kept.
  EXPECT_EQ(choose({{"OMPI_MCA_ess_singleton_isolated", "0"}}).set, (Settings{{"OMPI_MCA_pml", "ob1"}}));
}

TEST(MpiStartup, MpirunOnOneNodeTakesOb1) {
  const MpiStartup s = choose({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"PMIX_RANK", "2"}});
  EXPECT_EQ(s.set, (Settings{{"OMPI_MCA_pml", "ob1"}}));
  EXPECT_NE(s.description.find("one node"), std::string::npos);
}

TEST(MpiStartup, SeveralNodesKeepTheLibrarysChoice) {
  // 3 of the 4 ranks on this node: the others are elsewhere, over a network cm or ucx may need.
  EXPECT_TRUE(choose({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}}).set.empty());
  EXPECT_TRUE(choose({{"OMPI_COMM_WORLD_SIZE", "4"}}).set.empty());  // local size unknown
  // srun: the step's node count decides.
  EXPECT_TRUE(choose({{"PMIX_RANK", "0"}, {"SLURM_STEP_NUM_NODES", "2"}}).set.empty());
  EXPECT_TRUE(choose({{"PMIX_RANK", "0"}}).set.empty());
  EXPECT_EQ(choose({{"PMIX_RANK", "0"}, {"SLURM_STEP_NUM_NODES", "1"}}).set, (Settings{{"OMPI_MCA_pml", "ob1"}}));
  EXPECT_EQ(choose({{"PMI_RANK", "0"}, {"SLURM_STEP_NUM_NODES", "1"}}).set, (Settings{{"OMPI_MCA_pml", "ob1"}}));
}

TEST(MpiStartup, TheUsersChoiceWins) {
  const MpiStartup pml = choose({{"OMPI_MCA_pml", "ucx"}});
  EXPECT_TRUE(pml.set.empty());
  EXPECT_NE(pml.description.find("ucx"), std::string::npos);
  const MpiStartup off =
      choose({{"NCSPARSE_MPI_DEFAULTS", "library"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_TRUE(off.set.empty());
  EXPECT_NE(off.description.find("NCSPARSE_MPI_DEFAULTS"), std::string::npos);
}

// A connected loopback TCP pair (what a rank's PMIx connection to mpirun is) and a listener.
struct LoopbackPair {
  int listener = -1, client = -1, server = -1;
  LoopbackPair() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    server = accept(listener, nullptr, nullptr);
  }
  ~LoopbackPair() {
    for (const int fd : {listener, client, server}) {
      if (fd >= 0) close(fd);
    }
  }
};

int nodelay(int fd) {
  int on = -1;
  socklen_t len = sizeof on;
  return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 ? on : -1;
}

TEST(MpiStartup, NagleIsOffOnLoopbackConnectionsAfterInit) {
  LoopbackPair tcp;
  ASSERT_GE(tcp.server, 0) << "no loopback TCP connection could be made here";
  int unix_pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, unix_pair), 0);
  ASSERT_EQ(nodelay(tcp.client), 0);  // the kernel's default: Nagle on
  const int set = finish_mpi_startup();
  EXPECT_GE(set, 2);  // both ends of the pair (and a launcher's socket, if any)
  EXPECT_NE(nodelay(tcp.client), 0);
  EXPECT_NE(nodelay(tcp.server), 0);
  EXPECT_EQ(nodelay(tcp.listener), 0);  // not connected: left alone
  // Called again, it says what it did this time, once (the report's mpi_startup).
  EXPECT_EQ(finish_mpi_startup(), set);
  const std::string& said = mpi_startup_description();
  EXPECT_EQ(said.find("TCP_NODELAY"), said.rfind("TCP_NODELAY")) << said;
  EXPECT_NE(said.find("TCP_NODELAY on " + std::to_string(set) + " loopback sockets"), std::string::npos) << said;
  close(unix_pair[0]);
  close(unix_pair[1]);
}

TEST(MpiStartup, LibraryDefaultsLeaveSocketsAlone) {
  LoopbackPair tcp;
  ASSERT_GE(tcp.server, 0) << "no loopback TCP connection could be made here";
  setenv("NCSPARSE_MPI_DEFAULTS", "library", 1);
  const int set = finish_mpi_startup();
  unsetenv("NCSPARSE_MPI_DEFAULTS");
  EXPECT_EQ(set, 0);
  EXPECT_EQ(nodelay(tcp.client), 0);
}

}  // namespace
}  // namespace ncsparse
