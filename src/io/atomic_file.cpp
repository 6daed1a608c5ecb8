#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ncsparse/error.hpp"

namespace ncsparse::io {
namespace {

constexpr const char* kCheckDisk = "check the file system (space, permissions, health), then rerun";

Error io_failure(const std::string& what, int err) {
  return Error(kExitIo, what + ": " + std::strerror(err) + " (errno " + std::to_string(err) + "; " + kCheckDisk + ")");
}

}  // namespace

FileCalls& file_calls() {
  static FileCalls calls{::fsync, ::rename, ::link};
  return calls;
}

std::string dir_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw io_failure(path + ": cannot open it to sync it to disk", errno);
  const int rc = file_calls().fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw io_failure(path + ": fsync failed, the data may not be on disk", err);
}

AtomicFile::AtomicFile(std::string target, const std::string& tag, bool owner)
    : target_(std::move(target)), owner_(owner) {
  const std::size_t slash = target_.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string() : target_.substr(0, slash + 1);
  temp_ = dir + "." + base_of(target_) + ".tmp" + (tag.empty() ? "" : "-" + tag);
}

AtomicFile::~AtomicFile() {
  if (owner_ && !done_) ::unlink(temp_.c_str());
}

void AtomicFile::commit(Replace replace) {
  try {
    fsync_path(temp_, false);
    if (replace == Replace::kYes) {
      if (file_calls().rename(temp_.c_str(), target_.c_str()) != 0) {
        throw io_failure(target_ + ": cannot move the finished file " + temp_ + " onto it", errno);
      }
    } else {
      if (file_calls().link(temp_.c_str(), target_.c_str()) != 0) {
        const int err = errno;
        if (err == EEXIST) throw Error(kExitCantCreate, target_ + ": exists (use --force to overwrite it)");
        throw io_failure(target_ + ": cannot move the finished file " + temp_ + " there", err);
      }
      ::unlink(temp_.c_str());
    }
  } catch (...) {
    ::unlink(temp_.c_str());
    done_ = true;
    throw;
  }
  done_ = true;
  fsync_path(dir_of(target_), true);
}

Error write_error(const std::string& path, const std::string& what, int err) {
  return Error(kExitIo, path + ": cannot write " + what + ": " + std::strerror(err) + " (errno " +
                            std::to_string(err) + "); free space on its file system or choose another output, then rerun");
}

void write_all(const std::string& path, const void* data, std::size_t size, const std::string& what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw write_error(path, what, errno);
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      throw write_error(path, what, err);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) throw write_error(path, what, errno);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  write_all(file.path(), bytes.data(), bytes.size(), "it");
  file.commit();
}

void check_output_target(const std::string& target, bool force, const std::vector<std::string>& inputs,
                         const std::string& flag) {
  if (target.empty() || target.back() == '/') throw usage_error(flag + ": give a file name, got '" + target + "'");
  struct stat st {};
  if (::lstat(target.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      throw Error(kExitCantCreate, target + ": is a symbolic link, which " + flag +
                                       " never replaces (give the path of a regular file, or remove the link)");
    }
    if (S_ISDIR(st.st_mode)) throw Error(kExitCantCreate, target + ": is a directory (give a file name to " + flag + ")");
    if (!S_ISREG(st.st_mode)) {
      throw Error(kExitCantCreate, target + ": is not a regular file (a device, FIFO or socket), which " + flag +
                                       " never replaces, even with --force (choose a regular file path)");
    }
    for (const std::string& in : inputs) {
      struct stat is {};
      if (::stat(in.c_str(), &is) == 0 && is.st_dev == st.st_dev && is.st_ino == st.st_ino) {
        throw Error(kExitCantCreate, target + ": is the input file " + in + " itself, which " + flag +
                                         " never replaces (choose another " + flag + ")");
      }
    }
    if (!force) throw Error(kExitCantCreate, target + ": exists (use --force to overwrite it)");
  }
  const std::string dir = dir_of(target);
  errno = 0;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    const std::string why = errno == 0 || S_ISREG(st.st_mode) ? "not a directory" : std::strerror(errno);
    throw Error(kExitCantCreate, target + ": cannot create it: directory '" + dir + "': " + why +
                                     " (create the directory or choose another " + flag + ")");
  }
}

}  // namespace ncsparse::io
