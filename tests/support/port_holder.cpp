// A process tree that holds a loopback TCP port and ignores SIGTERM, for
// the supervision tests: run as `port_holder PORT PIDFILE`, it binds and
// listens on 127.0.0.1:PORT, then forks a child that leaves the session
// (setsid) and keeps the listening socket too. Each appends "<label> <pid>"
// to PIDFILE ("holder", then "escapee" once the child is out of the
// session) and then waits for a signal that kills it. Only SIGKILL ends
// either of them, and the port is free again once both are gone.
// Exit status 2: bad arguments; 3: the bind or listen failed (errno in the
// pidfile as "error <errno>").

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace {

void record(const char* path, const char* label, long value) {
  if (FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%s %ld\n", label, value);
    std::fclose(f);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const int port = std::atoi(argv[1]);
  const char* pidfile = argv[2];
  ::signal(SIGTERM, SIG_IGN);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<unsigned short>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) {
    record(pidfile, "error", errno);
    return 3;
  }
  record(pidfile, "holder", ::getpid());
  const pid_t child = ::fork();
  if (child == 0) {
    ::setsid();
    record(pidfile, "escapee", ::getpid());
  }
  for (;;) ::pause();
}
