#pragma once
// Text helpers shared by the layers that split output into lines.

#include <cstddef>

namespace airssys {

// Where to cut `text` (of `size` bytes, more than `limit`) so that the
// first piece holds at most `limit` bytes and does not end inside a UTF-8
// character: `limit`, moved back over up to three continuation bytes
// (10xxxxxx) to the start of the character it would split. Text that is
// not UTF-8 there (four or more continuation bytes in a row, or a cut that
// would leave nothing) is cut at `limit`.
constexpr std::size_t utf8_cut(const char* text, std::size_t size, std::size_t limit) noexcept {
  if (limit >= size) return size;
  std::size_t cut = limit;
  for (int back = 0; back < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++back) --cut;
  if (cut == 0 || (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) return limit;
  return cut;
}

}  // namespace airssys
