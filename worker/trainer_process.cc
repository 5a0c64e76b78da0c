#include "worker/trainer_process.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/jobspec/parse.h"
#include "common/status_macros.h"
#include "worker/daemon/trainer_protocol.h"
#include "worker/dist/reducer.h"
#include "worker/dist/rendezvous.h"
#include "worker/train/trainer.h"

namespace dfv::worker {
namespace {

// Writes every observation as one protocol line, flushed at once so the
// daemon sees it while training goes on.
class LineObserver : public train::TrainingObserver {
 public:
  explicit LineObserver(std::FILE* out) : out_(out) {}

  void Write(const std::string& line) {
    std::fputs(line.c_str(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  void OnMetrics(int64_t step, int64_t epoch, const models::Metrics& metrics) override {
    Write(daemon::EncodeMetrics(step, epoch, metrics));
  }
  void OnProgress(const train::Progress& p) override {
    v1::Progress progress;
    progress.set_step(p.step);
    progress.set_total_steps(p.total_steps);
    progress.set_epoch(p.epoch);
    progress.set_samples_per_second(p.samples_per_second);
    progress.set_eta_seconds(p.eta_seconds);
    Write(daemon::EncodeProgress(progress));
  }
  void OnArtifact(train::ArtifactKind kind, const std::string& relative_path, int64_t step) override {
    Write(daemon::EncodeArtifact(train::ArtifactKindName(kind), relative_path, step));
  }
  void OnMessage(const std::string& message) override { Write(daemon::EncodeMessage(message)); }

 private:
  std::FILE* out_;
};

absl::Status Train(const TrainerProcessOptions& options, LineObserver& observer, const std::atomic<bool>* cancel) {
  DFV_ASSIGN_OR_RETURN(jobspec::JobSpec spec, jobspec::LoadJobSpecFile(options.job_file, {}));
  train::TrainerOptions trainer_options;
  trainer_options.spec = spec;
  trainer_options.out_dir = options.out_dir;
  trainer_options.resume_from = options.resume_from;
  trainer_options.rank = options.rank;
  trainer_options.world_size = options.world_size;
  trainer_options.observer = &observer;
  trainer_options.cancel = cancel;

  // Data-parallel: meet the other ranks first (rank 0 announces the address
  // its store listens on; the daemon relays it to the others).
  std::optional<dist::ProcessGroup> group;
  std::unique_ptr<dist::GradientReducer> reducer;
  if (options.world_size > 1) {
    if (options.rendezvous.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank ", options.rank, " of ", options.world_size, " needs --rendezvous HOST:PORT"));
    }
    dist::RendezvousOptions rendezvous;
    rendezvous.address = options.rendezvous;
    rendezvous.rank = options.rank;
    rendezvous.world_size = options.world_size;
    rendezvous.timeout = std::chrono::seconds(spec.resources.rendezvous_timeout_seconds);
    rendezvous.backend = spec.resources.device == "cuda" ? "nccl" : "gloo";
    rendezvous.on_listening = [&observer](const std::string& address) {
      observer.Write(daemon::EncodeRendezvous(address));
    };
    DFV_ASSIGN_OR_RETURN(dist::ProcessGroup joined, dist::Rendezvous(rendezvous));
    group.emplace(std::move(joined));
    dist::ReducerOptions reducer_options;
    reducer_options.bucket_bytes = spec.resources.bucket_mb << 20;
    reducer = std::make_unique<dist::GradientReducer>(*group->communicator, reducer_options);
    trainer_options.gradient_sync = reducer.get();
    std::string threads;
    if (spec.train.threads == 0 && group->local_world_size > 1) {
      // Ranks on one host share its cores: more threads than cores in all
      // makes lockstep ranks wait on each other's descheduled threads.
      trainer_options.default_threads = std::max(1, torch::get_num_threads() / group->local_world_size);
      threads = absl::StrCat("; ", group->local_world_size, " ranks on this host, ",
                             trainer_options.default_threads, " intra-op thread(s) each");
    }
    observer.OnMessage(absl::StrCat("rank ", options.rank, " of ", options.world_size, " joined over ",
                                    group->communicator->backend(), " at ", options.rendezvous, threads));
  }

  DFV_ASSIGN_OR_RETURN(auto trainer, train::Trainer::Create(std::move(trainer_options)));
  observer.Write(daemon::EncodeStarted(trainer->start_step(), trainer->total_steps()));
  DFV_ASSIGN_OR_RETURN(train::RunSummary summary, trainer->Run());
  observer.Write(daemon::EncodeFinished(summary.steps));
  return absl::OkStatus();
}

}  // namespace

absl::Status RunTrainerProcess(const TrainerProcessOptions& options, std::FILE* out,
                               const std::atomic<bool>* cancel) {
  LineObserver observer(out);
  absl::Status status = Train(options, observer, cancel);
  if (!status.ok()) observer.Write(daemon::EncodeError(status));
  return status;
}

}  // namespace dfv::worker
