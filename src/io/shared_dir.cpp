#include "io/shared_dir.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "io/atomic_file.hpp"

namespace ncsparse::io {
namespace {

constexpr int kTokenBytes = 16;

// A token no other job makes: the kernel's random bytes, or the clock and pid without them.
void make_token(unsigned char* token) {
  if (::getrandom(token, kTokenBytes, 0) == kTokenBytes) return;
  const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
  const long pid = static_cast<long>(::getpid());
  std::memset(token, 0, kTokenBytes);
  std::memcpy(token, &t, sizeof t);
  std::memcpy(token + 8, &pid, sizeof pid);
}

std::string hex(const unsigned char* token) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < kTokenBytes; ++i) {
    s += digits[token[i] >> 4];
    s += digits[token[i] & 15];
  }
  return s;
}

// Reads the probe's token: true when `path` opens and holds exactly `token`.
bool sees_probe(const std::string& path, const unsigned char* token) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char got[kTokenBytes + 1];
  const ssize_t n = ::read(fd, got, sizeof got);
  ::close(fd);
  return n == kTokenBytes && std::memcmp(got, token, kTokenBytes) == 0;
}

}  // namespace

void check_shared_directory(const Comm& comm, const std::string& dir, const std::string& target,
                            const std::string& flag) {
  if (comm.size() == 1) return;
  // Rank 0's token, and whether it made the probe (byte kTokenBytes), to every rank. The name
  // is unique to this job, so no rank can find a stale probe of another job, and a rank that
  // sees it sees the file rank 0 wrote, not a namesake.
  unsigned char token[kTokenBytes + 1] = {};
  std::string path;
  if (comm.rank() == 0) {
    make_token(token);
    path = dir + "/.ncsparse-shared-" + hex(token);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const bool wrote = ::write(fd, token, kTokenBytes) == kTokenBytes;
      // close() sends the data to the file server before any rank opens it (NFS's
      // close-to-open consistency); no fsync is needed for another client to read it.
      token[kTokenBytes] = ::close(fd) == 0 && wrote ? 1 : 0;
      if (token[kTokenBytes] == 0) ::unlink(path.c_str());
    }
  }
  NCSPARSE_MPI(MPI_Bcast(token, kTokenBytes + 1, MPI_UNSIGNED_CHAR, 0, comm.get()));
  if (token[kTokenBytes] == 0) return;  // the caller's checks say why rank 0 cannot write there
  path = dir + "/.ncsparse-shared-" + hex(token);
  // A file system with attribute caching may show a new name late: look a few times before
  // refusing (about 1 s in all, paid only by a rank that does not see it).
  bool seen = sees_probe(path, token);
  for (int tries = 0; !seen && tries < 10; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    seen = sees_probe(path, token);
  }
  int code = 0;
  std::string message;
  if (!seen) {
    code = kExitCantCreate;
    message = target + ": its directory " + dir + " is not shared by all ranks: this rank does not see the file " +
              base_of(path) + " that rank 0 made there (a node-local path such as /tmp, or a relative path under " +
              "different working directories?); give " + flag + " a path on a file system every rank shares";
  }
  try {
    comm.agree(code, message);
  } catch (...) {
    if (comm.rank() == 0) ::unlink(path.c_str());
    throw;
  }
  if (comm.rank() == 0) ::unlink(path.c_str());
}

}  // namespace ncsparse::io
