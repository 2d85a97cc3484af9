#pragma once
// A command-line tool run by a test as a real child process: argv given,
// stdin from /dev/null, stdout and stderr into files the test reads while
// it runs and after. The child gets a parent-death signal, so a test that
// dies takes the tool (and, through the tool's guardian, its trees) along.
// The destructor SIGKILLs and reaps it if the test did not wait for it.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace airssys::test {

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ToolProcess {
 public:
  // `out` and `err` are the files stdout and stderr go to (kClosed: the
  // descriptor is closed, as `>&-` does); `env` entries ("NAME=value") are
  // added to the tool's environment.
  static constexpr const char* kClosed = "(closed)";
  ToolProcess(const std::string& tool, const std::vector<std::string>& args, std::string out, std::string err,
              const std::vector<std::string>& env = {})
      : out_(std::move(out)), err_(std::move(err)) {
    std::vector<std::string> argv_s{tool};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s = env;
    const int parent = ::getpid();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      const bool close_out = out_ == kClosed, close_err = err_ == kClosed;
      const int o = close_out ? -1 : ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = close_err ? -1 : ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int i = ::open("/dev/null", O_RDONLY);
      if ((o < 0 && !close_out) || (e < 0 && !close_err) || i < 0) ::_exit(120);
      ::dup2(i, 0);
      if (close_out) ::close(1); else ::dup2(o, 1);
      if (close_err) ::close(2); else ::dup2(e, 2);
      for (auto& entry : env_s) ::putenv(entry.data());
      ::execv(argv[0], argv.data());
      ::_exit(121);
    }
  }
  ~ToolProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  ToolProcess(const ToolProcess&) = delete;
  ToolProcess& operator=(const ToolProcess&) = delete;

  int pid() const { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }

  // Waits up to `limit` for the tool to exit: its status (exit code, or
  // 128 + signal), or -1 when the limit passed (it is then killed).
  int wait(std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    for (;;) {
      const int r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > end) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string out() const { return out_ == kClosed ? std::string() : read_text_file(out_); }
  std::string err() const { return err_ == kClosed ? std::string() : read_text_file(err_); }

 private:
  std::string out_, err_;
  int pid_ = -1;
  bool reaped_ = false;
};

}  // namespace airssys::test
