// The atomic-file module (src/io/atomic_file.hpp) and its two users, the HDF5 outputs
// (io::OutputFile) and the study's records: a failing fsync and a failing rename, injected
// through io::file_calls(), each give an Error with the I/O exit code and a one-line message
// naming the file, leave no temporary file behind, and leave an existing target as it was.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "io/atomic_file.hpp"
#include "io/h5_output.hpp"
#include "study/records.hpp"

namespace ncsparse::io {
namespace {

int failing_fsync(int) {
  errno = EIO;
  return -1;
}
int failing_rename(const char*, const char*) {
  errno = EXDEV;
  return -1;
}

enum class Failure { kFsync, kRename };
constexpr Failure kFailures[] = {Failure::kFsync, Failure::kRename};

// What the error message says for each failure.
std::string says(Failure f) { return f == Failure::kFsync ? ": fsync failed" : ": cannot move the finished file"; }

// Swaps one system call for a failing one for the life of the object.
class Inject {
 public:
  explicit Inject(Failure f) : saved_(file_calls()) {
    if (f == Failure::kFsync) file_calls().fsync = failing_fsync;
    if (f == Failure::kRename) file_calls().rename = failing_rename;
  }
  ~Inject() { file_calls() = saved_; }
  Inject(const Inject&) = delete;
  Inject& operator=(const Inject&) = delete;

 private:
  FileCalls saved_;
};

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ncsparse_atomic_XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    target_ = dir_ + "/out.bin";
  }
  void TearDown() override {
    for (const std::string& name : listing()) ::unlink((dir_ + "/" + name).c_str());
    ::rmdir(dir_.c_str());
  }
  // Every name in the directory, hidden ones included.
  std::set<std::string> listing() const {
    std::set<std::string> names;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") names.insert(name);
      }
      ::closedir(d);
    }
    return names;
  }
  static std::string content(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
  }
  // The error of `fn`, which must throw one with the I/O exit code and a one-line message.
  template <class Fn>
  static std::string io_error_of(Fn&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitIo) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no Error thrown";
    return "";
  }

  std::string dir_, target_;
};

TEST_F(AtomicFileTest, WritesTheTargetAndNoTemporary) {
  write_file_atomic(target_, "old");
  write_file_atomic(target_, "new");
  EXPECT_EQ(content(target_), "new");
  EXPECT_EQ(listing(), std::set<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, TemporaryNameIsHiddenBesideTheTarget) {
  EXPECT_EQ(AtomicFile(dir_ + "/r.h5").path(), dir_ + "/.r.h5.tmp");
  EXPECT_EQ(AtomicFile("r.h5", "42").path(), ".r.h5.tmp-42");
  EXPECT_EQ(dir_of("r.h5"), ".");
  EXPECT_EQ(dir_of("/r.h5"), "/");
}

TEST_F(AtomicFileTest, FailingFsyncOrRenameIsAnIoErrorAndChangesNothing) {
  write_file_atomic(target_, "old");
  for (const Failure f : kFailures) {
    Inject inject(f);
    const std::string what = io_error_of([&] { write_file_atomic(target_, "new"); });
    const std::string names = f == Failure::kFsync ? dir_ + "/.out.bin.tmp" : target_;  // the temporary, the target
    EXPECT_NE(what.find(names + says(f)), std::string::npos) << what;
    EXPECT_NE(what.find("check the file system"), std::string::npos) << what;
    EXPECT_EQ(content(target_), "old");
    EXPECT_EQ(listing(), std::set<std::string>{"out.bin"});
  }
}

TEST_F(AtomicFileTest, FailingFsyncOrRenameOfANewFileLeavesNothing) {
  for (const Failure f : kFailures) {
    Inject inject(f);
    io_error_of([&] { write_file_atomic(target_, "new"); });
    EXPECT_TRUE(listing().empty());
  }
}

TEST_F(AtomicFileTest, NoReplaceRefusesAnExistingTarget) {
  write_file_atomic(target_, "old");
  AtomicFile file(target_, "7");
  std::ofstream(file.path()) << "new";
  try {
    file.commit(Replace::kNo);
    ADD_FAILURE() << "no Error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitCantCreate);
    EXPECT_NE(std::string(e.what()).find("exists (use --force"), std::string::npos) << e.what();
  }
  EXPECT_EQ(content(target_), "old");
  EXPECT_EQ(listing(), std::set<std::string>{"out.bin"});
}

TEST_F(AtomicFileTest, UncommittedTemporaryIsRemovedByItsOwnerOnly) {
  {
    AtomicFile file(target_, "1", /*owner=*/false);
    std::ofstream(file.path()) << "partial";
  }
  EXPECT_EQ(listing(), std::set<std::string>{".out.bin.tmp-1"});
  { AtomicFile file(target_, "1"); }
  EXPECT_TRUE(listing().empty());
}

// The HDF5 outputs of generate and attend commit through the module.
TEST_F(AtomicFileTest, OutputFileFailingFsyncOrRenameKeepsTheTarget) {
  write_file_atomic(target_, "old");
  const Comm self(MPI_COMM_SELF);
  for (const Failure f : kFailures) {
    Inject inject(f);
    const std::string what = io_error_of([&] {
      OutputFile out(self, target_, /*force=*/true);
      out.commit();
    });
    EXPECT_NE(what.find(says(f)), std::string::npos) << what;
    EXPECT_EQ(content(target_), "old");
    EXPECT_EQ(listing(), std::set<std::string>{"out.bin"});
  }
}

// The study's records and results commit through the module.
TEST_F(AtomicFileTest, StudyRecordFailingFsyncOrRenameKeepsTheRecord) {
  study::Record record;
  record.text["note"] = "first";
  study::commit_record(dir_, "0123456789abcdef", record);
  const std::string path = dir_ + "/0123456789abcdef.h5";
  const std::string before = content(path);
  ASSERT_FALSE(before.empty());
  record.text["note"] = "second";
  for (const Failure f : kFailures) {
    Inject inject(f);
    const std::string what = io_error_of([&] { study::commit_record(dir_, "0123456789abcdef", record); });
    EXPECT_NE(what.find("0123456789abcdef.h5"), std::string::npos) << what;
    EXPECT_NE(what.find(says(f)), std::string::npos) << what;
    EXPECT_EQ(content(path), before);
    EXPECT_EQ(listing(), std::set<std::string>{"0123456789abcdef.h5"});
  }
}

}  // namespace
}  // namespace ncsparse::io
