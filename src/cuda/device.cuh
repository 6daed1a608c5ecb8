// What every CUDA source of the backend shares: checked calls and an owning device array.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "ncsparse/error.hpp"

namespace ncsparse::cuda {

inline void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  throw Error(kExitInternal, std::string("CUDA call failed: ") + call + ": " + cudaGetErrorString(status));
}
inline void check(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(kExitInternal, std::string("cuBLAS call failed: ") + call + ": status " + std::to_string(int(status)));
}
#define NCSPARSE_CUDA(call) ::ncsparse::cuda::check((call), #call)
#define NCSPARSE_CUDA_LAUNCH() ::ncsparse::cuda::check(cudaGetLastError(), "kernel launch")

// Grows, never shrinks; contents are not kept across a growth.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { release(); }
  void resize(std::size_t count) {
    if (count <= capacity_) {
      size_ = count;
      return;
    }
    release();
    NCSPARSE_CUDA(cudaMalloc(&data_, std::max<std::size_t>(count, 1) * sizeof(T)));
    capacity_ = count;
    size_ = count;
  }
  void release() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    capacity_ = size_ = 0;
  }
  T* get() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t capacity_ = 0, size_ = 0;
};

}  // namespace ncsparse::cuda
