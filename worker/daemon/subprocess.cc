#include "worker/daemon/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/cpu_cores.h"

extern char** environ;

namespace dfv::daemon {
namespace {

absl::Status Errno(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

// posix_spawn resources released on every path.
struct SpawnState {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnState() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnState() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

std::string DescribeExit(const ExitStatus& status) {
  if (status.exited) return absl::StrCat("exit status ", status.code);
  return absl::StrCat("killed by signal ", status.signal, " (", strsignal(status.signal), ")");
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("Subprocess::Spawn: empty argv");
  int fds[2];
  // O_CLOEXEC: other children spawned concurrently must not inherit this pipe,
  // or our reader would never see EOF.
  if (pipe2(fds, O_CLOEXEC) != 0) return Errno("pipe", errno);
  const int read_end = fds[0], write_end = fds[1];

  int stdin_ends[2] = {-1, -1};  // [0] the parent's, [1] the child's
  if (options.stdin_pipe && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stdin_ends) != 0) {
    const int err = errno;
    close(read_end);
    close(write_end);
    return Errno("socketpair", err);
  }
  SpawnState st;
  posix_spawn_file_actions_adddup2(&st.actions, write_end, STDOUT_FILENO);
  if (options.stdin_pipe) {
    posix_spawn_file_actions_adddup2(&st.actions, stdin_ends[1], STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&st.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  if (!options.stderr_path.empty()) {
    posix_spawn_file_actions_addopen(&st.actions, STDERR_FILENO, options.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&st.actions, options.working_dir.c_str());
  }
  // Own process group (so a cancel reaches everything the trainer starts),
  // default signal handling and an empty mask whatever the daemon set up:
  // in particular SIGPIPE kills the trainer if the daemon dies.
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&st.attr, &empty);
  posix_spawnattr_setsigdefault(&st.attr, &defaults);
  posix_spawnattr_setpgroup(&st.attr, 0);
  posix_spawnattr_setflags(&st.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  // The parent's environment, less the names `env` sets, then `env`.
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const std::string& set : options.env) replaced |= set.compare(0, set.find('='), name) == 0;
    if (!replaced) envp.push_back(*e);
  }
  for (const std::string& set : options.env) envp.push_back(const_cast<char*>(set.c_str()));
  envp.push_back(nullptr);

  // posix_spawn has no affinity attribute; the child inherits the spawning
  // thread's mask, so narrow this thread's for the call. Setting it on the
  // child after the spawn would race with the threads it starts.
  std::vector<int> restore;
  if (!options.cpus.empty()) {
    restore = AffinityCpus();
    if (absl::Status pinned = SetThreadAffinity(options.cpus); !pinned.ok()) {
      close(read_end);
      close(write_end);
      for (int fd : stdin_ends) {
        if (fd >= 0) close(fd);
      }
      return pinned;
    }
  }
  pid_t pid = -1;
  int err = posix_spawn(&pid, argv[0], &st.actions, &st.attr, argv.data(), envp.data());
  if (!restore.empty()) SetThreadAffinity(restore).IgnoreError();  // a mask this thread had: cannot fail
  close(write_end);
  if (stdin_ends[1] >= 0) close(stdin_ends[1]);
  if (err != 0) {
    close(read_end);
    if (stdin_ends[0] >= 0) close(stdin_ends[0]);
    return Errno(absl::StrCat("cannot start ", options.argv[0]), err);
  }
  auto child = std::unique_ptr<Subprocess>(new Subprocess());
  child->pid_ = pid;
  child->stdout_fd_ = read_end;
  child->stdin_fd_ = stdin_ends[0];
  return child;
}

absl::Status Subprocess::WriteStdin(std::string_view data) {
  if (stdin_fd_ < 0) return absl::FailedPreconditionError("the child has no stdin to write to");
  while (!data.empty()) {
    const ssize_t n = send(stdin_fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("writing to the child's stdin", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

void Subprocess::CloseStdin() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  stdin_fd_ = -1;
}

Subprocess::~Subprocess() {
  if (!exit_.has_value() && pid_ > 0) {
    Signal(SIGKILL);
    Wait();
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  CloseStdin();
}

absl::StatusOr<std::string> Subprocess::ReadStdout(absl::Duration timeout, bool* eof) {
  *eof = false;
  if (stdout_fd_ < 0) {
    *eof = true;
    return std::string();
  }
  pollfd pfd{stdout_fd_, POLLIN, 0};
  int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  int ready = poll(&pfd, 1, timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return std::string();
    return Errno("poll on trainer stdout", errno);
  }
  if (ready == 0) return std::string();
  char buffer[65536];
  ssize_t n = read(stdout_fd_, buffer, sizeof(buffer));
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return std::string();
    return Errno("read from trainer stdout", errno);
  }
  if (n == 0) {
    close(stdout_fd_);
    stdout_fd_ = -1;
    *eof = true;
    return std::string();
  }
  return std::string(buffer, static_cast<size_t>(n));
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0 && !exit_.has_value()) kill(-pid_, sig);
}

std::optional<ExitStatus> Subprocess::TryWait() {
  if (exit_.has_value()) return exit_;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exit_ = FromWaitStatus(status);
  return exit_;
}

ExitStatus Subprocess::Wait() {
  if (exit_.has_value()) return *exit_;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) {
      // Already reaped elsewhere (should not happen): report it as unknown.
      exit_ = ExitStatus{false, 0, 0};
      return *exit_;
    }
  }
  exit_ = FromWaitStatus(status);
  // Leave nothing of its group behind (a trainer's own children).
  kill(-pid_, SIGKILL);
  return *exit_;
}

}  // namespace dfv::daemon
