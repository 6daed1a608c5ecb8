#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "ncsparse/error.hpp"

namespace ncsparse::io {
namespace {

constexpr const char* kCheckDisk = "check the file system (space, permissions, health), then rerun";

Error io_failure(const std::string& what, int err) {
  return Error(kExitIo, what + ": " + std::strerror(err) + " (" + kCheckDisk + ")");
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

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  {
    std::ofstream out(file.path(), std::ios::binary | std::ios::trunc);
    out << bytes;
    out.flush();
    if (!out) throw io_failure(file.path() + ": cannot write", errno);
  }
  file.commit();
}

}  // namespace ncsparse::io
