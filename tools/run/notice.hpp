#pragma once
// airssys-run's own messages on stderr, written so that they never hold up
// what airssys-run is doing. A stderr that is a pipe nobody reads (`2>&1`
// into a reader that stalled) would otherwise block the stop it announces:
// a message waits at most kNoticeWaitMs for room, and once one has been
// dropped for want of room, the next ones do not wait at all (they are
// still written when there is room). A message longer than kNoticeMax
// bytes is cut there.

#include <cstddef>
#include <cstdint>

namespace airssys::run {

inline constexpr int kNoticeWaitMs = 1000;
inline constexpr std::size_t kNoticeMax = 2048;

// printf-style; the text goes to file descriptor 2 as one write when there
// is room for it.
void notice(const char* fmt, ...) noexcept __attribute__((format(printf, 1, 2)));

// How many messages were dropped (in whole or in part) for want of room.
std::uint64_t notices_dropped() noexcept;

// Known from elsewhere that stderr takes nothing now (it is the pipe a
// stalled stdout goes to, `2>&1`): the next message does not wait for room
// either.
void notices_stalled() noexcept;

}  // namespace airssys::run
