#pragma once
// A fixed-capacity table from short names to 64-bit values, for the
// registry and the broker. Lookups are lock-free (a seqlock per entry);
// inserts and removals are serialised by a spin lock, since they are
// administrative, not per-message.

#include <airssys/rt/error.hpp>

#include <atomic>
#include <cstdint>
#include <string_view>

namespace airssys::detail {

// A name of 1..31 bytes, stored as four words so that readers can copy it
// with atomic loads while a writer may be changing the entry.
struct Name {
  static constexpr std::size_t kMax = 31;
  std::uint64_t words[4] = {};
  static Result<Name> make(std::string_view s, const char* what) noexcept;
  std::uint64_t hash() const noexcept;
  friend bool operator==(const Name&, const Name&) = default;
};

class NameTable {
 public:
  struct Found {
    std::uint32_t index;
    std::uint64_t value;
    std::uintptr_t tag;
  };

  NameTable() = default;
  NameTable(const NameTable&) = delete;
  NameTable& operator=(const NameTable&) = delete;
  ~NameTable();

  void init(std::uint32_t capacity);
  std::uint32_t capacity() const noexcept { return capacity_; }

  // Lock-free. False if absent.
  bool find(const Name& name, Found& out) const noexcept;
  // Adds `name`; AlreadyExists if present (its entry in `out`), Full if the
  // table holds `capacity` names.
  Result<std::uint32_t> insert(const Name& name, std::uint64_t value, std::uintptr_t tag,
                               Found* existing) noexcept;
  // Removes the entry at `index` if it still holds `value`.
  bool erase(std::uint32_t index, std::uint64_t value) noexcept;
  // Replaces the value at `index` if it still holds `expected`.
  bool replace(std::uint32_t index, std::uint64_t expected, std::uint64_t value) noexcept;
  std::uint32_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  // Number of entry indices (a power of two, at least twice the capacity).
  std::uint32_t slots() const noexcept { return mask_ + 1; }
  // Removes every live entry whose value satisfies `pred`; returns how many.
  template <class Pred>
  std::uint32_t erase_if(Pred pred) noexcept {
    std::uint32_t erased = 0;
    lock();
    for (std::uint32_t i = 0; i <= mask_; ++i) {
      Entry& e = entries_[i];
      if (e.state.load(std::memory_order_relaxed) == 1 && pred(e.value.load(std::memory_order_relaxed))) {
        write(e, 2, Name{}, 0, 0);
        size_.fetch_sub(1, std::memory_order_relaxed);
        ++erased;
      }
    }
    unlock();
    return erased;
  }

 private:
  struct Entry {
    // Even: stable; odd: a writer is changing the entry.
    std::atomic<std::uint32_t> seq{0};
    std::atomic<std::uint8_t> state{0};  // 0 never used, 1 live, 2 removed
    std::atomic<std::uint64_t> words[4] = {};
    std::atomic<std::uint64_t> value{0};
    std::atomic<std::uintptr_t> tag{0};
  };
  void lock() noexcept;
  void unlock() noexcept { lock_.store(false, std::memory_order_release); }
  void write(Entry& e, std::uint8_t state, const Name& n, std::uint64_t value,
             std::uintptr_t tag) noexcept;

  Entry* entries_ = nullptr;
  std::uint32_t mask_ = 0;
  std::uint32_t capacity_ = 0;
  std::atomic<std::uint32_t> size_{0};
  std::atomic<bool> lock_{false};
};

}  // namespace airssys::detail
