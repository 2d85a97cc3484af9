#pragma once
// Counts every heap allocation the process makes (operator new in all its
// forms and, outside sanitizer builds, the malloc family), so tests and
// benchmarks can prove that a code path allocates nothing.

#include <cstdint>

namespace airssys::test {

// Allocation calls since the process started.
std::uint64_t allocations() noexcept;
// True when malloc/calloc/realloc are counted too (not under sanitizers).
bool counts_malloc() noexcept;

}  // namespace airssys::test
