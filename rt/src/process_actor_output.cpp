// ProcessActor's output: piped stdout and stderr read into lines and passed
// to the subscriber, held back while its mailbox is full.
#include "process_actor_state.hpp"

#include <airssys/arch/poller.hpp>
#include <airssys/arch/process.hpp>
#include <airssys/text.hpp>

#include <algorithm>
#include <cstring>

namespace airssys {

void ProcessActor::close_stream(Proc& p, int s) noexcept {
  Proc::Stream& st = p.out[s];
  if (st.fd < 0) return;
  if (st.watched && executor_ != nullptr) executor_->unwatch(st.fd);
  st.watched = false;
  arch::close_handle(st.fd);
  st.fd = -1;
  st.blocked = false;
  st.head = st.tail = 0;
}

void ProcessActor::close_all(Proc& p) noexcept {
  close_stream(p, 0);
  close_stream(p, 1);
  if (p.stdin_fd >= 0) {
    arch::close_handle(p.stdin_fd);
    p.stdin_fd = -1;
  }
}

// ---------------------------------------------------------------------------
// Output

void ProcessActor::handle(Ctx& ctx, detail::PipeReady& m) {
  if (m.slot >= config_.max_processes || m.stream > 1) return;
  Proc& p = procs_[m.slot];
  if (p.id == 0 || p.generation != m.generation || p.out[m.stream].fd < 0) return;  // closed since
  pump(ctx, p, m.stream);
}

void ProcessActor::handle(Ctx& ctx, detail::OutputRetry&) {
  retry_armed_ = false;
  for (std::uint32_t i = 0; i < config_.max_processes; ++i)
    for (int s = 0; s < 2; ++s) {
      Proc& p = procs_[i];
      if (p.id == 0 || !p.out[s].blocked) continue;
      p.out[s].blocked = false;
      pump(ctx, p, s);
    }
}

// Passes complete lines (and pieces of over-long ones) from the stream's
// buffer to the subscriber, reading the pipe when the buffer holds no
// complete line. Stops, without re-arming the watch, when the subscriber's
// mailbox is full: the pipe then fills and holds the writer back.
void ProcessActor::pump(Ctx& ctx, Proc& p, int s) noexcept {
  Proc::Stream& st = p.out[s];
  OutputLine line;
  line.id = p.id;
  line.stream = s == 0 ? OutputStream::Stdout : OutputStream::Stderr;
  for (;;) {
    for (;;) {
      const std::size_t avail = static_cast<std::size_t>(st.tail - st.head);
      if (avail == 0) break;
      const char* at = st.buf + st.head;
      const auto* nl = static_cast<const char*>(std::memchr(at, '\n', std::min(avail, OutputLine::kCapacity + 1)));
      std::size_t length, consumed;
      bool partial = false;
      if (nl != nullptr) {
        length = static_cast<std::size_t>(nl - at);
        consumed = length + 1;
      } else if (avail > OutputLine::kCapacity) {
        length = consumed = utf8_cut(at, avail, OutputLine::kCapacity);  // never inside a character
        partial = true;
      } else if (st.fd < 0) {
        length = consumed = avail;  // the last line, without a newline
      } else {
        break;  // an incomplete line: read more first
      }
      if (p.subscriber.valid()) {
        std::memcpy(line.bytes, at, length);
        line.length = static_cast<std::uint16_t>(length);
        line.partial = partial;
        auto sent = p.subscriber.deliver(ctx.system(), line);
        if (!sent && sent.code() != Errc::Dead) {
          st.blocked = true;
          if (!retry_armed_) {
            // Full timers are retried by the next PipeReady or OutputRetry;
            // a timer pool that is full leaves the line kept, not lost.
            retry_armed_ = ctx.send_after(ctx.self(), detail::OutputRetry{}, config_.output_retry).ok();
          }
          return;
        }
        // Dead: the subscriber is gone; the output is read and dropped so
        // that the writer is not stalled.
      }
      st.head = static_cast<std::uint16_t>(st.head + consumed);
    }
    if (st.fd < 0) {
      st.head = st.tail = 0;
      maybe_free(p);
      return;
    }
    if (st.head == st.tail) {
      st.head = st.tail = 0;
    } else if (st.head > 0) {
      std::memmove(st.buf, st.buf + st.head, static_cast<std::size_t>(st.tail - st.head));
      st.tail = static_cast<std::uint16_t>(st.tail - st.head);
      st.head = 0;
    }
    const arch::PipeResult r = arch::read_pipe(st.fd, st.buf + st.tail, sizeof st.buf - st.tail);
    if (r.status == arch::PipeIo::Ok) {
      st.tail = static_cast<std::uint16_t>(st.tail + r.bytes);
      continue;
    }
    if (r.status == arch::PipeIo::WouldBlock) {
      if (st.watched && executor_ != nullptr) (void)executor_->rearm(st.fd);
      return;
    }
    // End of file (every writer closed it) or a read error: deliver what
    // is left, then the stream is done.
    const std::uint16_t head = st.head, tail = st.tail;
    if (st.watched && executor_ != nullptr) executor_->unwatch(st.fd);
    st.watched = false;
    arch::close_handle(st.fd);
    st.fd = -1;
    st.head = head;
    st.tail = tail;
  }
}

}  // namespace airssys
