#include "tests/integration/cluster.h"

#include <signal.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace dfv::testing {
namespace {

void Stop(daemon::Subprocess& process) {
  process.Signal(SIGTERM);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!process.TryWait().has_value() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  if (!process.TryWait().has_value()) {
    ADD_FAILURE() << "process " << process.pid() << " ignored SIGTERM for 10 s";
    process.Signal(SIGKILL);
  }
  process.Wait();
}

}  // namespace

Cluster::Cluster(const std::string& name, ClusterOptions options) : options_(std::move(options)) {
  dir_ = (std::filesystem::path(::testing::TempDir()) / "dfv_integration" / name).string();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

Cluster::~Cluster() {
  for (auto& [name, worker] : workers_) {
    if (worker) Stop(*worker);
  }
  if (coordinator_) Stop(*coordinator_);
}

std::string Cluster::Log(const std::string& process) const {
  auto text = ReadFileToString(absl::StrCat(dir_, "/", process, ".log"));
  return text.ok() ? *text : std::string(text.status().message());
}

absl::StatusOr<std::string> Cluster::WaitForReadyFile(const std::string& path, daemon::Subprocess& process,
                                                      const std::string& what) {
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (std::filesystem::exists(path)) {
      auto text = ReadFileToString(path);
      if (text.ok()) {
        std::string first = text->substr(0, text->find('\n'));
        if (!first.empty()) return first;
      }
    }
    if (auto exit = process.TryWait()) {
      return absl::InternalError(absl::StrCat(what, " exited early: ", daemon::DescribeExit(*exit), "\n", Log(what)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(what, " wrote no ready file in 30 s\n", Log(what)));
}

absl::Status Cluster::StartCoordinator(const std::vector<std::string>& extra_args) {
  return SpawnCoordinator(options_.coordinator_listen, extra_args);
}

void Cluster::KillCoordinator() {
  if (!coordinator_) return;
  coordinator_->Signal(SIGKILL);
  coordinator_->Wait();
  coordinator_.reset();
}

absl::Status Cluster::RestartCoordinator(const std::vector<std::string>& extra_args) {
  if (coordinator_) return absl::FailedPreconditionError("the coordinator still runs");
  std::error_code ec;
  std::filesystem::remove(absl::StrCat(dir_, "/coordinator.ready"), ec);
  return SpawnCoordinator(coordinator_address_, extra_args);
}

absl::Status Cluster::SpawnCoordinator(const std::string& listen, const std::vector<std::string>& extra_args) {
  const std::string ready = absl::StrCat(dir_, "/coordinator.ready");
  daemon::SpawnOptions options;
  options.argv = {DFV_COORDINATOR_BINARY, "--listen",    listen, "--data-dir",
                  dir_ + "/coordinator-data",   "--ready-file", ready,        "--log-level", "debug"};
  options.argv.insert(options.argv.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
  options.argv.insert(options.argv.end(), extra_args.begin(), extra_args.end());
  options.argv = Launch("coordinator", std::move(options.argv));
  options.stderr_path = dir_ + "/coordinator.log";
  auto process = daemon::Subprocess::Spawn(options);
  if (!process.ok()) return process.status();
  coordinator_ = std::move(process).value();
  auto address = WaitForReadyFile(ready, *coordinator_, "coordinator");
  if (!address.ok()) return address.status();
  coordinator_address_ = *address;
  return absl::OkStatus();
}

absl::Status Cluster::StartWorker(const std::string& name, int slots, const std::vector<std::string>& extra_args) {
  const std::string ready = absl::StrCat(dir_, "/", name, ".ready");
  daemon::SpawnOptions options;
  const std::string listen = options_.worker_listen ? options_.worker_listen(name) : "127.0.0.1:0";
  options.argv = {DFV_WORKER_BINARY, "--coordinator", coordinator_address_, "--listen", listen,
                  "--name", name, "--slots", std::to_string(slots), "--work-dir", dir_ + "/" + name + "-work",
                  "--ready-file", ready, "--log-level", "debug"};
  if (options_.worker_args) {
    const std::vector<std::string> common = options_.worker_args(name);
    options.argv.insert(options.argv.end(), common.begin(), common.end());
  }
  options.argv.insert(options.argv.end(), extra_args.begin(), extra_args.end());
  options.argv = Launch(name, std::move(options.argv));
  options.stderr_path = absl::StrCat(dir_, "/", name, ".log");
  auto process = daemon::Subprocess::Spawn(options);
  if (!process.ok()) return process.status();
  daemon::Subprocess& worker = **process;
  workers_[name] = std::move(process).value();
  return WaitForReadyFile(ready, worker, name).status();
}

void Cluster::KillWorker(const std::string& name) {
  auto it = workers_.find(name);
  if (it == workers_.end()) return;
  it->second->Signal(SIGKILL);
  it->second->Wait();
  workers_.erase(it);
}

void Cluster::SignalWorker(const std::string& name, int sig) {
  auto it = workers_.find(name);
  if (it != workers_.end()) it->second->Signal(sig);
}

std::vector<std::string> Cluster::Launch(const std::string& process, std::vector<std::string> argv) const {
  return options_.launch ? options_.launch(process, std::move(argv)) : argv;
}

CommandResult Cluster::Dfvctl(const std::vector<std::string>& args, absl::Duration timeout) {
  return DfvctlWith(options_.dfvctl_args, args, timeout);
}

CommandResult Cluster::DfvctlWith(const std::vector<std::string>& global_args, const std::vector<std::string>& args,
                                  absl::Duration timeout) {
  std::vector<std::string> argv = {DFVCTL_BINARY, "--coordinator", coordinator_address_};
  argv.insert(argv.end(), global_args.begin(), global_args.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return Run("dfvctl", std::move(argv), timeout);
}

CommandResult Cluster::Run(const std::string& process, std::vector<std::string> argv, absl::Duration timeout) {
  static std::atomic<int> counter{0};  // Run may be called from several threads
  const std::string err_path = absl::StrCat(dir_, "/", process, "-", ++counter, ".err");
  const std::string what = argv.size() > 1 ? absl::StrCat(argv[0], " ", argv[1]) : argv[0];
  daemon::SpawnOptions options;
  options.argv = Launch(process, std::move(argv));
  options.stderr_path = err_path;
  CommandResult result;
  auto spawned = daemon::Subprocess::Spawn(options);
  if (!spawned.ok()) {
    result.err = std::string(spawned.status().message());
    return result;
  }
  absl::Time deadline = absl::Now() + timeout;
  bool eof = false;
  while (!eof && absl::Now() < deadline) {
    auto chunk = (*spawned)->ReadStdout(absl::Milliseconds(200), &eof);
    if (!chunk.ok()) break;
    result.out += *chunk;
  }
  if (!eof) {
    ADD_FAILURE() << what << " ran past " << timeout;
    (*spawned)->Signal(SIGKILL);
  }
  daemon::ExitStatus exit = (*spawned)->Wait();
  result.exit_code = exit.exited ? exit.code : 128 + exit.signal;
  auto err = ReadFileToString(err_path);
  if (err.ok()) result.err = *err;
  return result;
}

std::string Cluster::WriteJob(const std::string& file_name, const std::string& yaml) {
  const std::string path = absl::StrCat(dir_, "/", file_name);
  EXPECT_TRUE(WriteFileAtomically(path, yaml).ok());
  return path;
}

std::string Cluster::MetricsAddress(const std::string& daemon) const {
  absl::StatusOr<std::string> text = ReadFileToString(absl::StrCat(dir_, "/", daemon, ".ready"));
  if (!text.ok()) return "";
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "metrics ")) return std::string(line);
  }
  return "";
}

std::string SmallJob(const std::string& name, const std::string& model, int max_steps, int priority) {
  return absl::StrFormat(R"(name: %s
model: %s
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 512, sprites_test: 64, seed: 3}
train: {epochs: 1000, max_steps: %d, batch_size: 16, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 10}
checkpoint: {every_steps: 20, keep_last: 2}
samples: {every_steps: 20}
priority: %d
)",
                         name, model, max_steps, priority);
}

std::vector<v1::JobEvent> ParseEvents(const std::string& out) {
  std::vector<v1::JobEvent> events;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    events.push_back(FromJson<v1::JobEvent>(std::string(line)));
  }
  return events;
}

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string Submit(Cluster& cluster, const std::string& file, const std::string& yaml,
                   const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"submit", cluster.WriteJob(file, yaml)};
  args.insert(args.end(), extra.begin(), extra.end());
  CommandResult r = cluster.Dfvctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string id = Trim(r.out);
  EXPECT_FALSE(id.empty());
  EXPECT_EQ(id.find('\n'), std::string::npos) << "submit must print the id alone: " << r.out;
  return id;
}

v1::Job GetJob(Cluster& cluster, const std::string& id) {
  CommandResult r = cluster.Dfvctl({"get", id, "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return FromJson<v1::Job>(r.out);
}

absl::StatusOr<absl::Duration> WaitForState(Cluster& cluster, const std::string& id, v1::JobState state,
                                            absl::Duration timeout) {
  absl::Time start = absl::Now();
  v1::Job job;
  while (absl::Now() - start < timeout) {
    job = GetJob(cluster, id);
    if (job.state() == state) return absl::Now() - start;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat(id, " still ", v1::JobState_Name(job.state()), " (reason: ",
                                                  job.reason(), ") after ", absl::FormatDuration(timeout)));
}

bool WaitForCheckpoint(Cluster& cluster, const std::string& id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    CommandResult r = cluster.Dfvctl({"artifacts", id, "-o", "json"});
    const auto listed = FromJson<v1::ListArtifactsResponse>(r.out);
    for (const auto& a : listed.artifacts()) {
      if (a.kind() == v1::CHECKPOINT) return true;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return false;
}

std::vector<v1::WorkerInfo> Workers(Cluster& cluster) {
  CommandResult r = cluster.Dfvctl({"workers", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  v1::ListWorkersResponse response = FromJson<v1::ListWorkersResponse>(r.out);
  return {response.workers().begin(), response.workers().end()};
}

pid_t TrainerPid(const std::string& log) {
  const std::string marker = "trainer pid ";
  size_t at = log.find(marker);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(log.substr(at + marker.size())));
}

}  // namespace dfv::testing
