// A child process started with posix_spawn in its own process group, its
// stdout connected to a pipe the parent reads and its stderr appended to a
// file. Used to run each assignment's trainer, so that a crashing or hung
// trainer cannot take the worker daemon down with it.
//
// Thread-compatible: one owner thread calls every method.
#ifndef DFV_WORKER_DAEMON_SUBPROCESS_H_
#define DFV_WORKER_DAEMON_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dfv::daemon {

struct SpawnOptions {
  // argv[0] is the program's path (not searched in PATH).
  std::vector<std::string> argv;
  // The child's working directory; empty: the parent's.
  std::string working_dir;
  // The child's stderr is appended here; empty: inherited.
  std::string stderr_path;
  // NAME=VALUE entries set in the child's environment on top of (and in
  // place of the same names in) the parent's. The way to hand the child a
  // secret: unlike argv, /proc/PID/environ is readable only by its owner.
  std::vector<std::string> env;
  // The child's CPU affinity (CPU numbers); empty: the calling thread's. Set
  // on the calling thread around the spawn (the child inherits it from its
  // first instruction, before it can start threads) and restored after.
  std::vector<int> cpus;
  // Give the child a stdin the parent writes with WriteStdin (a socket pair,
  // so a write to a child that has exited fails with EPIPE instead of
  // raising SIGPIPE in the parent); false: /dev/null.
  bool stdin_pipe = false;
};

struct ExitStatus {
  bool exited = false;  // exited normally (then `code` is set)
  int code = 0;
  int signal = 0;       // the signal that killed it, when !exited
};

// "exit status 1", "killed by signal 9 (Killed)".
std::string DescribeExit(const ExitStatus& status);

class Subprocess {
 public:
  // Starts the child. INVALID_ARGUMENT for an empty argv; INTERNAL with
  // strerror when the pipe, the stderr file or the spawn fails.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Spawn(const SpawnOptions& options);

  // Kills the whole process group (SIGKILL) if the child still runs, and
  // reaps it; closes the pipe.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Reads what the child wrote to stdout, waiting at most `timeout`. Returns
  // the bytes read; an empty string with *eof == false means the timeout
  // passed; *eof == true once the child closed its stdout.
  absl::StatusOr<std::string> ReadStdout(absl::Duration timeout, bool* eof);

  // Writes all of `data` to the child's stdin (SpawnOptions::stdin_pipe).
  // FAILED_PRECONDITION without one (or after CloseStdin); INTERNAL with
  // strerror when the child does not take it (it exited: EPIPE).
  absl::Status WriteStdin(std::string_view data);
  // Closes the child's stdin (it reads end of file). No-op without one.
  void CloseStdin();

  // Sends `sig` to the child's process group (no-op once reaped).
  void Signal(int sig);

  // Reaps the child if it has exited; nullopt while it runs.
  std::optional<ExitStatus> TryWait();

  // Blocks until the child exits.
  ExitStatus Wait();

 private:
  Subprocess() = default;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stdin_fd_ = -1;  // the parent's end; -1 without one
  std::optional<ExitStatus> exit_;
};

}  // namespace dfv::daemon

#endif  // DFV_WORKER_DAEMON_SUBPROCESS_H_
