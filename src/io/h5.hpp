// The one checked wrapper for HDF5: every call goes through h5_check, which turns HDF5's error
// stack into an ncsparse::Error naming the operation and the file; HDF5's own printing is off.
// Handles are RAII. Inputs are not trusted: see open_input_file.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ncsparse/error.hpp"

namespace ncsparse::h5 {

// Turns off HDF5's automatic error printing (once per process).
void silence_errors();

// Throws Error(code) with `what` and the innermost HDF5 message when status < 0.
void check(herr_t status, const std::string& what, int code = kExitIo);
hid_t check_id(hid_t id, const std::string& what, int code = kExitIo);

class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up the id without closing it.
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// File access: serial (one process) or MPI-IO over a communicator.
Handle file_access(MPI_Comm comm);  // MPI_COMM_NULL: serial
// A file built in memory (the core driver, no backing store): closing it never writes, so it
// never fails and leaves nothing open however the caller's own writing of the bytes ends.
Handle memory_file_access();
// The bytes of such a file after its superblock's base address (the user block, if any, is not
// part of them: the caller puts it in front), flushed first.
std::string file_image(hid_t file, const std::string& what);
// Closes a file and says whether HDF5 closed it cleanly (a failed flush of its last metadata
// is a failure). The handle is released either way: HDF5 must never be asked to close it again.
bool close_file(Handle& file);
// While one is alive on a thread, a SIGSEGV or SIGBUS on that thread is taken for HDF5 failing
// on the named untrusted file: HDF5 1.10 dereferences fields of a corrupt file before any check
// of ours can see them (an address of all ones in the root group crashes H5Fopen;
// docs/reliability.md §8). The process then writes one line, "ncsparse: error: PATH: the HDF5
// library crashed (SIGSEGV) reading this file ...", and exits 65 (kExitData) at once. Outside
// every scope, for a signal sent by kill(), or when the faulting instruction is in our own
// code (the executable, or the Python module), the fault goes to the handler that was there
// before (the default: a core dump; a sanitizer's report). Scopes nest; the innermost names
// the file.
class UntrustedFileScope {
 public:
  explicit UntrustedFileScope(const std::string& path);
  ~UntrustedFileScope();
  UntrustedFileScope(const UntrustedFileScope&) = delete;
  UntrustedFileScope& operator=(const UntrustedFileScope&) = delete;

 private:
  const char* outer_;
};

// While one is alive, a SIGBUS at an address in [begin, begin + bytes) — a mapping of an input
// file that shrank under the process (overwritten in place by `cp`, truncated), on any thread —
// is one line, "ncsparse: error: PATH: the file shrank while ncsparse had it mapped (SIGBUS)
// ...", and exit 74 (kExitIo), instead of a core dump or a fault blamed on HDF5 (this check
// comes before the UntrustedFileScope's). Up to 64 guards at once; beyond that a guard guards
// nothing (the fault then goes on as before).
class MappedFileGuard {
 public:
  MappedFileGuard(const void* begin, std::size_t bytes, const std::string& path);
  ~MappedFileGuard();
  MappedFileGuard(const MappedFileGuard&) = delete;
  MappedFileGuard& operator=(const MappedFileGuard&) = delete;

 private:
  int slot_ = -1;
};

// A function called (async-signal-safe calls only) just before such an exit: the fuzz harness
// keeps the input that crashed the library.
void set_untrusted_fault_hook(void (*hook)());

// Opens an existing file read-only. Missing file: Error(kExitNoInput); not HDF5: Error(kExitData).
Handle open_input_file(const std::string& path, MPI_Comm comm);
// Creates a file, truncating only when `force`; otherwise an existing file is an Error(kExitCantCreate).
Handle create_file(const std::string& path, MPI_Comm comm, bool force);

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file);
bool exists(hid_t loc, const std::string& path);
Handle create_group(hid_t loc, const std::string& name);

// Dataset shape (dims) and its native element class.
std::vector<hsize_t> shape(hid_t dataset);

// Attributes of simple types on any object.
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_attr(hid_t obj, const std::string& name, std::int64_t value);
bool has_attr(hid_t obj, const std::string& name);
std::string read_attr_string(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);
std::int64_t read_attr_int(hid_t obj, const std::string& name);


// ---- Datasets as row-major arrays of rows (added for HDF5 inputs and outputs) ----

// A dataset transfer list: collective (every rank of the file's communicator takes part, a rank
// with nothing to do selects nothing) or independent MPI-IO; serial files ignore it.
Handle transfer(bool collective, bool parallel);

// Creates a contiguous dataset of the given file type and shape.
Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims);

// Selects, in a dataset of shape dims, the rows [row0, row0 + rows) of head `head` and every
// element after the row dimension. headed: dims[0] is the head dimension and dims[1] the row
// dimension; otherwise dims[0] is the row dimension. rows == 0 selects nothing.
Handle select_rows(hid_t dataset, const std::vector<hsize_t>& dims, bool headed, hsize_t head, hsize_t row0,
                   hsize_t rows);
// A memory space of `count` elements (count == 0: an empty selection).
Handle memory_space(hsize_t count);

// Writes or reads rows [row0, row0 + rows) of head `head` (see select_rows); buf holds
// rows × (product of the dims after the row dim) elements of mem_type. A failed write is
// Error(kExitIo) "FILE: cannot write WHAT: STRERROR (errno N); ..." (io::write_error) when the
// failing system call left its errno, else with HDF5's message.
void write_rows(hid_t dataset, hid_t mem_type, const std::vector<hsize_t>& dims, bool headed, hsize_t head,
                hsize_t row0, hsize_t rows, const void* buf, hid_t dxpl, const std::string& file,
                const std::string& what);
void read_rows(hid_t dataset, hid_t mem_type, const std::vector<hsize_t>& dims, bool headed, hsize_t head,
               hsize_t row0, hsize_t rows, void* buf, hid_t dxpl, const std::string& what);

// IEEE 754 binary16 (HDF5 1.10 has no predefined half type: built from F32LE).
Handle half_type();

// Fails closed (Error kExitData) unless `path` reaches a dataset through hard or soft links
// only, stored contiguously, compact or chunked (no virtual or external storage), with no
// filter other than deflate, shuffle and fletcher32 (DESIGN.md §9).
void check_input_dataset(hid_t file, const std::string& path, const std::string& filename);

}  // namespace ncsparse::h5
