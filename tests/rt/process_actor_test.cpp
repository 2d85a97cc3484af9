// ProcessActor with real processes, run as root: output lines from a fast
// writer through a slow subscriber's bounded mailbox (nothing lost, long
// lines split and marked, the writer held back by its pipe, nothing
// allocated), a stdin round trip through cat, status with CPU time and
// memory, kill (graceful with its own first signal, and brutal), wait with
// a timeout, a requester that crashes taking its trees with it, and bad ids.
//
// Every test runs under a guard (NothingLeftCensus) that kills whatever
// carries this file's environment marker, reaps every child, and checks
// that nothing was left: no process, no child, no descriptor, no cgroup.

#include <airssys/rt/process_actor.hpp>

#include <catch2/catch.hpp>

#include "support/alloc_counter.hpp"
#include "support/named_child.hpp"
#include "support/process_guard.hpp"
#include "support/rt_test.hpp"
#include "support/temp_dir.hpp"
#include "support/wait_for.hpp"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <variant>

using namespace airssys;
using namespace airssys::test;
using namespace std::chrono_literals;

namespace {

const std::string& marker() {
  static const std::string m = "AIRSSYS_RT_PROCESS_ACTOR_TEST=" + std::to_string(::getpid());
  return m;
}

ActorRef<ProcessActorMsg> spawn_process_actor(System& sys, const ProcessActorConfig& cfg = {}) {
  auto ref = sys.spawn_with<ProcessActor>(on_worker(0), [cfg] { return ProcessActor(cfg); });
  REQUIRE(ref);
  return ref.value();
}

ProcessSpec shell(std::string_view script, Containment c = Containment::Auto) {
  ProcessSpec spec("/bin/sh");
  spec.arg("-c").arg(script).env(marker()).containment(c);
  return spec;
}

// Collects lines as strings (for the small tests; it allocates).
struct Lines {
  Log<std::string> out;
  Log<std::string> err;
};
struct LineCollector : Actor<OutputLine> {
  Lines* lines;
  explicit LineCollector(Lines* l) : lines(l) {}
  void on_message(Context<OutputLine>&, OutputLine& l) override {
    (l.stream == OutputStream::Stdout ? lines->out : lines->err).push(std::string(l.text()) + (l.partial ? "~" : ""));
  }
};

}  // namespace

TEST_CASE("A fast writer's lines all reach a slow subscriber, split when long, through a bounded mailbox and without allocating",
          "[process_actor]") {
  NothingLeftCensus guard(marker());
  TempDir dir;
  const std::string done = dir / "done";
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);

  // Checks every piece in order, without allocating: a 600-byte line of
  // 'x' (pieces of 256, 256 and 88, the first two marked partial), then
  // the numbers 1..kLines.
  constexpr int kLines = 20000;  // about 110 KiB: more than a pipe holds
  constexpr std::uint32_t kMailbox = 16;
  struct Checker : Actor<OutputLine> {
    struct Shared {
      Gate gate;
      std::atomic<int> pieces{0};
      std::atomic<int> numbers{0};
      std::atomic<int> errors{0};
    };
    Shared* s;
    explicit Checker(Shared* shared) : s(shared) {}
    void on_message(Context<OutputLine>&, OutputLine& l) override {
      s->gate.wait();
      if (l.stream != OutputStream::Stdout) {
        s->errors.fetch_add(1);
        return;
      }
      const int piece = s->pieces.load();
      if (piece < 3) {
        static constexpr std::size_t kLength[] = {256, 256, 88};
        bool ok = l.length == kLength[piece] && l.partial == (piece < 2);
        for (std::size_t i = 0; ok && i < l.length; ++i) ok = l.bytes[i] == 'x';
        if (!ok) s->errors.fetch_add(1);
        s->pieces.store(piece + 1);
        return;
      }
      int value = 0;
      const auto [end, ec] = std::from_chars(l.bytes, l.bytes + l.length, value);
      const int expected = s->numbers.load() + 1;
      if (ec != std::errc{} || end != l.bytes + l.length || l.partial || value != expected) s->errors.fetch_add(1);
      s->numbers.store(expected);
    }
  };
  Checker::Shared shared;
  OpenOnExit open{shared.gate};
  auto sub = sys->spawn_with<Checker>(on_worker(1, kMailbox), [&shared] { return Checker(&shared); });
  REQUIRE(sub);

  ProcessActorRef handle(*sys, pa);
  // Cgroup containment: its reactor does no /proc scans (which allocate)
  // while the tree lives; the tree stays alive (sleep) after writing.
  auto spec = shell("head -c 600 /dev/zero | tr '\\0' x; echo; seq 1 " + std::to_string(kLines) + "; echo > " + done +
                        "; exec sleep 1000",
                    Containment::Cgroup);
  spec.output(OutputSubscriber::to(sub.value()));
  auto p = handle.spawn(spec);
  REQUIRE(p);

  // While the subscriber takes nothing, its mailbox fills to its bound and
  // no further: the ProcessActor keeps the next line and stops reading, the
  // pipe fills, and the writer cannot finish.
  REQUIRE(wait_for([&] { return sys->stats(sub.value()).value().queued == kMailbox; }));
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(std::filesystem::exists(done));
  CHECK(sys->stats(sub.value()).value().queued == kMailbox);

  const std::uint64_t before = allocations();
  shared.gate.release();
  const bool all = wait_for([&] { return shared.numbers.load() == kLines; }, 60s);
  const std::uint64_t after = allocations();
  REQUIRE(all);
  INFO("malloc counted too: " << counts_malloc());
  CHECK(after - before == 0);
  CHECK(shared.pieces.load() == 3);
  CHECK(shared.errors.load() == 0);
  const ActorStats st = sys->stats(sub.value()).value();
  CHECK(st.high_water <= kMailbox);
  CHECK(st.dropped == 0);
  CHECK(wait_for([&] { return std::filesystem::exists(done); }));

  auto killed = handle.kill(p.value().id, KillSpec::brutal());
  REQUIRE(killed);
  CHECK(killed.value().signal == 9);
  REQUIRE(sys->shutdown());
  CHECK(sys->processes_held() == 0);
}

TEST_CASE("What is written to a process's stdin comes back from cat as output lines", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  Lines lines;
  auto sub = sys->spawn_with<LineCollector>(on_worker(1), [&lines] { return LineCollector(&lines); });
  REQUIRE(sub);
  ProcessActorRef handle(*sys, pa);
  ProcessSpec spec("cat");
  spec.env(marker()).stdin_pipe().output(OutputSubscriber::to(sub.value()));
  auto p = handle.spawn(spec);
  REQUIRE(p);
  const ProcessId id = p.value().id;

  auto w1 = handle.write_stdin(id, "hello\nwor");
  REQUIRE(w1);
  CHECK(w1.value() == 9);
  auto w2 = handle.write_stdin(id, "ld\n");
  REQUIRE(w2);
  CHECK(w2.value() == 3);
  REQUIRE(wait_for([&] { return lines.out.size() == 2; }));
  CHECK(lines.out.get() == std::vector<std::string>{"hello", "world"});

  REQUIRE(handle.close_stdin(id));
  auto second_close = handle.close_stdin(id);
  REQUIRE_FALSE(second_close);
  CHECK(second_close.code() == Errc::InvalidArgument);
  auto st = handle.wait(id, 10s);
  REQUIRE(st);
  CHECK(st.value().code == 0);
  CHECK(st.value().signal == 0);
  auto reaped = handle.write_stdin(id, "late\n");
  REQUIRE_FALSE(reaped);
  CHECK(reaped.code() == Errc::NotFound);

  // A reader that closed its stdin: the write is refused with Dead, and no
  // SIGPIPE reaches this process.
  ProcessSpec closer("/bin/sh");
  closer.arg("-c").arg("exec 0<&-; exec sleep 1000").env(marker()).stdin_pipe();
  auto q = handle.spawn(closer);
  REQUIRE(q);
  Result<std::size_t> refused = std::size_t{0};
  REQUIRE(wait_for([&] {
    refused = handle.write_stdin(q.value().id, "anyone?\n");
    return !refused;
  }));
  CHECK(refused.code() == Errc::Dead);
  REQUIRE(handle.kill(q.value().id, KillSpec::brutal()));
  REQUIRE(sys->shutdown());
}

TEST_CASE("A line longer than an OutputLine is split between UTF-8 characters, never inside one", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  Lines lines;
  auto sub = sys->spawn_with<LineCollector>(on_worker(1), [&lines] { return LineCollector(&lines); });
  REQUIRE(sub);
  ProcessActorRef handle(*sys, pa);
  // 'x' and 200 two-byte characters: byte 256 is the second byte of one,
  // so the first piece is 255 bytes and marked partial.
  ProcessSpec spec = shell("printf 'x'; printf '\\303\\251%.0s' $(seq 200); echo");
  spec.output(OutputSubscriber::to(sub.value()));
  auto p = handle.spawn(spec);
  REQUIRE(p);
  REQUIRE(handle.wait(p.value().id, 10s));
  REQUIRE(wait_for([&] { return lines.out.size() == 2; }));
  std::string e200;
  for (int i = 0; i < 200; ++i) e200 += "\xC3\xA9";
  const std::string whole = "x" + e200;
  CHECK(lines.out.get() == std::vector<std::string>{whole.substr(0, 255) + "~", whole.substr(255)});
  REQUIRE(sys->shutdown());
}

TEST_CASE("Status reports a live tree's CPU time and memory, and how it ended", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);
  const Containment c = GENERATE(Containment::Cgroup, Containment::ProcessGroup);
  INFO("containment " << osl::to_string(c));

  // Burns CPU in a child of the leader, then both wait.
  auto p = handle.spawn(shell("sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 1000' & "
                              "exec sleep 1000",
                              c));
  REQUIRE(p);
  const ProcessId id = p.value().id;
  // Until both processes are counted and the child's loop shows in the
  // CPU time (the leader alone, a shell that execs sleep, uses a few ms;
  // the loop far more): a status read before the leader forks says 1.
  ProcessStatus last;
  const bool counted = wait_for(
      [&] {
        auto s = handle.status(id);
        if (!s) return false;
        last = s.value();
        return last.processes == 2 && last.cpu_ns >= 50'000'000;
      },
      30s);
  INFO("last status: " << last.processes << " processes, " << last.cpu_ns << " ns of CPU");
  REQUIRE(counted);
  CHECK(last.state == ProcessState::Running);
  CHECK(last.pid == p.value().pid);
  CHECK(last.memory_bytes > 0);

  SECTION("a signal to the spawned process") {
    REQUIRE(handle.signal(id, 9));
    auto w = handle.wait(id, 10s);
    REQUIRE(w);
    CHECK(w.value().signal == 9);
  }
  SECTION("a graceful kill with its own first signal") {
    // HUP, not TERM (and not INT, which a shell's background job ignores):
    // the whole tree ends on it, before the KILL 60 s later.
    auto k = handle.kill(id, KillSpec::graceful(1 /* SIGHUP */, 60s));
    REQUIRE(k);
    CHECK(k.value().signal == 1);
    auto s = handle.status(id);
    REQUIRE(s);
    CHECK(s.value().state == ProcessState::Exited);
    CHECK(s.value().exit.signal == 1);
    CHECK_FALSE(s.value().exit.core_dumped);
    auto w = handle.wait(id, 0ns);
    REQUIRE(w);
    CHECK(w.value().signal == 1);
  }
  // The tree is gone, and the id reaped.
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
  auto gone = handle.status(id);
  REQUIRE_FALSE(gone);
  CHECK(gone.code() == Errc::NotFound);
  REQUIRE(sys->shutdown());
}

TEST_CASE("An exit code is reported by wait, and wait times out on a process that runs on", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);

  auto quick = handle.spawn(shell("exit 3"));
  REQUIRE(quick);
  auto w = handle.wait(quick.value().id, 10s);
  REQUIRE(w);
  CHECK(w.value().code == 3);

  // TERM is ignored: a graceful kill ends it with KILL after its timeout,
  // a brutal one at once.
  auto slow = handle.spawn(shell("trap '' TERM; sleep 1000 & wait"));
  REQUIRE(slow);
  // The shell has run its trap (under load a TERM could come before it).
  REQUIRE(wait_for([&] { return test::ignores_signal(slow.value().pid, SIGTERM); }));
  auto t = handle.wait(slow.value().id, 20ms);
  REQUIRE_FALSE(t);
  CHECK(t.code() == Errc::Timeout);
  SECTION("graceful") {
    auto k = handle.kill(slow.value().id, KillSpec::graceful(0, 50ms));
    REQUIRE(k);
    CHECK(k.value().signal == 9);
  }
  SECTION("brutal") {
    auto k = handle.kill(slow.value().id, KillSpec::brutal());
    REQUIRE(k);
    CHECK(k.value().signal == 9);
  }
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
  REQUIRE(sys->shutdown());
}

TEST_CASE("Unknown and reaped process ids give NotFound naming the id", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);

  auto check_not_found = [](const auto& r, ProcessId id) {
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::NotFound);
    CHECK_THAT(r.error().message(), Catch::Contains("process id " + std::to_string(id)));
  };
  check_not_found(handle.status(4242), 4242);
  check_not_found(handle.signal(4242, 15), 4242);
  check_not_found(handle.kill(4242, KillSpec::brutal()), 4242);
  check_not_found(handle.wait(4242, 1s), 4242);
  check_not_found(handle.write_stdin(4242, "x"), 4242);
  check_not_found(handle.close_stdin(4242), 4242);
  check_not_found(handle.status(0), 0);

  auto p = handle.spawn(shell("exit 0"));
  REQUIRE(p);
  REQUIRE(handle.wait(p.value().id, 10s));
  check_not_found(handle.status(p.value().id), p.value().id);
  check_not_found(handle.wait(p.value().id, 1s), p.value().id);

  // A spec that does not fit is refused before anything runs.
  ProcessSpec big("/bin/true");
  for (int i = 0; i < 40; ++i) big.arg("a");
  auto refused = handle.spawn(big);
  REQUIRE_FALSE(refused);
  CHECK(refused.code() == Errc::InvalidArgument);
  CHECK_THAT(refused.error().message(), Catch::Contains("/bin/true"));
  REQUIRE(sys->shutdown());
}

TEST_CASE("A negative wait, a kill or cleanup signal that is not a signal, and a negative kill timeout are refused, "
          "naming the value, and the process runs on",
          "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);
  auto refused = [](const auto& r, const std::string& named) {
    REQUIRE_FALSE(r);
    CHECK(r.code() == Errc::InvalidArgument);
    CHECK_THAT(r.error().message(), Catch::Contains(named));
  };
  for (int sig : {200, 65, -1}) {
    INFO("on_cleanup signal " << sig);
    ProcessSpec spec = shell("exit 0");
    spec.on_cleanup(sig, 100ms);
    refused(spec.check(), "first signal " + std::to_string(sig) + " is not a signal (0: TERM, or 1..64)");
    refused(handle.spawn(spec), "first signal " + std::to_string(sig) + " is not a signal");
  }
  auto p = handle.spawn(shell("sleep 1000"));
  REQUIRE(p);
  const ProcessId id = p.value().id;
  refused(handle.wait(id, -5ms), "timeout -5000000 ns is negative");
  refused(handle.wait(id, std::chrono::nanoseconds{-1}), "timeout -1 ns is negative");
  for (int sig : {99, 65, -3}) {
    INFO("kill signal " << sig);
    refused(handle.kill(id, KillSpec::graceful(sig, 100ms)),
            "first signal " + std::to_string(sig) + " is not a signal (0: TERM, or 1..64)");
  }
  refused(handle.kill(id, KillSpec::graceful(0, -1ms)), "timeout -1 ms is negative");
  auto st = handle.status(id);
  REQUIRE(st);
  CHECK(st.value().state == ProcessState::Running);
  // 64, the highest, is a signal: the kill goes ahead (sleep dies of it).
  auto k = handle.kill(id, KillSpec::graceful(64, 100ms));
  REQUIRE(k);
  CHECK(k.value().signal == 64);
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }));
  REQUIRE(sys->shutdown());
}

TEST_CASE("When a requester crashes, the process trees spawned for it are torn down", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);
  const Containment c = GENERATE(Containment::Cgroup, Containment::ProcessGroup);
  INFO("containment " << osl::to_string(c));

  // The requester asks for a tree (a leader, and a child that escapes its
  // group with setsid and ignores TERM), then fails when the reply comes.
  struct Go {};
  using ReqMsg = std::variant<Go, Reply<Result<SpawnedProcess>>>;
  struct Requester : Actor<ReqMsg> {
    ActorRef<ProcessActorMsg> pa;
    Containment c;
    std::atomic<ProcessId>* id;
    std::atomic<int>* pid;
    std::atomic<unsigned long long>* start;
    Requester(ActorRef<ProcessActorMsg> a, Containment cc, std::atomic<ProcessId>* i, std::atomic<int>* p,
              std::atomic<unsigned long long>* s)
        : pa(a), c(cc), id(i), pid(p), start(s) {}
    void on_message(Context<ReqMsg>& ctx, ReqMsg& m) override {
      if (std::holds_alternative<Go>(m)) {
        auto spec = shell("setsid sh -c 'trap \"\" TERM; exec sleep 1000' & exec sleep 1000", c);
        spec.on_cleanup(15, 100ms);
        const ActorId self = ctx.self().id;
        auto asked = ctx.template ask<Result<SpawnedProcess>>(
            pa, [&](ReplyTo<Result<SpawnedProcess>> r) { return ProcessSpawn{spec, self, r}; }, 10s);
        if (!asked) ctx.fail(asked.error());
        return;
      }
      auto& reply = std::get<Reply<Result<SpawnedProcess>>>(m);
      if (reply.result && reply.result.value()) {
        pid->store(reply.result.value().value().pid);
        // Who the process is: its number may be another's by the end
        // (pid_max is small here, and other tests force pid reuse).
        start->store(start_time_of(reply.result.value().value().pid));
        id->store(reply.result.value().value().id);
      }
      ctx.fail(Error::make(Errc::Failed, "the requester crashes"));
    }
  };
  std::atomic<ProcessId> id{0};
  std::atomic<int> pid{-1};
  std::atomic<unsigned long long> start{0};
  auto req = sys->spawn_with<Requester>(on_worker(1), [&] { return Requester(pa, c, &id, &pid, &start); });
  REQUIRE(req);
  REQUIRE(sys->send(req.value(), Go{}));
  REQUIRE(wait_for([&] { return id.load() != 0; }));
  REQUIRE(wait_for([&] { return !sys->alive(req.value()); }));

  // The tree, escapee included, goes; the id reports the exit until reaped.
  REQUIRE(wait_for([&] { return processes_with_env(marker()).empty(); }, 20s));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  // The executor counts a process out when it reaps it, and reports the
  // exit to the ProcessActor after: its status turns Exited a moment later.
  CHECK(wait_for([&] {
    auto s = handle.status(id.load());
    return !s || s.value().state == ProcessState::Exited;
  }));
  CHECK_FALSE(same_process_exists(pid.load(), start.load()));
  REQUIRE(sys->shutdown());
}

TEST_CASE("Stopping the ProcessActor tears down its trees and answers pending waits", "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto sys = two_worker_system();
  auto pa = spawn_process_actor(*sys);
  ProcessActorRef handle(*sys, pa);
  auto p = handle.spawn(shell("sleep 1000 & exec sleep 1000"));
  REQUIRE(p);
  std::atomic<bool> answered{false};
  Errc code = Errc::Ok;
  std::thread waiter([&] {
    auto w = handle.wait(p.value().id, 60s);
    code = w.code();
    answered = true;
  });
  std::this_thread::sleep_for(50ms);  // lets the wait arrive first (either order must end the wait)
  REQUIRE(sys->stop(pa));
  waiter.join();
  CHECK(answered.load());
  CHECK((code == Errc::ShuttingDown || code == Errc::Dead));
  REQUIRE(wait_for([&] { return sys->processes_held() == 0; }, 20s));
  REQUIRE(sys->shutdown());
}

TEST_CASE("A ProcessActor restarted by its supervisor binds its name again after the string it was named from is gone",
          "[process_actor]") {
  NothingLeftCensus guard(marker());
  auto named = restart_after_name_freed<ProcessActor, ProcessActorMsg>(ProcessActorConfig{},
                                                                       "test.processes.named.by.string");
  ProcessActorRef procs(*named.system, named.actor);
  auto p = procs.spawn(shell("exit 3"));
  REQUIRE(p);
  auto st = procs.wait(p.value().id, 10s);
  REQUIRE(st);
  CHECK(st.value().code == 3);
  REQUIRE(named.supervisor.stop());
  REQUIRE(named.system->shutdown());
}

TEST_CASE("A ProcessActor name longer than the registry holds is refused naming it, never cut", "[process_actor]") {
  check_overlong_name_refused<ProcessActor>(ProcessActorConfig{}, "procs.");
}
