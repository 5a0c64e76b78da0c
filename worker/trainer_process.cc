#include "worker/trainer_process.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/jobspec/parse.h"
#include "common/status_macros.h"
#include "worker/data/dataset.h"
#include "worker/dist/reducer.h"
#include "worker/dist/rendezvous.h"
#include "worker/protocol/trainer_report.h"
#include "worker/train/trainer.h"

namespace dfv::worker {
namespace {

// Writes every report as one line, flushed at once so the daemon sees it
// while training goes on.
class LineObserver : public train::TrainingObserver {
 public:
  explicit LineObserver(std::FILE* out) : out_(out) {}

  void OnReport(const v1::TrainerReport& report) override {
    const std::string line = protocol::EncodeReport(report);
    std::fputs(line.c_str(), out_);
    std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
};

absl::Status Train(const TrainerProcessOptions& options, LineObserver& observer, const std::atomic<bool>* cancel) {
  DFV_ASSIGN_OR_RETURN(jobspec::JobSpec spec, jobspec::LoadJobSpecFile(options.job_file, {}));
  if (!options.data_roots.empty()) DFV_RETURN_IF_ERROR(data::CheckDatasetUnderRoots(spec.dataset, options.data_roots));
  train::TrainerOptions trainer_options;
  trainer_options.spec = spec;
  trainer_options.out_dir = options.out_dir;
  trainer_options.resume_from = options.resume_from;
  trainer_options.rank = options.rank;
  trainer_options.world_size = options.world_size;
  trainer_options.observer = &observer;
  trainer_options.cancel = cancel;
  trainer_options.core_share = options.core_share;

  // Data-parallel: meet the other ranks first (rank 0 announces the address
  // its store listens on; the daemon relays it to the others).
  std::optional<dist::ProcessGroup> group;
  std::unique_ptr<dist::GradientReducer> reducer;
  if (options.world_size > 1) {
    if (options.rendezvous.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank ", options.rank, " of ", options.world_size, " needs --rendezvous HOST:PORT"));
    }
    if (options.rendezvous_secret.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("rank ", options.rank, " of ", options.world_size,
                                                     " needs the attempt's rendezvous secret (DFV_RENDEZVOUS_SECRET)"));
    }
    dist::RendezvousOptions rendezvous;
    rendezvous.address = options.rendezvous;
    rendezvous.secret = options.rendezvous_secret;
    rendezvous.data_plane_address = options.data_plane_address;
    rendezvous.rank = options.rank;
    rendezvous.world_size = options.world_size;
    rendezvous.timeout = std::chrono::seconds(spec.resources.rendezvous_timeout_seconds);
    rendezvous.backend = spec.resources.device == "cuda" ? "nccl" : "gloo";
    rendezvous.on_listening = [&observer](const std::string& address) {
      v1::TrainerReport report;
      report.mutable_rendezvous()->set_address(address);
      observer.OnReport(report);
    };
    DFV_ASSIGN_OR_RETURN(dist::ProcessGroup joined, dist::Rendezvous(rendezvous));
    group.emplace(std::move(joined));
    dist::ReducerOptions reducer_options;
    reducer_options.bucket_bytes = spec.resources.bucket_mb << 20;
    reducer = std::make_unique<dist::GradientReducer>(*group->communicator, reducer_options);
    trainer_options.gradient_sync = reducer.get();
    trainer_options.ranks_on_host = group->local_world_size;
    std::string joined_text = absl::StrCat(
        "rank ", options.rank, " of ", options.world_size, " joined over ", group->communicator->backend(), " at ",
        options.rendezvous, "; ", group->local_world_size, group->local_world_size == 1 ? " rank" : " ranks",
        " on this host, ", options.world_size - group->local_world_size, " elsewhere");
    if (!group->transport_note.empty()) absl::StrAppend(&joined_text, " (", group->transport_note, ")");
    v1::TrainerReport joined_report;
    joined_report.mutable_message()->set_text(joined_text);
    observer.OnReport(joined_report);
  }

  DFV_ASSIGN_OR_RETURN(auto trainer, train::Trainer::Create(std::move(trainer_options)));
  v1::TrainerReport started;
  started.mutable_started()->set_step(trainer->start_step());
  started.mutable_started()->set_total_steps(trainer->total_steps());
  observer.OnReport(started);
  DFV_ASSIGN_OR_RETURN(train::RunSummary summary, trainer->Run());
  v1::TrainerReport finished;
  finished.mutable_finished()->set_steps(summary.steps);
  observer.OnReport(finished);
  return absl::OkStatus();
}

}  // namespace

absl::Status RunTrainerProcess(const TrainerProcessOptions& options, std::FILE* out,
                               const std::atomic<bool>* cancel) {
  LineObserver observer(out);
  absl::Status status = Train(options, observer, cancel);
  if (!status.ok()) observer.OnReport(protocol::ErrorReport(status));
  return status;
}

}  // namespace dfv::worker
