// dfv-trainer: the program that trains (LibTorch lives here, not in the
// daemon).
//   dfv-trainer train JOB.yaml [--out DIR] [--resume CKPT] [--set k=v]...
//                          [--data-root DIR]... [--trace FILE [--trace-steps N]]
//                            train one job in this process (no coordinator);
//                            the data set is read wherever it is unless
//                            --data-root names the folders it must lie under
//   dfv-trainer assignment --job F --out DIR [--rank R --world-size N
//                          --rendezvous HOST:PORT [--data-plane-address HOST]]
//                          [--resume CKPT] [--data-root DIR]...
//                            one assignment's rank: what a worker daemon starts;
//                            a multi-rank one reads its attempt's rendezvous
//                            secret from $DFV_RENDEZVOUS_SECRET
//   dfv-trainer assignment --prestarted
//                            started ahead by a worker daemon: waits for one
//                            line on stdin (v1::PrestartedAssignment: the
//                            flags above, environment entries), then runs it
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/malloc_tuning.h"
#include "common/text.h"
#include "worker/local_run.h"
#include "worker/protocol/trainer_report.h"
#include "worker/trainer_process.h"

namespace {

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", what, std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Set from the signal handler; the trainer checks it between steps.
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "used from a signal handler");

void OnStopSignal(int) { g_cancel.store(true); }

int RunAssignment(const dfv::worker::TrainerProcessOptions& options) {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  absl::Status status = dfv::worker::RunTrainerProcess(options, stdout, &g_cancel);
  if (status.ok()) return 0;
  std::fprintf(stderr, "dfv-trainer assignment: %s\n", std::string(status.message()).c_str());
  return absl::IsCancelled(status) ? 3 : 1;
}

int TrainLocally(dfv::worker::LocalRunOptions options) {
  options.interactive = ::isatty(STDERR_FILENO) != 0;
  auto result = dfv::worker::RunLocal(options);
  if (!result.ok()) return Fail("dfv-trainer", result.status());
  const dfv::train::RunSummary& summary = result->summary;
  std::fprintf(stderr, "done: %lld steps in %s", static_cast<long long>(summary.steps),
               dfv::FormatDuration(summary.wall_seconds).c_str());
  if (summary.step_seconds > 0) {
    std::fprintf(stderr, " (waiting for data: %.2f%% of step time)",
                 100.0 * summary.data_wait_seconds / summary.step_seconds);
  }
  std::fprintf(stderr, "\n");
  for (const auto& [name, value] : summary.final_metrics) {
    std::fprintf(stderr, "  %-16s %.6g\n", name.c_str(), value);
  }
  std::printf("%s\n", result->out_dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A step's activations and gradients are freed and allocated again every
  // step: keep blocks up to 256 MiB in the heap, and up to 1 GiB of freed
  // memory at its top, instead of faulting fresh pages in each time
  // (common/malloc_tuning.h; a third of cycle_vae's step time here).
  if (absl::Status kept = dfv::KeepFreedMemoryAsTheTrainer(); !kept.ok()) {
    return Fail("dfv-trainer", kept);
  }
  CLI::App app{"dfv-trainer: trains one dfv job, alone (train) or as a worker daemon's assignment."};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  dfv::worker::LocalRunOptions local;
  auto* train = app.add_subcommand("train", "train a job file in this process, without a coordinator");
  train->add_option("job", local.job_file, "job file (YAML)")->required()->check(CLI::ExistingFile);
  train->add_option("--out", local.out_dir, "run folder (default: a new folder under runs/)");
  train->add_option("--resume", local.resume_from, "checkpoint file or run folder to continue from");
  train->add_option("--set", local.overrides, "override a job field: key.path=value (repeatable)");
  train->add_option("--data-root", local.data_roots,
                    "read the data set only under this folder (repeatable; default: anywhere)");
  train->add_option("--trace", local.trace_path,
                    "write the initial weights and the first --trace-steps steps' batches and metrics to this "
                    "file (torch.load reads it; bench/reference/ replays it)");
  train->add_option("--trace-steps", local.trace_steps, "steps --trace records")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));

  dfv::worker::TrainerProcessOptions assignment_options;
  auto* assignment = app.add_subcommand("assignment", "one assignment's rank (started by a worker daemon)");
  // Required (checked below), except with --prestarted, which reads them.
  assignment->add_option("--job", assignment_options.job_file, "canonical job file (required)");
  assignment->add_option("--out", assignment_options.out_dir, "run folder (required)");
  assignment->add_option("--resume", assignment_options.resume_from, "checkpoint to resume from");
  assignment->add_option("--rank", assignment_options.rank, "this rank");
  assignment->add_option("--world-size", assignment_options.world_size, "number of ranks");
  assignment->add_option("--rendezvous", assignment_options.rendezvous, "rank 0's HOST:PORT");
  assignment->add_option("--data-plane-address", assignment_options.data_plane_address,
                         "this host's address for Gloo and the published rendezvous");
  assignment->add_option("--data-root", assignment_options.data_roots,
                         "read the data set only under this folder (repeatable; default: anywhere)");
  assignment->add_option("--core-share", assignment_options.core_share,
                         "the daemon pinned this process to its slot's cores (e.g. 'slot 2 of 2'): "
                         "train.threads 0 uses all of them");

  bool prestarted = false;
  assignment->add_flag("--prestarted", prestarted,
                       "wait for the assignment's flags on stdin (one line from the worker daemon, which "
                       "started this process ahead of time)");

  CLI11_PARSE(app, argc, argv);

  if (*assignment && prestarted) {
    // Everything until here (loading LibTorch above all) happened before the
    // assignment existed; the daemon now sends it.
    std::string line;
    if (!std::getline(std::cin, line)) return 0;  // the daemon stopped without using this process
    auto handed = dfv::protocol::DecodePrestartedAssignment(line);
    if (!handed.ok()) return Fail("dfv-trainer assignment --prestarted", handed.status());
    for (const std::string& entry : handed->env()) {
      const size_t eq = entry.find('=');
      ::setenv(entry.substr(0, eq).c_str(), entry.substr(eq + 1).c_str(), 1);
    }
    // CLI11 takes the arguments last first.
    std::vector<std::string> args(handed->args().rbegin(), handed->args().rend());
    args.push_back("assignment");
    try {
      app.clear();
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
  }
  if (*assignment && (assignment_options.job_file.empty() || assignment_options.out_dir.empty())) {
    std::fprintf(stderr, "dfv-trainer assignment: --job and --out are required\n");
    return 2;
  }

  if (*assignment) {
    dfv::InitLogging("dfv-trainer", log_level);
    if (const char* secret = std::getenv(dfv::protocol::kRendezvousSecretEnv)) {
      assignment_options.rendezvous_secret = secret;
      // Not passed on to anything this process starts.
      ::unsetenv(dfv::protocol::kRendezvousSecretEnv);
    }
    return RunAssignment(assignment_options);
  }
  // A local run prints its own progress; keep library logs to warnings.
  dfv::InitLogging("dfv-trainer", app.count("--log-level") ? log_level : "warn");
  return TrainLocally(std::move(local));
}
