// The PML and singleton settings chosen before MPI_Init (src/comm/mpi_startup.hpp), from the
// environment each launcher gives.
#include "comm/mpi_startup.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ncsparse
