/* An LD_PRELOAD shim that makes a process's writes fail with ENOSPC after a byte budget, as a
 * full disk would, without a tmpfs or any privilege (tests/faults/faults.sh).
 *
 *   NCSPARSE_ENOSPC_AFTER=N   bytes that may still be written (required; unset: the shim does nothing)
 *   NCSPARSE_ENOSPC_RANK=R    only the process whose OMPI_COMM_WORLD_RANK (or PMIX_RANK) is R
 *   NCSPARSE_ENOSPC_DIR=D     only files under directory D (the path of the descriptor, from /proc)
 *   NCSPARSE_ENOSPC_NO_RESERVE=1  posix_fallocate succeeds and reserves nothing (a file system
 *                             without reservations: writes into the range can still fail)
 *
 * Counted and failed: write, pwrite, pwrite64, writev, pwritev, pwritev64, pwritev2 (OpenMPI's fbtl
 * posix calls pwritev and pwrite, HDF5's sec2 driver and ROMIO pwrite and write, libstdc++ write
 * and writev). A write that crosses the budget writes what still fits and returns the short
 * count, as the kernel does (the fault: its time is noted then); every later one fails with ENOSPC. posix_fallocate (and fallocate)
 * takes its bytes from the budget as a real disk does (ENOSPC when they are not there) and
 * reserves them: later writes inside a file's reserved extent never fail. Once the budget is spent, fsync
 * and fdatasync of a matching file fail with ENOSPC as well. Each process keeps its own count.
 * The first failure is noted on stderr with NCSPARSE_ENOSPC_VERBOSE=1, and its time (CLOCK_REALTIME,
 * seconds) is written to the file NCSPARSE_ENOSPC_STAMP, so that a test can measure the time from
 * the fault to the job's exit. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void*, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec*, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec*, int, off_t);
typedef ssize_t (*pwritev64_fn)(int, const struct iovec*, int, off64_t);
typedef ssize_t (*pwritev2_fn)(int, const struct iovec*, int, off_t, int);
typedef int (*sync_fn)(int);
typedef int (*fallocate_fn)(int, off_t, off_t);
typedef int (*fallocate64_fn)(int, off64_t, off64_t);
typedef int (*linux_fallocate_fn)(int, int, off_t, off_t);

static int g_state = -1; /* -1: not read yet, 0: off, 1: on */
static long long g_left = 0;
static int g_tripped = 0;
static char g_dir[PATH_MAX];
static int g_no_reserve = 0;
/* Reserved extents: the end of the reservation of each (device, inode). */
#define MAX_RESERVED 64
static struct { dev_t dev; ino_t ino; long long end; } g_reserved[MAX_RESERVED];
static int g_nreserved = 0;
static size_t g_dir_len = 0;

static void setup(void) {
  if (g_state >= 0) return;
  g_state = 0;
  const char* after = getenv("NCSPARSE_ENOSPC_AFTER");
  if (after == NULL || *after == '\0') return;
  const char* want = getenv("NCSPARSE_ENOSPC_RANK");
  if (want != NULL && *want != '\0') {
    const char* rank = getenv("OMPI_COMM_WORLD_RANK");
    if (rank == NULL) rank = getenv("PMIX_RANK");
    if (rank == NULL) rank = "0";
    if (atoi(rank) != atoi(want)) return;
  }
  const char* dir = getenv("NCSPARSE_ENOSPC_DIR");
  if (dir != NULL && *dir != '\0') {
    if (realpath(dir, g_dir) == NULL) snprintf(g_dir, sizeof g_dir, "%s", dir);
    g_dir_len = strlen(g_dir);
  }
  const char* nores = getenv("NCSPARSE_ENOSPC_NO_RESERVE");
  g_no_reserve = nores != NULL && *nores == '1';
  g_left = atoll(after);
  g_state = 1;
}

/* Whether fd is a file under the chosen directory (every regular file when none is chosen). */
static int matches(int fd) {
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t len = readlink(link, path, sizeof path - 1);
  if (len <= 0) return 0;
  path[len] = '\0';
  if (path[0] != '/' || strncmp(path, "/dev/", 5) == 0 || strncmp(path, "/proc/", 6) == 0) return 0;
  if (g_dir_len == 0) return 1;
  return strncmp(path, g_dir, g_dir_len) == 0 && (path[g_dir_len] == '/' || path[g_dir_len] == '\0');
}

static void trip(void) {
  if (g_tripped) return;
  g_tripped = 1;
  const char* stamp = getenv("NCSPARSE_ENOSPC_STAMP");
  if (stamp != NULL && *stamp != '\0') {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char text[64];
    const int n = snprintf(text, sizeof text, "%lld.%09ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    const int fd = open(stamp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const write_fn real = (write_fn)dlsym(RTLD_NEXT, "write");
      if (real(fd, text, (size_t)n) < 0) { /* best effort */
      }
      close(fd);
    }
  }
  const char* verbose = getenv("NCSPARSE_ENOSPC_VERBOSE");
  if (verbose != NULL && *verbose == '1') {
    static const char note[] = "enospc_shim: budget spent, writes now fail with ENOSPC\n";
    const write_fn real = (write_fn)dlsym(RTLD_NEXT, "write");
    if (real(2, note, sizeof note - 1) < 0) {
    }
  }
}

static long long* reserved_end(int fd, int add) {
  struct stat st;
  if (fstat(fd, &st) != 0) return NULL;
  for (int i = 0; i < g_nreserved; ++i) {
    if (g_reserved[i].dev == st.st_dev && g_reserved[i].ino == st.st_ino) return &g_reserved[i].end;
  }
  if (!add || g_nreserved == MAX_RESERVED) return NULL;
  g_reserved[g_nreserved].dev = st.st_dev;
  g_reserved[g_nreserved].ino = st.st_ino;
  g_reserved[g_nreserved].end = 0;
  return &g_reserved[g_nreserved++].end;
}

/* How many of `want` bytes fd may write now at offset `off` (-1: the file position): want,
 * fewer, or -1 (errno ENOSPC). */
static long long allowed_at(int fd, size_t want, long long off) {
  setup();
  if (g_state != 1 || want == 0 || !matches(fd)) return (long long)want;
  if (!g_no_reserve) {
    const long long* end = reserved_end(fd, 0);
    if (off < 0) off = (long long)lseek(fd, 0, SEEK_CUR);
    if (end != NULL && off >= 0 && off + (long long)want <= *end) return (long long)want;
  }
  if (g_left <= 0) {
    trip();
    errno = ENOSPC;
    return -1;
  }
  long long n = (long long)want < g_left ? (long long)want : g_left;
  g_left -= n;
  if (g_left == 0) trip(); /* a short write: the disk is full from here on */
  return n;
}

static long long allowed(int fd, size_t want) { return allowed_at(fd, want, -1); }

static size_t iov_total(const struct iovec* iov, int cnt) {
  size_t t = 0;
  for (int i = 0; i < cnt; ++i) t += iov[i].iov_len;
  return t;
}

/* The first iovecs of `iov` that hold `bytes` bytes, the last one cut: `cut` is filled in. */
static int iov_cut(const struct iovec* iov, int cnt, size_t bytes, struct iovec* cut) {
  int k = 0;
  for (; k < cnt && bytes > 0; ++k) {
    cut[k] = iov[k];
    if (cut[k].iov_len > bytes) cut[k].iov_len = bytes;
    bytes -= cut[k].iov_len;
  }
  return k;
}

#define REAL(name, type)               \
  static type real_##name = NULL;      \
  if (real_##name == NULL) real_##name = (type)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void* buf, size_t count) {
  REAL(write, write_fn);
  const long long n = allowed(fd, count);
  if (n < 0) return -1;
  return real_write(fd, buf, (size_t)n);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t off) {
  REAL(pwrite, pwrite_fn);
  const long long n = allowed_at(fd, count, (long long)off);
  if (n < 0) return -1;
  return real_pwrite(fd, buf, (size_t)n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t off) {
  REAL(pwrite64, pwrite64_fn);
  const long long n = allowed_at(fd, count, (long long)off);
  if (n < 0) return -1;
  return real_pwrite64(fd, buf, (size_t)n, off);
}

#define CUT_IOV(count, at)                                             \
  const size_t total = iov_total(iov, count);                         \
  const long long n = allowed_at(fd, total, at);                      \
  if (n < 0) return -1;                                               \
  struct iovec small[count > 0 ? count : 1];                          \
  if ((size_t)n < total) count = iov_cut(iov, count, (size_t)n, small), iov = small

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  REAL(writev, writev_fn);
  if (iovcnt <= 0 || iovcnt > 1024) return real_writev(fd, iov, iovcnt);
  CUT_IOV(iovcnt, -1);
  return real_writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t off) {
  REAL(pwritev, pwritev_fn);
  if (iovcnt <= 0 || iovcnt > 1024) return real_pwritev(fd, iov, iovcnt, off);
  CUT_IOV(iovcnt, (long long)off);
  return real_pwritev(fd, iov, iovcnt, off);
}

ssize_t pwritev64(int fd, const struct iovec* iov, int iovcnt, off64_t off) {
  REAL(pwritev64, pwritev64_fn);
  if (iovcnt <= 0 || iovcnt > 1024) return real_pwritev64(fd, iov, iovcnt, off);
  CUT_IOV(iovcnt, (long long)off);
  return real_pwritev64(fd, iov, iovcnt, off);
}

ssize_t pwritev2(int fd, const struct iovec* iov, int iovcnt, off_t off, int flags) {
  REAL(pwritev2, pwritev2_fn);
  if (iovcnt <= 0 || iovcnt > 1024) return real_pwritev2(fd, iov, iovcnt, off, flags);
  CUT_IOV(iovcnt, (long long)off);
  return real_pwritev2(fd, iov, iovcnt, off, flags);
}

static int sync_fails(int fd) {
  setup();
  if (g_state != 1 || !g_tripped || !matches(fd)) return 0;
  errno = ENOSPC;
  return 1;
}

int fsync(int fd) {
  REAL(fsync, sync_fn);
  if (sync_fails(fd)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync, sync_fn);
  if (sync_fails(fd)) return -1;
  return real_fdatasync(fd);
}

/* Takes the bytes of [off, off + len) not reserved yet from the budget: 0, or an errno value. */
static int reserve(int fd, long long off, long long len) {
  setup();
  if (g_state != 1 || len <= 0 || !matches(fd)) return 0;
  if (g_no_reserve) return g_left > 0 ? 0 : ENOSPC; /* full or not, it guarantees nothing */
  long long* end = reserved_end(fd, 1);
  const long long have = end != NULL ? *end : 0;
  const long long need = off + len > have ? off + len - (off > have ? off : have) : 0;
  if (need > g_left) {
    trip();
    return ENOSPC;
  }
  g_left -= need;
  if (end != NULL && !g_no_reserve && off + len > *end) *end = off + len;
  return 0;
}

int posix_fallocate(int fd, off_t off, off_t len) {
  REAL(posix_fallocate, fallocate_fn);
  const int err = reserve(fd, (long long)off, (long long)len);
  return err != 0 ? err : real_posix_fallocate(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len) {
  REAL(posix_fallocate64, fallocate64_fn);
  const int err = reserve(fd, (long long)off, (long long)len);
  return err != 0 ? err : real_posix_fallocate64(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  REAL(fallocate, linux_fallocate_fn);
  const int err = reserve(fd, (long long)off, (long long)len);
  if (err != 0) {
    errno = err;
    return -1;
  }
  return real_fallocate(fd, mode, off, len);
}
