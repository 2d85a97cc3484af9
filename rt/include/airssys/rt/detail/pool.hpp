#pragma once
// Fixed-capacity block pools. Every block the runtime hands out after
// construction comes from here; exhaustion is a null return, never a `new`.

#include <airssys/rt/config.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace airssys::detail {

// Raw memory for pools, taken once at System construction (from mimalloc
// when AIRSSYS_MIMALLOC is on) and given back at destruction.
void* reserve(std::size_t bytes, std::size_t align);
void release(void* p) noexcept;

// A lock-free LIFO of indices 0..n-1 (Treiber stack). The head packs a
// 32-bit ABA tag with index+1, so a pop that raced with pop+push of the same
// index fails its CAS instead of corrupting the stack.
class IndexStack {
 public:
  // The link of index i is the atomic at `links + i * stride` bytes, so a
  // stack can thread through an array of larger objects. The links must
  // outlive the stack.
  void init(std::atomic<std::uint32_t>* links, std::uint32_t n, bool full,
            std::size_t stride = sizeof(std::atomic<std::uint32_t>)) noexcept;
  bool pop(std::uint32_t& index) noexcept;
  void push(std::uint32_t index) noexcept;
  // Indices on the stack, counting at most `limit`. Walks the links: exact
  // only while no thread pushes or pops (a leak check after shutdown).
  std::uint32_t count_quiescent(std::uint32_t limit) const noexcept;

 private:
  static constexpr std::uint32_t kNil = 0;  // index+1 == 0 means empty
  std::atomic<std::uint32_t>& link(std::uint32_t i) const noexcept {
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(base_ + i * stride_);
  }
  alignas(64) std::atomic<std::uint64_t> head_{0};
  char* base_ = nullptr;
  std::size_t stride_ = 0;
};

// `count` blocks of `block_size` bytes (a power of two, at least 64) in one
// arena, with a lock-free free list. Blocks are 64-byte aligned; a block's
// index is its offset shifted, not divided (a division costs tens of cycles
// on every free and every monitor record).
class BlockPool {
 public:
  BlockPool() = default;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  ~BlockPool();

  void init(std::size_t block_size, std::uint32_t count);
  void* allocate() noexcept {
    std::uint32_t i;
    if (!free_.pop(i)) return nullptr;
    return arena_ + static_cast<std::size_t>(i) * block_size_;
  }
  void deallocate(void* p) noexcept {
    free_.push(index_of(p));
  }
  std::uint32_t count() const noexcept { return count_; }
  // Blocks not on the free list; see IndexStack::count_quiescent.
  std::uint32_t in_use_quiescent() const noexcept { return count_ - free_.count_quiescent(count_); }
  std::size_t block_size() const noexcept { return block_size_; }
  std::uint32_t index_of(const void* p) const noexcept {
    return static_cast<std::uint32_t>(static_cast<std::size_t>(static_cast<const char*>(p) - arena_) >> block_shift_);
  }
  void* block(std::uint32_t i) const noexcept { return arena_ + static_cast<std::size_t>(i) * block_size_; }

 private:
  char* arena_ = nullptr;
  std::atomic<std::uint32_t>* links_ = nullptr;
  std::size_t block_size_ = 0;
  unsigned block_shift_ = 0;  // block_size_ == 1 << block_shift_
  std::uint32_t count_ = 0;
  IndexStack free_;
};

// Smallest size class whose blocks hold `bytes`, or kSizeClasses if none.
constexpr std::size_t size_class_for(std::size_t bytes) noexcept {
  std::size_t c = 0;
  while (c < kSizeClasses && (kMinBlockSize << c) < bytes) ++c;
  return c;
}

// A per-worker stash of free blocks for each size class, so that a worker
// allocating and freeing messages (or actor state) touches no shared cache
// line in the common case. Refills from and spills to the shared pool in batches. A
// class keeps at most a quarter of its blocks in all caches together (none
// when that is under two per worker), and a worker empties its cache before
// it sleeps.
struct BlockCache {
  static constexpr std::uint32_t kCapacity = 64;
  struct Class {
    void* blocks[kCapacity];
    std::uint32_t size = 0;
  };
  Class classes[kSizeClasses];
};

// The size-classed pools of one kind (messages, or actor state).
class SizedPools {
 public:
  void init(const std::array<std::uint32_t, kSizeClasses>& counts, std::uint32_t workers);
  // `cache` is the calling worker's cache, or null on other threads.
  void* allocate(std::size_t size_class, BlockCache* cache) noexcept {
    if (cache != nullptr) {
      auto& local = cache->classes[size_class];
      if (local.size != 0) return local.blocks[--local.size];
    }
    return allocate_slow(size_class, cache);
  }
  void deallocate(void* p, std::size_t size_class, BlockCache* cache) noexcept {
    if (cache != nullptr) {
      auto& local = cache->classes[size_class];
      if (local.size < cache_limit_[size_class]) {
        local.blocks[local.size++] = p;
        return;
      }
    }
    deallocate_slow(p, size_class, cache);
  }
  // Returns every cached block to the shared pools (worker exit).
  void flush(BlockCache& cache) noexcept;
  std::uint32_t count(std::size_t size_class) const noexcept { return pools_[size_class].count(); }
  // Blocks of every class taken from the shared pools (a worker's cached
  // blocks count as taken); exact only while nothing allocates or frees.
  std::uint64_t in_use_quiescent() const noexcept {
    std::uint64_t n = 0;
    for (const auto& p : pools_) n += p.in_use_quiescent();
    return n;
  }
  std::uint32_t index_of(std::size_t size_class, const void* p) const noexcept {
    return pools_[size_class].index_of(p);
  }
  void* block(std::size_t size_class, std::uint32_t i) const noexcept { return pools_[size_class].block(i); }

 private:
  void* allocate_slow(std::size_t size_class, BlockCache* cache) noexcept;
  void deallocate_slow(void* p, std::size_t size_class, BlockCache* cache) noexcept;

  BlockPool pools_[kSizeClasses];
  std::uint32_t cache_limit_[kSizeClasses] = {};  // per worker; 0: no caching
};

}  // namespace airssys::detail
