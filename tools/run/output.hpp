#pragma once
// The output of every service, merged onto airssys-run's stdout one whole
// line at a time, each line prefixed with its service's name (padded to
// the longest name, coloured when stdout is a terminal and NO_COLOR is not
// set). One reader thread waits on every pipe at once (arch::Poller); a
// line longer than kMaxLine bytes is written in pieces of kMaxLine, each a
// line of its own.

#include <airssys/error.hpp>
#include <airssys/arch/poller.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace airssys::run {

class ServiceOutput {
 public:
  static constexpr std::size_t kMaxLine = 4096;

  // `names` in Procfile order; `color`: wrap each prefix in a colour.
  ServiceOutput(std::vector<std::string> names, bool color, std::FILE* out);
  ~ServiceOutput();
  ServiceOutput(const ServiceOutput&) = delete;
  ServiceOutput& operator=(const ServiceOutput&) = delete;

  // Starts the reader thread. Before any add().
  Result<void> start();
  // Reads `fd` (a pipe's read end, now owned here) until end of file,
  // prefixing its lines with service `service`'s name. Any thread. Closes
  // fd itself if it cannot watch it, and says so on the output.
  void add(int fd, std::size_t service);
  // A line of airssys-run's own about a service ("started", "exited with
  // status 1"), in the same stream and prefix, marked "* ". Any thread.
  void note(std::size_t service, const std::string& text);
  // Waits up to `limit` for every pipe to reach end of file (the writers
  // are gone once their trees are), writes what is left of partial lines,
  // stops the thread and closes what is still open.
  void finish(std::chrono::milliseconds limit);

 private:
  struct Source {
    int fd = -1;  // -1: a free slot
    std::size_t service = 0;
    std::string partial;  // bytes after the last newline
  };
  void run() noexcept;
  // The three below need mu_.
  void drain(std::size_t slot);
  void close_source(Source& s);
  void write_line(std::size_t service, const char* text, std::size_t len, bool own);

  std::vector<std::string> names_;
  std::size_t width_ = 0;
  bool color_ = false;
  std::FILE* out_;
  arch::Poller poller_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Source> sources_;  // guarded by mu_
  std::size_t open_ = 0;         // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  char buf_[kMaxLine];           // the reader thread's
};

}  // namespace airssys::run
