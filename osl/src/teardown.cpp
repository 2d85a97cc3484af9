// ProcessExecutor: tearing managed trees down, and the reactor thread.
#include <airssys/osl/executor.hpp>

#include "executor_entry.hpp"

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/guardian.hpp>
#include <airssys/arch/poller.hpp>
#include <airssys/arch/wait.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace airssys::osl {

namespace {
constexpr std::int64_t kGiveUpNs = 5'000'000'000;   // after KILL, for a tree to empty
constexpr std::uint64_t kEventsFlag = 1u << 31;     // poller data: a cgroup.events fd
constexpr std::size_t kMaxChildren = 1024;           // per orphan sweep
constexpr std::int64_t kQuiesceNs = 20'000'000;     // longest wait for a stopped group to be still
constexpr std::int64_t kLeaderEndNs = 1'000'000;    // a KILLed leader's end, awaited before its group is scanned
}  // namespace

// Reaps a held process that has ended: records its status, reports it.
// Returns false while it still runs. Takes its pidfd out of `poller` (may
// be null) first: see its definition.
static bool reap_held(ProcessExecutor::Entry& e, ExitStatus& status, arch::Poller* poller) noexcept;

// Collects the exit of a held process: its status, and the reap. Without
// pidfd group signals a group's number is safe to use only while its
// leader is unreaped, so an ended leader whose group still has other
// processes stays a zombie (`leader_kept`, out of the poller: its pidfd
// stays readable) until release_kept_leader finds the group empty.
// False while it runs.
bool collect_exit(ProcessExecutor::Entry& e, ExitStatus& status, arch::Poller* poller) noexcept {
  if (e.held_group.valid() && !arch::group_signal_by_pidfd() && e.proc.valid()) {
    auto r = arch::peek_exit(e.proc);
    if (!r && r.code() == Errc::Timeout) return false;
    if (r && !e.held_group.empty()) {
      status = r.value();
      e.leader_kept = true;
      if (e.polled && poller != nullptr) poller->remove(e.proc.wait_handle());
      e.polled = false;
      return true;
    }
  }
  return reap_held(e, status, poller);
}

// Reaps a kept leader once nobody else is in its group. True when it is
// not (or no longer) kept.
static bool release_kept_leader(ProcessExecutor::Entry& e, arch::Poller* poller) noexcept {
  if (!e.leader_kept) return true;
  if (!e.held_group.empty()) return false;
  ExitStatus already_reported;
  (void)reap_held(e, already_reported, poller);
  e.leader_kept = false;
  return true;
}


// True when nothing of the leader's tree is left alive: the cgroup is
// unpopulated, or (process group) the leader has ended and no process is
// left in the group. Reaps ended members that are our children on the way.
bool ProcessExecutor::group_empty_locked(Entry& leader) noexcept {
  const int index = static_cast<int>(&leader - entries_.get());
  // Held members first (joiners, adopted orphans, the leader), so that
  // their handles, not a group-wide reap, collect their statuses.
  bool held_alive = false;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& e = entries_[i];
    if (e.state != Entry::State::Live || e.group != index || !e.proc.valid() || e.leader_kept) continue;
    ExitStatus st;
    if (!collect_exit(e, st, poller_.get())) {
      held_alive = true;
      continue;
    }
    if (leader.tearing_down) {
      ++leader.report.reaped;
      if (st.signal == arch::kill_signal()) ++leader.report.killed;
    }
    if (&e == &leader) {
      leader.report.leader_status = st;
      leader.status = st;
    }
    report_exit_locked(e, st, "runtime");
    if (&e == &leader) {
      e.state = Entry::State::Exited;
    } else {
      release_locked(e);
    }
  }
  if (leader.containment == Containment::Cgroup && leader.cgroup.valid()) {
    (void)release_kept_leader(leader, poller_.get());
    auto p = leader.cgroup.populated();
    return !held_alive && (!p || !p.value());
  }
  if (held_alive) return false;
  if (!leader.leads || !leader.held_group.valid()) return true;
  // The group by its held handle: the reap and the emptiness test reach
  // this group only, never one that got its number after it emptied.
  std::size_t killed = 0;
  const std::size_t reaped = arch::reap_group_members(leader.held_group, leader.leader_kept ? leader.pid : -1,
                                                      arch::kill_signal(), &killed);
  if (leader.tearing_down) {
    leader.report.reaped += reaped;
    leader.report.killed += killed;
  }
  if (!release_kept_leader(leader, poller_.get())) return false;
  return leader.held_group.empty();
}

// Tells the middleware, and the sink (for a process someone spawned, not an
// adopted orphan), that a held process ended and was reaped.
void ProcessExecutor::report_exit_locked(Entry& e, ExitStatus st, std::string_view principal,
                                         bool tree_ended) noexcept {
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Exit;
  ev.tree_leader = e.leads && e.lifetime == ProcessLifetime::Managed;
  ev.tree_ended = tree_ended;
  ev.principal = principal;
  ev.pid = e.pid;
  ev.pgid = e.pgid;
  ev.containment = e.containment;
  ev.lifetime = e.lifetime;
  ev.status = st;
  emit(ev);
  if (sink_ != nullptr && !e.orphan)
    to_sink_locked({.owner = e.owner, .pid = e.pid, .teardown = false, .status = st, .report = {}});
}

// Queued, for the reactor (or the destructor) to deliver once mu_ is
// released; straight to the sink, locked, only when the queue is full.
void ProcessExecutor::to_sink_locked(const SinkReport& r) noexcept {
  if (report_count_ < 2 * config_.max_processes) {
    reports_[report_count_++] = r;
  } else {
    r.deliver(*sink_);
  }
}

// The queue becomes delivering_ and the emptied batch before it the queue:
// its deliverer (the reactor, or the destructor once the reactor is gone)
// is done with that batch before it takes the next.
std::size_t ProcessExecutor::take_reports_locked() noexcept {
  const std::size_t n = report_count_;
  reports_.swap(delivering_);
  report_count_ = 0;
  return n;
}

static bool reap_held(ProcessExecutor::Entry& e, ExitStatus& status, arch::Poller* poller) noexcept {
  if (!e.proc.valid()) return true;
  if (e.polled && poller != nullptr) {
    // Out of the poller before the reap closes the pidfd: closing it does
    // not end the registration while another descriptor of the same file
    // is open (the held group's duplicate, the guardian's copy until it
    // reads the unwatch), and the pidfd of a reaped process stays
    // readable, so the reactor would wake for it again and again.
    auto ended = arch::peek_exit(e.proc);
    if (!ended && ended.code() == Errc::Timeout) return false;
    poller->remove(e.proc.wait_handle());
    e.polled = false;
  }
  auto r = arch::try_wait(e.proc);
  if (r) {
    status = r.value();
    return true;
  }
  if (r.code() == Errc::Timeout) return false;
  // Reaped behind the handle's back (a group-wide reap raced it): the
  // status is lost but the process is gone.
  e.proc.release();
  status = ExitStatus{};
  return true;
}

// Sends `sig` to one process, then CONT unless `sig` is KILL: a stopped
// process (an escapee stopped outside its group) acts on it only then.
static void signal_and_continue(arch::Process& p, int sig) noexcept {
  (void)arch::signal(p, sig);
  if (sig != arch::kill_signal()) (void)arch::signal(p, arch::continue_signal());
}

// Sends `sig` to the leader's group through the group's held handle,
// which reaches this group or nobody (arch::ProcessGroup), never a group
// that got the number after this one emptied; to the leader alone when it
// leads no group of ours. A signal not sent because the group is gone is
// noted (`group_skipped`) for the audit.
static void signal_group_of(ProcessExecutor::Entry& leader, int sig) noexcept {
  if (leader.held_group.valid()) {
    auto r = leader.held_group.signal(sig);
    if (r && !r.value()) leader.group_skipped = true;
  } else if (leader.proc.valid()) {
    (void)arch::signal(leader.proc, sig);
  }
}

// Sends the held-back signal once the stopped group is still (no member
// inside a system call), or anyway once kQuiesceNs have passed; a signal
// other than KILL is followed by CONT. Waits a little (a few scans) for the
// stop to land, never long. True once nothing is held back.
// `own` lists our children; `skip` is the guardian's pid (its subtree
// holds no tree's process).
static bool send_pending(ProcessExecutor::Entry& leader, arch::ChildLister& own, int skip) noexcept {
  for (int scan = 0; leader.pending_signal != 0; ++scan) {
    if (arch::running_in_group(leader.held_group, own, skip) == 0 || arch::monotonic_ns() >= leader.quiesce_until) {
      signal_group_of(leader, leader.pending_signal);
      if (leader.pending_signal != arch::kill_signal()) signal_group_of(leader, arch::continue_signal());
      leader.pending_signal = 0;
      break;
    }
    if (scan == 3) return false;
    arch::sleep_ns(50'000);
  }
  return true;
}

// Signals the whole tree. A cgroup tree: `sig` to its group (KILL: to the
// cgroup, which nothing leaves). A process-group tree is stopped first and
// signalled once it is still: a member inside setsid() when a signal to its
// group arrives leaves the group and then dies of it, a zombie no longer
// recognisable as the tree's; stopped instead, it stays alive (its
// environment marker readable) until the sweeps adopt it.
static void signal_tree(ProcessExecutor::Entry& leader, int sig, arch::ChildLister& own, int skip) noexcept {
  // A signal other than KILL is followed by CONT, as everywhere in a
  // teardown: a stopped process (SIGSTOP, a shell's ^Z) takes it only then.
  const bool and_continue = sig != arch::kill_signal();
  if (leader.containment == Containment::Cgroup) {
    if (!and_continue && leader.cgroup.valid()) (void)leader.cgroup.kill();
    signal_group_of(leader, sig);
    if (and_continue) signal_group_of(leader, arch::continue_signal());
    return;
  }
  if (!leader.leads || leader.pgid <= 1) {
    signal_group_of(leader, sig);
    if (and_continue) signal_group_of(leader, arch::continue_signal());
    return;
  }
  // KILL goes to the leader at once, ahead of its group: a group leader
  // cannot call setsid(), so the stop-then-signal is for the other
  // members only. Its children stay in the group when it ends (re-parented
  // to us, the subreaper: the group is not orphaned, so the kernel sends
  // it no CONT), and the group is still signalled through its held pidfd.
  // The scan waits for the leader's end (teardown_step_locked): a leader
  // that was alone leaves an empty group, with nothing to scan or signal.
  const bool leader_first = sig == arch::kill_signal() && leader.proc.valid() && !leader.leader_kept;
  if (leader_first) (void)arch::signal(leader.proc, sig);
  signal_group_of(leader, arch::stop_signal());
  leader.pending_signal = sig;
  const std::int64_t now = arch::monotonic_ns();
  leader.quiesce_until = now + kQuiesceNs;
  if (leader_first) {
    leader.scan_after = now + kLeaderEndNs;
    return;
  }
  (void)send_pending(leader, own, skip);
}

// Signals a tree being torn down: its group or cgroup (signal_tree), the
// escapees already held, and those a sweep finds now.
void ProcessExecutor::signal_tree_locked(Entry& leader, int sig) noexcept {
  signal_tree(leader, sig, *children_, guardian_ ? guardian_->pid() : -1);
  report_group_skip_locked(leader, sig);
  const int index = static_cast<int>(&leader - entries_.get());
  for (std::size_t i = 0; i < config_.max_processes; ++i)
    if (entries_[i].state == Entry::State::Live && entries_[i].group == index && entries_[i].orphan)
      signal_and_continue(entries_[i].proc, sig);
  // A tree whose leader was killed ahead is swept once its group is done
  // (tree_gone_locked): its escapees get their KILL then.
  if (leader.scan_after == 0) (void)sweep_orphans_locked(&leader);
}

// One event for the group signals of a teardown that were not sent because
// the group had no process left (its number may name another group by
// now): the audit shows the refusal. Once per tree.
void ProcessExecutor::report_group_skip_locked(Entry& leader, int sig) noexcept {
  if (!leader.group_skipped || leader.group_skip_reported) return;
  leader.group_skip_reported = true;
  const Error err = Error::make(Errc::Dead, "process group %d has no process left: signal %d not sent to its number",
                                leader.pgid, sig);
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::GroupKill;
  ev.principal = "runtime";
  ev.pid = leader.pid;
  ev.pgid = leader.pgid;
  ev.containment = leader.containment;
  ev.signal = sig;
  ev.error = &err;
  emit(ev);
}

void ProcessExecutor::begin_teardown_locked(Entry& leader, std::int64_t term_timeout_ns, int first_signal) noexcept {
  if (leader.tearing_down) return;
  leader.tearing_down = true;
  leader.first_signal = first_signal > 0 ? first_signal : arch::term_signal();
  leader.report = TeardownReport{};
  leader.report.containment = leader.containment;
  if (leader.state == Entry::State::Exited) leader.report.leader_status = leader.status;
  const std::int64_t now = arch::monotonic_ns();
  leader.deadline = arch::add_saturated(now, term_timeout_ns);
  leader.give_up = arch::add_saturated(leader.deadline, kGiveUpNs);
  if (term_timeout_ns > 0) {
    // Escapees get the same chance to end cleanly: those already held, and
    // those the sweep finds (it signals what it adopts during a teardown).
    signal_tree_locked(leader, leader.first_signal);
  } else {
    // No grace period (BrutalKill): KILL at once, from here, as a first
    // signal is sent. The deadline has passed already, so the reactor's
    // first step would send the same KILL, only a wake-up later.
    leader.kill_sent = true;
    signal_tree_locked(leader, arch::kill_signal());
  }
  if (poller_ && leader.cgroup.valid() && !leader.events_polled) {
    const std::uint64_t data = (static_cast<std::uint64_t>(leader.generation) << 32) | kEventsFlag |
                               static_cast<std::uint32_t>(&leader - entries_.get());
    leader.events_polled = static_cast<bool>(poller_->add(leader.cgroup.events_handle(), true, data));
  }
}

namespace {

// A tree marker's fields: "AIRSSYS_TREE=<pid>.<executor>.<group>.<start>.<pidns>".
// False for any other text (an older marker without the host's start time
// and namespace included: such a host cannot be judged).
struct MarkerFields {
  unsigned long long pid = 0, executor = 0, group = 0, start = 0, pidns = 0;
};
bool parse_marker(const char* m, MarkerFields& f) noexcept {
  constexpr char kName[] = "AIRSSYS_TREE=";
  if (std::strncmp(m, kName, sizeof kName - 1) != 0) return false;
  const char* p = m + sizeof kName - 1;
  unsigned long long* out[] = {&f.pid, &f.executor, &f.group, &f.start, &f.pidns};
  for (std::size_t i = 0; i < 5; ++i) {
    if (*p < '0' || *p > '9') return false;
    char* end = nullptr;
    *out[i] = std::strtoull(p, &end, 10);
    p = end;
    if (*p != (i == 4 ? '\0' : '.')) return false;
    ++p;
  }
  return true;
}

// What the dead-host sweep has found so far.
struct DeadHostSweep {
  std::uint64_t own_pid, own_start, own_pidns;
  int guardian_pid;
  std::size_t processes = 0;
  std::size_t trees = 0;
  // The trees counted, by their marker (beyond this many, each process's
  // tree is taken for a new one).
  static constexpr std::size_t kTrees = 32;
  char seen[kTrees][arch::Guardian::kMarkerSize] = {};
};

// Whether the host a marker names has died: no process has its pid in our
// PID namespace, the one that has it started at another time (the pid was
// reused), or it has ended. A host whose start time /proc does not show us
// counts as alive: nothing is killed on a guess.
bool host_gone(const MarkerFields& f) noexcept {
  if (f.pid == 0 || f.pid > 0x7fffffffULL) return false;
  const int pid = static_cast<int>(f.pid);
  arch::ProcessInfo info;
  if (arch::process_info(pid, info)) return info.ended || (info.start_ticks != 0 && info.start_ticks != f.start);
  return !arch::process_exists(pid);
}

bool sweep_dead_host(int pid, void* cookie) noexcept {
  auto* s = static_cast<DeadHostSweep*>(cookie);
  if (pid == s->guardian_pid || pid <= 1) return true;
  // A nested runtime's trees carry its host's marker after the outer
  // one's: the process is stale if any marker's host is gone.
  constexpr std::size_t kMarkers = 4;
  char markers[kMarkers][arch::Guardian::kMarkerSize];
  const std::size_t n = arch::environment_entries(pid, "AIRSSYS_TREE=", &markers[0][0], sizeof markers[0], kMarkers);
  for (std::size_t i = 0; i < n; ++i) {
    MarkerFields f;
    // Only a marker of our PID namespace names a pid we can look up.
    if (!parse_marker(markers[i], f) || f.start == 0 || f.pidns == 0 || f.pidns != s->own_pidns) continue;
    if (f.pid == s->own_pid && f.start == s->own_start) continue;  // ours
    if (!host_gone(f) || !arch::kill_if_carries(pid, markers[i])) continue;
    ++s->processes;
    bool counted = false;
    for (std::size_t k = 0; k < DeadHostSweep::kTrees && !counted; ++k) {
      if (s->seen[k][0] == '\0') {
        std::memcpy(s->seen[k], markers[i], sizeof s->seen[k]);
        ++s->trees;
        counted = true;
      } else {
        counted = std::strcmp(s->seen[k], markers[i]) == 0;
      }
    }
    if (!counted) ++s->trees;
    break;
  }
  return true;
}

}  // namespace

// Kills what is left of process-group trees whose runtime died together
// with its guardian (re-parented to PID 1 or to a subreaper, out of any
// runtime's reach): every process that carries a tree marker naming a host
// of our PID namespace that is gone. Once, at the first managed spawn, as
// the cgroup root's opening sweeps the roots of dead runtimes.
void ProcessExecutor::sweep_dead_hosts_locked() noexcept {
  if (host_pidns_ == 0) return;  // no /proc: nothing can be judged
  DeadHostSweep s{static_cast<std::uint64_t>(arch::own_pid()), host_start_, host_pidns_,
                  guardian_ ? guardian_->pid() : -1};
  arch::for_each_process(sweep_dead_host, &s);
  if (s.processes > 0) report_stale_locked(Containment::ProcessGroup, s.trees, s.processes);
}

// Finds children of this process that no entry holds and that belong to a
// managed tree (`only` restricts the search to one tree): by cgroup for a
// cgroup tree; for a process-group tree by the group, or — for a live
// process that left the group with setsid — by the environment marker.
//   - An ended one is reaped at once (it is our child: its pid cannot be
//     reused before that).
//   - A live one that escaped its group is adopted into the table (held by
//     a pidfd, guarded, reaped when it ends) and, when its tree is being
//     torn down, signalled as the tree was: KILL, or TERM and CONT.
//   - Members still in their group are left to the group's signals.
// Never blocks. Returns how many processes of the tree(s) it found in all,
// and how many children it could not judge yet (between the halves of an
// execve): 0 means that no process of the tree is left among our children.
// A process leaves its cgroup before it hands its own children to us and
// becomes a zombie, so an empty cgroup alone does not say that.
std::size_t ProcessExecutor::sweep_orphans_locked(Entry* only) noexcept {
  if (!arch::has_children()) return 0;  // the common case after a lone leader is reaped
  int pids[kMaxChildren];
  std::size_t n = children_->list(pids, kMaxChildren);
  if (n > kMaxChildren) n = kMaxChildren;
  const int guardian_pid = guardian_ ? guardian_->pid() : -1;
  // Whether any held process was born into a cgroup namespace of its own
  // (else no child is worth a look at its namespace).
  bool namespaces = false;
  for (std::size_t k = 0; k < config_.max_processes && !namespaces; ++k)
    namespaces = entries_[k].state != Entry::State::Free && entries_[k].cgroup_ns.id() != 0;
  char mine[80] = {};  // "/<our root>": what is below it is not outside
  if (namespaces && cgroup_root_) std::snprintf(mine, sizeof mine, "/%.70s", cgroup_root_->name());
  std::size_t found = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int pid = pids[i];
    if (pid == guardian_pid) continue;
    bool held = false;  // a kept leader (Exited, still unreaped) included
    for (std::size_t k = 0; k < config_.max_processes && !held; ++k)
      held = (entries_[k].state == Entry::State::Live || entries_[k].state == Entry::State::Exited) &&
             entries_[k].pid == pid && entries_[k].proc.valid();
    if (held) continue;
    arch::ProcessInfo info;
    if (!arch::process_info(pid, info)) continue;
    // An escapee a full table refused, ended since: its marker is gone,
    // but it was remembered.
    Entry* tree = info.ended ? refused_tree_locked(pid, info.start_ticks, false) : nullptr;
    if (tree != nullptr && only != nullptr && tree != only) continue;
    bool unknown = false;
    // The child's cgroup path, read once, when a cgroup tree asks.
    char cg[256];
    int cg_read = 0;  // 0 not yet, 1 read, -1 unreadable
    auto cgroup_path = [&]() -> const char* {
      if (cg_read == 0) cg_read = arch::cgroup_of(pid, cg, sizeof cg) ? 1 : -1;
      return cg_read > 0 ? cg : nullptr;
    };
    for (std::size_t k = 0; k < config_.max_processes && tree == nullptr; ++k) {
      Entry& l = entries_[k];
      if (l.state == Entry::State::Free || l.state == Entry::State::Reserved || !l.leads ||
          l.lifetime != ProcessLifetime::Managed || (only != nullptr && &l != only))
        continue;
      if (l.containment == Containment::Cgroup) {
        // In the tree's cgroup, or in one the tree made below it.
        const char* path = l.cgroup_suffix[0] != '\0' ? cgroup_path() : nullptr;
        if (path != nullptr && arch::cgroup_path_within(path, l.cgroup_suffix)) tree = &l;
      } else if (info.pgid == l.pgid && l.held_group.owns_number()) {
        // Checked after the read: the number was the group's then.
        tree = &l;
      } else if (!info.ended && !unknown) {
        // An ended process's environment is gone with its memory: an
        // escapee that ends before a scan finds it cannot be told from a
        // child the application forked itself, and is left alone.
        const arch::Presence p = arch::environment_contains(pid, l.marker);
        if (p == arch::Presence::Present) tree = &l;
        unknown = p == arch::Presence::Unknown;
      }
    }
    // A live process that moved out of our cgroups (a privileged one can
    // write its pid into any cgroup.procs it can reach) still carries the
    // cgroup namespace its tree was born into. One still under our root
    // is left to the cgroup it is in (a child being spawned into another
    // tree's cgroup right now, say).
    bool outside = false;
    if (tree == nullptr && !info.ended && namespaces && cgroup_path() != nullptr &&
        (mine[0] == '\0' || !arch::cgroup_path_within(cgroup_path(), mine))) {
      const std::uint64_t ns = arch::cgroup_namespace_of(pid);
      for (std::size_t k = 0; k < config_.max_processes && ns != 0 && tree == nullptr; ++k) {
        const Entry& m = entries_[k];
        if ((m.state != Entry::State::Live && m.state != Entry::State::Exited) || m.cgroup_ns.id() != ns ||
            m.group < 0)
          continue;
        Entry& l = entries_[static_cast<std::size_t>(m.group)];
        if (l.leads && l.lifetime == ProcessLifetime::Managed && (only == nullptr || &l == only)) tree = &l;
      }
      outside = tree != nullptr;
    }
    if (tree == nullptr) {
      found += unknown;  // judged again by the next sweep
      continue;
    }
    ++found;
    const bool escaped = info.pgid != tree->pgid || outside || !tree->held_group.owns_number();
    if (info.ended) {
      ExitStatus st;
      if (!arch::reap_ended_child(pid, st)) continue;
      (void)refused_tree_locked(pid, info.start_ticks, true);
      if (tree->tearing_down) {
        ++tree->report.reaped;
        if (st.signal == arch::kill_signal()) ++tree->report.killed;
      }
      if (escaped) {
        ++tree->adopted;
        ++counters_.orphans_adopted;
      }
      continue;
    }
    if (!escaped) continue;  // the group's signals reach it
    Entry* slot = nullptr;
    for (std::size_t k = 0; k < config_.max_processes && slot == nullptr; ++k)
      if (entries_[k].state == Entry::State::Free) slot = &entries_[k];
    if (slot == nullptr && !tree->tearing_down) {
      // No slot to hold it: a process of a live tree is never ended for
      // that. It stays as it is (our child: its pid cannot be reused),
      // and a later sweep adopts it once a slot frees.
      ++counters_.orphans_refused;
      remember_refused_locked(pid, info.start_ticks, *tree);
      report_table_full_locked(*tree, pid, info.pgid, false);
      continue;
    }
    auto adopted = arch::adopt_child(pid);
    if (!adopted) continue;
    (void)refused_tree_locked(pid, info.start_ticks, true);
    if (tree->tearing_down)
      signal_and_continue(adopted.value(), tree->kill_sent ? arch::kill_signal() : tree->first_signal);
    ++tree->adopted;
    ++counters_.orphans_adopted;
    if (slot == nullptr) {
      // Its tree is being torn down, the end it was going to: killed and
      // reaped right here through the passing handle, and counted.
      ExitStatus st;
      (void)arch::signal(adopted.value(), arch::kill_signal());
      auto ended = arch::wait(adopted.value(), -1);
      if (ended) st = ended.value();
      ++tree->report.reaped;
      if (!ended || st.signal == arch::kill_signal()) ++tree->report.killed;
      report_table_full_locked(*tree, pid, info.pgid, true);
      continue;
    }
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::OrphanAdopted;
    ev.principal = "runtime";
    ev.pid = pid;
    ev.pgid = info.pgid;
    ev.containment = tree->containment;
    emit(ev);
    slot->proc = std::move(adopted.value());
    slot->state = Entry::State::Live;
    slot->orphan = true;
    slot->pid = pid;
    slot->pgid = info.pgid;
    slot->group = static_cast<int>(tree - entries_.get());
    slot->owner = tree->owner;
    slot->containment = tree->containment;
    if (guardian_)
      if (auto g = guardian_->watch_process(slot->proc)) slot->guardian_slot = static_cast<int>(g.value());
    if (poller_) {
      const std::uint64_t data =
          (static_cast<std::uint64_t>(slot->generation) << 32) | static_cast<std::uint32_t>(slot - entries_.get());
      slot->polled = static_cast<bool>(poller_->add(slot->proc.wait_handle(), false, data));
    }
  }
  return found;
}

// Remembers an escapee left running for want of a slot (refused_), once.
// With every row taken by escapees still running, it is not remembered: if
// it ends before a slot frees, it stays a zombie of this process.
void ProcessExecutor::remember_refused_locked(int pid, std::uint64_t start_ticks, const Entry& tree) noexcept {
  if (start_ticks == 0) return;  // no identity to tell it by once it has ended
  Refused* free_row = nullptr;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Refused& r = refused_[i];
    if (r.pid == pid && r.start_ticks == start_ticks) return;
    if (free_row == nullptr && refused_tree_of(r) == nullptr) free_row = &r;
  }
  if (free_row == nullptr) return;
  *free_row = Refused{pid, start_ticks, static_cast<int>(&tree - entries_.get()), tree.generation};
}

// The tree of a remembered escapee (null if it is not remembered, or its
// tree's entry was released since); `forget` frees its row.
// Nothing to look up until a sweep has refused one (the common case: every
// ended child of every sweep passes here).
ProcessExecutor::Entry* ProcessExecutor::refused_tree_locked(int pid, std::uint64_t start_ticks, bool forget) noexcept {
  if (start_ticks == 0 || counters_.orphans_refused == 0) return nullptr;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Refused& r = refused_[i];
    if (r.pid != pid || r.start_ticks != start_ticks) continue;
    Entry* tree = refused_tree_of(r);
    if (forget || tree == nullptr) r = Refused{};
    return tree;
  }
  return nullptr;
}

// The tree entry a row names, while that entry is still the one it named
// (null for a free row, or once the entry was released: a release bumps
// its generation).
ProcessExecutor::Entry* ProcessExecutor::refused_tree_of(const Refused& r) noexcept {
  if (r.pid < 0) return nullptr;
  Entry& tree = entries_[static_cast<std::size_t>(r.tree)];
  const bool held = tree.generation == r.generation &&
                    (tree.state == Entry::State::Live || tree.state == Entry::State::Exited);
  return held ? &tree : nullptr;
}

// A Full OrphanAdopted event for an escapee the process table had no slot
// for: left running (`ended` false: its tree lives, a later sweep adopts
// it) or, its tree being torn down, killed and reaped at once. At most one
// a second, saying how many refusals it stands for, so that a sweep every
// 50 ms does not flood the log.
void ProcessExecutor::report_table_full_locked(const Entry& tree, int pid, int pgid, bool ended) noexcept {
  ++full_since_event_;
  const std::int64_t now = arch::monotonic_ns();
  if (last_full_event_ns_ != 0 && now - last_full_event_ns_ < 1'000'000'000) return;
  const Error err = Error::make(
      Errc::Full,
      "process table is full (%zu processes, ExecutorConfig::max_processes): escapee %d of tree %d %s "
      "(%llu refusals since the last report)",
      config_.max_processes, pid, tree.pid, ended ? "killed and reaped at once" : "left running, not adopted",
      static_cast<unsigned long long>(full_since_event_));
  last_full_event_ns_ = now;
  full_since_event_ = 0;
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::OrphanAdopted;
  ev.principal = "runtime";
  ev.pid = pid;
  ev.pgid = pgid;
  ev.containment = tree.containment;
  ev.error = &err;
  emit(ev);
}

bool ProcessExecutor::tree_gone_locked(Entry& leader) noexcept {
  // A sweep that finds something (reaps it, adopts it, or sees it on its
  // way out) means another look later. One that finds nothing changed
  // nothing, and an empty group or cgroup gains no member by itself.
  return group_empty_locked(leader) && sweep_orphans_locked(&leader) == 0;
}

// One step of a teardown: KILL once the deadline has passed, then check
// whether the tree is gone. True when it is over (or given up on after
// kGiveUpNs), with the report complete.
bool ProcessExecutor::teardown_step_locked(Entry& leader, std::int64_t now) noexcept {
  if (!leader.kill_sent && now >= leader.deadline) {
    // Everything dies at once; the steps reap them as they end.
    leader.kill_sent = true;
    signal_tree_locked(leader, arch::kill_signal());
  }
  bool emptied = false;
  if (leader.scan_after != 0) {
    // The leader was killed ahead of its stopped group. Once it has ended
    // (reaped by group_empty_locked), a group with nobody else in it is
    // done: nothing is left to scan or signal. Otherwise the scan (and the
    // group's KILL) waits for that end, at most kLeaderEndNs.
    const bool ended = !leader.proc.valid() || leader.leader_kept || leader.state == Entry::State::Exited ||
                       static_cast<bool>(arch::peek_exit(leader.proc));
    if (!ended && now < leader.scan_after && now < leader.give_up) return false;
    leader.scan_after = 0;
    if (ended && group_empty_locked(leader)) {
      leader.pending_signal = 0;
      emptied = true;
    }
  }
  const bool sent = send_pending(leader, *children_, guardian_ ? guardian_->pid() : -1);
  report_group_skip_locked(leader, leader.kill_sent ? arch::kill_signal() : leader.first_signal);
  // A group found empty just now stays empty: only the sweep is left.
  const bool done = sent && (emptied ? sweep_orphans_locked(&leader) == 0 : tree_gone_locked(leader));
  if (!done && now < leader.give_up) return false;
  leader.report.gave_up = !done;
  if (!leader.kill_sent) leader.report.exited_on_term = true;
  leader.report.orphans_adopted = leader.adopted;
  return true;
}

// Counts, reports and releases a finished teardown: the leader's entry and
// every entry of its group.
TeardownReport ProcessExecutor::complete_teardown_locked(Entry& leader, std::string_view principal,
                                                         ProcessEvent::Kind kind) noexcept {
  TeardownReport report = leader.report;
  report.owner_wide = leader.owner_wide;
  counters_.killed += report.killed;
  const int index = static_cast<int>(&leader - entries_.get());
  // A teardown that gave up may hold processes SIGKILL did not end (stuck
  // in the kernel). Releasing their entries would reap them, which waits
  // until they end, here on the reactor with the table locked. Each stays
  // held on its own instead (polled, guarded) and is reaped when it ends;
  // a stuck leader keeps its group's resources until then.
  std::size_t stuck = 0;
  int first_stuck = -1;
  bool keep_leader = false;
  if (report.gave_up) {
    // Those that left the tree's group are held by a sweep first (a cgroup
    // tree's steps sweep only once the cgroup is empty).
    (void)sweep_orphans_locked(&leader);
    for (std::size_t i = 0; i < config_.max_processes; ++i) {
      Entry& e = entries_[i];
      if (e.state != Entry::State::Live || !e.proc.valid() || (e.group != index && &e != &leader)) continue;
      ExitStatus ended;
      if (reap_held(e, ended, poller_.get())) continue;  // ended meanwhile: released below
      ++stuck;
      if (first_stuck < 0) first_stuck = e.pid;
      if (&e == &leader) {
        keep_leader = true;
        continue;
      }
      e.group = static_cast<int>(i);
      e.orphan = true;  // its end is no longer its owner's news
    }
  }
  // A teardown that failed says so in its event's error (Monitoring turns
  // it into an alert): a give-up, or a tree whose processes are gone but
  // whose cgroup cannot be removed (a directory someone holds in it),
  // never a silent leftover.
  Error failure;
  if (report.gave_up && stuck > 0) {
    failure = Error::make(Errc::Timeout,
                          "teardown of tree %d (pgid %d, %s) gave up 5 s after SIGKILL: %zu of its processes "
                          "(first %d) still alive, held until they end",
                          leader.pid, leader.pgid, to_string(leader.containment), stuck, first_stuck);
  } else if (report.gave_up && leader.cgroup.valid()) {
    failure = Error::make(Errc::Timeout,
                          "teardown of tree %d (pgid %d, cgroup) gave up 5 s after SIGKILL: %zu processes left in "
                          "its cgroup",
                          leader.pid, leader.pgid, leader.cgroup.count_processes());
  } else if (report.gave_up) {
    failure = Error::make(Errc::Timeout, "teardown of tree %d (pgid %d, %s) gave up 5 s after SIGKILL: not confirmed gone",
                          leader.pid, leader.pgid, to_string(leader.containment));
  } else if (leader.cgroup.valid()) {
    if (leader.events_polled && poller_) poller_->remove(leader.cgroup.events_handle());
    leader.events_polled = false;
    if (auto r = leader.cgroup.remove(); !r) {
      const int os = r.error().os_error();
      failure = Error::make_code_os(Errc::Failed, os, "teardown of tree %d: its cgroup '%s' could not be removed: %s",
                                    leader.pid, leader.cgroup_suffix, os != 0 ? std::strerror(os) : r.error().message());
    }
  }
  if (!keep_leader) ++counters_.cleaned;  // else when it ends (reactor_handle_exit)
  ProcessEvent ev;
  ev.kind = kind;
  ev.principal = principal;
  ev.pid = leader.pid;
  ev.pgid = leader.pgid;
  ev.containment = leader.containment;
  ev.teardown = &report;
  if (failure.code() != Errc::Ok) ev.error = &failure;
  emit(ev);
  if (sink_ != nullptr && leader.report_to_sink)
    to_sink_locked({.owner = leader.owner, .pid = leader.pid, .teardown = true, .status = {}, .report = report});
  for (std::size_t i = 0; i < config_.max_processes; ++i)
    if (entries_[i].state != Entry::State::Free && entries_[i].group == index && &entries_[i] != &leader)
      release_locked(entries_[i]);
  if (keep_leader) {
    leader.tearing_down = false;
    leader.report_to_sink = false;
    leader.blocking = false;
    return report;
  }
  release_locked(leader);
  return report;
}

Result<TeardownReport> ProcessExecutor::execute(const TeardownOperation& op, const SecurityContext& who) noexcept {
  OperationView view;
  view.kind = OperationView::Kind::Teardown;
  view.pid = op.pid;
  if (auto r = check(view, who, {}); !r) return r.error();
  std::unique_lock<std::mutex> lock(mu_);
  Entry* e = nullptr;
  for (std::size_t i = 0; i < config_.max_processes && e == nullptr; ++i) {
    Entry& c = entries_[i];
    if ((c.state == Entry::State::Live || c.state == Entry::State::Exited) && c.pid == op.pid && !c.orphan) e = &c;
  }
  // A refused teardown is recorded like a completed one.
  auto refused = [&](const Error& err) -> Result<TeardownReport> {
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::Teardown;
    ev.principal = who.principal;
    ev.pid = op.pid;
    ev.error = &err;
    emit(ev);
    return err;
  };
  if (e == nullptr || e->lifetime != ProcessLifetime::Managed)
    return refused(Error::make(Errc::InvalidArgument,
                               "teardown: process %d is not a managed process of this executor", op.pid));
  Entry& leader = entries_[static_cast<std::size_t>(e->group)];
  if (leader.tearing_down)
    return refused(Error::make(Errc::AlreadyExists, "teardown of process %d's tree is already in progress", op.pid));
  begin_teardown_locked(leader, op.term_timeout_ns);
  leader.blocking = true;  // this thread steps it; the reactor leaves it alone
  // Between steps the lock is released and the thread waits for the next
  // thing that can change the answer: the cgroup emptying (cgroup.events),
  // the leader ending (its pidfd), or a short, growing nap once neither is
  // left to watch. Only this thread steps or releases this entry
  // (`blocking`), so its handles stay valid while the lock is free.
  std::int64_t nap = 10'000;
  for (std::int64_t now = arch::monotonic_ns(); !teardown_step_locked(leader, now); now = arch::monotonic_ns()) {
    const std::int64_t until_kill = leader.kill_sent ? 0 : leader.deadline - now;
    const std::int64_t wait_ns = until_kill > 0 ? until_kill : 2'000'000;
    lock.unlock();
    if (leader.scan_after != 0) {
      // The leader, killed ahead of its stopped group, ending.
      const std::int64_t left = leader.scan_after - now;
      arch::wait_readable(leader.proc.wait_handle(), left > 0 ? left : 0);
    } else if (leader.pending_signal != 0) {
      arch::sleep_ns(100'000);  // a stopped group becoming still
    } else if (leader.cgroup.valid()) {
      (void)leader.cgroup.wait_empty(wait_ns);
    } else if (leader.proc.valid() && !leader.leader_kept) {  // a kept zombie's pidfd is readable for good
      arch::wait_readable(leader.proc.wait_handle(), wait_ns);
    } else {
      arch::sleep_ns(until_kill > 0 && until_kill < nap ? until_kill : nap);
      if (nap < 1'000'000) nap += nap / 2;
    }
    lock.lock();
  }
  TeardownReport report = complete_teardown_locked(leader, who.principal, ProcessEvent::Kind::Teardown);
  // Reports for the sink (a tree its owner also asked to have torn down,
  // members reaped on the way) go out from the reactor, unlocked.
  const bool queued = report_count_ != 0;
  lock.unlock();
  if (queued) wake_reactor();
  return report;
}

// ---- the guardian -----------------------------------------------------------

Result<void> keep_guardian(arch::Guardian& guardian, const arch::CgroupRoot* root, ProcessExecutor::Entry* entries,
                           std::size_t count, arch::Poller* poller) noexcept {
  using Entry = ProcessExecutor::Entry;
  const bool was_running = guardian.running();
  if (was_running && guardian.alive()) return {};
  if (auto r = was_running ? guardian.restart() : guardian.start(root); !r) return r;
  if (poller != nullptr) (void)poller->add(guardian.wait_handle(), false, kGuardianData);
  // The new guardian holds nothing yet (none at the first start).
  for (std::size_t i = 0; i < count; ++i) {
    Entry& e = entries[i];
    if (e.state != Entry::State::Live && e.state != Entry::State::Exited) continue;
    e.guardian_slot = -1;
    if (e.lifetime != ProcessLifetime::Managed) continue;
    if (e.leads && e.containment == Containment::ProcessGroup) {
      // A leader already reaped leaves its tree to the marker sweep.
      auto slot = e.proc.valid() ? guardian.watch_group(e.proc, e.marker) : guardian.watch_tree(-1, e.marker);
      if (slot) e.guardian_slot = static_cast<int>(slot.value());
    } else if (e.orphan && e.proc.valid()) {
      if (auto slot = guardian.watch_process(e.proc)) e.guardian_slot = static_cast<int>(slot.value());
    }
  }
  return {};
}

// A guardian that was running and is not the same one afterwards died and
// was replaced: the trees were unguarded for a moment, which the middleware
// hears of (as it does when the replacement fails).
Result<void> ProcessExecutor::keep_guardian_locked() noexcept {
  const int before = guardian_->pid();
  auto r = keep_guardian(*guardian_, cgroup_root_.get(), entries_.get(), config_.max_processes, poller_.get());
  const int after = guardian_->pid();
  if (before > 0 && (!r || after != before)) {
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::GuardianRestarted;
    ev.principal = "runtime";
    ev.pid = after;
    if (!r) ev.error = &r.error();
    emit(ev);
  }
  return r;
}

// ---- the reactor ------------------------------------------------------------

Result<void> ProcessExecutor::start_reactor(ExitSink& sink) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (reactor_.joinable()) return {};
  auto p = arch::Poller::create();
  if (!p) return p.error();
  poller_.reset(new (std::nothrow) arch::Poller(std::move(p.value())));
  if (!poller_) return Error::make(Errc::Full, "no memory for the reactor's poller");
  auto w = arch::Poller::create();
  if (!w) return w.error();
  reactor_wake_.reset(new (std::nothrow) arch::Poller(std::move(w.value())));
  if (!reactor_wake_) return Error::make(Errc::Full, "no memory for the reactor's poller");
  if (auto r = reactor_wake_->add(poller_->handle(), false, 0); !r) return r.error();
  next_scan_.store(arch::add_saturated(arch::monotonic_ns(), config_.orphan_scan_ns), std::memory_order_relaxed);
  reports_.reset(new (std::nothrow) SinkReport[2 * config_.max_processes]);
  delivering_.reset(new (std::nothrow) SinkReport[2 * config_.max_processes]);
  if (!reports_ || !delivering_) return Error::make(Errc::Full, "no memory for the reactor's reports");
  sink_ = &sink;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& e = entries_[i];
    if (e.state != Entry::State::Live || !e.proc.valid()) continue;
    const std::uint64_t data = (static_cast<std::uint64_t>(e.generation) << 32) | static_cast<std::uint32_t>(i);
    e.polled = static_cast<bool>(poller_->add(e.proc.wait_handle(), false, data));
  }
#if defined(__cpp_exceptions)
  try {
    reactor_ = std::thread([this] { reactor_loop(); });
  } catch (...) {
    return Error::make(Errc::Os, "cannot start the process reactor thread");
  }
#else
  reactor_ = std::thread([this] { reactor_loop(); });
#endif
  return {};
}

std::size_t ProcessExecutor::request_teardown(std::uint64_t owner, std::int64_t term_timeout_ns,
                                              int first_signal) noexcept {
  std::size_t n = 0;
  // The reactor is woken to step the teardowns (its wait becomes 1 ms at
  // most) unless each one waits for a KILLed leader whose end wakes it
  // anyway, and its wait has a bound (a scan beat) for a leader that does
  // not end: a wake-up saved where one costs as much as the step.
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < config_.max_processes; ++i) {
      Entry& e = entries_[i];
      if ((e.state != Entry::State::Live && e.state != Entry::State::Exited) || !e.leads || e.owner != owner ||
          e.lifetime != ProcessLifetime::Managed || e.orphan || e.owner_wide)
        continue;
      // A tree already being torn down (one tree at a time, for an
      // integration actor) keeps its teardown, and is counted here too.
      begin_teardown_locked(e, term_timeout_ns, first_signal);
      e.report_to_sink = true;
      e.owner_wide = true;
      wake |= e.scan_after == 0 || !e.polled;
      ++n;
    }
    wake |= reactor_wakes_at_ == INT64_MAX;
  }
  if (n > 0 && wake) wake_reactor();
  return n;
}

ProcessExecutor::Counters ProcessExecutor::counters() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

std::size_t ProcessExecutor::live() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (std::size_t i = 0; i < config_.max_processes; ++i) n += entries_[i].state != Entry::State::Free;
  return n;
}

std::size_t ProcessExecutor::managed() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (std::size_t i = 0; i < config_.max_processes; ++i)
    n += entries_[i].state != Entry::State::Free && entries_[i].lifetime == ProcessLifetime::Managed;
  return n;
}

void ProcessExecutor::reactor_handle_exit(std::uint32_t index) noexcept {
  Entry& e = entries_[index];
  if (e.state != Entry::State::Live || !e.proc.valid()) return;
  if (e.tearing_down || (e.group >= 0 && entries_[static_cast<std::size_t>(e.group)].tearing_down)) return;
  ExitStatus st;
  if (!collect_exit(e, st, poller_.get())) return;
  e.polled = false;  // collect_exit took it out of the poller
  settle_exit_locked(e, st, "runtime");
}

// A reaped process outside a teardown: reported, and its entry released,
// unless it leads a managed tree that lives on without it (the entry then
// stays, Exited, for its owner's teardown). A tree that ended with its
// leader is counted cleaned.
void ProcessExecutor::settle_exit_locked(Entry& e, ExitStatus st, std::string_view principal) noexcept {
  e.status = st;
  const bool managed_leader = e.leads && e.lifetime == ProcessLifetime::Managed;
  const bool gone = managed_leader && tree_gone_locked(e);
  report_exit_locked(e, st, principal, gone);
  if (gone) {
    ++counters_.cleaned;
    release_locked(e);
  } else if (managed_leader) {
    e.state = Entry::State::Exited;
  } else {
    release_locked(e);
  }
}

void ProcessExecutor::reactor_advance_teardowns(std::int64_t now) noexcept {
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& leader = entries_[i];
    if ((leader.state != Entry::State::Live && leader.state != Entry::State::Exited) || !leader.tearing_down ||
        !leader.leads || leader.blocking)
      continue;
    if (teardown_step_locked(leader, now))
      (void)complete_teardown_locked(leader, "runtime", ProcessEvent::Kind::Teardown);
  }
}

namespace {
// True on a thread while it runs a reactor pass: its watchers' calls are
// its own, so an unwatch from one of them does not wait for itself.
thread_local bool t_in_pass = false;
}  // namespace

bool in_reactor_pass() noexcept { return t_in_pass; }

int ProcessExecutor::event_handle() const noexcept { return poller_ ? poller_->handle() : -1; }

void ProcessExecutor::wake_reactor() noexcept {
  if (reactor_wake_) reactor_wake_->wake();
}

bool ProcessExecutor::reactor_pass() noexcept {
  if (!reactor_wake_ || t_in_pass || !pass_mu_.try_lock()) return false;
  std::lock_guard<std::mutex> pass(pass_mu_, std::adopt_lock);
  run_pass(false);
  return true;
}

void ProcessExecutor::reactor_loop() noexcept {
  arch::name_thread("airssys-procs");
  while (!stopping_.load(std::memory_order_acquire)) {
    std::int64_t timeout = -1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      bool tearing = false, scanned_trees = false;
      for (std::size_t i = 0; i < config_.max_processes; ++i) {
        const Entry& e = entries_[i];
        if (e.state == Entry::State::Free || e.state == Entry::State::Reserved) continue;
        tearing |= e.tearing_down;
        scanned_trees |= e.leads && e.lifetime == ProcessLifetime::Managed && e.containment != Containment::None;
      }
      const std::int64_t now = arch::monotonic_ns();
      if (scanned_trees) scanned_trees_seen_at_ = now;
      // The scans keep their beat for one period after the last such tree
      // is gone: a tree spawned meanwhile (a restart's) needs no wake-up.
      const bool lingering =
          scanned_trees_seen_at_ != INT64_MIN && now - scanned_trees_seen_at_ < config_.orphan_scan_ns;
      if (scanned_trees || lingering) {
        const std::int64_t scan_at = next_scan_.load(std::memory_order_relaxed);
        timeout = scan_at > now ? scan_at - now : 0;
      }
      if (tearing && (timeout < 0 || timeout > 1'000'000)) timeout = 1'000'000;
      reactor_wakes_at_ = timeout < 0 ? INT64_MAX : now + timeout;
    }
    // Woken by an event, a wake-up or the timeout; the events themselves
    // are taken in the pass, which another thread may have run meanwhile.
    std::uint64_t woke[2];
    (void)reactor_wake_->wait(woke, 2, timeout);
    std::lock_guard<std::mutex> pass(pass_mu_);
    run_pass(true);
  }
}

void ProcessExecutor::run_pass(bool scans) noexcept {
  t_in_pass = true;
  std::uint64_t ready[64];
  const std::size_t n = poller_->wait(ready, 64, 0);
  dispatch_watches(ready, n);  // before mu_: a watcher never runs under the table's lock
  {
    std::unique_lock<std::mutex> lock(mu_);
    for (std::size_t k = 0; k < n; ++k) {
      if (ready[k] == kGuardianData) {
        // The guardian died (killed on its own): a new one, told of every
        // tree still held, before the host could die unguarded.
        if (guardian_) (void)keep_guardian_locked();
        continue;
      }
      if (ready[k] == arch::Poller::kWake || (ready[k] & kEventsFlag) != 0) continue;
      const auto index = static_cast<std::uint32_t>(ready[k] & 0x7fffffffu);
      const auto gen = static_cast<std::uint32_t>(ready[k] >> 32);
      if (index < config_.max_processes && entries_[index].generation == gen) reactor_handle_exit(index);
    }
    const std::int64_t now = arch::monotonic_ns();
    reactor_advance_teardowns(now);
    if (scans && now >= next_scan_.load(std::memory_order_relaxed)) {
      next_scan_.store(arch::add_saturated(now, config_.orphan_scan_ns), std::memory_order_relaxed);
      bool pgroup_trees = false, cgroup_trees = false;
      for (std::size_t i = 0; i < config_.max_processes; ++i) {
        const Entry& e = entries_[i];
        if (e.state == Entry::State::Free || !e.leads || e.lifetime != ProcessLifetime::Managed || e.tearing_down)
          continue;
        pgroup_trees |= e.containment == Containment::ProcessGroup;
        cgroup_trees |= e.containment == Containment::Cgroup;
      }
      // A cgroup tree needs no search while its processes live (they
      // cannot leave the cgroup unprivileged, and cgroup.kill reaches
      // them), but those re-parented to us end as our zombies: sweep only
      // when waitid says a child is waiting to be reaped.
      if (pgroup_trees || (cgroup_trees && arch::has_ended_child())) (void)sweep_orphans_locked(nullptr);
    }
    const std::size_t reports = take_reports_locked();
    lock.unlock();
    // delivering_ is the pass's alone (pass_mu_).
    for (std::size_t i = 0; i < reports; ++i) delivering_[i].deliver(*sink_);
  }
  t_in_pass = false;
}

}  // namespace airssys::osl
