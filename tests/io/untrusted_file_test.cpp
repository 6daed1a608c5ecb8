// h5::UntrustedFileScope (io/h5.hpp): a fault inside the HDF5 library while it reads an
// untrusted file is one line and exit 65; a fault in our own code, or outside any scope, is not
// blamed on the file and reaches the handler that was there before (a core dump, or the
// sanitizer's report). h5::MappedFileGuard: a mapped input file that shrinks under the process
// is one line and exit 74. Each case runs in a child process (gtest death tests).
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "app/generate.hpp"
#include "io/h5.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"

namespace ncsparse::h5 {
namespace {

// A fault inside a shared library (libc's strlen on NULL, through a pointer so that nothing
// inlines it): the faulting instruction is not in this executable, as HDF5's is not.
using StrlenFn = std::size_t (*)(const char*);
volatile StrlenFn g_strlen = &std::strlen;
const char* volatile g_null = nullptr;

bool not_exit_65(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 65); }

TEST(UntrustedFile, LibraryFaultInsideAScopeIsOneLineAndExit65) {
  EXPECT_EXIT(
      {
        const UntrustedFileScope scope("/data/corrupt.h5");
        (void)g_strlen(g_null);
      },
      ::testing::ExitedWithCode(65),
      "^ncsparse: error: /data/corrupt.h5: the HDF5 library crashed \\(SIGSEGV\\) reading this file: it is "
      "corrupt");
}

TEST(UntrustedFile, InnermostScopeNamesTheFile) {
  EXPECT_EXIT(
      {
        const UntrustedFileScope outer("/data/outer.h5");
        const UntrustedFileScope inner("/data/inner.h5");
        (void)g_strlen(g_null);
      },
      ::testing::ExitedWithCode(65), "/data/inner.h5: the HDF5 library crashed");
}

// An inner scope that ended gives the file back to the one around it.
TEST(UntrustedFile, EndedInnerScopeRestoresTheOuterFile) {
  EXPECT_EXIT(
      {
        const UntrustedFileScope outer("/data/outer.h5");
        { const UntrustedFileScope inner("/data/inner.h5"); }
        (void)g_strlen(g_null);
      },
      ::testing::ExitedWithCode(65), "/data/outer.h5: the HDF5 library crashed");
}

TEST(UntrustedFile, OurOwnFaultInsideAScopeIsNotBlamedOnTheFile) {
  EXPECT_EXIT(
      {
        const UntrustedFileScope scope("/data/corrupt.h5");
        *const_cast<volatile char*>(g_null) = 1;
      },
      not_exit_65, "");
}

// SIGSEGV sent by kill() (here raise(), whose instruction is libc's) is not a fault of the file.
TEST(UntrustedFile, SentSignalInsideAScopeIsNotBlamedOnTheFile) {
  EXPECT_EXIT(
      {
        const UntrustedFileScope scope("/data/corrupt.h5");
        std::raise(SIGSEGV);
      },
      not_exit_65, "");
}

TEST(UntrustedFile, LibraryFaultOutsideEveryScopeIsNotBlamedOnAFile) {
  EXPECT_EXIT(
      {
        { const UntrustedFileScope scope("/data/corrupt.h5"); }
        (void)g_strlen(g_null);
      },
      not_exit_65, "");
}

// ---- h5::MappedFileGuard: a mapped input file that shrinks under the process ----

// A file of `pages` pages of 1.0f mapped read-only and private, as H5Input::map maps inputs.
struct MappedTemp {
  std::string path;
  int fd = -1;
  void* addr = nullptr;
  std::size_t bytes = 0;
  explicit MappedTemp(std::size_t pages) {
    char name[] = "/tmp/ncsparse-mapped-XXXXXX";
    fd = ::mkstemp(name);
    path = name;
    bytes = pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::vector<float> ones(bytes / sizeof(float), 1.0f);
    EXPECT_EQ(::write(fd, ones.data(), bytes), static_cast<ssize_t>(bytes));
    addr = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    EXPECT_NE(addr, MAP_FAILED);
  }
  ~MappedTemp() {
    ::munmap(addr, bytes);
    ::close(fd);
    ::unlink(path.c_str());
  }
  // Truncates the file to nothing, then reads the last page of the mapping (gone: SIGBUS).
  float shrink_and_read() const {
    EXPECT_EQ(::ftruncate(fd, 0), 0);
    return static_cast<const volatile float*>(addr)[bytes / sizeof(float) - 1];
  }
};

bool not_exit_74(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 74); }

TEST(MappedFile, ShrunkWhileMappedIsOneLineAndExit74) {
  const MappedTemp m(4);
  EXPECT_EXIT(
      {
        const MappedFileGuard guard(m.addr, m.bytes, m.path);
        (void)m.shrink_and_read();
      },
      ::testing::ExitedWithCode(74),
      "^ncsparse: error: " + m.path + ": the file shrank while ncsparse had it mapped \\(SIGBUS\\): something "
      "overwrote or truncated it during the run");
}

// Inside an UntrustedFileScope, a SIGBUS on a guarded mapping (in libc's memcmp, say) is the
// file that shrank, not the HDF5 library.
TEST(MappedFile, ShrunkInsideAnUntrustedScopeIsNotBlamedOnHdf5) {
  const MappedTemp m(4);
  EXPECT_EXIT(
      {
        const MappedFileGuard guard(m.addr, m.bytes, m.path);
        const UntrustedFileScope scope(m.path);
        (void)m.shrink_and_read();
      },
      ::testing::ExitedWithCode(74), "the file shrank while ncsparse had it mapped");
}

TEST(MappedFile, EndedGuardGuardsNothing) {
  const MappedTemp m(4);
  EXPECT_EXIT(
      {
        { const MappedFileGuard guard(m.addr, m.bytes, m.path); }
        (void)m.shrink_and_read();
      },
      not_exit_74, "");
}

// A guard covers its own range only: a mapping next to it that shrinks is not its file.
TEST(MappedFile, GuardCoversItsRangeOnly) {
  const MappedTemp guarded(4), other(4);
  EXPECT_EXIT(
      {
        const MappedFileGuard guard(guarded.addr, guarded.bytes, guarded.path);
        (void)other.shrink_and_read();
      },
      not_exit_74, "");
}

// Maps K of `path` through the input reader, truncates the file and reads K (exit 3 when the
// reader did not map it: the case would test nothing).
void map_truncate_and_read(const Comm& comm, const std::string& path) {
  io::H5Input in(comm, path);
  auto source = in.head(0, 0);
  const float* k = nullptr;
  const float* v = nullptr;
  if (!source->map_keys_values(0, in.n(), &k, &v)) std::_Exit(3);
  if (::truncate(path.c_str(), 0) != 0) std::_Exit(4);
  volatile float sink = 0;
  for (std::int64_t i = 0; i < in.n() * in.d(); ++i) sink = sink + k[i];
}

// Through the input reader: K mapped by H5Input of a generated file, then the file truncated.
TEST(MappedFile, InputReaderNamesTheFileThatShrank) {
  char name[] = "/tmp/ncsparse-mapped-input-XXXXXX";
  const int fd = ::mkstemp(name);
  ASSERT_GE(fd, 0);
  ::close(fd);
  const std::string path = std::string(name) + ".h5";
  ::unlink(name);
  const Comm self(MPI_COMM_SELF);
  app::GenerateConfig g;
  g.n = 4096;
  g.model.d = 16;
  g.out = path;
  app::generate_file(self, g);
  EXPECT_EXIT(map_truncate_and_read(self, path), ::testing::ExitedWithCode(74),
              "^ncsparse: error: " + path + ": the file shrank while ncsparse had it mapped");
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace ncsparse::h5
