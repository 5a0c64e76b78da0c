// Real dfv processes for the end-to-end tests: a coordinator and worker
// daemons started from the built binaries with port 0 (by default on
// loopback), their addresses read from ready files, and dfvctl run as a
// command; and the dfvctl queries the tests share (GetJob, WaitForState...).
// ClusterOptions run them elsewhere: in network namespaces (NetnsLab), with
// TLS and tokens. Everything is stopped (SIGTERM, then SIGKILL) when the
// Cluster is destroyed.
#ifndef DFV_TESTS_INTEGRATION_CLUSTER_H_
#define DFV_TESTS_INTEGRATION_CLUSTER_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "google/protobuf/util/json_util.h"
#include "proto/dfv.pb.h"
#include "worker/daemon/subprocess.h"

namespace dfv::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

struct ClusterOptions {
  // Turns a process's command line into the one started: by default itself.
  // `process` is "coordinator", a worker's name or "dfvctl". E.g. NetnsLab's
  // Exec for the namespace that process runs in.
  std::function<std::vector<std::string>(const std::string& process, std::vector<std::string> argv)> launch;
  // The coordinator's --listen.
  std::string coordinator_listen = "127.0.0.1:0";
  // A worker's --listen (by worker name); default 127.0.0.1:0.
  std::function<std::string(const std::string& worker)> worker_listen;
  // Added to every coordinator / worker / dfvctl command line (e.g. TLS
  // flags, --token-file); Dfvctl's `global_args` replace dfvctl_args.
  std::vector<std::string> coordinator_args;
  std::function<std::vector<std::string>(const std::string& worker)> worker_args;
  std::vector<std::string> dfvctl_args;
};

class Cluster {
 public:
  // `name` names the test's folder under the test temp dir (wiped first).
  explicit Cluster(const std::string& name, ClusterOptions options = {});
  ~Cluster();

  // Starts the coordinator (with `extra_args` on its command line) and waits
  // for its ready file.
  absl::Status StartCoordinator(const std::vector<std::string>& extra_args = {});
  // SIGKILLs the coordinator (no chance to clean up, as in a crash).
  void KillCoordinator();
  // Starts a coordinator again on the same data folder and the address the
  // first one was bound to (with `extra_args`), and waits for its ready file.
  absl::Status RestartCoordinator(const std::vector<std::string>& extra_args = {});
  // Starts a worker daemon with `slots` slots (and `extra_args` on its
  // command line) and waits until it registered.
  absl::Status StartWorker(const std::string& name, int slots = 1, const std::vector<std::string>& extra_args = {});
  // SIGKILLs a worker daemon (its trainers die with their pipe).
  void KillWorker(const std::string& name);
  // Sends `sig` to the worker daemon `name` (SIGSTOP, SIGCONT, ...).
  void SignalWorker(const std::string& name, int sig);

  // Replaces the options' dfvctl_args for every later Dfvctl call (such as
  // --tls-ca).
  void set_dfvctl_args(std::vector<std::string> args) { options_.dfvctl_args = std::move(args); }

  // Runs dfvctl with --coordinator and the options' dfvctl_args; waits at
  // most `timeout`.
  CommandResult Dfvctl(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(120));
  // The same with `global_args` in place of the options' dfvctl_args.
  CommandResult DfvctlWith(const std::vector<std::string>& global_args, const std::vector<std::string>& args,
                           absl::Duration timeout = absl::Seconds(120));

  // Runs `argv` (argv[0] a program) to completion as `process` (which picks
  // the options' launch wrapper, e.g. the namespace), at most `timeout`.
  CommandResult Run(const std::string& process, std::vector<std::string> argv,
                    absl::Duration timeout = absl::Seconds(120));

  // Writes `yaml` into the test folder and returns its path.
  std::string WriteJob(const std::string& file_name, const std::string& yaml);

  const std::string& dir() const { return dir_; }
  const std::string& coordinator_address() const { return coordinator_address_; }

  // The /metrics HOST:PORT of a daemon ("coordinator" or a worker's name):
  // its ready file's "metrics HOST:PORT" line; empty when it has none.
  std::string MetricsAddress(const std::string& daemon) const;

  // The log of a daemon ("coordinator" or a worker's name), for failures.
  std::string Log(const std::string& process) const;

 private:
  absl::Status SpawnCoordinator(const std::string& listen, const std::vector<std::string>& extra_args);
  absl::StatusOr<std::string> WaitForReadyFile(const std::string& path, daemon::Subprocess& process,
                                               const std::string& what);

  std::vector<std::string> Launch(const std::string& process, std::vector<std::string> argv) const;

  ClusterOptions options_;
  std::string dir_;
  std::string coordinator_address_;
  std::unique_ptr<daemon::Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<daemon::Subprocess>> workers_;
};

// A small, fast sprites job (grey 28x28, one thread).
std::string SmallJob(const std::string& name, const std::string& model, int max_steps, int priority = 0);

// dfvctl's `-o json` output as a message (unknown fields ignored; a parse
// error fails the test).
template <typename Message>
Message FromJson(const std::string& text) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message, options);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in: " << text;
  return message;
}

// `dfvctl watch -o json` output: one event per line.
std::vector<v1::JobEvent> ParseEvents(const std::string& out);
std::string Trim(const std::string& s);

// Submits `yaml` (with `extra` dfvctl flags, e.g. --wait) and returns the
// job id printed on stdout.
std::string Submit(Cluster& cluster, const std::string& file, const std::string& yaml,
                   const std::vector<std::string>& extra = {});
v1::Job GetJob(Cluster& cluster, const std::string& id);
// Polls `get` until the job is in `state`; returns how long that took.
absl::StatusOr<absl::Duration> WaitForState(Cluster& cluster, const std::string& id, v1::JobState state,
                                            absl::Duration timeout);
// Whether a checkpoint of job `id` reached the coordinator within `timeout`.
bool WaitForCheckpoint(Cluster& cluster, const std::string& id, absl::Duration timeout);
std::vector<v1::WorkerInfo> Workers(Cluster& cluster);
// The trainer pid a worker daemon logged for its first assignment; -1 when
// none is logged.
pid_t TrainerPid(const std::string& log);

}  // namespace dfv::testing

#endif  // DFV_TESTS_INTEGRATION_CLUSTER_H_
