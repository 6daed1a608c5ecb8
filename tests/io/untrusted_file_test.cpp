// h5::UntrustedFileScope (io/h5.hpp): a fault inside the HDF5 library while it reads an
// untrusted file is one line and exit 65; a fault in our own code, or outside any scope, is not
// blamed on the file and reaches the handler that was there before (a core dump, or the
// sanitizer's report). Each case runs in a child process (gtest death tests).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>
#include <cstring>

#include "io/h5.hpp"

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

}  // namespace
}  // namespace ncsparse::h5
