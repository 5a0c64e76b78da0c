// What both benchmarks share: a program that launches its own ranks.
//
// The parent (no --child flag) calls LaunchRanks(world, args): it spawns
// `world` copies of /proc/self/exe with `args` plus
//   --child --rank R --world N [--rendezvous HOST:PORT] [--announce-fd 3]
// Rank 0 gets --announce-fd: it rendezvouses on 127.0.0.1:0 and writes the
// bound HOST:PORT (RendezvousOptions::on_listening) as one line to fd 3, a
// pipe the parent reads before it spawns the other ranks with --rendezvous.
// Each child prints exactly one result line, kResultPrefix + JSON, on stdout;
// anything else it prints there is passed through to the parent's stderr.
// If a child fails (non-zero exit, no result) or the deadline passes, the
// parent SIGKILLs the children still running and reaps them; children also
// die with the parent (PR_SET_PDEATHSIG).
#ifndef DFV_BENCH_LAUNCH_H_
#define DFV_BENCH_LAUNCH_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/dist/rendezvous.h"

extern char** environ;

namespace dfv::bench {

inline constexpr char kResultPrefix[] = "DFV_BENCH_RESULT ";
inline constexpr int kAnnounceFd = 3;

// Child side ---------------------------------------------------------------

// Call first in a child: die with the parent.
inline void DieWithParent() {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) _exit(1);  // the parent is already gone
}

// The transports the benchmarks compare: "shm" (shared memory, what ranks on
// one host use) and "gloo" (loopback TCP).
inline bool KnownTransport(const std::string& transport) { return transport == "shm" || transport == "gloo"; }

// Meets the other ranks over `transport` ("shm" or "gloo"). Rank 0 (address
// empty) listens on 127.0.0.1:0 and announces the bound address on
// `announce_fd`. Fails rather than measure another transport than the one
// asked for (shm falls back to Gloo when the segment cannot be made).
inline absl::StatusOr<dist::ProcessGroup> ChildRendezvous(int rank, int world, const std::string& address,
                                                         int announce_fd, const std::string& transport,
                                                         size_t shm_chunk_bytes = dist::ShmOptions{}.chunk_bytes) {
  if (!KnownTransport(transport)) {
    return absl::InvalidArgumentError(absl::StrCat("transport '", transport, "' (shm | gloo)"));
  }
  dist::RendezvousOptions options;
  options.rank = rank;
  options.world_size = world;
  options.timeout = std::chrono::seconds(60);
  options.collective_timeout = std::chrono::seconds(120);
  options.backend = "gloo";
  options.shared_memory = transport == "shm";
  options.shm.chunk_bytes = shm_chunk_bytes;
  if (rank == 0) {
    options.address = "127.0.0.1:0";
    options.on_listening = [announce_fd](const std::string& bound) {
      const std::string line = bound + "\n";
      if (announce_fd >= 0) {
        if (write(announce_fd, line.data(), line.size()) < 0) std::perror("announce");
        close(announce_fd);
      }
    };
  } else {
    options.address = address;
  }
  absl::StatusOr<dist::ProcessGroup> group = dist::Rendezvous(options);
  if (group.ok() && group->communicator->backend() != transport) {
    return absl::FailedPreconditionError(absl::StrCat("asked for ", transport, ", got ",
                                                      group->communicator->backend(), ": ", group->transport_note));
  }
  return group;
}

// Prints the one result line.
inline void PrintResult(const nlohmann::json& result) {
  std::printf("%s%s\n", kResultPrefix, result.dump().c_str());
  std::fflush(stdout);
}

// Parent side --------------------------------------------------------------

namespace launch_internal {

struct Child {
  pid_t pid = -1;
  int out_fd = -1;  // read end of its stdout
  std::string buffer;
  bool eof = false;
  bool exited = false;
  int wait_status = 0;
};

inline void KillAll(std::vector<Child>& children) {
  for (Child& c : children) {
    if (c.pid > 0 && !c.exited) kill(c.pid, SIGKILL);
  }
  for (Child& c : children) {
    if (c.pid > 0 && !c.exited) {
      waitpid(c.pid, &c.wait_status, 0);
      c.exited = true;
    }
    if (c.out_fd >= 0) close(c.out_fd);
    c.out_fd = -1;
  }
}

// A pipe whose ends are >= 10 and close-on-exec (so dup2 onto 1 or 3 in the
// child never meets an fd that already has that number).
inline absl::Status HighPipe(int fds[2]) {
  int raw[2];
  if (pipe2(raw, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  for (int i = 0; i < 2; ++i) {
    fds[i] = fcntl(raw[i], F_DUPFD_CLOEXEC, 10);
    close(raw[i]);
    if (fds[i] < 0) return absl::InternalError(absl::StrCat("fcntl: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

inline std::string SelfPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "/proc/self/exe";
  buf[n] = '\0';
  return buf;
}

// Spawns one child with stdout -> a new pipe (and fd 3 -> announce_w when
// >= 0).
inline absl::StatusOr<Child> Spawn(const std::vector<std::string>& args, int announce_w) {
  int out[2];
  if (absl::Status s = HighPipe(out); !s.ok()) return s;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  if (announce_w >= 0) posix_spawn_file_actions_adddup2(&actions, announce_w, kAnnounceFd);
  const std::string self = SelfPath();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child child;
  const int rc = posix_spawn(&child.pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return absl::InternalError(absl::StrCat("posix_spawn: ", std::strerror(rc)));
  }
  child.out_fd = out[0];
  return child;
}

// Reads one line from `fd` within `deadline`; empty on EOF or timeout.
inline std::string ReadLine(int fd, std::chrono::steady_clock::time_point deadline) {
  std::string line;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return {};
    char c;
    const ssize_t n = read(fd, &c, 1);
    if (n <= 0) return {};
    if (c == '\n') return line;
    line.push_back(c);
  }
}

}  // namespace launch_internal

// Runs `world` ranks of this program (see the top of the file) and returns
// each rank's result JSON, by rank. Errors name the rank that failed.
inline absl::StatusOr<std::vector<nlohmann::json>> LaunchRanks(int world, const std::vector<std::string>& args,
                                                               std::chrono::seconds timeout) {
  using launch_internal::Child;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<Child> children;
  auto fail = [&](absl::Status status) {
    launch_internal::KillAll(children);
    return status;
  };
  auto rank_args = [&](int rank) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--child", "--rank", std::to_string(rank), "--world", std::to_string(world)});
    return a;
  };

  // Rank 0, and the address it announces.
  std::string address;
  {
    int announce[2] = {-1, -1};
    std::vector<std::string> a = rank_args(0);
    if (world > 1) {
      if (absl::Status s = launch_internal::HighPipe(announce); !s.ok()) return s;
      a.insert(a.end(), {"--announce-fd", std::to_string(kAnnounceFd)});
    }
    absl::StatusOr<Child> c = launch_internal::Spawn(a, announce[1]);
    if (announce[1] >= 0) close(announce[1]);
    if (!c.ok()) {
      if (announce[0] >= 0) close(announce[0]);
      return c.status();
    }
    children.push_back(std::move(*c));
    if (world > 1) {
      address = launch_internal::ReadLine(announce[0], deadline);
      close(announce[0]);
      if (address.empty()) return fail(absl::UnavailableError("rank 0 never announced its rendezvous address"));
    }
  }
  for (int rank = 1; rank < world; ++rank) {
    std::vector<std::string> a = rank_args(rank);
    a.insert(a.end(), {"--rendezvous", address});
    absl::StatusOr<Child> c = launch_internal::Spawn(a, -1);
    if (!c.ok()) return fail(c.status());
    children.push_back(std::move(*c));
  }

  // Collect stdout until every child has closed it and exited; stop early
  // when one fails.
  while (true) {
    for (size_t r = 0; r < children.size(); ++r) {
      Child& c = children[r];
      if (c.exited) continue;
      const pid_t w = waitpid(c.pid, &c.wait_status, WNOHANG);
      if (w == c.pid) {
        c.exited = true;
        if (!WIFEXITED(c.wait_status) || WEXITSTATUS(c.wait_status) != 0) {
          const std::string how = WIFEXITED(c.wait_status)
                                      ? absl::StrCat("exited with status ", WEXITSTATUS(c.wait_status))
                                      : absl::StrCat("was killed by signal ", WTERMSIG(c.wait_status));
          return fail(absl::InternalError(absl::StrCat("rank ", r, " ", how)));
        }
      }
    }
    const bool all_done = std::all_of(children.begin(), children.end(),
                                      [](const Child& c) { return c.exited && c.eof; });
    if (all_done) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return fail(absl::DeadlineExceededError(absl::StrCat("ranks still running after ", timeout.count(), " s")));
    }
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t r = 0; r < children.size(); ++r) {
      if (!children[r].eof) {
        fds.push_back(pollfd{children[r].out_fd, POLLIN, 0});
        which.push_back(r);
      }
    }
    // Short timeout: exits are noticed by polling waitpid above.
    const int n = poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n < 0 && errno != EINTR) return fail(absl::InternalError(absl::StrCat("poll: ", std::strerror(errno))));
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Child& c = children[which[k]];
      char buf[4096];
      const ssize_t got = read(c.out_fd, buf, sizeof(buf));
      if (got <= 0) {
        c.eof = true;
      } else {
        c.buffer.append(buf, static_cast<size_t>(got));
      }
    }
  }

  std::vector<nlohmann::json> results(children.size());
  for (size_t r = 0; r < children.size(); ++r) {
    Child& c = children[r];
    close(c.out_fd);
    c.out_fd = -1;
    bool found = false;
    size_t start = 0;
    while (start < c.buffer.size()) {
      size_t end = c.buffer.find('\n', start);
      if (end == std::string::npos) end = c.buffer.size();
      const std::string line = c.buffer.substr(start, end - start);
      start = end + 1;
      if (line.rfind(kResultPrefix, 0) == 0) {
        results[r] = nlohmann::json::parse(line.substr(std::strlen(kResultPrefix)), nullptr, false);
        found = !results[r].is_discarded();
      } else if (!line.empty()) {
        std::fprintf(stderr, "[rank %zu] %s\n", r, line.c_str());
      }
    }
    if (!found) return absl::InternalError(absl::StrCat("rank ", r, " printed no result line"));
  }
  return results;
}

// Median of `v` (0 when empty).
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace dfv::bench

#endif  // DFV_BENCH_LAUNCH_H_
