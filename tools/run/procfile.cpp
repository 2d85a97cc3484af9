#include "run/procfile.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace airssys::run {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string where(std::string_view path, int line) {
  std::string out(path);
  out += ':';
  out += std::to_string(line);
  out += ": ";
  return out;
}

}  // namespace

bool parse_procfile(std::string_view text, std::string_view path, std::vector<ProcfileEntry>& out,
                    std::string& error) {
  out.clear();
  int number = 0;
  // A UTF-8 byte order mark, as some editors write one, is not part of the
  // first line.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  for (std::size_t pos = 0; pos < text.size();) {
    ++number;
    // A line ends at LF, CR LF or a lone CR (a file saved with classic Mac
    // line endings would otherwise be one line, its services one command).
    std::size_t nl = text.find_first_of("\r\n", pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view content = trim(text.substr(pos, nl - pos));
    pos = nl + (text.substr(nl, 2) == "\r\n" ? 2 : 1);
    if (content.empty() || content.front() == '#') continue;
    std::size_t n = 0;
    while (n < content.size() && name_char(content[n])) ++n;
    const bool colon = n > 0 && n < content.size() && content[n] == ':';
    const std::string_view command = colon ? trim(content.substr(n + 1)) : std::string_view{};
    if (command.empty()) {
      error = where(path, number) + "expected 'name: command' (name: letters, digits, '_' or '-')";
      return false;
    }
    const std::string_view name = content.substr(0, n);
    if (name.size() > kMaxServiceName) {
      error = where(path, number) + "service name '" + std::string(name) + "' is longer than " +
              std::to_string(kMaxServiceName) + " bytes";
      return false;
    }
    for (const auto& e : out) {
      if (e.name == name) {
        error = where(path, number) + "service '" + std::string(name) + "' is already defined on line " +
                std::to_string(e.line);
        return false;
      }
    }
    out.push_back(ProcfileEntry{std::string(name), std::string(command), number});
  }
  if (out.empty()) {
    error = std::string(path) + ": no services (expected lines of 'name: command')";
    return false;
  }
  return true;
}

bool read_procfile(const char* path, std::vector<ProcfileEntry>& out, std::string& error) {
  std::FILE* f = std::fopen(path, "rb");
  if (f == nullptr) {
    error = std::string(path) + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    error = std::string(path) + ": cannot read: " + std::strerror(err);
    return false;
  }
  if (text.find('\0') != std::string::npos) {
    error = std::string(path) + ": holds a NUL byte; not a Procfile";
    return false;
  }
  return parse_procfile(text, path, out, error);
}

}  // namespace airssys::run
