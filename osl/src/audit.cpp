#include <airssys/osl/audit.hpp>

#include "env_entry.hpp"

#include <cstdio>
#include <cstring>
#include <new>
#include <span>

namespace airssys::osl {

namespace {

// Writes one JSON object into a fixed buffer without ever breaking its
// syntax: each field is written whole or rolled back, strings are cut at a
// character boundary and closed, and the last bytes are kept for the
// closing brackets and the "truncated" flag. Below AuditLog::kMinFormat
// bytes there is no such room, and the output is a plain prefix.
class Out {
 public:
  static constexpr std::size_t kReserve = 48;  // `"]`, `,"truncated":true}`, NUL, with room to spare

  Out(char* buf, std::size_t cap) noexcept
      : buf_(buf), cap_(cap), whole_(cap >= AuditLog::kMinFormat),
        limit_(cap == 0 ? 0 : whole_ ? cap - kReserve : cap - 1) {}

  bool truncated() const noexcept { return truncated_; }
  void mark_truncated() noexcept { truncated_ = true; }
  std::size_t room() const noexcept { return limit_ > len_ ? limit_ - len_ : 0; }

  // A field is begun, written, then committed: rolled back whole if it did
  // not fit.
  std::size_t begin() const noexcept { return len_; }
  bool commit(std::size_t mark) noexcept {
    if (!overflow_) return true;
    overflow_ = false;
    truncated_ = true;
    if (whole_) len_ = mark;
    return false;
  }

  void put(char c) noexcept {
    if (len_ < limit_) {
      buf_[len_++] = c;
    } else {
      overflow_ = true;
    }
  }
  void raw(const char* s) noexcept {
    while (*s != '\0') put(*s++);
  }
  // Closing characters, written into the reserve: they always fit.
  void close(char c) noexcept {
    if (whole_ ? len_ + 1 < cap_ : len_ < limit_) buf_[len_++] = c;
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
  // A JSON string of `s`, its escaped content at most `budget` bytes: cut
  // (and the line marked truncated) at a character boundary, always closed.
  enum class Written { NoRoom, Whole, Cut };
  Written str(std::string_view s, std::size_t budget = ~std::size_t{0}) noexcept {
    put('"');
    if (overflow_) return Written::NoRoom;
    Written result = Written::Whole;
    const std::size_t stop = budget < room() ? len_ + budget : limit_;
    for (std::size_t i = 0; i < s.size();) {
      char piece[8];
      std::size_t n = 0, used = 1;
      const auto c = static_cast<unsigned char>(s[i]);
      if (c == '"' || c == '\\') {
        piece[n++] = '\\';
        piece[n++] = static_cast<char>(c);
      } else if (c < 0x20) {
        n = static_cast<std::size_t>(std::snprintf(piece, sizeof piece, "\\u%04x", c));
      } else if (c < 0x80) {
        piece[n++] = static_cast<char>(c);
      } else if ((used = utf8_length(s, i)) > 0) {
        for (std::size_t k = 0; k < used; ++k) piece[n++] = s[i + k];
      } else {
        // Not UTF-8: the byte's value, as the code point of that number.
        used = 1;
        n = static_cast<std::size_t>(std::snprintf(piece, sizeof piece, "\\u%04x", c));
      }
      if (len_ + n > stop) {
        truncated_ = true;
        result = Written::Cut;
        break;
      }
      for (std::size_t k = 0; k < n; ++k) buf_[len_++] = piece[k];
      i += used;
    }
    close('"');
    return result;
  }
  std::size_t finish() noexcept {
    if (cap_ == 0) return 0;
    buf_[len_ < cap_ ? len_ : cap_ - 1] = '\0';
    return len_;
  }

 private:
  // The length of the valid UTF-8 sequence at s[i] (RFC 3629: no overlong
  // forms, no surrogates, nothing above U+10FFFF), or 0.
  static std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return 0;
    }
    if (i + n > s.size() || b(1) < lo || b(1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k)
      if (b(k) < 0x80 || b(k) > 0xbf) return 0;
    return n;
  }

  char* buf_;
  std::size_t cap_;
  bool whole_;
  std::size_t limit_;
  std::size_t len_ = 0;
  bool overflow_ = false;
  bool truncated_ = false;
};

// Per-string budgets (escaped bytes), so that the fixed fields of a spawn
// always leave room for its argv.
constexpr std::size_t kNameBudget = 256;
constexpr std::size_t kPathBudget = 512;

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
  using K = ProcessEvent::Kind;
  Out o(buf, cap);
  char when[64];
  iso_time(e.time_ns, when);
  o.raw("{\"time\":\"");
  o.raw(when);
  o.raw("\"");
  std::size_t m = o.begin();
  o.key("event");
  o.str(to_string(e.kind));
  o.commit(m);
  const auto string_field = [&](const char* k, std::string_view v, std::size_t budget) {
    const std::size_t mark = o.begin();
    o.key(k);
    o.str(v, budget);
    o.commit(mark);
  };
  const auto number_field = [&](const char* k, long long v) {
    const std::size_t mark = o.begin();
    o.key(k);
    o.num(v);
    o.commit(mark);
  };
  const auto bool_field = [&](const char* k, bool v) {
    const std::size_t mark = o.begin();
    o.key(k);
    o.raw(v ? "true" : "false");
    o.commit(mark);
  };
  string_field("principal", e.principal, kNameBudget);
  if (!e.program.empty()) string_field("program", e.program, kPathBudget);
  if (!e.executable.empty()) string_field("exe", e.executable, kPathBudget);
  number_field("pid", e.pid);
  number_field("pgid", e.pgid);
  string_field("containment", to_string(e.containment), kNameBudget);
  if (e.kind == K::Spawn) string_field("lifetime", e.lifetime == ProcessLifetime::Detached ? "detached" : "managed", kNameBudget);
  if (e.kind == K::Signal || e.kind == K::GroupKill || e.kind == K::Denied) number_field("signal", e.signal);
  if (e.kind == K::Exit || (e.kind == K::Wait && e.error == nullptr)) {
    number_field("exit_code", e.status.code);
    number_field("exit_signal", e.status.signal);
    bool_field("core_dumped", e.status.core_dumped);
  }
  if (e.kind == K::Exit && e.tree_leader) bool_field("tree_ended", e.tree_ended);
  if (e.kind == K::StaleSwept) { number_field("trees", static_cast<long long>(e.trees)); number_field("processes", static_cast<long long>(e.processes)); }
  if (e.teardown != nullptr) {
    bool_field("exited_on_term", e.teardown->exited_on_term);
    number_field("killed", static_cast<long long>(e.teardown->killed));
    number_field("reaped", static_cast<long long>(e.teardown->reaped));
    number_field("orphans_adopted", static_cast<long long>(e.teardown->orphans_adopted));
  }
  string_field("result", e.error == nullptr ? "ok" : e.kind == K::Denied ? "denied" : "error", kNameBudget);
  if (e.error != nullptr) string_field("error", e.error->message(), kPathBudget * 2);
  if (const SpawnProcessOperation* op = e.spawn; op != nullptr) {
    if (!op->working_dir.empty()) string_field("cwd", op->working_dir, kPathBudget);
    string_field("env_mode", op->env_mode == EnvMode::Clean ? "clean" : "inherit", kNameBudget);
    number_field("argc", static_cast<long long>(op->args.size() + 1));
    // A list of strings, each whole while they fit in `budget`; the first
    // that does not is cut, the rest counted as elided.
    const auto list = [&](const char* k, std::size_t count, std::size_t budget, auto&& element, auto&& include,
                          const char* elided_key) {
      constexpr std::size_t kElidedRoom = 40;  // for `,"argv_elided":<count>` after the list
      const std::size_t mark = o.begin();
      const std::size_t allowed = budget < o.room() ? budget : o.room();
      const std::size_t stop = mark + (allowed > kElidedRoom ? allowed - kElidedRoom : 0);
      o.key(k);
      o.put('[');
      if (!o.commit(mark)) return;
      std::size_t shown = 0, total = 0;
      bool full = false;
      for (std::size_t i = 0; i < count; ++i) {
        if (!include(i)) continue;
        ++total;
        if (full) continue;
        const std::size_t at = o.begin();
        if (shown > 0) o.put(',');
        const std::size_t used = o.begin() + 2;  // with the element's quotes
        const Out::Written w = o.str(element(i), stop > used ? stop - used : 0);
        const bool fits = o.commit(at);  // rolls a NoRoom element back too
        if (w == Out::Written::NoRoom || !fits) {
          full = true;
          continue;
        }
        ++shown;
        if (w == Out::Written::Cut) full = true;  // the rest are elided
      }
      o.close(']');
      if (total > shown) {
        o.mark_truncated();
        number_field(elided_key, static_cast<long long>(total - shown));
      }
    };
    // The environment names get at most half of what is left, so that a
    // long argv cannot hide an LD_PRELOAD, nor many names the argv.
    list("env_set", op->env.size(), o.room() / 2, [&](std::size_t i) { return detail::env_name(op->env[i]); },
         [&](std::size_t i) { return !detail::overridden(op->env[i], op->env.subspan(i + 1)); }, "env_elided");
    list("argv", op->args.size() + 1, o.room(),
         [&](std::size_t i) { return i == 0 ? op->program : op->args[i - 1]; }, [](std::size_t) { return true; },
         "argv_elided");
  }
  if (o.truncated()) {
    // Into the reserve: always fits in a whole-object buffer.
    for (const char* p = ",\"truncated\":true"; *p != '\0'; ++p) o.close(*p);
  }
  o.close('}');
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
  std::snprintf(log->path_, sizeof log->path_, "stderr");
  return log;
}

Result<std::unique_ptr<AuditLog>> AuditLog::to_file(const char* path) {
  if (path == nullptr || path[0] == '\0') return Error::make(Errc::InvalidArgument, "audit file path is empty");
  auto fd = arch::open_append(path);
  if (!fd) return Error::make_code_os(fd.code(), fd.error().os_error(), "audit %s", fd.error().message());
  std::unique_ptr<AuditLog> log(new AuditLog);
  log->fd_ = fd.value();
  log->owns_fd_ = true;
  std::snprintf(log->path_, sizeof log->path_, "%s", path);
  return log;
}

AuditLog::~AuditLog() {
  if (owns_fd_) arch::close_handle(fd_);
}

void AuditLog::observe(const ProcessEvent& event) noexcept {
  char line[kLineSize];
  std::size_t len = format(event, line, sizeof line - 1);  // room for the newline
  std::lock_guard<std::mutex> lock(mu_);
  if (capacity_ > 0) {
    const std::size_t slot = written_ % capacity_;
    std::memcpy(ring_.get() + slot * kLineSize, line, len + 1);
    ring_len_[slot] = static_cast<std::uint16_t>(len);
  }
  if (fd_ >= 0) {
    line[len++] = '\n';
    if (auto r = arch::write_record(fd_, line, len); !r) {
      ++failures_;
      last_failure_ = Error::make_code_os(Errc::Os, r.error().os_error(), "audit %s '%s': %s",
                                          owns_fd_ ? "file" : "stream", path_, r.error().message());
      // Monotonic flag; the counts behind it are read under mu_.
      failing_.store(true, std::memory_order_relaxed);
      return;
    }
  }
  ++written_;
}

Result<void> AuditLog::check(const OperationView& op, const SecurityContext& who) noexcept {
  (void)who;
  // Relaxed: a stale `false` lets one more operation through, which the
  // contract allows (a record lost concurrently with it); the flag never
  // goes back.
  if (!fail_closed_.load(std::memory_order_relaxed) || !failing_.load(std::memory_order_relaxed)) return {};
  if (op.kind == OperationView::Kind::Wait || op.kind == OperationView::Kind::Teardown) return {};
  std::lock_guard<std::mutex> lock(mu_);
  return Error::make(Errc::Unavailable, "fail-closed: %llu audit records lost (%s)",
                     static_cast<unsigned long long>(failures_), last_failure_.message());
}

void AuditLog::set_fail_closed(bool on) noexcept {
  // Relaxed: configured before the first operation, which the executor's
  // own synchronisation orders after it.
  fail_closed_.store(on, std::memory_order_relaxed);
}

std::uint64_t AuditLog::write_failures() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

bool AuditLog::failing() const noexcept { return failing_.load(std::memory_order_relaxed); }

Error AuditLog::last_failure() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return last_failure_;
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
