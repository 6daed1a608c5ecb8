// libFuzzer harness: an input file for `attend` / `run --input`. The fuzzer's bytes become a
// file (an anonymous memfd, opened by its /proc path as any path is), which goes through the
// same checks the command line makes (io::H5Input: open, links, storage, shapes, dtypes); an
// accepted file then has its first and last rows read and mapped as the engine reads them. A
// bad file must end in ncsparse::Error, never in a crash, a sanitizer report or an HDF5 id
// left open. Built with -DNCSPARSE_FUZZ=ON (tests/fuzz/CMakeLists.txt).
//
// A fault inside the HDF5 library itself (HDF5 1.10 has some on corrupt metadata) ends the
// process as it ends ncsparse: one line and exit 65 (h5::UntrustedFileScope). Before that exit
// the harness writes the input to $NCSPARSE_FUZZ_LIBRARY_CRASHES/hdf5-<hash>, so that
// run_fuzz.sh can tell such an input, kept and counted, from a crash of ours, which fails.
#include <fcntl.h>
#include <mpi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/h5.hpp"
#include "io/h5_source.hpp"
#include "ncsparse/comm.hpp"
#include "ncsparse/error.hpp"

namespace {

int g_fd = -1;
std::string g_path;
const std::uint8_t* g_data = nullptr;  // the input being run, for the fault hook
std::size_t g_size = 0;
char g_library_crashes[512] = {};

// Async-signal-safe: writes the current input to the library-crash folder.
void keep_library_crash() {
  if (g_library_crashes[0] == '\0' || g_data == nullptr) return;
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a
  for (std::size_t i = 0; i < g_size; ++i) h = (h ^ g_data[i]) * 1099511628211ull;
  // The name "DIR/hdf5-" + 16 hex digits of the hash, built by hand (no snprintf in a handler).
  char name[sizeof g_library_crashes + 32];
  std::size_t at = std::strlen(g_library_crashes);
  std::memcpy(name, g_library_crashes, at);
  std::memcpy(name + at, "/hdf5-", 6);
  at += 6;
  for (int shift = 60; shift >= 0; shift -= 4) name[at++] = "0123456789abcdef"[(h >> shift) & 15];
  name[at] = '\0';
  const int fd = ::open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::size_t done = 0;
  while (done < g_size) {
    const ssize_t w = ::write(fd, g_data + done, g_size - done);
    if (w <= 0) break;
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
}

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
  if (const char* dir = std::getenv("NCSPARSE_FUZZ_LIBRARY_CRASHES"); dir != nullptr) {
    std::snprintf(g_library_crashes, sizeof g_library_crashes, "%s", dir);
  }
  ncsparse::h5::set_untrusted_fault_hook(keep_library_crash);
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
  g_data = data;
  g_size = size;
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
