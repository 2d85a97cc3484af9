#include "run/output.hpp"

#include <airssys/arch/process.hpp>
#include <airssys/arch/stream.hpp>
#include <airssys/arch/wait.hpp>

#include <algorithm>
#include <iterator>

namespace airssys::run {

namespace {

// Foreground colours that read on dark and light terminals alike: cyan,
// yellow, green, magenta, red, blue; service i gets colour i mod 6.
constexpr const char* kColors[] = {"\033[36m", "\033[33m", "\033[32m", "\033[35m", "\033[31m", "\033[34m"};
constexpr const char* kReset = "\033[0m";

}  // namespace

ServiceOutput::ServiceOutput(std::vector<std::string> names, bool color, std::FILE* out)
    : names_(std::move(names)), color_(color), out_(out) {
  for (const auto& n : names_) width_ = std::max(width_, n.size());
}

ServiceOutput::~ServiceOutput() { finish(std::chrono::milliseconds(0)); }

Result<void> ServiceOutput::start() {
  auto poller = arch::Poller::create();
  if (!poller) return poller.error();
  poller_ = std::move(poller.value());
  thread_ = std::thread([this] { run(); });
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
  std::fflush(out_);
}

void ServiceOutput::finish(std::chrono::milliseconds limit) {
  if (!thread_.joinable()) return;
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (open_ == 0 || std::chrono::steady_clock::now() >= end) {
        stop_ = true;
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  poller_.wake();
  thread_.join();
  std::lock_guard lock(mu_);
  for (auto& s : sources_)
    if (s.fd >= 0) close_source(s);
  std::fflush(out_);
}

void ServiceOutput::run() noexcept {
  arch::name_thread("airssys-output");
  std::uint64_t ready[16];
  for (;;) {
    const std::size_t n = poller_.wait(ready, std::size(ready), -1);
    std::lock_guard lock(mu_);
    if (stop_) return;
    for (std::size_t i = 0; i < n; ++i)
      if (ready[i] != arch::Poller::kWake && ready[i] < sources_.size() && sources_[ready[i]].fd >= 0)
        drain(static_cast<std::size_t>(ready[i]));
    std::fflush(out_);
  }
}

void ServiceOutput::drain(std::size_t slot) {
  Source& s = sources_[slot];
  // The descriptor is readable: this read returns at once.
  auto got = arch::read_some(s.fd, buf_, sizeof buf_);
  if (!got || got.value() == 0) {
    close_source(s);
    return;
  }
  const char* p = buf_;
  const char* end = buf_ + got.value();
  while (p < end) {
    const char* nl = std::find(p, end, '\n');
    const std::size_t room = kMaxLine - s.partial.size();
    if (static_cast<std::size_t>(nl - p) > room) {
      // More than the cap without a newline: this piece is a line of its
      // own. (Exactly the cap waits for the next byte: a newline there
      // ends the line, with no empty line after it.)
      s.partial.append(p, room);
      write_line(s.service, s.partial.data(), s.partial.size(), false);
      s.partial.clear();
      p += room;
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
  const std::string& name = names_[service];
  // A carriage return before the newline (CRLF output) would move the
  // cursor back over the prefix.
  if (len > 0 && text[len - 1] == '\r') --len;
  if (color_) std::fputs(kColors[service % std::size(kColors)], out_);
  std::fprintf(out_, "%-*s |", static_cast<int>(width_), name.c_str());
  if (color_) std::fputs(kReset, out_);
  std::fputc(' ', out_);
  if (own) std::fputs("* ", out_);  // airssys-run's own line, not the service's
  std::fwrite(text, 1, len, out_);
  std::fputc('\n', out_);
}

}  // namespace airssys::run
