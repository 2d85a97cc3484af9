// The values ProcessActor's callers fill in: ProcessSpec (what to run,
// kept inline in a request).
#include <airssys/rt/process_actor.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

namespace airssys {

// ---------------------------------------------------------------------------
// ProcessSpec

ProcessSpec::ProcessSpec(std::string_view program) noexcept { (void)store(program, program_, "program"); }

bool ProcessSpec::store(std::string_view s, Slice& out, const char* what) noexcept {
  if (overflow_ != nullptr) return false;
  if (s.size() > kStringBytes - used_) {
    overflow_ = what;
    return false;
  }
  if (!s.empty()) std::memcpy(strings_ + used_, s.data(), s.size());
  out = Slice{used_, static_cast<std::uint16_t>(s.size())};
  used_ = static_cast<std::uint16_t>(used_ + s.size());
  return true;
}

bool ProcessSpec::append(Slice* list, std::uint8_t& count, std::size_t max, std::string_view s, const char* count_what,
                         const char* what) noexcept {
  if (count == max) {
    if (overflow_ == nullptr) overflow_ = count_what;
    return false;
  }
  if (!store(s, list[count], what)) return false;
  ++count;
  return true;
}

ProcessSpec& ProcessSpec::arg(std::string_view a) noexcept {
  (void)append(arg_, args_, kMaxArgs, a, "argument count", "arguments");
  return *this;
}

ProcessSpec& ProcessSpec::env(std::string_view e) noexcept {
  (void)append(env_, envs_, kMaxEnv, e, "environment entry count", "environment");
  return *this;
}

ProcessSpec& ProcessSpec::clean_env(bool clean) noexcept {
  clean_env_ = clean;
  return *this;
}
ProcessSpec& ProcessSpec::working_dir(std::string_view dir) noexcept {
  (void)store(dir, dir_, "working_dir");
  return *this;
}
ProcessSpec& ProcessSpec::containment(Containment c) noexcept {
  containment_ = c;
  return *this;
}
ProcessSpec& ProcessSpec::stdin_pipe(bool pipe) noexcept {
  stdin_pipe_ = pipe;
  return *this;
}
ProcessSpec& ProcessSpec::output(OutputSubscriber subscriber, bool stdout_pipe, bool stderr_pipe) noexcept {
  subscriber_ = subscriber;
  stdout_pipe_ = stdout_pipe;
  stderr_pipe_ = stderr_pipe;
  return *this;
}
ProcessSpec& ProcessSpec::on_cleanup(int first_signal, std::chrono::milliseconds kill_timeout) noexcept {
  first_signal_ = first_signal;
  kill_timeout_ = kill_timeout;
  return *this;
}

Result<void> ProcessSpec::check() const noexcept {
  if (overflow_ != nullptr)
    return Error::make(Errc::InvalidArgument, "process spec for '%.*s': %s over the spec's capacity (%zu bytes, %zu args, %zu env)",
                       static_cast<int>(program_.length), strings_ + program_.offset, overflow_, kStringBytes,
                       kMaxArgs, kMaxEnv);
  if (program_.length == 0) return Error::make(Errc::InvalidArgument, "process spec: the program is empty");
  if (first_signal_ < 0 || first_signal_ > 64)
    return Error::make(Errc::InvalidArgument,
                       "process spec for '%.*s': first signal %d is not a signal (0: TERM, or 1..64)",
                       static_cast<int>(program_.length), strings_ + program_.offset, first_signal_);
  if (kill_timeout_.count() < 0)
    return Error::make(Errc::InvalidArgument, "process spec for '%.*s': kill timeout %lld ms is negative",
                       static_cast<int>(program_.length), strings_ + program_.offset,
                       static_cast<long long>(kill_timeout_.count()));
  return {};
}

}  // namespace airssys
