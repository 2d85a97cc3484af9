#include "run/output.hpp"

#include <airssys/arch/process.hpp>
#include <airssys/arch/stream.hpp>
#include <airssys/arch/wait.hpp>
#include <airssys/text.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>

// The writer's wait for stdout (poll) and its write: an executable built on
// the library, not part of it, so it includes what it needs itself.
#include <poll.h>
#include <unistd.h>

namespace airssys::run {

namespace {

// Foreground colours that read on dark and light terminals alike: cyan,
// yellow, green, magenta, red, blue; service i gets colour i mod 6.
constexpr const char* kColors[] = {"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[31m", "\033[34m"};
constexpr const char* kReset = "\033[0m";

// At most one pipe buffer per write: when poll says a pipe takes more, a
// write of up to this many bytes does not block.
constexpr std::size_t kChunk = 4096;
// How long the writer waits for stdout before it looks at its stop again.
constexpr int kPollMs = 100;

}  // namespace

ServiceOutput::ServiceOutput(std::vector<std::string> names, bool color, int out_fd) : out_fd_(out_fd) {
  std::size_t width = 0;
  for (const auto& n : names) width = std::max(width, n.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string p;
    if (color) p += kColors[i % std::size(kColors)];
    p += names[i];
    p.append(width - names[i].size(), ' ');
    p += " |";
    if (color) p += kReset;
    p += ' ';
    prefixes_.push_back(std::move(p));
  }
}

ServiceOutput::~ServiceOutput() { finish(std::chrono::milliseconds(0)); }

Result<void> ServiceOutput::start() {
  auto poller = arch::Poller::create();
  if (!poller) return poller.error();
  poller_ = std::move(poller.value());
  writer_ = std::thread([this] { write_loop(); });
  reader_ = std::thread([this] { read_loop(); });
  return {};
}

void ServiceOutput::add(int fd, std::size_t service) {
  if (fd < 0) return;
  std::lock_guard lock(mu_);
  std::size_t slot = 0;
  while (slot < sources_.size() && sources_[slot].fd >= 0) ++slot;
  if (slot == sources_.size()) sources_.emplace_back();
  if (auto r = poller_.add(fd, false, slot); !r) {
    const std::string text = std::string("cannot read its output: ") + r.error().message();
    write_line(service, text.data(), text.size(), true);
    arch::close_handle(fd);
    return;
  }
  sources_[slot].fd = fd;
  sources_[slot].service = service;
  sources_[slot].partial.clear();
  ++open_;
}

void ServiceOutput::note(std::size_t service, const std::string& text) {
  std::lock_guard lock(mu_);
  write_line(service, text.data(), text.size(), true);
}

void ServiceOutput::note_after_output(std::size_t service, const std::string& text) {
  std::lock_guard lock(mu_);
  for (std::size_t slot = 0; slot < sources_.size(); ++slot) {
    // A bound, for a tree whose other processes keep writing to the pipe:
    // twice a pipe's default capacity.
    for (int reads = 0; reads < 32 && sources_[slot].fd >= 0 && sources_[slot].service == service; ++reads)
      if (!drain(slot)) break;  // nothing more there now
  }
  write_line(service, text.data(), text.size(), true);
}

void ServiceOutput::finish(std::chrono::milliseconds limit) {
  if (!reader_.joinable()) return;
  const auto end = std::chrono::steady_clock::now() + limit;
  {
    // The trees are gone: what is left in their pipes is read whatever
    // the backlog (past kHardBacklog it is dropped), so that the pipes
    // reach their end even while stdout takes nothing.
    std::lock_guard lock(mu_);
    finishing_ = true;
  }
  room_.notify_all();
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (open_ == 0 || std::chrono::steady_clock::now() >= end) {
        stop_reader_ = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  room_.notify_all();
  poller_.wake();
  reader_.join();
  {
    std::lock_guard lock(mu_);
    for (auto& s : sources_)
      if (s.fd >= 0) close_source(s);
    // What stdout has not taken by `end` is dropped: the writer stops then.
    stop_writer_ = true;
    writer_deadline_ = end;
  }
  to_write_.notify_all();
  writer_.join();
}

void ServiceOutput::read_loop() noexcept {
  arch::name_thread("airssys-output");
  std::uint64_t ready[16];
  for (;;) {
    {
      // A full backlog: the pipes stay unread, and hold their writers back.
      std::unique_lock lock(mu_);
      room_.wait(lock, [this] { return stop_reader_ || finishing_ || backlog() < kBacklog; });
      if (stop_reader_) return;
    }
    const std::size_t n = poller_.wait(ready, std::size(ready), -1);
    std::lock_guard lock(mu_);
    if (stop_reader_) return;
    for (std::size_t i = 0; i < n; ++i)
      if (ready[i] != arch::Poller::kWake && ready[i] < sources_.size() && sources_[ready[i]].fd >= 0)
        drain(static_cast<std::size_t>(ready[i]));
  }
}

void ServiceOutput::write_loop() noexcept {
  arch::name_thread("airssys-stdout");
  char chunk[kChunk];
  for (;;) {
    std::size_t n = 0;
    {
      std::unique_lock lock(mu_);
      to_write_.wait(lock, [this] { return stop_writer_ || backlog() > 0; });
      if (backlog() == 0 || (stop_writer_ && std::chrono::steady_clock::now() >= writer_deadline_)) {
        if (backlog() > 0) {
          // Given up on stdout: count the lines left behind.
          dropped_.fetch_add(static_cast<std::uint64_t>(
                                 std::count(pending_.begin() + static_cast<std::ptrdiff_t>(head_), pending_.end(), '\n')),
                             std::memory_order_relaxed);
          pending_.clear();
          head_ = 0;
        }
        return;
      }
      n = std::min(kChunk, backlog());
      std::memcpy(chunk, pending_.data() + head_, n);
    }
    pollfd p{out_fd_, POLLOUT, 0};
    const int ready = ::poll(&p, 1, kPollMs);
    if (ready == 0) stalled_.store(true, std::memory_order_relaxed);
    if (ready == 0 || (ready < 0 && errno == EINTR)) continue;  // look at the stop again
    const ssize_t w = ready > 0 ? ::write(out_fd_, chunk, n) : -1;
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    std::lock_guard lock(mu_);
    if (w <= 0) {
      // The reader is gone (EPIPE) or stdout is unusable: nothing more is
      // written, and the pipes are still read so that no service blocks.
      closed_.store(true, std::memory_order_relaxed);
      pending_.clear();
      head_ = 0;
      room_.notify_all();
      return;
    }
    stalled_.store(false, std::memory_order_relaxed);
    head_ += static_cast<std::size_t>(w);
    if (head_ == pending_.size()) {
      pending_.clear();
      head_ = 0;
    } else if (head_ >= kBacklog / 2) {
      pending_.erase(0, head_);  // amortised: at most once per half a backlog written
      head_ = 0;
    }
    if (backlog() < kBacklog) room_.notify_all();
  }
}

bool ServiceOutput::drain(std::size_t slot) {
  Source& s = sources_[slot];
  // Only what is there now: the reader's event may be stale (note_after_
  // output took the bytes meanwhile, or the slot holds another pipe by
  // now), and a read of an empty pipe would block, holding mu_.
  pollfd ready{s.fd, POLLIN, 0};
  if (::poll(&ready, 1, 0) != 1) return false;
  auto got = arch::read_some(s.fd, buf_, sizeof buf_);
  if (!got || got.value() == 0) {
    close_source(s);
    return false;
  }
  const char* p = buf_;
  const char* end = buf_ + got.value();
  while (p < end) {
    const char* nl = std::find(p, end, '\n');
    const std::size_t room = kMaxLine - s.partial.size();
    if (static_cast<std::size_t>(nl - p) > room) {
      // More than the cap without a newline: this piece is a line of its
      // own, cut between UTF-8 characters. (Exactly the cap waits for the
      // next byte: a newline there ends the line, with no empty line after
      // it.)
      const std::size_t take = utf8_cut(p, static_cast<std::size_t>(nl - p), room);
      s.partial.append(p, take);
      write_line(s.service, s.partial.data(), s.partial.size(), false);
      s.partial.clear();
      p += take;
      continue;
    }
    if (nl == end) {
      s.partial.append(p, end);
      break;
    }
    s.partial.append(p, nl);
    write_line(s.service, s.partial.data(), s.partial.size(), false);
    s.partial.clear();
    p = nl + 1;
  }
  return true;
}

void ServiceOutput::close_source(Source& s) {
  if (!s.partial.empty()) {
    write_line(s.service, s.partial.data(), s.partial.size(), false);
    s.partial.clear();
  }
  poller_.remove(s.fd);
  arch::close_handle(s.fd);
  s.fd = -1;
  --open_;
}

void ServiceOutput::write_line(std::size_t service, const char* text, std::size_t len, bool own) {
  if (closed_.load(std::memory_order_relaxed)) return;
  // The services' lines wait for room below kBacklog (but while finishing);
  // airssys-run's own lines do not wait. Past kHardBacklog, both are dropped.
  if (backlog() >= kHardBacklog) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // A carriage return before the newline (CRLF output) would move the
  // cursor back over the prefix.
  if (len > 0 && text[len - 1] == '\r') --len;
  const bool was_empty = backlog() == 0;
  pending_ += prefixes_[service];
  if (own) pending_ += "* ";  // airssys-run's own line, not the service's
  pending_.append(text, len);
  pending_ += '\n';
  if (was_empty) to_write_.notify_one();
}

}  // namespace airssys::run
