#pragma once
// ProcessActor's private tables (processes, pending replies, requesters),
// shared by its source files: process_actor.cpp (lifecycle, spawn, exits
// and requester cleanup), process_actor_requests.cpp (signal, kill, wait,
// status, stdin) and process_actor_output.cpp (output lines).

#include <airssys/rt/process_actor.hpp>

#include <cstddef>
#include <cstdint>

namespace airssys {

namespace detail {

inline constexpr std::size_t kProcessReadBuffer = 1024;  // per stream; holds several lines of the largest size
static_assert(kProcessReadBuffer > OutputLine::kCapacity, "a full line and its newline must fit the read buffer");

// Tells the actor that a pipe of one of its processes is readable. Runs in
// a reactor pass (on the reactor thread, or on an idle worker that handles
// process events itself); the post is one pooled node, on the system lane (one
// per readiness: the watch is one-shot until the actor re-arms it).
struct StreamWatch final : osl::FdWatcher {
  System* system = nullptr;
  ActorRef<ProcessActorMsg> actor;
  detail::PipeReady ready;
  void on_readable(int) noexcept override {
    // Full only when the message pool is exhausted; the pipe then stays
    // unread until the process ends and the actor tears its streams down.
    (void)system->post(actor, ready);
  }
};

}  // namespace detail

struct ProcessActor::Proc {
  struct Stream {
    detail::StreamWatch watch;
    int fd = -1;
    bool watched = false;
    bool blocked = false;  // a line waits for room in the subscriber's mailbox
    std::uint16_t head = 0, tail = 0;
    char buf[detail::kProcessReadBuffer];
  };
  ProcessId id = 0;  // 0: free
  std::uint32_t generation = 0;
  int pid = -1;
  int pgid = -1;
  Containment containment = Containment::None;
  bool exited = false;
  bool reaped = false;    // a Wait reported the exit: the id is gone for requests
  bool orphaned = false;  // its requester stopped: nobody will wait for it
  ExitStatus status;
  ActorId requester;
  OutputSubscriber subscriber;
  int stdin_fd = -1;
  int first_signal = 0;
  std::int64_t kill_timeout_ns = 0;
  Stream out[2];
};

struct ProcessActor::Waiter {
  ProcessId id = 0;  // 0: free
  std::uint32_t serial = 0;
  bool reaps = false;  // a Wait (reaps the id) rather than a Kill
  bool timed = false;
  TimerId timer;
  ReplyTo<Result<ExitStatus>> reply;
};

struct ProcessActor::Requester {
  ActorId who;
  std::uint32_t processes = 0;  // 0: free
};

}  // namespace airssys
