#include "worker/train/trainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/png.h"
#include "common/raster.h"
#include "common/status_macros.h"
#include "worker/data/dataset.h"
#include "worker/data/tensor.h"
#include "worker/models/registry.h"
#include "proto/enums.h"
#include "worker/protocol/trainer_report.h"
#include "worker/train/checkpoint.h"
#include "worker/train/evaluation.h"
#include "worker/train/image_util.h"
#include "worker/train/metrics_log.h"
#include "worker/train/step_trace.h"

namespace dfv::train {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kGridImages = 32;
constexpr double kProgressIntervalSeconds = 1.0;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void AddMetricValues(const models::Metrics& metrics,
                     google::protobuf::RepeatedPtrField<v1::MetricValue>* values) {
  for (const auto& [name, value] : metrics) {
    v1::MetricValue* added = values->Add();
    added->set_name(name);
    added->set_value(value);
  }
}

void SetTrainMode(models::Model& model, bool on) {
  for (auto& [name, module] : model.Modules()) module->train(on);
}

// Running means of a model's metrics over one log window, in the model's order.
class MetricsWindow {
 public:
  void Add(const models::Metrics& metrics) {
    if (names_.empty()) {
      for (const auto& [name, value] : metrics) names_.push_back(name);
      sums_.assign(names_.size(), 0.0);
    }
    for (const auto& [name, value] : metrics) {
      for (size_t i = 0; i < names_.size(); ++i) {
        if (names_[i] == name) sums_[i] += value;
      }
    }
    ++count_;
  }
  models::Metrics Means() const {
    models::Metrics out;
    for (size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], count_ ? sums_[i] / count_ : 0.0);
    return out;
  }
  int64_t count() const { return count_; }
  void Reset() {
    std::fill(sums_.begin(), sums_.end(), 0.0);
    count_ = 0;
  }

 private:
  std::vector<std::string> names_;
  std::vector<double> sums_;
  int64_t count_ = 0;
};

// One log row for the whole job: every model metric averaged over the ranks
// (each rank saw its own shard), then the mean step time and all-reduce wait,
// then each rank's own. One collective, made by every rank at the same steps.
absl::StatusOr<models::Metrics> AcrossRanks(step::GradientSync& sync, models::Metrics row, double step_seconds,
                                            double allreduce_seconds, int rank, int world) {
  std::vector<double> values;
  for (const auto& [name, value] : row) values.push_back(value);
  const size_t per_rank_at = values.size();
  values.resize(per_rank_at + 2 * static_cast<size_t>(world), 0.0);
  // Mean over ranks of (W * own value in own slot, zeros elsewhere) = the value.
  values[per_rank_at + 2 * rank] = world * step_seconds;
  values[per_rank_at + 2 * rank + 1] = world * allreduce_seconds;
  if (absl::Status averaged = sync.AverageValues(values); !averaged.ok()) return averaged;
  models::Metrics out;
  for (size_t i = 0; i < per_rank_at; ++i) out.emplace_back(row[i].first, values[i]);
  double step_sum = 0, allreduce_sum = 0;
  for (int r = 0; r < world; ++r) {
    step_sum += values[per_rank_at + 2 * r];
    allreduce_sum += values[per_rank_at + 2 * r + 1];
  }
  out.emplace_back("step_time_seconds", step_sum / world);
  out.emplace_back("allreduce_seconds", allreduce_sum / world);
  for (int r = 0; r < world; ++r) {
    out.emplace_back(absl::StrCat("rank", r, "_step_time_seconds"), values[per_rank_at + 2 * r]);
    out.emplace_back(absl::StrCat("rank", r, "_allreduce_seconds"), values[per_rank_at + 2 * r + 1]);
  }
  return out;
}

void MoveBatch(data::Batch& batch, torch::Device device) {
  for (torch::Tensor* t : {&batch.images, &batch.labels, &batch.indices, &batch.same_images, &batch.same_indices,
                           &batch.other_images, &batch.other_labels, &batch.other_indices}) {
    if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
  }
}

absl::StatusOr<std::string> ResolveResumePath(const std::string& resume_from) {
  std::error_code ec;
  if (std::filesystem::is_directory(resume_from, ec)) {
    std::string dir = resume_from;
    if (std::filesystem::is_directory(std::filesystem::path(resume_from) / "checkpoints", ec)) {
      dir = (std::filesystem::path(resume_from) / "checkpoints").string();
    }
    return NewestValidCheckpoint(dir);
  }
  if (!std::filesystem::exists(resume_from, ec)) {
    return absl::NotFoundError(absl::StrCat("--resume: no such checkpoint or run folder: ", resume_from));
  }
  return resume_from;
}

}  // namespace

Trainer::~Trainer() = default;

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(TrainerOptions options) {
  // LibTorch throws (a bad tensor operation, a device error); nothing escapes
  // this adapter.
  try {
    return Build(std::move(options));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("setting up training failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Build(TrainerOptions options) {
  std::unique_ptr<Trainer> t(new Trainer());
  t->options_ = std::move(options);
  const jobspec::JobSpec& spec = t->options_.spec;
  const int world = t->options_.world_size;
  t->is_chief_ = t->options_.rank == 0;
  if (world < 1 || t->options_.rank < 0 || t->options_.rank >= world) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", t->options_.rank, " of world size ", world));
  }
  if (!t->options_.trace_path.empty() && t->options_.trace_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("trace_steps must be at least 1, got ", t->options_.trace_steps));
  }
  if (spec.train.batch_size % world != 0) {
    return absl::InvalidArgumentError(absl::StrCat("train.batch_size ", spec.train.batch_size,
                                                   " does not split evenly over ", world, " workers"));
  }
  // Always set: Debian's LibTorch starts with one intra-op thread, so
  // "all cores" has to be asked for. The batch loader's one thread does no
  // intra-op work (plain copies into torch::empty tensors), and CPU autograd
  // runs backward on this thread, so these are the only compute threads.
  if (t->options_.core_share.empty()) {
    t->thread_plan_ = PlanTrainThreads(spec.train.threads, CpusAvailable(), t->options_.ranks_on_host);
  } else {
    // Pinned by the daemon: no other rank or job shares these cores.
    t->thread_plan_ = PlanTrainThreads(spec.train.threads, CpusAvailable(), 1);
    t->thread_plan_.share = absl::StrCat(t->options_.core_share, ", cpus ", FormatCpuList(AffinityCpus()));
  }
  torch::set_num_threads(t->thread_plan_.threads);
  v1::TrainerReport threads;
  threads.mutable_message()->set_text(DescribeThreadPlan(t->thread_plan_));
  t->Report(threads);
  t->job_yaml_ = jobspec::JobSpecToYaml(spec);

  DFV_ASSIGN_OR_RETURN(t->data_, data::LoadDataset(spec.dataset));
  const data::ImageSet& train = *t->data_.train;
  const data::ImageSet& test = *t->data_.test;
  if (test.size < kGridImages) {
    return absl::InvalidArgumentError(absl::StrCat("the test set has ", test.size, " images; grids and "
                                                   "evaluation need at least ", kGridImages,
                                                   " (raise dataset.test_limit)"));
  }

  // Same seed on every rank: identical initial weights.
  torch::manual_seed(spec.train.seed);
  models::ModelContext context;
  context.spec = &t->options_.spec;
  context.channels = train.channels;
  context.image_size = train.height;
  context.num_classes = train.num_classes;
  context.train_size = train.size;
  if (spec.resources.device == "cuda") {
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          "resources.device is cuda, but this worker's LibTorch has no CUDA device (Debian's libtorch is "
          "CPU-only; run cuda jobs on workers built against a CUDA LibTorch)");
    }
    t->device_ = torch::Device(torch::kCUDA, 0);
  }
  context.device = t->device_;
  DFV_ASSIGN_OR_RETURN(t->model_, models::CreateModel(context));
  if (world > 1) {
    // Different noise per rank from here on.
    torch::manual_seed(spec.train.seed * 1000003ULL + static_cast<uint64_t>(t->options_.rank));
  }

  data::LoaderOptions loader_options;
  loader_options.batch_size = spec.train.batch_size / world;
  loader_options.seed = spec.train.seed;
  loader_options.rank = t->options_.rank;
  loader_options.world_size = world;
  loader_options.same_class_pair = t->model_->NeedsSameClassPairs();
  loader_options.other_class = t->model_->NeedsOtherClass();
  DFV_ASSIGN_OR_RETURN(t->loader_, data::BatchLoader::Create(t->data_.train, loader_options));
  t->total_steps_ = spec.train.epochs * t->loader_->StepsPerEpoch();
  if (spec.train.max_steps > 0) t->total_steps_ = std::min(t->total_steps_, spec.train.max_steps);

  const std::vector<int64_t> grid_idx = data::IndexRange(0, kGridImages);
  DFV_ASSIGN_OR_RETURN(t->grid_inputs_.images, data::ImagesToTensor(test, grid_idx));
  DFV_ASSIGN_OR_RETURN(t->grid_inputs_.labels, data::LabelsToTensor(test, grid_idx));
  t->grid_inputs_.images = t->grid_inputs_.images.to(t->device_);
  t->grid_inputs_.labels = t->grid_inputs_.labels.to(t->device_);
  t->grid_inputs_.noise_seed = spec.train.seed;

  if (!t->options_.resume_from.empty()) {
    DFV_ASSIGN_OR_RETURN(std::string path, ResolveResumePath(t->options_.resume_from));
    DFV_ASSIGN_OR_RETURN(LoadedCheckpoint loaded, LoadCheckpoint(path, *t->model_));
    DFV_RETURN_IF_ERROR(CheckCheckpointFitsJob(loaded.job_yaml, spec, path));
    if (loaded.state.step > t->total_steps_) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is at step ", loaded.state.step,
                                                     ", beyond this job's ", t->total_steps_, " steps"));
    }
    t->start_step_ = loaded.state.step;
    t->loader_->Seek(t->start_step_);
    v1::TrainerReport resumed;
    resumed.mutable_message()->set_text(absl::StrCat("resumed from ", path, " at step ", t->start_step_));
    t->Report(resumed);
  }
  if (t->options_.gradient_sync != nullptr) {
    // Every rank starts from rank 0's parameters and buffers.
    std::vector<torch::Tensor> state;
    for (auto& [name, module] : t->model_->Modules()) {
      for (const torch::Tensor& p : module->parameters()) state.push_back(p);
      for (const torch::Tensor& b : module->buffers()) state.push_back(b);
    }
    DFV_RETURN_IF_ERROR(t->options_.gradient_sync->BroadcastFromFirstRank(std::move(state)));
  }
  return t;
}

void Trainer::Report(const v1::TrainerReport& report) {
  if (options_.observer) options_.observer->OnReport(report);
}

void Trainer::ReportArtifact(v1::ArtifactKind kind, const std::string& relative_path, int64_t step,
                             double write_seconds) {
  v1::TrainerReport report;
  v1::TrainerArtifact* artifact = report.mutable_artifact();
  artifact->set_kind(kind);
  artifact->set_path(relative_path);
  artifact->set_step(step);
  artifact->set_write_seconds(write_seconds);
  Report(report);
}

absl::Status Trainer::WriteGrids(int64_t step) {
  if (!is_chief_) return absl::OkStatus();
  SetTrainMode(*model_, false);
  absl::Status status;
  {
    torch::NoGradGuard no_grad;
    for (const std::string& name : options_.spec.samples.grids) {
      Image8 image = TensorToImage8(model_->RenderGrid(name, grid_inputs_));
      const int64_t upscale = options_.spec.samples.upscale;
      image = UpscaleNearest(image, upscale > 0 ? static_cast<int>(upscale)
                                                : UpscaleFactorFor(image.width, jobspec::kAutoGridWidth));
      std::string rel = absl::StrFormat("grids/%s-step%08d.png", name, step);
      status = WritePngFile((std::filesystem::path(options_.out_dir) / rel).string(), image);
      if (!status.ok()) break;
      ReportArtifact(v1::GRID, rel, step);
    }
  }
  SetTrainMode(*model_, true);
  return status;
}

absl::Status Trainer::WriteCheckpoint(int64_t step, int64_t epoch) {
  if (!is_chief_) return absl::OkStatus();
  const std::string dir = (std::filesystem::path(options_.out_dir) / "checkpoints").string();
  const std::string rel = "checkpoints/" + CheckpointFileName(step);
  const auto start = Clock::now();
  DFV_RETURN_IF_ERROR(SaveCheckpoint((std::filesystem::path(options_.out_dir) / rel).string(), *model_,
                                     TrainState{step, epoch}, job_yaml_));
  const double write_seconds = Seconds(Clock::now() - start);
  DFV_RETURN_IF_ERROR(PruneCheckpoints(dir, options_.spec.checkpoint.keep_last));
  ReportArtifact(v1::CHECKPOINT, rel, step, write_seconds);
  return absl::OkStatus();
}

absl::Status Trainer::WriteReport(const RunSummary& summary) {
  SetTrainMode(*model_, false);
  const auto evaluation_start = Clock::now();
  auto evaluation = Evaluate(*model_, data_, options_.spec, device_, options_.out_dir);
  const double evaluation_seconds = Seconds(Clock::now() - evaluation_start);
  SetTrainMode(*model_, true);
  if (!evaluation.ok()) return evaluation.status();
  for (const std::string& file : evaluation->files) ReportArtifact(v1::REPORT, file, summary.steps);
  nlohmann::json report;
  report["job"] = options_.spec.name;
  report["model"] = options_.spec.model;
  report["dataset"] = options_.spec.dataset.kind;
  report["steps"] = summary.steps;
  report["wall_seconds"] = summary.wall_seconds;
  report["evaluation_seconds"] = evaluation_seconds;
  nlohmann::json final_metrics = nlohmann::json::object();
  for (const auto& [name, value] : summary.final_metrics) final_metrics[name] = value;
  report["final_metrics"] = final_metrics;
  report["evaluation"] = evaluation->report;
  DFV_RETURN_IF_ERROR(WriteFileAtomically((std::filesystem::path(options_.out_dir) / v1::kReportArtifactName).string(),
                                          report.dump(2) + "\n"));
  ReportArtifact(v1::REPORT, v1::kReportArtifactName, summary.steps);
  return absl::OkStatus();
}

absl::StatusOr<RunSummary> Trainer::Run() {
  // LibTorch throws; nothing escapes this adapter.
  try {
    return RunLoop();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training failed: ", e.what()));
  }
}

absl::StatusOr<RunSummary> Trainer::RunLoop() {
  const jobspec::JobSpec& spec = options_.spec;
  const std::filesystem::path out(options_.out_dir);
  std::optional<MetricsLog> metrics_log;
  if (is_chief_) {
    DFV_RETURN_IF_ERROR(MakeDirs((out / "grids").string()));
    DFV_RETURN_IF_ERROR(MakeDirs((out / "checkpoints").string()));
    DFV_RETURN_IF_ERROR(WriteFileAtomically((out / "job.yaml").string(), job_yaml_));
    ReportArtifact(v1::JOB_SPEC, "job.yaml", start_step_);
    DFV_ASSIGN_OR_RETURN(MetricsLog log, MetricsLog::Open((out / "metrics.csv").string(),
                                                          start_step_ > 0 ? start_step_ : -1));
    metrics_log.emplace(std::move(log));
  }

  RunSummary summary;
  step::StepContext context(options_.gradient_sync, options_.rank, options_.world_size);
  step::GradientSync* const sync = options_.gradient_sync;
  const int world = options_.world_size;
  MetricsWindow window;
  MetricsWindow progress_window;
  const auto run_start = Clock::now();
  auto window_start = run_start;
  auto last_progress = run_start;
  // This rank's timings, for its daemon's metrics (TrainerWindow) and the
  // progress reports' mean step time.
  std::vector<double> step_seconds_of_window;
  step_seconds_of_window.reserve(static_cast<size_t>(std::min<int64_t>(spec.train.log_every_steps, 100000)));
  double data_wait_seconds_in_window = 0;
  double step_seconds_since_progress = 0;
  double smoothed_steps_per_second = 0;
  const int64_t global_batch = spec.train.batch_size;
  int64_t epoch = start_step_ / loader_->StepsPerEpoch();
  SetTrainMode(*model_, true);
  std::optional<StepTrace> trace;
  if (is_chief_ && !options_.trace_path.empty()) {
    trace.emplace(*model_, job_yaml_, *data_.train, total_steps_, options_.trace_steps);
  }

  for (int64_t step = start_step_; step < total_steps_; ++step) {
    if (options_.cancel != nullptr && options_.cancel->load()) {
      return absl::CancelledError(absl::StrCat("cancelled at step ", step));
    }
    const auto wait_start = Clock::now();
    DFV_ASSIGN_OR_RETURN(data::Batch batch, loader_->Next());
    const double data_wait = Seconds(Clock::now() - wait_start);
    data_wait_seconds_in_window += data_wait;
    summary.data_wait_seconds += data_wait;
    if (!device_.is_cpu()) MoveBatch(batch, device_);
    epoch = batch.epoch;
    context.BeginStep(step, spec.train.seed);
    const auto t0 = Clock::now();
    models::Metrics metrics;
    try {
      metrics = model_->TrainStep(batch, context);
    } catch (const step::CollectiveError& e) {
      return absl::Status(e.status().code(), absl::StrCat("training step ", step, ": ", e.status().message()));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("training step ", step, " failed: ", e.what()));
    }
    const double step_seconds = Seconds(Clock::now() - t0);
    summary.step_seconds += step_seconds;
    step_seconds_of_window.push_back(step_seconds);
    step_seconds_since_progress += step_seconds;
    for (const auto& [name, value] : metrics) {
      if (!std::isfinite(value)) {
        return absl::FailedPreconditionError(
            absl::StrCat("loss term '", name, "' became ", value, " at step ", step, "; lower train.lr?"));
      }
    }
    window.Add(metrics);
    progress_window.Add(metrics);
    const int64_t done = step + 1;
    const bool last = done == total_steps_;
    if (trace && !trace->Full()) {
      trace->AddStep(step, batch, metrics);
      if (trace->Full() || last) DFV_RETURN_IF_ERROR(trace->Write(options_.trace_path));
    }

    if (done % spec.train.log_every_steps == 0 || last) {
      const double elapsed = Seconds(Clock::now() - window_start);
      models::Metrics row = window.Means();
      const double mean_step_seconds =
          std::accumulate(step_seconds_of_window.begin(), step_seconds_of_window.end(), 0.0) / window.count();
      const double allreduce_seconds = sync != nullptr ? sync->TakeBlockedSeconds() : 0.0;
      const int64_t allreduce_bytes = sync != nullptr ? sync->TakeReducedBytes() : 0;
      if (sync != nullptr) {
        DFV_ASSIGN_OR_RETURN(row, AcrossRanks(*sync, std::move(row), mean_step_seconds,
                                              allreduce_seconds / window.count(), options_.rank, world));
      } else {
        row.emplace_back("step_time_seconds", mean_step_seconds);
      }
      row.emplace_back(protocol::kSamplesPerSecondValue,
                       elapsed > 0 ? global_batch * window.count() / elapsed : 0.0);
      if (metrics_log) DFV_RETURN_IF_ERROR(metrics_log->Append(done, epoch, row));
      if (options_.observer) {
        v1::TrainerReport report;
        v1::MetricsRow* metrics = report.mutable_metrics();
        metrics->set_step(done);
        metrics->set_epoch(epoch);
        AddMetricValues(row, metrics->mutable_values());
        Report(report);
        v1::TrainerReport timings;
        v1::TrainerWindow* w = timings.mutable_window();
        w->set_step(done);
        w->mutable_step_seconds()->Add(step_seconds_of_window.begin(), step_seconds_of_window.end());
        w->set_data_wait_seconds(data_wait_seconds_in_window);
        w->set_allreduce_seconds(allreduce_seconds);
        w->set_allreduce_bytes(allreduce_bytes);
        Report(timings);
      }
      summary.final_metrics.assign(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(window.Means().size()));
      window.Reset();
      step_seconds_of_window.clear();
      data_wait_seconds_in_window = 0;
      window_start = Clock::now();
    }

    const auto now = Clock::now();
    const double since_progress = Seconds(now - last_progress);
    if (since_progress >= kProgressIntervalSeconds || last) {
      const double rate = progress_window.count() / std::max(since_progress, 1e-9);
      smoothed_steps_per_second =
          smoothed_steps_per_second == 0 ? rate : 0.7 * smoothed_steps_per_second + 0.3 * rate;
      if (options_.observer) {
        v1::TrainerReport report;
        v1::Progress* p = report.mutable_progress()->mutable_progress();
        p->set_step(done);
        p->set_total_steps(total_steps_);
        p->set_epoch(epoch);
        p->set_samples_per_second(smoothed_steps_per_second * global_batch);
        p->set_eta_seconds((total_steps_ - done) / std::max(smoothed_steps_per_second, 1e-9));
        p->set_step_seconds(step_seconds_since_progress / std::max<int64_t>(progress_window.count(), 1));
        AddMetricValues(progress_window.Means(), report.mutable_progress()->mutable_metrics());
        Report(report);
      }
      progress_window.Reset();
      step_seconds_since_progress = 0;
      last_progress = now;
    }

    if (!last && spec.samples.every_steps > 0 && done % spec.samples.every_steps == 0) {
      DFV_RETURN_IF_ERROR(WriteGrids(done));
    }
    if (!last && spec.checkpoint.every_steps > 0 && done % spec.checkpoint.every_steps == 0) {
      DFV_RETURN_IF_ERROR(WriteCheckpoint(done, epoch));
    }
  }

  summary.steps = total_steps_;
  DFV_RETURN_IF_ERROR(WriteGrids(total_steps_));
  // A run that resumed at its last step changed nothing: the checkpoint it
  // resumed from is its model, and writing it again would only cost a copy
  // (an evaluation job's checkpoint is the training job's file, linked).
  if (start_step_ < total_steps_) DFV_RETURN_IF_ERROR(WriteCheckpoint(total_steps_, epoch));
  summary.wall_seconds = Seconds(Clock::now() - run_start);
  if (is_chief_) {
    DFV_RETURN_IF_ERROR(WriteReport(summary));
    summary.report_path = v1::kReportArtifactName;
  }
  return summary;
}

}  // namespace dfv::train
