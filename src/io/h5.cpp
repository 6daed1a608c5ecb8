#include "io/h5.hpp"

#include "io/atomic_file.hpp"

#include <dlfcn.h>
#include <signal.h>
#include <ucontext.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace ncsparse::h5 {
namespace {

// Collects the innermost (first pushed) message of the current error stack.
herr_t innermost(unsigned n, const H5E_error2_t* err, void* data) {
  if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(data) = err->desc;
  return 0;
}

std::string stack_message() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

// The file named by the innermost UntrustedFileScope of this thread (a synchronous fault is
// delivered to the thread that made it), and the handlers found before ours.
thread_local const char* t_untrusted_file = nullptr;
struct sigaction g_previous_segv {}, g_previous_bus {};

void write_all(const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t w = ::write(STDERR_FILENO, text, left);
    if (w <= 0) return;
    text += w;
    left -= static_cast<std::size_t>(w);
  }
}

void (*g_fault_hook)() = nullptr;

// Whether the faulting instruction is in the object that holds this code (the executable, or
// the Python module): a fault of ours, not the library's, even inside a scope.
bool fault_in_our_code(void* context) {
  const void* pc = nullptr;
#if defined(__x86_64__)
  pc = reinterpret_cast<const void*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  pc = reinterpret_cast<const void*>(static_cast<ucontext_t*>(context)->uc_mcontext.pc);
#endif
  if (pc == nullptr) return false;
  Dl_info at{}, ours{};
  // dladdr is not on the async-signal-safe list, but the process ends here either way.
  if (::dladdr(pc, &at) == 0 || ::dladdr(reinterpret_cast<const void*>(&fault_in_our_code), &ours) == 0) return false;
  return at.dli_fbase == ours.dli_fbase;
}

// The mapped input files (MappedFileGuard): slots read by the handler with lock-free atomics.
struct MappedSlot {
  std::atomic<bool> taken{false};
  std::atomic<std::uintptr_t> begin{0}, end{0};  // end == 0: not armed
  std::atomic<const char*> path{nullptr};
};
constexpr int kMappedSlots = 64;
MappedSlot g_mapped[kMappedSlots];

// The file whose mapping holds `addr`, or null.
const char* mapped_file_at(const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  for (const MappedSlot& m : g_mapped) {
    const std::uintptr_t end = m.end.load(std::memory_order_acquire);
    if (end != 0 && a >= m.begin.load(std::memory_order_relaxed) && a < end) return m.path.load(std::memory_order_relaxed);
  }
  return nullptr;
}

void on_fault(int sig, siginfo_t* info, void* context) {
  // A fault the kernel raised (si_code > 0), not a signal someone sent with kill().
  const bool made_by_an_instruction = info != nullptr && info->si_code > 0;
  if (sig == SIGBUS && made_by_an_instruction) {
    if (const char* path = mapped_file_at(info->si_addr); path != nullptr) {
      write_all("ncsparse: error: ");
      write_all(path);
      write_all(": the file shrank while ncsparse had it mapped (SIGBUS): something overwrote or truncated it "
                "during the run; run again on a copy that nothing else writes to\n");
      ::_exit(kExitIo);
    }
  }
  if (const char* path = t_untrusted_file; path != nullptr && made_by_an_instruction && !fault_in_our_code(context)) {
    if (g_fault_hook != nullptr) g_fault_hook();
    // Only async-signal-safe calls: the heap and HDF5's state are not to be trusted now.
    write_all("ncsparse: error: ");
    write_all(path);
    write_all(sig == SIGBUS ? ": the HDF5 library crashed (SIGBUS)" : ": the HDF5 library crashed (SIGSEGV)");
    write_all(" reading this file: it is corrupt or not what it claims to be (check it with h5dump; copy or "
              "generate it again)\n");
    ::_exit(kExitData);
  }
  const struct sigaction& previous = sig == SIGBUS ? g_previous_bus : g_previous_segv;
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    previous.sa_handler(sig);
  } else {
    // The default action: a fault made by an instruction happens again when it is retried; a
    // signal sent by kill() is raised again, pending until this handler returns.
    ::signal(sig, SIG_DFL);
    if (info == nullptr || info->si_code <= 0) ::raise(sig);
  }
}

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGSEGV, &action, &g_previous_segv);
    ::sigaction(SIGBUS, &action, &g_previous_bus);
  });
}

}  // namespace

void set_untrusted_fault_hook(void (*hook)()) { g_fault_hook = hook; }

UntrustedFileScope::UntrustedFileScope(const std::string& path) : outer_(t_untrusted_file) {
  install_fault_handler();
  // A copy that outlives the caller's string: the handler may read it at any moment.
  char* copy = new char[path.size() + 1];
  std::memcpy(copy, path.c_str(), path.size() + 1);
  t_untrusted_file = copy;
}

UntrustedFileScope::~UntrustedFileScope() {
  const char* mine = t_untrusted_file;
  t_untrusted_file = outer_;
  delete[] mine;
}

MappedFileGuard::MappedFileGuard(const void* begin, std::size_t bytes, const std::string& path) {
  if (bytes == 0) return;
  install_fault_handler();
  for (int i = 0; i < kMappedSlots; ++i) {
    bool expected = false;
    if (!g_mapped[i].taken.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) continue;
    char* copy = new char[path.size() + 1];
    std::memcpy(copy, path.c_str(), path.size() + 1);
    const auto b = reinterpret_cast<std::uintptr_t>(begin);
    g_mapped[i].path.store(copy, std::memory_order_relaxed);
    g_mapped[i].begin.store(b, std::memory_order_relaxed);
    g_mapped[i].end.store(b + bytes, std::memory_order_release);
    slot_ = i;
    return;
  }
}

MappedFileGuard::~MappedFileGuard() {
  if (slot_ < 0) return;
  MappedSlot& m = g_mapped[slot_];
  m.end.store(0, std::memory_order_release);  // disarmed before the name goes
  delete[] m.path.exchange(nullptr, std::memory_order_acq_rel);
  m.taken.store(false, std::memory_order_release);
}

void silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

void check(herr_t status, const std::string& what, int code) {
  if (status >= 0) return;
  const std::string detail = stack_message();
  throw Error(code, what + (detail.empty() ? "" : " (HDF5: " + detail + ")"));
}

hid_t check_id(hid_t id, const std::string& what, int code) {
  if (id < 0) check(-1, what, code);
  return id;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

Handle file_access(MPI_Comm comm) {
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "cannot create a file access list"));
  if (comm != MPI_COMM_NULL) {
    check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "cannot set MPI-IO file access");
    // Rank 0 alone writes metadata (HDF5's default spreads it over the ranks): a rank whose
    // metadata write failed would leave HDF5's collective flush while the others wait in it.
    // Rank 0's extent is reserved before the first flush (io::OutputFile::flush).
    H5AC_cache_config_t mdc{};
    mdc.version = H5AC__CURR_CACHE_CONFIG_VERSION;
    check(H5Pget_mdc_config(fapl, &mdc), "cannot read the metadata cache configuration");
    mdc.metadata_write_strategy = H5AC_METADATA_WRITE_STRATEGY__PROCESS_0_ONLY;
    check(H5Pset_mdc_config(fapl, &mdc), "cannot set the metadata write strategy");
  }
  return fapl;
}

Handle memory_file_access() {
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "cannot create a file access list"));
  check(H5Pset_fapl_core(fapl, std::size_t{1} << 20, 0), "cannot set in-memory file access");
  return fapl;
}

std::string file_image(hid_t file, const std::string& what) {
  check(H5Fflush(file, H5F_SCOPE_GLOBAL), what + ": cannot finish the file in memory", kExitInternal);
  const ssize_t size = H5Fget_file_image(file, nullptr, 0);
  check(size < 0 ? -1 : 0, what + ": cannot read the file image", kExitInternal);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  check(H5Fget_file_image(file, bytes.data(), bytes.size()) == size ? 0 : -1, what + ": cannot read the file image",
        kExitInternal);
  return bytes;
}

bool close_file(Handle& file) {
  if (!file.valid()) return true;
  const bool ok = H5Fclose(file.release()) >= 0;
  if (!ok) H5Eclear2(H5E_DEFAULT);
  return ok;
}

Handle open_input_file(const std::string& path, MPI_Comm comm) {
  silence_errors();
  const UntrustedFileScope untrusted(path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(kExitNoInput, path + ": " + std::strerror(errno) + " (check the path)");
  }
  if (S_ISDIR(st.st_mode)) throw Error(kExitNoInput, path + ": is a directory (give an HDF5 file)");
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw Error(kExitData, path + ": not an HDF5 file, or truncated (give an HDF5 file, e.g. one from 'ncsparse generate')");
  }
  Handle fapl = file_access(comm);
  return Handle(check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), path + ": cannot open the HDF5 file", kExitData));
}

Handle create_file(const std::string& path, MPI_Comm comm, bool force) {
  silence_errors();
  struct stat st {};
  if (!force && ::stat(path.c_str(), &st) == 0) {
    throw Error(kExitCantCreate, path + ": exists (use --force to overwrite it)");
  }
  Handle fapl = file_access(comm);
  return Handle(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl),
                         path + ": cannot create the file (check that its directory exists and is writable)",
                         kExitCantCreate));
}

bool exists(hid_t loc, const std::string& path) {
  // Walk the path one link at a time: H5Lexists fails on a missing intermediate group.
  std::string prefix;
  std::size_t start = path[0] == '/' ? 1 : 0;
  if (start == 1) prefix = "/";
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty()) break;
    prefix += (prefix.empty() || prefix == "/" ? "" : "/") + part;
    const htri_t ok = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
    if (ok <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return true;
}

Handle open_dataset(hid_t loc, const std::string& name, const std::string& file) {
  if (!exists(loc, name)) {
    throw Error(kExitData, file + ": no dataset '" + name + "' (list the file with h5ls -r, or name it with --q/--k/--v)");
  }
  return Handle(check_id(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), file + ": cannot open dataset '" + name + "'", kExitData));
}

Handle create_group(hid_t loc, const std::string& name) {
  return Handle(check_id(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                         "cannot create group '" + name + "'"));
}

std::vector<hsize_t> shape(hid_t dataset) {
  Handle space(check_id(H5Dget_space(dataset), "cannot read a dataset's shape", kExitData));
  const int rank = H5Sget_simple_extent_ndims(space);
  check(rank, "cannot read a dataset's rank", kExitData);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), "cannot read a dataset's dimensions", kExitData);
  return dims;
}

namespace {
void write_scalar_attr(hid_t obj, const std::string& name, hid_t type, const void* value) {
  if (H5Aexists(obj, name.c_str()) > 0) check(H5Adelete(obj, name.c_str()), "cannot replace attribute " + name);
  Handle space(check_id(H5Screate(H5S_SCALAR), "cannot create a scalar dataspace"));
  Handle attr(check_id(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create attribute " + name));
  check(H5Awrite(attr, type, value), "cannot write attribute " + name);
}
}  // namespace

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(check_id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  check(H5Tset_size(type, std::max<std::size_t>(1, value.size())), "cannot size a string type");
  check(H5Tset_strpad(type, H5T_STR_NULLPAD), "cannot pad a string type");
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_scalar_attr(obj, name, type, padded.data());
}
void write_attr(hid_t obj, const std::string& name, double value) {
  write_scalar_attr(obj, name, H5T_NATIVE_DOUBLE, &value);
}
void write_attr(hid_t obj, const std::string& name, std::int64_t value) {
  write_scalar_attr(obj, name, H5T_NATIVE_INT64, &value);
}

bool has_attr(hid_t obj, const std::string& name) {
  const htri_t ok = H5Aexists(obj, name.c_str());
  if (ok < 0) H5Eclear2(H5E_DEFAULT);
  return ok > 0;
}

std::string read_attr_string(hid_t obj, const std::string& name) {
  Handle attr(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "cannot open attribute " + name, kExitData));
  Handle type(check_id(H5Aget_type(attr), "cannot read the type of attribute " + name, kExitData));
  if (H5Tget_class(type) != H5T_STRING) throw Error(kExitData, "attribute " + name + " is not a string");
  if (H5Tis_variable_str(type) > 0) {
    char* text = nullptr;
    Handle mem(check_id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
    check(H5Tset_size(mem, H5T_VARIABLE), "cannot size a string type");
    // The file's character set (h5py writes UTF-8): HDF5 converts no string between sets.
    check(H5Tset_cset(mem, H5Tget_cset(type)), "cannot set a string type's character set");
    check(H5Aread(attr, mem, &text), "cannot read attribute " + name, kExitData);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(type);
  std::string value(size, '\0');
  check(H5Aread(attr, type, value.data()), "cannot read attribute " + name, kExitData);
  value.resize(std::strlen(value.c_str()));
  return value;
}

double read_attr_double(hid_t obj, const std::string& name) {
  Handle attr(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "cannot open attribute " + name, kExitData));
  double value = 0;
  check(H5Aread(attr, H5T_NATIVE_DOUBLE, &value), "cannot read attribute " + name, kExitData);
  return value;
}

std::int64_t read_attr_int(hid_t obj, const std::string& name) {
  Handle attr(check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), "cannot open attribute " + name, kExitData));
  std::int64_t value = 0;
  check(H5Aread(attr, H5T_NATIVE_INT64, &value), "cannot read attribute " + name, kExitData);
  return value;
}


// ---- Datasets as arrays of rows ----

Handle transfer(bool collective, bool parallel) {
  Handle dxpl(check_id(H5Pcreate(H5P_DATASET_XFER), "cannot create a transfer property list"));
  if (parallel) {
    check(H5Pset_dxpl_mpio(dxpl, collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT),
          "cannot set the MPI-IO transfer mode");
  }
  return dxpl;
}

Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type, const std::vector<hsize_t>& dims) {
  Handle space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "cannot create the dataspace of '" + name + "'", kExitCantCreate));
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), "cannot create a link creation list"));
  check(H5Pset_create_intermediate_group(lcpl, 1), "cannot set intermediate group creation");
  // Space allocated now (as parallel HDF5 always does): the file's extent is known before any
  // raw data is written (OutputFile::flush reserves it), and raw writes change no metadata.
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "cannot create a dataset creation list"));
  check(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY), "cannot set early allocation");
  check(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "cannot turn off fill values");
  return Handle(check_id(H5Dcreate2(loc, name.c_str(), file_type, space, lcpl, dcpl, H5P_DEFAULT),
                         "cannot create dataset '" + name + "'", kExitCantCreate));
}

Handle select_rows(hid_t dataset, const std::vector<hsize_t>& dims, bool headed, hsize_t head, hsize_t row0,
                   hsize_t rows) {
  Handle space(check_id(H5Dget_space(dataset), "cannot get a dataset's dataspace"));
  if (rows == 0) {
    check(H5Sselect_none(space), "cannot select nothing");
    return space;
  }
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  const std::size_t row_dim = headed ? 1 : 0;
  if (headed) {
    start[0] = head;
    count[0] = 1;
  }
  start[row_dim] = row0;
  count[row_dim] = rows;
  check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        "cannot select rows of a dataset");
  return space;
}

Handle memory_space(hsize_t count) {
  const hsize_t dim = std::max<hsize_t>(count, 1);
  Handle space(check_id(H5Screate_simple(1, &dim, nullptr), "cannot create a memory dataspace"));
  if (count == 0) check(H5Sselect_none(space), "cannot select nothing");
  return space;
}

namespace {
hsize_t row_elements(const std::vector<hsize_t>& dims, bool headed) {
  hsize_t e = 1;
  for (std::size_t i = (headed ? 2 : 1); i < dims.size(); ++i) e *= dims[i];
  return e;
}
}  // namespace

void write_rows(hid_t dataset, hid_t mem_type, const std::vector<hsize_t>& dims, bool headed, hsize_t head, hsize_t row0,
                hsize_t rows, const void* buf, hid_t dxpl, const std::string& file, const std::string& what) {
  Handle file_space = select_rows(dataset, dims, headed, head, row0, rows);
  Handle mem = memory_space(rows * row_elements(dims, headed));
  errno = 0;
  if (H5Dwrite(dataset, mem_type, mem, file_space, dxpl, buf) < 0) {
    int err = errno;
    const std::string detail = stack_message();
    if (err == 0) {
      // MPI-IO loses the errno of the failed system call: reserving the same bytes tells
      // whether they are missing (ENOSPC, EDQUOT, EFBIG); other causes stay HDF5's message.
      const haddr_t base = H5Dget_offset(dataset);
      Handle type(H5Dget_type(dataset));
      const hsize_t row = row_elements(dims, headed) * (type.valid() ? H5Tget_size(type) : 0);
      const hsize_t n = headed ? dims[1] : dims[0];
      const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (base != HADDR_UNDEF && row > 0 && fd >= 0) {
        const int probe = ::posix_fallocate(fd, static_cast<off_t>(base + (head * n + row0) * row),
                                            static_cast<off_t>(rows * row));
        if (probe == ENOSPC || probe == EDQUOT || probe == EFBIG) err = probe;
      }
      if (fd >= 0) ::close(fd);
    }
    if (err != 0) throw io::write_error(file, what, err);
    throw Error(kExitIo, file + ": cannot write " + what + (detail.empty() ? "" : " (HDF5: " + detail + ")") +
                             "; check the file system (space, quota, health), then rerun");
  }
}

namespace {
// The memory space of a read of `rows` rows: the selection's own shape (1 × rows × … with a
// head), not a flat vector. With a flat one, HDF5's parallel driver maps a chunked dataset
// to memory element by element (H5S_select_iterate): 78 MB/s against GB/s measured.
Handle rows_memory_space(const std::vector<hsize_t>& dims, bool headed, hsize_t rows) {
  std::vector<hsize_t> shape = dims;
  if (headed) shape[0] = 1;
  shape[headed ? 1 : 0] = std::max<hsize_t>(rows, 1);
  Handle space(check_id(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr),
                        "cannot create a memory dataspace"));
  if (rows == 0) check(H5Sselect_none(space), "cannot select nothing");
  return space;
}
}  // namespace

void read_rows(hid_t dataset, hid_t mem_type, const std::vector<hsize_t>& dims, bool headed, hsize_t head, hsize_t row0,
               hsize_t rows, void* buf, hid_t dxpl, const std::string& what) {
  Handle file_space = select_rows(dataset, dims, headed, head, row0, rows);
  Handle mem = rows_memory_space(dims, headed, rows);
  check(H5Dread(dataset, mem_type, mem, file_space, dxpl, buf), "cannot read " + what, kExitData);
}

Handle half_type() {
  Handle t(check_id(H5Tcopy(H5T_IEEE_F32LE), "cannot copy a float type"));
  // sign at bit 15, exponent bits 10..14, mantissa bits 0..9, bias 15 (IEEE 754 binary16).
  check(H5Tset_fields(t, 15, 10, 5, 0, 10), "cannot set half-precision fields");
  check(H5Tset_precision(t, 16), "cannot set half precision");
  check(H5Tset_size(t, 2), "cannot size a half-precision type");
  check(H5Tset_ebias(t, 15), "cannot set the half-precision exponent bias");
  return t;
}

void check_input_dataset(hid_t file, const std::string& path, const std::string& filename) {
  const std::string where = filename + ": dataset '" + path + "'";
  // Each link on the way, without following the last one: external and user-defined links
  // would open other files or run plugin code.
  std::string prefix;
  std::size_t start = path[0] == '/' ? 1 : 0;
  while (start < path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    start = slash == std::string::npos ? path.size() : slash + 1;
    if (part.empty()) continue;
    prefix += "/" + part;
    H5L_info_t info{};
    check(H5Lget_info(file, prefix.c_str(), &info, H5P_DEFAULT), where + ": cannot read link '" + prefix + "'",
          kExitData);
    if (info.type != H5L_TYPE_HARD && info.type != H5L_TYPE_SOFT) {
      throw Error(kExitData, where + ": '" + prefix +
                                 "' is an external or user-defined link, which ncsparse refuses (copy the data into "
                                 "the file, e.g. with h5copy)");
    }
  }
  Handle dset(check_id(H5Dopen2(file, path.c_str(), H5P_DEFAULT), where + ": cannot open it", kExitData));
  Handle dcpl(check_id(H5Dget_create_plist(dset), where + ": cannot read its creation properties", kExitData));
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  if (layout == H5D_VIRTUAL) {
    throw Error(kExitData, where + " is a virtual dataset, which ncsparse refuses (materialise it, e.g. with h5repack -l CONTI)");
  }
  if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED && layout != H5D_COMPACT) {
    throw Error(kExitData, where + ": unknown storage layout (rewrite it with h5repack -l CONTI)");
  }
  const int external = H5Pget_external_count(dcpl);
  check(external, where + ": cannot read its external storage", kExitData);
  if (external > 0) {
    throw Error(kExitData, where + " keeps its data in external files, which ncsparse refuses (rewrite it with h5repack -l CONTI)");
  }
  const int filters = H5Pget_nfilters(dcpl);
  check(filters, where + ": cannot read its filters", kExitData);
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t nelmts = 0;
    char name[64] = {};
    const H5Z_filter_t id =
        H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &nelmts, nullptr, sizeof name, name, &config);
    check(id, where + ": cannot read its filters", kExitData);
    if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32) {
      throw Error(kExitData, where + " uses filter " + std::to_string(id) +
                                 " (only deflate, shuffle and fletcher32 are accepted; rewrite it with h5repack -f NONE)");
    }
  }
}

}  // namespace ncsparse::h5
