#include <airssys/rt/detail/pool.hpp>

#include <bit>
#include <cassert>
#include <cstdlib>
#include <new>

#if AIRSSYS_WITH_MIMALLOC
#include <mimalloc.h>
#endif

namespace airssys::detail {

void* reserve(std::size_t bytes, std::size_t align) {
  if (bytes == 0) bytes = align;
#if AIRSSYS_WITH_MIMALLOC
  void* p = mi_malloc_aligned(bytes, align);
#else
  void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
#endif
  if (p == nullptr) std::abort();  // construction-time only: out of memory
  return p;
}

void release(void* p) noexcept {
#if AIRSSYS_WITH_MIMALLOC
  mi_free(p);
#else
  std::free(p);
#endif
}

void IndexStack::init(std::atomic<std::uint32_t>* links, std::uint32_t n, bool full,
                      std::size_t stride) noexcept {
  base_ = reinterpret_cast<char*>(links);
  stride_ = stride;
  if (!full || n == 0) {
    head_.store(kNil, std::memory_order_relaxed);
    return;
  }
  // Chain 0 -> 1 -> ... -> n-1 so that pops hand out low indices first.
  for (std::uint32_t i = 0; i < n; ++i)
    link(i).store(i + 1 < n ? i + 2 : kNil, std::memory_order_relaxed);
  head_.store(1, std::memory_order_release);
}

bool IndexStack::pop(std::uint32_t& index) noexcept {
  // acquire: pairs with the release CAS in push() so that the link of `top` and the
  // block contents written before the push are visible here.
  std::uint64_t head = head_.load(std::memory_order_acquire);
  for (;;) {
    auto top = static_cast<std::uint32_t>(head);
    if (top == kNil) return false;
    // A stale read of the link is harmless: the tag makes the CAS fail.
    std::uint32_t next = link(top - 1).load(std::memory_order_relaxed);
    std::uint64_t tag = (head >> 32) + 1;
    if (head_.compare_exchange_weak(head, (tag << 32) | next, std::memory_order_acquire,
                                    std::memory_order_acquire)) {
      index = top - 1;
      return true;
    }
  }
}

void IndexStack::push(std::uint32_t index) noexcept {
  std::uint64_t head = head_.load(std::memory_order_relaxed);
  for (;;) {
    link(index).store(static_cast<std::uint32_t>(head), std::memory_order_relaxed);
    std::uint64_t tag = (head >> 32) + 1;
    // release: publishes the link and the block's last contents to the popper.
    if (head_.compare_exchange_weak(head, (tag << 32) | (index + 1), std::memory_order_release,
                                    std::memory_order_relaxed))
      return;
  }
}

std::uint32_t IndexStack::count_quiescent(std::uint32_t limit) const noexcept {
  // acquire: pairs with push()'s release, so the links read below are the
  // pushers' (a quiescent stack only; `limit` bounds a walk that races).
  std::uint32_t top = static_cast<std::uint32_t>(head_.load(std::memory_order_acquire));
  std::uint32_t n = 0;
  while (top != kNil && n < limit) {
    ++n;
    top = link(top - 1).load(std::memory_order_relaxed);
  }
  return n;
}

BlockPool::~BlockPool() {
  if (arena_ != nullptr) release(arena_);
  if (links_ != nullptr) release(links_);
}

void BlockPool::init(std::size_t block_size, std::uint32_t count) {
  assert(block_size >= 64 && (block_size & (block_size - 1)) == 0);
  block_size_ = block_size;
  block_shift_ = static_cast<unsigned>(std::countr_zero(block_size));
  count_ = count;
  arena_ = static_cast<char*>(reserve(block_size * count, 64));
  links_ = static_cast<std::atomic<std::uint32_t>*>(
      reserve(sizeof(std::atomic<std::uint32_t>) * count, 64));
  for (std::uint32_t i = 0; i < count; ++i) new (&links_[i]) std::atomic<std::uint32_t>(0);
  free_.init(links_, count, true);
}

void SizedPools::init(const std::array<std::uint32_t, kSizeClasses>& counts, std::uint32_t workers) {
  for (std::size_t c = 0; c < kSizeClasses; ++c) {
    pools_[c].init(kMinBlockSize << c, counts[c]);
    std::uint32_t limit = counts[c] / (4 * (workers == 0 ? 1 : workers));
    if (limit > BlockCache::kCapacity) limit = BlockCache::kCapacity;
    cache_limit_[c] = limit >= 2 ? limit : 0;
  }
}

void* SizedPools::allocate_slow(std::size_t size_class, BlockCache* cache) noexcept {
  const std::uint32_t limit = cache_limit_[size_class];
  if (cache == nullptr || limit == 0) return pools_[size_class].allocate();
  auto& local = cache->classes[size_class];
  while (local.size < limit / 2) {
    void* p = pools_[size_class].allocate();
    if (p == nullptr) break;
    local.blocks[local.size++] = p;
  }
  if (local.size == 0) return nullptr;
  return local.blocks[--local.size];
}

void SizedPools::deallocate_slow(void* p, std::size_t size_class, BlockCache* cache) noexcept {
  const std::uint32_t limit = cache_limit_[size_class];
  if (cache == nullptr || limit == 0) {
    pools_[size_class].deallocate(p);
    return;
  }
  // The cache is full: spill half of it.
  auto& local = cache->classes[size_class];
  while (local.size > limit / 2) pools_[size_class].deallocate(local.blocks[--local.size]);
  local.blocks[local.size++] = p;
}

void SizedPools::flush(BlockCache& cache) noexcept {
  for (std::size_t c = 0; c < kSizeClasses; ++c) {
    auto& local = cache.classes[c];
    while (local.size > 0) pools_[c].deallocate(local.blocks[--local.size]);
  }
}

}  // namespace airssys::detail
