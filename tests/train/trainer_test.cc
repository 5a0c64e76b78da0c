// The training driver end to end on small sprites jobs: the run folder, loss
// falling, resume equivalence, cancellation and bad input.
#include "worker/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/cpu_cores.h"
#include "common/file_util.h"
#include "common/png.h"
#include "tests/train/test_jobs.h"
#include "worker/models/registry.h"
#include "worker/train/checkpoint.h"

namespace dfv {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<train::RunSummary> RunJob(const jobspec::JobSpec& spec, const std::string& out,
                                         const std::string& resume = "") {
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = out;
  options.resume_from = resume;
  auto trainer = train::Trainer::Create(options);
  if (!trainer.ok()) return trainer.status();
  return (*trainer)->Run();
}

// metrics.csv as {column -> values}, in row order.
TEST(TrainerTest, RunFolderHasMetricsGridsCheckpointsAndReport) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 40);
  const std::string out = testing::FreshDir("run_folder");
  auto summary = RunJob(spec, out);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 40);

  auto metrics = testing::ReadMetricsCsv(out + "/metrics.csv");
  EXPECT_EQ(metrics["step"], (std::vector<double>{10, 20, 30, 40}));
  for (const char* column : {"loss", "reconstruction", "kl", "reverse_cycle", "samples_per_second"}) {
    ASSERT_EQ(metrics[column].size(), 4u) << column;
  }
  // Every promised grid, at the intermediate and final step, decodes at its size.
  for (const std::string& grid : spec.samples.grids) {
    for (int step : {20, 40}) {
      char name[128];
      std::snprintf(name, sizeof(name), "%s/grids/%s-step%08d.png", out.c_str(), grid.c_str(), step);
      auto image = ReadPngFile(name);
      ASSERT_TRUE(image.ok()) << image.status();
      EXPECT_EQ(image->channels, 3);
      EXPECT_GT(image->width, 28);
    }
  }
  EXPECT_EQ(train::ListCheckpoints(out + "/checkpoints").size(), 2u);
  auto report = nlohmann::json::parse(*ReadFileToString(out + "/report.json"));
  EXPECT_EQ(report["model"], "cycle_vae");
  EXPECT_EQ(report["steps"], 40);
  EXPECT_EQ(report["evaluation"]["test_images"], 64);
  const double mse = report["evaluation"]["reconstruction_mse"];
  EXPECT_GT(mse, 0.0);
  EXPECT_LT(mse, 0.2);
  EXPECT_TRUE(fs::exists(out + "/job.yaml"));
}

// Keeps every report a run makes.
class RecordingObserver : public train::TrainingObserver {
 public:
  void OnReport(const v1::TrainerReport& report) override { reports.push_back(report); }
  std::vector<v1::TrainerReport> reports;
};

TEST(TrainerTest, ReportsEveryStepsTimeTheDataWaitAndEachCheckpointsWriteTime) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 1, 40);  // a row every 10 steps
  RecordingObserver observer;
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = testing::FreshDir("timings");
  options.observer = &observer;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run().ok());

  std::vector<int64_t> window_steps;
  double data_wait = 0;
  int progress_reports = 0, checkpoints = 0;
  for (size_t i = 0; i < observer.reports.size(); ++i) {
    const v1::TrainerReport& r = observer.reports[i];
    if (r.has_window()) {
      window_steps.push_back(r.window().step());
      // Right after the window's row, one time per step of the window.
      ASSERT_GT(i, 0u);
      ASSERT_TRUE(observer.reports[i - 1].has_metrics());
      EXPECT_EQ(observer.reports[i - 1].metrics().step(), r.window().step());
      ASSERT_EQ(r.window().step_seconds_size(), 10);
      for (double seconds : r.window().step_seconds()) EXPECT_GT(seconds, 0);
      data_wait += r.window().data_wait_seconds();
      EXPECT_EQ(r.window().allreduce_seconds(), 0) << "one process: no all-reduce";
      EXPECT_EQ(r.window().allreduce_bytes(), 0);
    } else if (r.has_progress()) {
      ++progress_reports;
      EXPECT_GT(r.progress().progress().step_seconds(), 0);
    } else if (r.has_artifact()) {
      if (r.artifact().kind() == v1::CHECKPOINT) {
        ++checkpoints;
        EXPECT_GT(r.artifact().write_seconds(), 0) << r.artifact().path();
      } else {
        EXPECT_EQ(r.artifact().write_seconds(), 0) << r.artifact().path();
      }
    }
  }
  EXPECT_EQ(window_steps, (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_GT(data_wait, 0);
  EXPECT_GE(progress_reports, 1);
  EXPECT_EQ(checkpoints, 2);
}

TEST(TrainerTest, LossFallsOnSpritesWithAFixedSeed) {
  for (const std::string model : {"vae", "cycle_vae"}) {
    jobspec::JobSpec spec = testing::SmallSpritesJob(model, 28, 3, 60);
    spec.samples.every_steps = 0;
    spec.checkpoint.every_steps = 0;
    const std::string out = testing::FreshDir("loss_falls_" + model);
    auto summary = RunJob(spec, out);
    ASSERT_TRUE(summary.ok()) << summary.status();
    auto rec = testing::ReadMetricsCsv(out + "/metrics.csv")["reconstruction"];
    ASSERT_EQ(rec.size(), 6u);
    EXPECT_LT(rec.back(), 0.7 * rec.front()) << model << ": reconstruction " << rec.front() << " -> " << rec.back();
  }
}

TEST(TrainerTest, ResumeGivesTheSameParametersAndCurveAsAnUninterruptedRun) {
  // One intra-op thread: CPU kernels are then deterministic, so equality is bitwise.
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 40);
  const std::string straight = testing::FreshDir("resume_straight");
  ASSERT_TRUE(RunJob(spec, straight).ok());

  // The interrupted run: same folder contents up to the step-20 checkpoint.
  const std::string resumed = testing::FreshDir("resume_resumed");
  fs::copy(straight, resumed, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  fs::remove(resumed + "/checkpoints/" + train::CheckpointFileName(40));
  fs::remove(resumed + "/report.json");
  auto summary = RunJob(spec, resumed, resumed);
  ASSERT_TRUE(summary.ok()) << summary.status();

  auto build = [&]() {
    torch::manual_seed(0);
    return std::move(models::CreateModel(testing::SpritesModelContext(spec)).value());
  };
  auto a = build(), b = build();
  ASSERT_TRUE(train::LoadCheckpoint(straight + "/checkpoints/" + train::CheckpointFileName(40), *a).ok());
  ASSERT_TRUE(train::LoadCheckpoint(resumed + "/checkpoints/" + train::CheckpointFileName(40), *b).ok());
  for (size_t m = 0; m < a->Modules().size(); ++m) {
    auto pa = a->Modules()[m].second->named_parameters();
    auto pb = b->Modules()[m].second->named_parameters();
    for (const auto& item : pa) {
      EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    }
  }
  // The loss curve carries on from step 20 with the same values.
  auto ma = testing::ReadMetricsCsv(straight + "/metrics.csv"), mb = testing::ReadMetricsCsv(resumed + "/metrics.csv");
  EXPECT_EQ(mb["step"], (std::vector<double>{10, 20, 30, 40}));
  EXPECT_EQ(ma["reconstruction"], mb["reconstruction"]);
  EXPECT_EQ(ma["reverse_cycle"], mb["reverse_cycle"]);
}

// What `dfvctl eval` runs: a resume at the last step trains nothing, and
// writes the grids and the report of that checkpoint but no checkpoint.
TEST(TrainerTest, ResumingAtTheLastStepOnlyEvaluates) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 20);
  const std::string trained = testing::FreshDir("last_step_trained");
  ASSERT_TRUE(RunJob(spec, trained).ok());

  spec.evaluate.classifiers = {"mlp"};
  spec.evaluate.probe_train_images = 64;
  const std::string evaluated = testing::FreshDir("last_step_evaluated");
  auto summary = RunJob(spec, evaluated, trained + "/checkpoints/" + train::CheckpointFileName(20));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->steps, 20);
  EXPECT_TRUE(summary->final_metrics.empty());
  EXPECT_TRUE(train::ListCheckpoints(evaluated + "/checkpoints").empty());
  for (const std::string& grid : spec.samples.grids) {
    char name[128];
    std::snprintf(name, sizeof(name), "%s/grids/%s-step%08d.png", evaluated.c_str(), grid.c_str(), 20);
    EXPECT_TRUE(fs::exists(name)) << name;
  }
  auto report = nlohmann::json::parse(*ReadFileToString(evaluated + "/report.json"));
  EXPECT_EQ(report["steps"], 20);
  EXPECT_TRUE(report["evaluation"]["latent"]["s"].contains("mlp")) << report.dump(2);
  EXPECT_TRUE(report["evaluation"]["latent"]["z"].contains("mlp")) << report.dump(2);
}

// trace_path: the initial weights (those a model built with the job's seed
// has), then each traced step's batch and metrics (metrics.csv's rows at one
// step per row), in one file that torch::pickle_load and torch.load read.
TEST(TrainerTest, TraceHoldsTheInitialWeightsAndEachTracedStepsBatchAndMetrics) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 5);
  spec.train.log_every_steps = 1;
  spec.samples.every_steps = 0;
  spec.checkpoint.every_steps = 0;
  const std::string out = testing::FreshDir("trace");
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = out;
  options.trace_path = out + "/run.trace";
  options.trace_steps = 3;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run().ok());

  auto bytes = ReadFileToString(options.trace_path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const c10::impl::GenericDict root = torch::pickle_load(std::vector<char>(bytes->begin(), bytes->end())).toGenericDict();
  EXPECT_EQ(root.at("format").toStringRef(), "dfv-step-trace-1");
  EXPECT_EQ(root.at("total_steps").toInt(), 5);
  EXPECT_EQ(root.at("train_size").toInt(), 512);
  EXPECT_EQ(root.at("num_classes").toInt(), 30);
  EXPECT_NE(root.at("job_yaml").toStringRef().find("model: cycle_vae"), std::string::npos);

  torch::manual_seed(spec.train.seed);
  auto fresh = models::CreateModel(testing::SpritesModelContext(spec, 30, 512));
  ASSERT_TRUE(fresh.ok());
  const c10::impl::GenericDict state = root.at("state").toGenericDict();
  ASSERT_EQ(state.size(), (*fresh)->Modules().size());
  for (auto& [name, module] : (*fresh)->Modules()) {
    const c10::impl::GenericDict tensors = state.at(name).toGenericDict();
    EXPECT_EQ(tensors.size(), module->named_parameters().size() + module->named_buffers().size()) << name;
    for (const auto& item : module->named_parameters()) {
      EXPECT_TRUE(torch::equal(tensors.at(item.key()).toTensor(), item.value())) << name << "." << item.key();
    }
  }

  auto csv = testing::ReadMetricsCsv(out + "/metrics.csv");
  const c10::List<c10::IValue> steps = root.at("steps").toList();
  ASSERT_EQ(steps.size(), 3u);
  for (size_t i = 0; i < steps.size(); ++i) {
    const c10::impl::GenericDict entry = steps.get(i).toGenericDict();
    EXPECT_EQ(entry.at("step").toInt(), static_cast<int64_t>(i));
    const c10::impl::GenericDict batch = entry.at("batch").toGenericDict();
    for (const char* field : {"images", "same_images", "other_images"}) {
      EXPECT_EQ(batch.at(field).toTensor().sizes(), (std::vector<int64_t>{16, 3, 28, 28})) << field;
    }
    EXPECT_EQ(batch.at("labels").toTensor().size(0), 16);
    const c10::impl::GenericDict metrics = entry.at("metrics").toGenericDict();
    for (const char* name : {"loss", "reconstruction", "kl", "reverse_cycle"}) {
      const double csv_value = csv[name].at(i);
      EXPECT_NEAR(metrics.at(name).toDouble(), csv_value, 1e-7 * std::abs(csv_value)) << name << " at step " << i;
    }
  }
}

TEST(TrainerTest, CancelStopsTheRun) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 3, 40);
  std::atomic<bool> cancel{true};
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = testing::FreshDir("cancel");
  options.cancel = &cancel;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok());
  EXPECT_EQ((*trainer)->Run().status().code(), absl::StatusCode::kCancelled);
}

// train.threads 0: the cores this process may use, split among the job's
// ranks on the host, set on LibTorch and said once at start.
TEST(TrainerTest, ThreadsZeroUsesTheCoresThisProcessMayUseSplitAmongRanksOnTheHost) {
  const int restore = torch::get_num_threads();
  for (int ranks_on_host : {1, 2}) {
    jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 1, 1);
    spec.train.threads = 0;
    RecordingObserver observer;
    train::TrainerOptions options;
    options.spec = spec;
    options.out_dir = testing::FreshDir("threads_zero");
    options.observer = &observer;
    options.ranks_on_host = ranks_on_host;
    auto trainer = train::Trainer::Create(options);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    const ThreadPlan& plan = (*trainer)->thread_plan();
    EXPECT_EQ(plan.cores, CpusAvailable());
    EXPECT_EQ(plan.ranks_on_host, ranks_on_host);
    // The rule itself is PlanTrainThreads's (tests/common/cpu_cores_test.cc).
    EXPECT_EQ(plan.threads, PlanTrainThreads(0, CpusAvailable(), ranks_on_host).threads);
    EXPECT_EQ(torch::get_num_threads(), plan.threads);
    int said = 0;
    for (const v1::TrainerReport& report : observer.reports) {
      if (report.has_message() && report.message().text() == DescribeThreadPlan(plan)) ++said;
    }
    EXPECT_EQ(said, 1) << "one line at start";
  }
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 1, 1);  // threads: 1
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = testing::FreshDir("threads_one");
  options.ranks_on_host = 2;
  auto trainer = train::Trainer::Create(options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->thread_plan().threads, 1);
  EXPECT_TRUE((*trainer)->thread_plan().requested);
  EXPECT_EQ(torch::get_num_threads(), 1);
  torch::set_num_threads(restore);
}

TEST(TrainerTest, MissingDataFileFailsWithItsName) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae");
  spec.dataset.kind = "fashion_mnist";
  spec.dataset.path = "/nonexistent/fashion";
  train::TrainerOptions options;
  options.spec = spec;
  options.out_dir = testing::FreshDir("missing_data");
  auto trainer = train::Trainer::Create(options);
  ASSERT_FALSE(trainer.ok());
  EXPECT_NE(trainer.status().message().find("/nonexistent/fashion"), std::string::npos) << trainer.status();
}

TEST(TrainerTest, ResumeFromACorruptCheckpointFailsClearly) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 3, 20);
  const std::string out = testing::FreshDir("resume_corrupt");
  ASSERT_TRUE(WriteFileAtomically(out + "/bad.ckpt", "DFVCKPT1 but then nothing sensible").ok());
  auto summary = RunJob(spec, out, out + "/bad.ckpt");
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("bad.ckpt"), std::string::npos) << summary.status();
}

}  // namespace
}  // namespace dfv

namespace dfv {
namespace {

TEST(TrainerTest, EvaluationProbesBothCodesAndDrawsTsne) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 20);
  spec.evaluate.classifiers = {"mlp", "linear_svm"};
  spec.evaluate.tsne = true;
  const std::string out = testing::FreshDir("evaluation");
  auto summary = RunJob(spec, out);
  ASSERT_TRUE(summary.ok()) << summary.status();
  auto report = nlohmann::json::parse(*ReadFileToString(out + "/report.json"));
  const auto& eval = report["evaluation"];
  for (const char* code : {"s", "z"}) {
    for (const char* clf : {"mlp", "linear_svm"}) {
      const double acc = eval["latent"][code][clf]["test_accuracy"];
      EXPECT_GE(acc, 0.0) << code << " " << clf;
      EXPECT_LE(acc, 1.0) << code << " " << clf;
      EXPECT_TRUE(eval["latent"][code][clf].contains("test_macro_f1"));
    }
    auto plot = ReadPngFile(out + "/" + eval["tsne"][code].get<std::string>());
    ASSERT_TRUE(plot.ok()) << plot.status();
    EXPECT_EQ(plot->width, 512);
  }
  // cycle_vae's z has a posterior: its draw is probed too, but not plotted.
  const double sampled = eval["latent"]["z_sampled"]["mlp"]["test_accuracy"];
  EXPECT_GE(sampled, 0.0);
  EXPECT_LE(sampled, 1.0);
  EXPECT_EQ(eval["tsne"].size(), 2u) << eval["tsne"];
}

// Issue 16's end-to-end check: a sprites job with the whole evaluation on
// has every field of the report, each a number in its range.
TEST(TrainerTest, EvaluationOnSpritesHasEveryField) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae", 28, 3, 20);
  spec.evaluate.classifiers = {"mlp", "linear_svm"};
  spec.evaluate.tsne = true;
  spec.evaluate.predictors = true;
  spec.evaluate.swap = true;
  spec.evaluate.factors = true;
  const std::string out = testing::FreshDir("evaluation_sprites");
  auto summary = RunJob(spec, out);
  ASSERT_TRUE(summary.ok()) << summary.status();
  auto report = nlohmann::json::parse(*ReadFileToString(out + "/report.json"));
  const auto& eval = report["evaluation"];
  auto in_unit = [](const nlohmann::json& v) { return v.is_number() && v >= 0.0 && v <= 1.0; };
  for (const char* code : {"s", "z"}) {
    const auto& probe = eval["latent"][code];
    EXPECT_TRUE(in_unit(probe["mlp"]["test_accuracy"])) << probe;
    EXPECT_DOUBLE_EQ(probe["chance"]["uniform"].get<double>(), 1.0 / 30);
    EXPECT_TRUE(in_unit(probe["chance"]["majority"])) << probe;
    EXPECT_EQ(probe["train_codes_used"], 512);  // the whole training split
  }
  for (const char* direction : {"z_to_s", "s_to_z"}) {
    const auto& p = eval["predictors"][direction];
    EXPECT_GE(p["test_mse"].get<double>(), 0.0) << direction;
    EXPECT_GT(p["baseline_mse"].get<double>(), 0.0) << direction;
    EXPECT_TRUE(in_unit(p["regeneration_mse"])) << direction;
  }
  const auto& swap = eval["swap"];
  EXPECT_EQ(swap["pairs"], 64);
  EXPECT_TRUE(in_unit(swap["b_class_rate"]));
  EXPECT_TRUE(in_unit(swap["a_class_rate"]));
  EXPECT_DOUBLE_EQ(swap["chance"].get<double>(), 1.0 / 30);
  EXPECT_TRUE(in_unit(swap["judge"]["test_accuracy"]));
  const std::vector<std::string> z_factors = {"x", "y", "scale", "rotation"};
  for (const std::string& f : z_factors) {
    EXPECT_TRUE(in_unit(swap["z_factors_kept"][f])) << f;
    EXPECT_TRUE(swap["judge"]["factor_r2"][f].is_number()) << f;
  }
  const auto& factors = eval["factors"];
  EXPECT_EQ(factors["s_factors"], (std::vector<std::string>{"shape", "colour"}));
  EXPECT_EQ(factors["z_factors"], z_factors);
  for (const char* code : {"s", "z"}) {
    for (const char* f : {"shape", "colour", "x", "y", "scale", "rotation"}) {
      EXPECT_TRUE(in_unit(factors["probes"][code][f]["test_accuracy"])) << code << " " << f;
      EXPECT_TRUE(in_unit(factors["probes"][code][f]["chance"]["majority"])) << code << " " << f;
    }
  }
  EXPECT_EQ(factors["probes"]["s"]["shape"]["classes"], 6);
  EXPECT_TRUE(in_unit(factors["mig"]["mig"]));
  EXPECT_EQ(factors["mig"]["factors"].size(), 6u);
  for (const char* code : {"s", "z"}) {
    auto plot = ReadPngFile(out + "/" + eval["tsne"][code].get<std::string>());
    ASSERT_TRUE(plot.ok()) << plot.status();
    EXPECT_EQ(plot->width, 512);
  }
  // Grids are enlarged to at least 512 pixels across by default.
  for (const auto& entry : fs::directory_iterator(out + "/grids")) {
    auto grid = ReadPngFile(entry.path().string());
    ASSERT_TRUE(grid.ok()) << grid.status();
    EXPECT_GE(grid->width, 512) << entry.path();
  }
}

// Models without separate s and z say so instead of giving a number.
TEST(TrainerTest, EvaluationSaysNotApplicableForAModelWithoutSplitCodes) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae", 28, 3, 10);
  spec.evaluate.predictors = true;
  spec.evaluate.swap = true;
  spec.evaluate.factors = true;
  const std::string out = testing::FreshDir("evaluation_vae");
  auto summary = RunJob(spec, out);
  ASSERT_TRUE(summary.ok()) << summary.status();
  auto report = nlohmann::json::parse(*ReadFileToString(out + "/report.json"));
  for (const char* part : {"predictors", "swap", "factors"}) {
    ASSERT_TRUE(report["evaluation"][part].is_string()) << part;
    EXPECT_EQ(report["evaluation"][part].get<std::string>().rfind("not applicable", 0), 0u) << part;
  }
}

}  // namespace
}  // namespace dfv
