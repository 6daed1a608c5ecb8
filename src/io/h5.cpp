#include "io/h5.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

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

}  // namespace

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
  if (comm != MPI_COMM_NULL) check(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL), "cannot set MPI-IO file access");
  return fapl;
}

Handle open_input_file(const std::string& path, MPI_Comm comm) {
  silence_errors();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw Error(kExitNoInput, path + ": " + std::strerror(errno) + " (check the path)");
  }
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

}  // namespace ncsparse::h5
