// Real dfv processes on loopback for the end-to-end tests: a coordinator and
// worker daemons started from the built binaries with port 0, their
// addresses read from ready files, and dfvctl run as a command. Everything is
// stopped (SIGTERM, then SIGKILL) when the Cluster is destroyed.
#ifndef DFV_TESTS_INTEGRATION_CLUSTER_H_
#define DFV_TESTS_INTEGRATION_CLUSTER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/daemon/subprocess.h"

namespace dfv::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

class Cluster {
 public:
  // `name` names the test's folder under the test temp dir (wiped first).
  explicit Cluster(const std::string& name);
  ~Cluster();

  // Starts the coordinator (with `extra_args` on its command line) and waits
  // for its ready file.
  absl::Status StartCoordinator(const std::vector<std::string>& extra_args = {});
  // Starts a worker daemon with `slots` slots (and `extra_args` on its
  // command line) and waits until it registered.
  absl::Status StartWorker(const std::string& name, int slots = 1, const std::vector<std::string>& extra_args = {});
  // SIGKILLs a worker daemon (its trainers die with their pipe).
  void KillWorker(const std::string& name);

  // Global flags every later Dfvctl call adds after its own arguments (such
  // as --tls-ca); none at first.
  void set_dfvctl_args(std::vector<std::string> args) { dfvctl_args_ = std::move(args); }

  // Runs dfvctl with --coordinator set; waits at most `timeout`.
  CommandResult Dfvctl(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(120));

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
  absl::StatusOr<std::string> WaitForReadyFile(const std::string& path, daemon::Subprocess& process,
                                               const std::string& what);

  std::string dir_;
  std::string coordinator_address_;
  std::vector<std::string> dfvctl_args_;
  std::unique_ptr<daemon::Subprocess> coordinator_;
  std::map<std::string, std::unique_ptr<daemon::Subprocess>> workers_;
};

// A small, fast sprites job (grey 28x28, one thread).
std::string SmallJob(const std::string& name, const std::string& model, int max_steps, int priority = 0);

}  // namespace dfv::testing

#endif  // DFV_TESTS_INTEGRATION_CLUSTER_H_
