// libFuzzer harness: an input file for `attend` / `run --input`. The fuzzer's bytes become a
// file (an anonymous memfd, opened by its /proc path as any path is), which goes through the
// same checks the command line makes (io::H5Input: open, links, storage, shapes, dtypes); an
// accepted file then has its first and last rows read and mapped as the engine reads them. A
// bad file must end in ncsparse::Error, never in a crash, a sanitizer report or an HDF5 id
// left open. Built with -DNCSPARSE_FUZZ=ON (tests/fuzz/CMakeLists.txt).
#include <fcntl.h>
#include <mpi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/error.hpp"

namespace {

int g_fd = -1;
std::string g_path;

void fail(const char* what) {
  std::fprintf(stderr, "fuzz_h5_input: %s\n", what);
  std::abort();
}

// Reads (and maps, for float32) rows [row0, row0 + rows) of every head of one tensor, when the
// rows are few enough to hold: the engine reads the same way, with the same checks.
void read_some(ncsparse::io::H5Input& in, char which) {
  ncsparse::io::H5Input::Tensor& t = in.tensor(which);
  if (t.d > 4096) return;
  const hsize_t rows = std::min<hsize_t>(t.rows, 4);
  std::vector<float> buf(static_cast<std::size_t>(rows * t.d));
  for (hsize_t head : {hsize_t{0}, t.heads - 1}) {
    for (hsize_t row0 : {hsize_t{0}, t.rows - rows}) {
      in.read(t, head, row0, rows, buf.data());
      (void)in.map(t, head, row0, rows);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  g_fd = ::memfd_create("fuzz_h5_input", MFD_CLOEXEC);
  if (g_fd < 0) fail("memfd_create failed");
  g_path = "/proc/self/fd/" + std::to_string(g_fd);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (::ftruncate(g_fd, 0) != 0) fail("ftruncate failed");
  std::size_t done = 0;
  while (done < size) {
    const ssize_t w = ::pwrite(g_fd, data + done, size - done, static_cast<off_t>(done));
    if (w <= 0) fail("pwrite failed");
    done += static_cast<std::size_t>(w);
  }
  try {
    const ncsparse::Comm comm(MPI_COMM_SELF);
    ncsparse::io::H5Input in(comm, g_path);
    for (char which : {'q', 'k', 'v'}) read_some(in, which);
  } catch (const ncsparse::Error& e) {
    const int code = e.code();
    if (code != ncsparse::kExitData && code != ncsparse::kExitNoInput && code != ncsparse::kExitIo) {
      std::fprintf(stderr, "fuzz_h5_input: unexpected exit code %d: %s\n", code, e.what());
      std::abort();
    }
  }
  // Every HDF5 object the input opened is closed again, whatever path it took.
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) fail("an HDF5 object is still open after the input");
  return 0;
}
