#include "alloc_counter.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};
inline void count() noexcept { g_allocations.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

namespace airssys::test {
std::uint64_t allocations() noexcept { return g_allocations.load(std::memory_order_relaxed); }
#if AIRSSYS_SANITIZED
bool counts_malloc() noexcept { return false; }
#else
bool counts_malloc() noexcept { return true; }
#endif
}  // namespace airssys::test

#if !AIRSSYS_SANITIZED
// The malloc family, forwarded to glibc's own entry points. Defined in the
// executable, these take precedence over both glibc and mimalloc's exports.
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  count();
  return __libc_realloc(p, n);
}
void* memalign(std::size_t align, std::size_t n) {
  count();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  count();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  count();
  void* p = __libc_memalign(align, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}
#endif

namespace {
// Uncounted allocation under operator new, so that one `new` counts once.
#if !AIRSSYS_SANITIZED
void* raw_alloc(std::size_t n, std::size_t align) { return __libc_memalign(align, n); }
void raw_free(void* p) { __libc_free(p); }
#else
void* raw_alloc(std::size_t n, std::size_t align) {
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void raw_free(void* p) { std::free(p); }
#endif
void* counted_new(std::size_t n) {
  count();
  void* p = raw_alloc(n == 0 ? 1 : n, alignof(std::max_align_t));
  if (p == nullptr) std::abort();
  return p;
}
void* counted_new_aligned(std::size_t n, std::align_val_t a) {
  count();
  std::size_t align = static_cast<std::size_t>(a);
  if (align < alignof(std::max_align_t)) align = alignof(std::max_align_t);
  void* p = raw_alloc(n == 0 ? 1 : n, align);
  if (p == nullptr) std::abort();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_new(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_new(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_new_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_new_aligned(n, a);
}
void operator delete(void* p) noexcept { raw_free(p); }
void operator delete[](void* p) noexcept { raw_free(p); }
void operator delete(void* p, std::size_t) noexcept { raw_free(p); }
void operator delete[](void* p, std::size_t) noexcept { raw_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { raw_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { raw_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { raw_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { raw_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { raw_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { raw_free(p); }
