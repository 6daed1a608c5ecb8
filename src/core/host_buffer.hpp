// An uninitialised host array for large buffers that are written in full before being read
// (a rank's K and V shard): no zero-fill, and from 4 MiB on, 2 MiB-aligned with transparent
// huge pages asked for (madvise), so that the first touch faults once per 2 MiB, not per 4 KiB.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

namespace ncsparse {

namespace detail {
void* allocate_host(std::size_t bytes);  // throws std::bad_alloc
struct FreeHost {
  void operator()(void* p) const;
};
}  // namespace detail

template <class T>
class HostBuffer {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);

 public:
  HostBuffer() = default;
  explicit HostBuffer(std::size_t count) { resize(count); }
  // Contents are not kept (nor initialised). The allocation is kept when it is large enough,
  // so a buffer reused for a smaller size touches no fresh pages.
  void resize(std::size_t count) {
    if (count > capacity_) {
      data_.reset();  // free first: the peak holds one allocation, not two
      capacity_ = 0;
      data_.reset(detail::allocate_host(count * sizeof(T)));
      capacity_ = count;
    }
    size_ = count;
  }
  // Allocates room for count elements without touching it (pages are faulted in by the
  // first write); the size is unchanged and the contents are not kept.
  void reserve(std::size_t count) {
    const std::size_t size = size_;
    resize(count);
    size_ = size;
  }
  std::size_t capacity() const { return capacity_; }
  T* data() const { return static_cast<T*>(data_.get()); }
  std::size_t size() const { return size_; }
  T* begin() const { return data(); }
  T* end() const { return data() + size_; }

 private:
  std::unique_ptr<void, detail::FreeHost> data_;
  std::size_t size_ = 0, capacity_ = 0;
};

}  // namespace ncsparse
