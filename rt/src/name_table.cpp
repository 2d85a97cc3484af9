#include <airssys/rt/detail/name_table.hpp>

#include <airssys/arch/wait.hpp>
#include <airssys/rt/detail/pool.hpp>

#include <cstring>
#include <new>

namespace airssys::detail {

Result<Name> Name::make(std::string_view s, const char* what) noexcept {
  if (s.empty()) return Error::make(Errc::InvalidArgument, "%s name is empty", what);
  if (s.size() > kMax)
    return Error::make(Errc::InvalidArgument, "%s name '%.*s...' is %zu bytes (max %zu)", what,
                       16, s.data(), s.size(), kMax);
  if (s.find('\0') != std::string_view::npos)
    return Error::make(Errc::InvalidArgument, "%s name contains a NUL byte", what);
  Name n;
  char buf[32] = {};
  std::memcpy(buf, s.data(), s.size());
  std::memcpy(n.words, buf, sizeof buf);
  return n;
}

std::uint64_t Name::hash() const noexcept {
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  for (auto w : words) {
    h ^= w;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

NameTable::~NameTable() {
  if (entries_ != nullptr) {
    for (std::uint32_t i = 0; i <= mask_; ++i) entries_[i].~Entry();
    release(entries_);
  }
}

void NameTable::init(std::uint32_t capacity) {
  capacity_ = capacity;
  std::uint32_t slots = 8;
  while (slots < capacity * 2) slots *= 2;
  mask_ = slots - 1;
  entries_ = static_cast<Entry*>(reserve(sizeof(Entry) * slots, 64));
  for (std::uint32_t i = 0; i < slots; ++i) new (&entries_[i]) Entry();
}

void NameTable::lock() noexcept {
  while (lock_.exchange(true, std::memory_order_acquire)) {
    while (lock_.load(std::memory_order_relaxed)) arch::cpu_relax();
  }
}

bool NameTable::find(const Name& name, Found& out) const noexcept {
  if (entries_ == nullptr) return false;
  for (std::uint32_t i = name.hash() & mask_, probes = 0; probes <= mask_; i = (i + 1) & mask_, ++probes) {
    const Entry& e = entries_[i];
    for (;;) {
      // acquire: pairs with the release store that made seq even again, so
      // the words read below are at least as new as that write.
      std::uint32_t s1 = e.seq.load(std::memory_order_acquire);
      if (s1 & 1u) {
        arch::cpu_relax();
        continue;
      }
      // acquire on each field: if one was written by a newer update, this
      // load synchronizes with that release store, so the re-check of seq
      // below sees the update's odd (or later) value and the copy is retried.
      std::uint8_t state = e.state.load(std::memory_order_acquire);
      Name n;
      for (int k = 0; k < 4; ++k) n.words[k] = e.words[k].load(std::memory_order_acquire);
      std::uint64_t value = e.value.load(std::memory_order_acquire);
      std::uintptr_t tag = e.tag.load(std::memory_order_acquire);
      if (e.seq.load(std::memory_order_relaxed) != s1) continue;
      if (state == 0) return false;  // end of the probe chain
      if (state == 1 && n == name) {
        out = Found{i, value, tag};
        return true;
      }
      break;
    }
  }
  return false;
}

void NameTable::write(Entry& e, std::uint8_t state, const Name& n, std::uint64_t value,
                      std::uintptr_t tag) noexcept {
  std::uint32_t s = e.seq.load(std::memory_order_relaxed);
  e.seq.store(s + 1, std::memory_order_relaxed);
  // release on each field: a reader that sees any new field value also sees
  // the odd seq stored before it (see find()).
  e.state.store(state, std::memory_order_release);
  for (int k = 0; k < 4; ++k) e.words[k].store(n.words[k], std::memory_order_release);
  e.value.store(value, std::memory_order_release);
  e.tag.store(tag, std::memory_order_release);
  e.seq.store(s + 2, std::memory_order_release);
}

Result<std::uint32_t> NameTable::insert(const Name& name, std::uint64_t value, std::uintptr_t tag,
                                        Found* existing) noexcept {
  lock();
  std::uint32_t free_slot = ~0u;
  std::uint32_t i = name.hash() & mask_;
  for (std::uint32_t probes = 0; probes <= mask_; i = (i + 1) & mask_, ++probes) {
    Entry& e = entries_[i];
    std::uint8_t state = e.state.load(std::memory_order_relaxed);
    if (state == 0) {
      if (free_slot == ~0u) free_slot = i;
      break;
    }
    if (state == 2) {
      if (free_slot == ~0u) free_slot = i;
      continue;
    }
    Name n;
    for (int k = 0; k < 4; ++k) n.words[k] = e.words[k].load(std::memory_order_relaxed);
    if (n == name) {
      if (existing != nullptr)
        *existing = Found{i, e.value.load(std::memory_order_relaxed), e.tag.load(std::memory_order_relaxed)};
      unlock();
      return Errc::AlreadyExists;
    }
  }
  if (size_.load(std::memory_order_relaxed) >= capacity_ || free_slot == ~0u) {
    unlock();
    return Errc::Full;
  }
  write(entries_[free_slot], 1, name, value, tag);
  size_.fetch_add(1, std::memory_order_relaxed);
  unlock();
  return free_slot;
}

bool NameTable::erase(std::uint32_t index, std::uint64_t value) noexcept {
  lock();
  Entry& e = entries_[index & mask_];
  bool ok = e.state.load(std::memory_order_relaxed) == 1 &&
            e.value.load(std::memory_order_relaxed) == value;
  if (ok) {
    write(e, 2, Name{}, 0, 0);
    size_.fetch_sub(1, std::memory_order_relaxed);
  }
  unlock();
  return ok;
}

bool NameTable::replace(std::uint32_t index, std::uint64_t expected, std::uint64_t value) noexcept {
  lock();
  Entry& e = entries_[index & mask_];
  bool ok = e.state.load(std::memory_order_relaxed) == 1 &&
            e.value.load(std::memory_order_relaxed) == expected;
  if (ok) {
    Name n;
    for (int k = 0; k < 4; ++k) n.words[k] = e.words[k].load(std::memory_order_relaxed);
    write(e, 1, n, value, e.tag.load(std::memory_order_relaxed));
  }
  unlock();
  return ok;
}

}  // namespace airssys::detail
