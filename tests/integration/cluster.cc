#include "tests/integration/cluster.h"

#include <signal.h>

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

Cluster::Cluster(const std::string& name) {
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
  const std::string ready = absl::StrCat(dir_, "/coordinator.ready");
  daemon::SpawnOptions options;
  options.argv = {DFV_COORDINATOR_BINARY, "--listen", "127.0.0.1:0", "--data-dir", dir_ + "/coordinator-data",
                  "--ready-file", ready, "--log-level", "debug"};
  options.argv.insert(options.argv.end(), extra_args.begin(), extra_args.end());
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
  options.argv = {DFV_WORKER_BINARY, "--coordinator", coordinator_address_, "--listen", "127.0.0.1:0",
                  "--name", name, "--slots", std::to_string(slots), "--work-dir", dir_ + "/" + name + "-work",
                  "--ready-file", ready, "--log-level", "debug"};
  options.argv.insert(options.argv.end(), extra_args.begin(), extra_args.end());
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

CommandResult Cluster::Dfvctl(const std::vector<std::string>& args, absl::Duration timeout) {
  static int counter = 0;
  const std::string err_path = absl::StrCat(dir_, "/dfvctl-", ++counter, ".err");
  daemon::SpawnOptions options;
  options.argv = {DFVCTL_BINARY, "--coordinator", coordinator_address_};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.argv.insert(options.argv.end(), dfvctl_args_.begin(), dfvctl_args_.end());
  options.stderr_path = err_path;
  CommandResult result;
  auto process = daemon::Subprocess::Spawn(options);
  if (!process.ok()) {
    result.err = std::string(process.status().message());
    return result;
  }
  absl::Time deadline = absl::Now() + timeout;
  bool eof = false;
  while (!eof && absl::Now() < deadline) {
    auto chunk = (*process)->ReadStdout(absl::Milliseconds(200), &eof);
    if (!chunk.ok()) break;
    result.out += *chunk;
  }
  if (!eof) {
    ADD_FAILURE() << "dfvctl " << args[0] << " ran past " << timeout;
    (*process)->Signal(SIGKILL);
  }
  daemon::ExitStatus exit = (*process)->Wait();
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

}  // namespace dfv::testing
