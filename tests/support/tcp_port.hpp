#pragma once
// Loopback TCP ports for tests that check who holds a port: a port that is
// free now, and a listening bind that reports why it failed. Plain sockets,
// no SO_REUSEADDR: a bind that succeeds proves that nothing else holds the
// port in any state.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace airssys::test {

// Binds a listening socket to 127.0.0.1:`port` (0: any free port).
// Returns its descriptor, or -errno (-EADDRINUSE while another socket
// holds the port).
inline int listen_tcp(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) {
    const int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

// The port a listening socket is bound to, or -errno.
inline int bound_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -errno;
  return ntohs(addr.sin_port);
}

// A loopback port that was free when asked (the kernel's choice), or
// -errno. Nothing holds it afterwards: the socket was never connected, so
// it leaves no TIME_WAIT behind.
inline int free_tcp_port() {
  const int fd = listen_tcp(0);
  if (fd < 0) return fd;
  const int port = bound_port(fd);
  ::close(fd);
  return port;
}

}  // namespace airssys::test
