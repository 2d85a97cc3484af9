#pragma once
// The output of every service, merged onto airssys-run's stdout one whole
// line at a time, each line prefixed with its service's name (padded to
// the longest name, coloured when stdout is a terminal and NO_COLOR is not
// set). One reader thread waits on every pipe at once (arch::Poller); a
// line longer than kMaxLine bytes is written in pieces of at most kMaxLine,
// cut between UTF-8 characters, each a line of its own.
//
// Nothing here ever makes a caller wait for stdout. Lines are formatted
// into a backlog that a writer thread empties; the writer waits for stdout
// to take more (poll) and writes at most one pipe buffer at a time, so it
// never blocks for long and can always be stopped. When stdout is slower
// than the services, the backlog fills and the reader stops reading their
// pipes until it drains: the services are held back by their own pipes,
// as they would be writing to a slow terminal, while supervision (which
// only adds airssys-run's own lines) goes on. When stdout's reader has
// gone (EPIPE), output is dropped from then on and closed() says so.

#include <airssys/error.hpp>
#include <airssys/arch/poller.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace airssys::run {

class ServiceOutput {
 public:
  static constexpr std::size_t kMaxLine = 4096;
  // Formatted bytes not yet written past which the services' pipes are
  // not read.
  static constexpr std::size_t kBacklog = std::size_t{1} << 20;
  // Past this, lines are dropped (and counted): airssys-run's own, which
  // never wait for room, and the services' last ones read by finish().
  static constexpr std::size_t kHardBacklog = 8 * kBacklog;

  // `names` in Procfile order; `color`: wrap each prefix in a colour;
  // `out_fd`: where the lines go (stdout).
  ServiceOutput(std::vector<std::string> names, bool color, int out_fd);
  ~ServiceOutput();
  ServiceOutput(const ServiceOutput&) = delete;
  ServiceOutput& operator=(const ServiceOutput&) = delete;

  // Starts the reader and writer threads. Before any add().
  Result<void> start();
  // Reads `fd` (a pipe's read end, now owned here) until end of file,
  // prefixing its lines with service `service`'s name. Any thread. Closes
  // fd itself if it cannot watch it, and says so on the output.
  void add(int fd, std::size_t service);
  // A line of airssys-run's own about a service ("started", "exited with
  // status 1"), in the same stream and prefix, marked "* ". Any thread;
  // never waits for stdout.
  void note(std::size_t service, const std::string& text);
  // The same for a note about the service's exit: what its pipes hold now
  // (written before it ended) is taken in first, so that the note follows
  // the service's last lines. Never waits for a pipe.
  void note_after_output(std::size_t service, const std::string& text);
  // Waits up to `limit` for every pipe to reach end of file (the writers
  // are gone once their trees are) and for stdout to take every line, then
  // stops both threads. Lines stdout has not taken by then are dropped.
  void finish(std::chrono::milliseconds limit);
  // True once stdout's reader has gone: nothing more is written.
  bool closed() const noexcept { return closed_.load(std::memory_order_relaxed); }
  // True while stdout takes nothing: the writer's last wait for room (100
  // ms) ended with none, and nothing was written since.
  bool stalled() const noexcept { return stalled_.load(std::memory_order_relaxed); }
  // Lines dropped: past kHardBacklog, and left unwritten when finish()
  // gave up on stdout.
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Source {
    int fd = -1;  // -1: a free slot
    std::size_t service = 0;
    std::string partial;  // bytes after the last newline
  };
  void read_loop() noexcept;
  void write_loop() noexcept;
  // The four below need mu_.
  bool drain(std::size_t slot);  // false: nothing was there to read (or the pipe ended)
  void close_source(Source& s);
  void write_line(std::size_t service, const char* text, std::size_t len, bool own);
  std::size_t backlog() const noexcept { return pending_.size() - head_; }

  std::vector<std::string> prefixes_;  // per service: colour, padded name, reset, " | "
  int out_fd_;
  arch::Poller poller_;
  std::thread reader_;
  std::thread writer_;
  std::mutex mu_;
  std::condition_variable to_write_;  // the writer waits: a backlog, or the stop
  std::condition_variable room_;      // the reader waits: room in the backlog, or the stop
  std::vector<Source> sources_;       // guarded by mu_
  std::size_t open_ = 0;              // guarded by mu_
  std::string pending_;               // guarded by mu_: formatted lines, written from head_
  std::size_t head_ = 0;              // guarded by mu_
  bool stop_reader_ = false;          // guarded by mu_
  bool finishing_ = false;            // guarded by mu_: read the pipes to their end, room or not
  bool stop_writer_ = false;          // guarded by mu_: write what is left until writer_deadline_
  std::chrono::steady_clock::time_point writer_deadline_{};  // guarded by mu_
  std::atomic<bool> closed_{false};
  std::atomic<bool> stalled_{false};
  std::atomic<std::uint64_t> dropped_{0};
  char buf_[kMaxLine];  // the reader thread's
};

}  // namespace airssys::run
