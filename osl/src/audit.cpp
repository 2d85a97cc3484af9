#include <airssys/osl/audit.hpp>

#include <cstdio>
#include <cstring>
#include <new>

namespace airssys::osl {

namespace {

// Appends to a fixed buffer; silently stops at its end (the line is then
// cut short but stays one line).
class Out {
 public:
  Out(char* buf, std::size_t cap) noexcept : buf_(buf), cap_(cap) {}
  void raw(const char* s) noexcept {
    while (*s != '\0') put(*s++);
  }
  void put(char c) noexcept {
    if (len_ + 1 < cap_) buf_[len_++] = c;
  }
  void str(std::string_view s) noexcept {
    put('"');
    for (char c : s) {
      if (c == '"' || c == '\\') {
        put('\\');
        put(c);
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        raw(esc);
      } else {
        put(c);
      }
    }
    put('"');
  }
  void num(long long v) noexcept {
    char n[24];
    std::snprintf(n, sizeof n, "%lld", v);
    raw(n);
  }
  void key(const char* k) noexcept {
    put(',');
    put('"');
    raw(k);
    put('"');
    put(':');
  }
  std::size_t finish() noexcept {
    if (cap_ == 0) return 0;
    buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
    return len_;
  }

 private:
  char* buf_;
  std::size_t cap_;
  std::size_t len_ = 0;
};

// 2026-11-26T06:40:00.123456Z from nanoseconds since the epoch (civil
// date from day count, proleptic Gregorian).
void iso_time(std::int64_t ns, char (&out)[64]) noexcept {
  std::int64_t secs = ns / 1'000'000'000;
  const auto micros = static_cast<long>((ns % 1'000'000'000) / 1000);
  std::int64_t days = secs / 86400;
  const auto rem = static_cast<long>(secs % 86400);
  days += 719468;
  const std::int64_t era = days / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const long long y = static_cast<long long>(yoe) + era * 400 + (m <= 2);
  std::snprintf(out, sizeof out, "%04lld-%02u-%02uT%02ld:%02ld:%02ld.%06ldZ", y, m, d, rem / 3600, rem / 60 % 60,
                rem % 60, micros);
}

}  // namespace

std::size_t AuditLog::format(const ProcessEvent& e, char* buf, std::size_t cap) noexcept {
  Out o(buf, cap);
  char when[64];
  iso_time(e.time_ns, when);
  o.raw("{\"time\":\"");
  o.raw(when);
  o.raw("\"");
  o.key("event");
  o.str(to_string(e.kind));
  o.key("principal");
  o.str(e.principal);
  if (!e.program.empty()) {
    o.key("program");
    o.str(e.program);
  }
  o.key("pid");
  o.num(e.pid);
  o.key("pgid");
  o.num(e.pgid);
  o.key("containment");
  o.str(to_string(e.containment));
  if (e.kind == ProcessEvent::Kind::Spawn) {
    o.key("lifetime");
    o.str(e.lifetime == ProcessLifetime::Detached ? "detached" : "managed");
  }
  if (e.kind == ProcessEvent::Kind::Signal || e.kind == ProcessEvent::Kind::GroupKill ||
      e.kind == ProcessEvent::Kind::Denied) {
    o.key("signal");
    o.num(e.signal);
  }
  if (e.kind == ProcessEvent::Kind::Exit) {
    o.key("exit_code");
    o.num(e.status.code);
    o.key("exit_signal");
    o.num(e.status.signal);
  }
  if (e.teardown != nullptr) {
    o.key("exited_on_term");
    o.raw(e.teardown->exited_on_term ? "true" : "false");
    o.key("killed");
    o.num(static_cast<long long>(e.teardown->killed));
    o.key("reaped");
    o.num(static_cast<long long>(e.teardown->reaped));
    o.key("orphans_adopted");
    o.num(static_cast<long long>(e.teardown->orphans_adopted));
  }
  o.key("result");
  o.str(e.error == nullptr ? "ok" : e.kind == ProcessEvent::Kind::Denied ? "denied" : "error");
  if (e.error != nullptr) {
    o.key("error");
    o.str(e.error->message());
  }
  o.put('}');
  return o.finish();
}

std::unique_ptr<AuditLog> AuditLog::ring(std::size_t capacity) {
  std::unique_ptr<AuditLog> log(new AuditLog);
  log->capacity_ = capacity == 0 ? 1 : capacity;
  log->ring_.reset(new char[log->capacity_ * kLineSize]);
  log->ring_len_.reset(new std::uint16_t[log->capacity_]());
  return log;
}

std::unique_ptr<AuditLog> AuditLog::to_stderr() {
  std::unique_ptr<AuditLog> log(new AuditLog);
  log->fd_ = 2;
  return log;
}

Result<std::unique_ptr<AuditLog>> AuditLog::to_file(const char* path) {
  if (path == nullptr || path[0] == '\0') return Error::make(Errc::InvalidArgument, "audit file path is empty");
  auto fd = arch::open_append(path);
  if (!fd) return Error::make_code_os(fd.code(), fd.error().os_error(), "audit %s", fd.error().message());
  std::unique_ptr<AuditLog> log(new AuditLog);
  log->fd_ = fd.value();
  log->owns_fd_ = true;
  return log;
}

AuditLog::~AuditLog() {
  if (owns_fd_) arch::close_handle(fd_);
}

void AuditLog::observe(const ProcessEvent& event) noexcept {
  char line[kLineSize];
  std::size_t len = format(event, line, sizeof line - 1);
  std::lock_guard<std::mutex> lock(mu_);
  if (capacity_ > 0) {
    const std::size_t slot = written_ % capacity_;
    std::memcpy(ring_.get() + slot * kLineSize, line, len + 1);
    ring_len_[slot] = static_cast<std::uint16_t>(len);
  }
  if (fd_ >= 0) {
    line[len++] = '\n';
    (void)arch::write_record(fd_, line, len);
  }
  ++written_;
}

std::uint64_t AuditLog::written() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

std::size_t AuditLog::lines() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return capacity_ == 0 ? 0 : (written_ < capacity_ ? static_cast<std::size_t>(written_) : capacity_);
}

std::size_t AuditLog::copy_line(std::size_t i, char* out, std::size_t capacity) const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (capacity_ == 0 || capacity == 0) return 0;
  const std::size_t n = written_ < capacity_ ? static_cast<std::size_t>(written_) : capacity_;
  if (i >= n) {
    out[0] = '\0';
    return 0;
  }
  const std::size_t first = written_ < capacity_ ? 0 : static_cast<std::size_t>(written_ % capacity_);
  const std::size_t slot = (first + i) % capacity_;
  std::size_t len = ring_len_[slot];
  if (len >= capacity) len = capacity - 1;
  std::memcpy(out, ring_.get() + slot * kLineSize, len);
  out[len] = '\0';
  return len;
}

}  // namespace airssys::osl
