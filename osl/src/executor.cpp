#include <airssys/osl/executor.hpp>

#include "env_entry.hpp"
#include "executor_entry.hpp"

#include <airssys/arch/cgroup.hpp>
#include <airssys/arch/guardian.hpp>
#include <airssys/arch/poller.hpp>
#include <airssys/arch/wait.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <new>

namespace airssys::osl {

namespace {
// Poller data of a watched descriptor: generation << 32 | kWatchFlag |
// index. Entry data (teardown.cpp) keeps its index below 1024 and uses bit
// 31 for cgroup.events, so bit 30 tells a watch apart.
constexpr std::uint64_t kWatchFlag = 1u << 30;
constexpr std::size_t kMaxWatches = 1u << 20;
}  // namespace

const char* to_string(Containment c) noexcept {
  switch (c) {
    case Containment::Auto: return "auto";
    case Containment::Cgroup: return "cgroup";
    case Containment::ProcessGroup: return "pgroup";
    case Containment::None: return "none";
  }
  return "?";
}

const char* to_string(ProcessEvent::Kind k) noexcept {
  using K = ProcessEvent::Kind;
  switch (k) {
    case K::Spawn: return "spawn";
    case K::Signal: return "signal";
    case K::GroupKill: return "group_kill";
    case K::Wait: return "wait";
    case K::Exit: return "exit";
    case K::OrphanAdopted: return "orphan_adopted";
    case K::Teardown: return "teardown";
    case K::Cleanup: return "cleanup";
    case K::Denied: return "denied";
    case K::StaleSwept: return "stale_swept";
    case K::GuardianRestarted: return "guardian_restarted";
  }
  return "?";
}

namespace {

// Packs strings and pointer arrays into one spawn buffer: strings grow up
// from the start, pointer arrays are placed at aligned offsets.
class Packer {
 public:
  Packer(char* mem, std::size_t size) noexcept : mem_(mem), size_(size) {}
  // A NUL-terminated copy of `s`, or null when there is no room.
  const char* string(std::string_view s) noexcept {
    if (used_ + s.size() + 1 > size_) return nullptr;
    char* out = mem_ + used_;
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    used_ += s.size() + 1;
    return out;
  }
  const char** pointers(std::size_t n) noexcept {
    used_ = (used_ + alignof(const char*) - 1) & ~(alignof(const char*) - 1);
    if (used_ + n * sizeof(const char*) > size_) return nullptr;
    auto** out = reinterpret_cast<const char**>(mem_ + used_);
    used_ += n * sizeof(const char*);
    return out;
  }
  char* reserve(std::size_t n) noexcept {
    if (used_ + n > size_) return nullptr;
    char* out = mem_ + used_;
    used_ += n;
    return out;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  char* mem_;
  std::size_t size_;
  std::size_t used_ = 0;
};

bool has_nul(std::string_view s) noexcept { return s.find('\0') != std::string_view::npos; }

Error too_long(std::string_view program, std::size_t limit) noexcept {
  return Error::make_code_os(Errc::InvalidArgument, 7 /* E2BIG */,
                             "argument list for '%.*s' is too long (more than %zu bytes with its environment)",
                             static_cast<int>(program.size() > 60 ? 60 : program.size()), program.data(), limit);
}

}  // namespace

namespace {
// Executors made in this process so far: each tree marker names its own.
std::atomic<std::uint64_t> executors_made{0};
}  // namespace

ProcessExecutor::ProcessExecutor(const ExecutorConfig& config)
    : config_(config), number_(executors_made.fetch_add(1, std::memory_order_relaxed) + 1) {
  if (config_.max_processes == 0) config_.max_processes = 1;
  // Every held process may need a guardian slot.
  if (config_.max_processes > arch::Guardian::kSlots) config_.max_processes = arch::Guardian::kSlots;
  if (config_.spawn_buffers == 0) config_.spawn_buffers = 1;
  // Room beyond exec's own limit for what a spawn packs besides argv and
  // env: program, working_dir, the resolved and found paths, the marker.
  constexpr std::size_t kPackRoom = 32 * 1024;
  if (config_.spawn_buffer_bytes == 0) config_.spawn_buffer_bytes = arch::argument_limit() + kPackRoom;
  if (config_.spawn_buffer_bytes < 16 * 1024) config_.spawn_buffer_bytes = 16 * 1024;
  entries_.reset(new Entry[config_.max_processes]);
  refused_.reset(new Refused[config_.max_processes]);
  buffers_.reset(new Buffers);
  buffers_->count = config_.spawn_buffers;
  buffers_->bytes_each = config_.spawn_buffer_bytes;
  buffers_->memory.reset(new char[config_.spawn_buffers * config_.spawn_buffer_bytes]);
  buffers_->busy.reset(new std::atomic<bool>[config_.spawn_buffers]);
  for (std::size_t i = 0; i < config_.spawn_buffers; ++i) buffers_->busy[i].store(false);
  if (config_.fd_watches == 0) config_.fd_watches = 1;
  if (config_.fd_watches > kMaxWatches) config_.fd_watches = kMaxWatches;
  watches_.reset(new Watch[config_.fd_watches]);
  children_.reset(new arch::ChildLister);
  if (config_.cgroup_base != nullptr) {
    const std::size_t n = std::strlen(config_.cgroup_base);
    cgroup_base_.reset(new char[n + 1]);
    std::memcpy(cgroup_base_.get(), config_.cgroup_base, n + 1);
    config_.cgroup_base = cgroup_base_.get();
  }
}

ProcessExecutor::~ProcessExecutor() { shutdown(); }

void ProcessExecutor::shutdown() noexcept {
  if (shut_down_) return;
  shut_down_ = true;
  if (reactor_.joinable()) {
    stopping_.store(true, std::memory_order_release);
    wake_reactor();
    reactor_.join();
  }
  std::unique_lock<std::mutex> lock(mu_);
  // Managed trees die with their executor; Detached processes are let go.
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& e = entries_[i];
    if (e.state == Entry::State::Free || e.state == Entry::State::Reserved) continue;
    e.blocking = false;
    if (e.lifetime == ProcessLifetime::Detached) {
      e.proc.release();
      release_locked(e);
      continue;
    }
    if (e.leads && !e.tearing_down) begin_teardown_locked(e, 0);
    e.deadline = 0;  // no more waiting for TERM
  }
  // Every managed tree at once: KILL, then step them all until each is
  // gone (the lock is ours alone now).
  for (;;) {
    bool pending = false;
    const std::int64_t now = arch::monotonic_ns();
    for (std::size_t i = 0; i < config_.max_processes; ++i) {
      Entry& e = entries_[i];
      if ((e.state != Entry::State::Live && e.state != Entry::State::Exited) || !e.leads || !e.tearing_down)
        continue;
      if (teardown_step_locked(e, now)) {
        (void)complete_teardown_locked(e, "runtime", ProcessEvent::Kind::Cleanup);
      } else {
        pending = true;
      }
    }
    if (!pending) break;
    arch::sleep_ns(50'000);
  }
  for (std::size_t i = 0; i < config_.max_processes; ++i)
    if (entries_[i].state != Entry::State::Free) release_locked(entries_[i]);
  if (guardian_) guardian_->stop();
  // The last reports, unlocked; the reactor that would have delivered them is gone.
  const std::size_t reports = sink_ != nullptr ? take_reports_locked() : 0;
  lock.unlock();
  for (std::size_t i = 0; i < reports; ++i) delivering_[i].deliver(*sink_);
}

Result<void> ProcessExecutor::use(Middleware& m) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (chain_size_ == kMaxMiddleware)
    return Error::make(Errc::Full, "middleware chain is full (%zu links)", kMaxMiddleware);
  chain_[chain_size_++] = &m;
  return {};
}

void ProcessExecutor::emit(ProcessEvent& e) noexcept {
  if (e.time_ns == 0) e.time_ns = arch::wall_clock_ns();
  for (std::size_t i = 0; i < chain_size_; ++i) chain_[i]->observe(e);
}

Result<void> ProcessExecutor::check(const OperationView& op, const SecurityContext& who,
                                    std::string_view program) noexcept {
  for (std::size_t i = 0; i < chain_size_; ++i) {
    auto r = chain_[i]->check(op, who);
    if (r) continue;
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::Denied;
    ev.principal = who.principal;
    ev.program = program;
    ev.executable = op.resolved_program;
    ev.spawn = op.spawn;
    ev.pid = op.pid;
    ev.pgid = op.pgid;
    ev.signal = op.signal;
    ev.error = &r.error();
    emit(ev);
    return r.error();
  }
  return {};
}

Containment ProcessExecutor::auto_containment(Error* why_not) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = ensure_contained(Containment::Cgroup);
  if (!r && why_not != nullptr) *why_not = r.error();
  return r ? Containment::Cgroup : Containment::ProcessGroup;
}

// Counts and reports the trees of dead runtimes a sweep killed.
void ProcessExecutor::report_stale_locked(Containment c, std::size_t trees, std::size_t processes) noexcept {
  counters_.stale_trees += trees;
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::StaleSwept;
  ev.principal = "runtime";
  ev.containment = c;
  ev.trees = trees;
  ev.processes = processes;
  emit(ev);
}

// Opens the cgroup root on first use (remembering why it failed), and
// makes this process a child subreaper.
Result<void> ProcessExecutor::ensure_contained(Containment c) noexcept {
  if (!subreaper_) {
    if (auto r = arch::become_subreaper(); !r) return r.error();
    subreaper_ = true;
    arch::ProcessInfo self;
    if (arch::process_info(arch::own_pid(), self)) host_start_ = self.start_ticks;
    host_pidns_ = arch::own_pid_namespace();
    sweep_dead_hosts_locked();
  }
  if (c != Containment::Cgroup) return {};
  if (!cgroup_tried_) {
    cgroup_tried_ = true;
    auto root = arch::CgroupRoot::open(config_.cgroup_base);
    if (root) {
      // Roots of runtimes that died with their guardian, swept on the way:
      // what lived in them is dead now, and the audit says so.
      const arch::StaleSweep swept = root.value().swept();
      cgroup_root_.reset(new (std::nothrow) arch::CgroupRoot(std::move(root.value())));
      if (swept.roots > 0) report_stale_locked(Containment::Cgroup, swept.trees, swept.processes);
    } else {
      cgroup_error_ = root.error();
    }
  }
  if (!cgroup_root_)
    return Error::make_code_os(Errc::Unavailable, cgroup_error_.os_error(), "containment cgroup is unavailable: %s",
                               cgroup_error_.message());
  return {};
}

ProcessExecutor::Entry* ProcessExecutor::find_locked(int pid) noexcept {
  if (pid <= 0) return nullptr;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& e = entries_[i];
    if ((e.state == Entry::State::Live) && e.pid == pid) return &e;
  }
  return nullptr;
}

ProcessExecutor::Entry* ProcessExecutor::find_group_locked(int pgid) noexcept {
  if (pgid <= 1) return nullptr;
  for (std::size_t i = 0; i < config_.max_processes; ++i) {
    Entry& e = entries_[i];
    if ((e.state == Entry::State::Live || e.state == Entry::State::Exited) && e.leads && e.pgid == pgid &&
        e.lifetime == ProcessLifetime::Managed)
      return &e;
  }
  return nullptr;
}

void ProcessExecutor::release_locked(Entry& e) noexcept {
  // The reactor keeps its scan beat for a period after the last tree that
  // needs scans is gone (reactor_loop); it may go between two of the
  // reactor's looks at the table, so the release is the time that counts.
  if (e.leads && e.lifetime == ProcessLifetime::Managed && e.containment != Containment::None)
    scanned_trees_seen_at_ = arch::monotonic_ns();
  if (e.guardian_slot >= 0 && guardian_) guardian_->unwatch(static_cast<std::uint32_t>(e.guardian_slot));
  if (e.polled && poller_ && e.proc.valid()) poller_->remove(e.proc.wait_handle());
  if (e.events_polled && poller_ && e.cgroup.valid()) poller_->remove(e.cgroup.events_handle());
  const std::uint32_t gen = e.generation + 1;
  e.~Entry();  // a live handle kills and reaps; a cgroup is killed and removed
  new (&e) Entry;
  e.generation = gen;
}

Result<SpawnProcessResult> ProcessExecutor::execute(const SpawnProcessOperation& op, const SecurityContext& who,
                                                    std::uint64_t owner) noexcept {
  std::string_view executable;  // once resolved
  auto fail = [&](const Error& err) -> Result<SpawnProcessResult> {
    ProcessEvent ev;
    ev.kind = ProcessEvent::Kind::Spawn;
    ev.principal = who.principal;
    ev.program = op.program;
    ev.executable = executable;
    ev.spawn = &op;
    ev.lifetime = op.lifetime;
    ev.error = &err;
    emit(ev);
    return err;
  };
  // Inputs that can be judged without touching the OS.
  if (op.program.empty()) return fail(Error::make(Errc::InvalidArgument, "program is empty"));
  if (has_nul(op.program)) return fail(Error::make(Errc::InvalidArgument, "program contains a NUL byte"));
  for (std::size_t i = 0; i < op.args.size(); ++i)
    if (has_nul(op.args[i]))
      return fail(Error::make(Errc::InvalidArgument, "argument #%zu of '%.*s' contains a NUL byte", i + 1,
                              static_cast<int>(op.program.size() > 60 ? 60 : op.program.size()), op.program.data()));
  for (std::size_t i = 0; i < op.env.size(); ++i) {
    if (has_nul(op.env[i]))
      return fail(Error::make(Errc::InvalidArgument, "env entry #%zu contains a NUL byte", i));
    if (op.env[i].find('=') == std::string_view::npos || op.env[i].front() == '=')
      return fail(Error::make(Errc::InvalidArgument, "env entry #%zu '%.*s' is not NAME=value", i,
                              static_cast<int>(op.env[i].size() > 40 ? 40 : op.env[i].size()), op.env[i].data()));
  }
  if (has_nul(op.working_dir)) return fail(Error::make(Errc::InvalidArgument, "working_dir contains a NUL byte"));
  for (int s = 0; s < 3; ++s)
    if (has_nul(op.stdio[s].path))
      return fail(Error::make(Errc::InvalidArgument, "stdio path #%d contains a NUL byte", s));
  const bool detached = op.lifetime == ProcessLifetime::Detached;
  if (detached && op.process_group.kind != ProcessGroupConfig::Kind::NewSession &&
      op.process_group.kind != ProcessGroupConfig::Kind::NewGroup)
    return fail(Error::make(Errc::InvalidArgument, "a Detached process gets a session of its own; "
                                                   "process_group must be NewSession"));
  if (!detached && op.containment == Containment::None)
    return fail(Error::make(Errc::InvalidArgument, "containment None is only for Detached processes"));
  if (op.process_group.kind == ProcessGroupConfig::Kind::JoinGroup && op.process_group.pgid <= 1)
    return fail(Error::make(Errc::InvalidArgument, "JoinGroup to pgid %d refused", op.process_group.pgid));

  std::size_t buffer_index = 0;
  char* mem = buffers_->take(buffer_index);
  if (mem == nullptr)
    return fail(Error::make(Errc::Full, "all %zu spawn buffers are in use (ExecutorConfig::spawn_buffers)",
                            buffers_->count));
  struct GiveBack {
    Buffers& b;
    std::size_t i;
    ~GiveBack() { b.give(i); }
  } give_back{*buffers_, buffer_index};

  // The file exec will run, found now (as chdir(working_dir) then execvp
  // would) and held open until the exec, so that the policy judges the
  // file that runs — every symlink resolved, not a spelling PATH, a
  // symlink or a rename could redirect between the check and the exec.
  Packer pack(mem, buffers_->bytes_each);
  const char* program_z = pack.string(op.program);
  const char* working_dir = nullptr;
  if (!op.working_dir.empty() && (working_dir = pack.string(op.working_dir)) == nullptr)
    return fail(too_long(op.program, pack.size()));
  constexpr std::size_t kPathMax = 4096;
  char* resolved_path = pack.reserve(kPathMax);
  char* found_path = pack.reserve(kPathMax);  // what a script is executed by: its $0
  if (program_z == nullptr || resolved_path == nullptr || found_path == nullptr)
    return fail(too_long(op.program, pack.size()));
  arch::FileIdentity identity;
  auto program_fd =
      arch::open_program(program_z, working_dir, resolved_path, kPathMax, &identity, found_path, kPathMax);
  if (!program_fd) return fail(program_fd.error());
  struct CloseProgram {
    int fd;
    ~CloseProgram() { arch::close_handle(fd); }
  } close_program{program_fd.value()};
  executable = resolved_path;

  OperationView view;
  view.kind = OperationView::Kind::Spawn;
  view.spawn = &op;
  view.resolved_program = resolved_path;
  view.program_identity = identity;
  view.pgid = op.process_group.kind == ProcessGroupConfig::Kind::JoinGroup ? op.process_group.pgid : -1;
  if (auto r = check(view, who, op.program); !r) return r.error();

  // argv and envp.
  const char** argv = pack.pointers(op.args.size() + 2);
  if (argv == nullptr) return fail(too_long(op.program, pack.size()));
  argv[0] = program_z;
  for (std::size_t i = 0; i < op.args.size(); ++i)
    if ((argv[i + 1] = pack.string(op.args[i])) == nullptr) return fail(too_long(op.program, pack.size()));
  argv[op.args.size() + 1] = nullptr;
  std::size_t inherited = 0;
  const char* const* parent_env = arch::inherited_environment();
  if (op.env_mode == EnvMode::InheritWithOverrides && parent_env != nullptr)
    while (parent_env[inherited] != nullptr) ++inherited;
  const char** envp = pack.pointers(inherited + op.env.size() + 2);
  if (envp == nullptr) return fail(too_long(op.program, pack.size()));
  std::size_t n_env = 0;
  for (std::size_t i = 0; i < inherited; ++i)
    if (!detail::overridden(parent_env[i], op.env)) envp[n_env++] = parent_env[i];
  // A name given twice gets its last value, once: libcs and shells
  // disagree on which of two entries they read.
  for (std::size_t i = 0; i < op.env.size(); ++i)
    if (!detail::overridden(op.env[i], op.env.subspan(i + 1)) && (envp[n_env++] = pack.string(op.env[i])) == nullptr)
      return fail(too_long(op.program, pack.size()));
  envp[n_env] = nullptr;
  arch::SpawnSpec spec;
  for (int s = 0; s < 3; ++s) {
    spec.stdio[s].mode = op.stdio[s].mode;
    spec.stdio[s].append = op.stdio[s].append;
    if (op.stdio[s].mode == StdioMode::File) {
      if (op.stdio[s].path.empty())
        return fail(Error::make(Errc::InvalidArgument, "stdio #%d: File mode needs a path", s));
      if ((spec.stdio[s].path = pack.string(op.stdio[s].path)) == nullptr)
        return fail(too_long(op.program, pack.size()));
    }
  }

  // Containment and the table entry.
  std::unique_lock<std::mutex> lock(mu_);
  Containment containment = Containment::None;
  Entry* leader = nullptr;
  if (!detached) {
    if (op.process_group.kind == ProcessGroupConfig::Kind::JoinGroup) {
      leader = find_group_locked(op.process_group.pgid);
      if (leader == nullptr || leader->state != Entry::State::Live || leader->tearing_down)
        return fail(Error::make(Errc::InvalidArgument,
                                "JoinGroup: process group %d was not created by this executor or is gone",
                                op.process_group.pgid));
      if (leader->owner != owner)
        return fail(Error::make(Errc::InvalidArgument, "JoinGroup: process group %d belongs to another owner",
                                op.process_group.pgid));
      containment = leader->containment;
      if (op.containment != Containment::Auto && op.containment != containment)
        return fail(Error::make(Errc::InvalidArgument, "JoinGroup: group %d is contained by %s, not %s",
                                op.process_group.pgid, to_string(containment), to_string(op.containment)));
    } else if (op.containment == Containment::Auto) {
      containment = ensure_contained(Containment::Cgroup) ? Containment::Cgroup : Containment::ProcessGroup;
    } else {
      containment = op.containment;
    }
    if (auto r = ensure_contained(containment); !r) return fail(r.error());
    if (containment == Containment::ProcessGroup && op.process_group.kind == ProcessGroupConfig::Kind::Inherit)
      return fail(Error::make(Errc::InvalidArgument,
                              "containment pgroup needs process_group NewGroup, JoinGroup or NewSession"));
    if (!guardian_) {
      guardian_.reset(new (std::nothrow) arch::Guardian);
      if (!guardian_) return fail(Error::make(Errc::Full, "no memory for the guardian"));
    }
    // Also a new guardian if the last one died (killed on its own, say).
    if (auto r = keep_guardian_locked(); !r)
      return fail(r.error());
    // The descriptors the child lister keeps are taken here, with the
    // guardian's, not in the middle of the first teardown.
    if (children_->held() == 0) {
      int none[1];
      (void)children_->list(none, 0);
    }
  }
  Entry* entry = nullptr;
  for (std::size_t i = 0; i < config_.max_processes && entry == nullptr; ++i)
    if (entries_[i].state == Entry::State::Free) entry = &entries_[i];
  if (entry == nullptr)
    return fail(Error::make(Errc::Full, "process table is full (%zu processes, ExecutorConfig::max_processes)",
                            config_.max_processes));
  entry->state = Entry::State::Reserved;
  const bool leads = op.process_group.kind == ProcessGroupConfig::Kind::NewGroup ||
                     op.process_group.kind == ProcessGroupConfig::Kind::NewSession || detached;
  const std::uint64_t group_id = next_group_id_++;
  arch::Cgroup cgroup;
  if (!detached && leads && containment == Containment::Cgroup) {
    auto cg = cgroup_root_->create(group_id);
    if (!cg) {
      entry->state = Entry::State::Free;
      return fail(cg.error());
    }
    cgroup = std::move(cg.value());
    if (cgroup_root_->incarnation() != guarded_root_incarnation_ && guardian_) {
      // The root was removed behind our back and made again: the guardian
      // holds copies of the old one's descriptors. A new guardian, given
      // the new root and every tree again.
      guarded_root_incarnation_ = cgroup_root_->incarnation();
      guardian_->stop();
      if (auto r = keep_guardian(*guardian_, cgroup_root_.get(), entries_.get(), config_.max_processes, poller_.get());
          !r) {
        entry->state = Entry::State::Free;
        return fail(r.error());
      }
    }
  }
  // A joiner spawns under the lock: the leader's handle and cgroup must
  // not go away while the child joins them (JoinGroup is rare).
  if (leader == nullptr) lock.unlock();

  char marker[arch::Guardian::kMarkerSize] = {};
  if (containment == Containment::ProcessGroup) {
    // Lets a teardown recognise, by their environment, processes of this
    // tree that left the group with setsid and came back as orphans. The
    // executor's own number keeps two executors of one process (two
    // Systems, say) from taking each other's escapees for their own.
    if (leads) {
      std::snprintf(marker, sizeof marker, "AIRSSYS_TREE=%d.%llu.%llu.%llu.%llu", arch::own_pid(),
                    static_cast<unsigned long long>(number_), static_cast<unsigned long long>(group_id),
                    static_cast<unsigned long long>(host_start_), static_cast<unsigned long long>(host_pidns_));
    } else {
      std::memcpy(marker, leader->marker, sizeof marker);
    }
    envp[n_env++] = marker;
    envp[n_env] = nullptr;
  }
  spec.program = resolved_path;
  spec.program_fd = close_program.fd;
  spec.exec_path = found_path;
  spec.argv = argv;
  spec.envp = envp;
  spec.working_dir = working_dir;
  switch (op.process_group.kind) {
    case ProcessGroupConfig::Kind::Inherit: spec.group = arch::GroupMode::Inherit; break;
    case ProcessGroupConfig::Kind::NewGroup:
      spec.group = detached ? arch::GroupMode::NewSession : arch::GroupMode::NewGroup;
      break;
    case ProcessGroupConfig::Kind::JoinGroup:
      spec.group = arch::GroupMode::JoinGroup;
      spec.join = &leader->proc;
      break;
    case ProcessGroupConfig::Kind::NewSession: spec.group = arch::GroupMode::NewSession; break;
  }
  spec.pass_fds = op.pass_fds.data();
  spec.pass_fd_count = op.pass_fds.size();
  spec.limits = op.limits.data();
  spec.limit_count = op.limits.size();
  spec.kill_with_parent = !detached;
  spec.cgroup = cgroup.valid() ? &cgroup : (leader != nullptr && leader->cgroup.valid() ? &leader->cgroup : nullptr);
  auto spawned = arch::spawn(spec);

  if (!lock.owns_lock()) lock.lock();
  if (!spawned) {
    entry->state = Entry::State::Free;
    lock.unlock();
    return fail(spawned.error());
  }
  SpawnProcessResult result;
  entry->proc = std::move(spawned.value());
  if (leads && !detached) {
    // The group is held from now on: its signals never go to a bare pgid.
    auto g = arch::ProcessGroup::of(entry->proc);
    if (!g) {
      entry->proc = arch::Process{};  // kills and reaps it
      entry->state = Entry::State::Free;
      lock.unlock();
      return fail(g.error());
    }
    entry->held_group = std::move(g.value());
  }
  for (int s = 0; s < 3; ++s) result.pipes[s] = entry->proc.take_pipe(s);
  entry->pid = entry->proc.pid();
  entry->pgid = entry->proc.pgid();
  entry->leads = leads;
  entry->containment = containment;
  entry->lifetime = op.lifetime;
  entry->owner = owner;
  entry->group_id = group_id;
  entry->group = leads ? static_cast<int>(entry - entries_.get()) : static_cast<int>(leader - entries_.get());
  entry->cgroup = std::move(cgroup);
  std::memcpy(entry->marker, marker, sizeof marker);
  if (entry->cgroup.valid()) {
    std::snprintf(entry->cgroup_suffix, sizeof entry->cgroup_suffix, "/%.60s/%.24s", cgroup_root_->name(),
                  entry->cgroup.name());
  } else if (leader != nullptr) {
    std::memcpy(entry->cgroup_suffix, leader->cgroup_suffix, sizeof entry->cgroup_suffix);
  }
  if (containment == Containment::Cgroup) {
    // Born into a cgroup namespace of its own (when the runtime may make
    // one): what identifies the tree's processes that moved out of it.
    arch::CgroupNamespace ns = arch::CgroupNamespace::of(entry->pid);
    if (ns.id() != arch::cgroup_namespace_of(arch::own_pid())) entry->cgroup_ns = std::move(ns);
  }
  if (!detached && leads && containment == Containment::ProcessGroup) {
    // Queued: guarded once the request is on the guardian's socket, with
    // no wait for its process to be scheduled and answer.
    if (auto slot = guardian_->watch_group_queued(entry->proc, entry->marker))
      entry->guardian_slot = static_cast<int>(slot.value());
  }
  entry->state = Entry::State::Live;
  if (poller_) {
    const std::uint64_t data = (static_cast<std::uint64_t>(entry->generation) << 32) |
                               static_cast<std::uint32_t>(entry - entries_.get());
    entry->polled = static_cast<bool>(poller_->add(entry->proc.wait_handle(), false, data));
  }
  // The reactor chose its timeout before this tree existed; a managed tree
  // needs its orphan scans from now on (a cgroup tree: a look for zombies
  // re-parented to us). A reactor that waits for an event only is woken
  // (a finite wait is never longer than a scan period), once the lock is
  // released, so that it does not wake only to wait for the lock.
  const bool wake_reactor = poller_ && leads && !detached && reactor_wakes_at_ == INT64_MAX;
  if (detached) {
    ++counters_.detached;
  } else if (leads) {
    ++counters_.spawned;
  }
  result.pid = entry->pid;
  result.pgid = entry->pgid;
  result.containment = containment;
  result.lifetime = op.lifetime;
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Spawn;
  ev.principal = who.principal;
  ev.program = op.program;
  ev.executable = executable;
  ev.spawn = &op;
  ev.pid = result.pid;
  ev.pgid = result.pgid;
  ev.containment = containment;
  ev.lifetime = op.lifetime;
  emit(ev);
  lock.unlock();
  if (wake_reactor) this->wake_reactor();
  return result;
}

// The frame Signal and KillProcessGroup share: the signal's range, the
// policy, the target looked up and signalled under the lock (`send`), and
// the audit event with the outcome.
Result<void> ProcessExecutor::signal_operation(const OperationView& view, const SecurityContext& who,
                                               SignalTarget send) noexcept {
  ProcessEvent ev;
  ev.kind = view.kind == OperationView::Kind::GroupKill ? ProcessEvent::Kind::GroupKill : ProcessEvent::Kind::Signal;
  ev.principal = who.principal;
  ev.pid = view.pid;
  ev.pgid = view.pgid;
  ev.signal = view.signal;
  auto done = [&](Result<void> r) {
    ev.error = r ? nullptr : &r.error();
    emit(ev);
    return r;
  };
  if (view.kind == OperationView::Kind::GroupKill && view.pgid <= 1)
    return done(Error::make(Errc::InvalidArgument, "KillProcessGroup of pgid %d refused", view.pgid));
  if (view.signal < 0 || view.signal > arch::max_signal())
    return done(Error::make(Errc::InvalidArgument, "signal number %d is out of range (0..%d)", view.signal,
                            arch::max_signal()));
  if (auto r = check(view, who, {}); !r) return r.error();
  std::lock_guard<std::mutex> lock(mu_);
  return done((this->*send)(view, ev));
}

Result<void> ProcessExecutor::signal_group_locked(const OperationView& view, ProcessEvent& ev) noexcept {
  Entry* leader = find_group_locked(view.pgid);
  if (leader == nullptr)
    return Error::make(Errc::InvalidArgument, "process group %d was not created by this executor", view.pgid);
  ev.containment = leader->containment;
  // Through the held group: an emptied group's number may be another's.
  auto r = leader->held_group.signal(view.signal);
  if (!r) return r.error();
  if (!r.value())
    return Error::make(Errc::Dead, "process group %d has no process left (its number is not signalled)", view.pgid);
  return {};
}

Result<void> ProcessExecutor::signal_process_locked(const OperationView& view, ProcessEvent& ev) noexcept {
  Entry* e = find_locked(view.pid);
  if (e == nullptr)
    return Error::make(Errc::InvalidArgument, "process %d was not spawned by this executor or was already reaped",
                       view.pid);
  ev.pgid = e->pgid;
  ev.containment = e->containment;
  return arch::signal(e->proc, view.signal);
}

Result<void> ProcessExecutor::execute(const KillProcessGroupOperation& op, const SecurityContext& who) noexcept {
  OperationView view;
  view.kind = OperationView::Kind::GroupKill;
  view.pgid = op.pgid;
  view.signal = op.signal;
  return signal_operation(view, who, &ProcessExecutor::signal_group_locked);
}

Result<void> ProcessExecutor::execute(const SignalProcessOperation& op, const SecurityContext& who) noexcept {
  OperationView view;
  view.kind = OperationView::Kind::Signal;
  view.pid = op.pid;
  view.signal = op.signal;
  return signal_operation(view, who, &ProcessExecutor::signal_process_locked);
}

Result<ExitStatus> ProcessExecutor::execute(const WaitProcessOperation& op, const SecurityContext& who) noexcept {
  OperationView view;
  view.kind = OperationView::Kind::Wait;
  view.pid = op.pid;
  if (auto r = check(view, who, {}); !r) return r.error();
  // Every outcome is recorded: the status, or why there is none.
  ProcessEvent ev;
  ev.kind = ProcessEvent::Kind::Wait;
  ev.principal = who.principal;
  ev.pid = op.pid;
  auto done = [&](const Result<ExitStatus>& r) -> Result<ExitStatus> {
    if (r) {
      ev.status = r.value();
    } else {
      ev.error = &r.error();
    }
    emit(ev);
    return r;
  };
  if (reactor_.joinable())
    return done(Error::make(
        Errc::WouldDeadlock,
        "WaitProcess on process %d: this executor's reactor reaps exits (they arrive as ProcessExited)", op.pid));
  if (op.timeout_ns < 0)
    return done(Error::make(Errc::InvalidArgument,
                            "WaitProcess on process %d: timeout %lld ns is negative (INT64_MAX waits without limit)",
                            op.pid, static_cast<long long>(op.timeout_ns)));
  const std::int64_t deadline =
      op.timeout_ns == INT64_MAX ? -1 : arch::add_saturated(arch::monotonic_ns(), op.timeout_ns);
  int ready_fd = -1;  // a duplicate of the pidfd, so waiting needs no lock
  struct CloseFd {
    int& fd;
    ~CloseFd() { arch::close_handle(fd); }
  } close_fd{ready_fd};
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      Entry* e = find_locked(op.pid);
      if (e == nullptr)
        return done(Error::make(Errc::InvalidArgument,
                                "process %d was not spawned by this executor or was already reaped", op.pid));
      ev.pgid = e->pgid;
      ev.containment = e->containment;
      ev.lifetime = e->lifetime;
      if (e->tearing_down || (e->group >= 0 && entries_[static_cast<std::size_t>(e->group)].tearing_down))
        return done(Error::make(Errc::AlreadyExists, "process %d: its tree is being torn down", op.pid));
      // Without pidfd group signals an ended leader whose group lives on
      // stays unreaped, pinning the group's number (collect_exit).
      const bool may_keep = e->held_group.valid() && !arch::group_signal_by_pidfd();
      auto r = may_keep ? arch::peek_exit(e->proc) : arch::try_wait(e->proc);
      if (r) {
        if (may_keep) {
          ExitStatus same;
          (void)collect_exit(*e, same, poller_.get());
        }
        settle_exit_locked(*e, r.value(), who.principal);
        return done(r.value());
      }
      if (r.code() != Errc::Timeout) return done(r.error());
      if (ready_fd < 0) {
        auto dup = arch::duplicate_handle(e->proc.wait_handle());
        if (!dup) return done(dup.error());
        ready_fd = dup.value();
      }
    }
    std::int64_t wait_ns = -1;
    if (deadline >= 0) {
      wait_ns = deadline - arch::monotonic_ns();
      if (wait_ns <= 0)
        return done(Error::make(Errc::Timeout, "process %d still running after %lld ms", op.pid,
                                static_cast<long long>(op.timeout_ns / 1'000'000)));
    }
    arch::wait_readable(ready_fd, wait_ns);
  }
}

// ---------------------------------------------------------------------------
// Single trees, for integration actors.

Result<void> ProcessExecutor::request_tree_teardown(std::uint64_t owner, int pid, std::int64_t term_timeout_ns,
                                                    int first_signal) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!poller_) return Error::make(Errc::Unavailable, "teardown of the tree of pid %d needs the reactor", pid);
    Entry* leader = nullptr;
    for (std::size_t i = 0; i < config_.max_processes; ++i) {
      Entry& e = entries_[i];
      if ((e.state == Entry::State::Live || e.state == Entry::State::Exited) && e.leads && !e.orphan &&
          e.pid == pid && e.owner == owner && e.lifetime == ProcessLifetime::Managed) {
        leader = &e;
        break;
      }
    }
    if (leader == nullptr)
      return Error::make(Errc::NotFound, "no managed tree led by pid %d is held for owner %llu", pid,
                         static_cast<unsigned long long>(owner));
    if (leader->tearing_down) return {};
    begin_teardown_locked(*leader, term_timeout_ns, first_signal);
    leader->report_to_sink = true;
  }
  wake_reactor();
  return {};
}

Result<arch::TreeUsage> ProcessExecutor::tree_usage(int pid) noexcept {
  int pgid = -1;
  char cgroup_dir[sizeof(Entry::cgroup_suffix)] = {};
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry* leader = nullptr;
    for (std::size_t i = 0; i < config_.max_processes; ++i) {
      Entry& e = entries_[i];
      if ((e.state == Entry::State::Live || e.state == Entry::State::Exited) && e.leads && !e.orphan && e.pid == pid) {
        leader = &e;
        break;
      }
    }
    if (leader == nullptr) return Error::make(Errc::NotFound, "no tree led by pid %d is held", pid);
    // The group's number is counted only while the held group still owns
    // it (its leader unreaped, or held through the pidfd).
    if (leader->held_group.valid() && leader->held_group.owns_number()) pgid = leader->pgid;
    if (leader->containment == Containment::Cgroup)
      std::memcpy(cgroup_dir, leader->cgroup_suffix, sizeof cgroup_dir);
  }
  // The /proc pass runs without the lock: a process that ends meanwhile is
  // simply not counted.
  return arch::tree_usage(pgid, cgroup_dir);
}

// ---------------------------------------------------------------------------
// Watched descriptors.

Result<void> ProcessExecutor::watch_readable(int fd, FdWatcher& w) noexcept {
  if (fd < 0) return Error::make(Errc::InvalidArgument, "cannot watch fd %d", fd);
  std::lock_guard<std::mutex> lock(watch_mu_);
  if (!poller_) return Error::make(Errc::Unavailable, "watching fd %d needs the process reactor", fd);
  Watch* slot = nullptr;
  for (std::size_t i = 0; i < config_.fd_watches; ++i) {
    Watch& x = watches_[i];
    if (x.fd == fd) return Error::make(Errc::AlreadyExists, "fd %d is already watched", fd);
    if (slot == nullptr && x.fd < 0 && !x.in_call) slot = &x;
  }
  if (slot == nullptr)
    return Error::make(Errc::Full, "cannot watch fd %d: all %zu watches are taken (ExecutorConfig::fd_watches)", fd,
                       config_.fd_watches);
  const auto index = static_cast<std::uint64_t>(slot - watches_.get());
  ++slot->generation;
  const std::uint64_t data = (std::uint64_t{slot->generation} << 32) | kWatchFlag | index;
  if (auto r = poller_->add_oneshot(fd, data); !r) return r.error();
  slot->fd = fd;
  slot->watcher = &w;
  return {};
}

Result<void> ProcessExecutor::rearm(int fd) noexcept {
  std::lock_guard<std::mutex> lock(watch_mu_);
  for (std::size_t i = 0; i < config_.fd_watches; ++i) {
    Watch& x = watches_[i];
    if (x.fd != fd) continue;
    return poller_->rearm(fd, (std::uint64_t{x.generation} << 32) | kWatchFlag | i);
  }
  return Error::make(Errc::NotFound, "fd %d is not watched", fd);
}

void ProcessExecutor::unwatch(int fd) noexcept {
  std::unique_lock<std::mutex> lock(watch_mu_);
  for (std::size_t i = 0; i < config_.fd_watches; ++i) {
    Watch& x = watches_[i];
    if (x.fd != fd) continue;
    poller_->remove(fd);
    x.fd = -1;
    x.watcher = nullptr;
    // A readiness the poller already reported carries the old generation
    // and is ignored.
    ++x.generation;
    if (!in_reactor_pass()) watch_done_.wait(lock, [&x] { return !x.in_call; });
    return;
  }
}

void ProcessExecutor::dispatch_watches(std::uint64_t* ready, std::size_t n) noexcept {
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint64_t d = ready[k];
    if (d == arch::Poller::kWake || d == kGuardianData || (d & kWatchFlag) == 0 || (d & (1u << 31)) != 0) continue;
    ready[k] = arch::Poller::kWake;
    const auto index = static_cast<std::size_t>(d & (kWatchFlag - 1));
    const auto gen = static_cast<std::uint32_t>(d >> 32);
    FdWatcher* w = nullptr;
    int fd = -1;
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      if (index >= config_.fd_watches) continue;
      Watch& x = watches_[index];
      if (x.fd < 0 || x.generation != gen) continue;  // unwatched since
      x.in_call = true;
      w = x.watcher;
      fd = x.fd;
    }
    w->on_readable(fd);
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      watches_[index].in_call = false;
    }
    watch_done_.notify_all();
  }
}

}  // namespace airssys::osl
