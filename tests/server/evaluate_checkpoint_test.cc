// Coordinator::EvaluateCheckpoint: the job it creates (spec, link to the
// source, the checkpoint as its own artifact, its first attempt resuming
// from it) and every refusal, with a FakeClock and a fake worker.
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/jobspec/parse.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "tests/server/fake_worker.h"
#include "tests/server/test_util.h"

namespace dfv::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::FakeWorker;

class EvaluateCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    CoordinatorOptions options;
    options.data_dir = data_dir_;
    options.clock = &clock_;
    auto coordinator = Coordinator::Create(options);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::move(*coordinator);
    worker_ = std::make_unique<FakeWorker>(coordinator_.get(), "w1");
    worker_->Register();
  }

  // A job that trained on the fake worker: checkpoints at steps 2 and 4,
  // a report, SUCCEEDED. `overrides` go into its job file.
  std::string TrainSource(const std::vector<std::string>& overrides = {}) {
    auto job = coordinator_->SubmitJob(testing::JobYaml("src"), "job.yaml", overrides, true);
    EXPECT_TRUE(job.ok()) << job.status();
    auto beat = worker_->Beat();
    EXPECT_TRUE(beat.ok() && beat->assignments_size() == 1);
    if (!beat.ok() || beat->assignments_size() != 1) return "";
    const dfv::v1::Assignment a = beat->assignments(0);
    EXPECT_TRUE(worker_->Upload(a, "checkpoints/step-2.ckpt", dfv::v1::CHECKPOINT, 2, "two").ok());
    EXPECT_TRUE(worker_->Upload(a, "checkpoints/step-4.ckpt", dfv::v1::CHECKPOINT, 4, "four").ok());
    EXPECT_TRUE(worker_->Upload(a, "report.json", dfv::v1::REPORT, 4, "{}").ok());
    EXPECT_TRUE(worker_->Complete(a, dfv::v1::OUTCOME_SUCCEEDED).ok());
    EXPECT_EQ(coordinator_->GetJob(job->id())->state(), dfv::v1::SUCCEEDED);
    return job->id();
  }

  absl::StatusOr<dfv::v1::Job> Evaluate(const std::string& job_id, const std::string& checkpoint = "",
                                        const std::vector<std::string>& overrides = {"evaluate.classifiers=[mlp]"}) {
    Coordinator::EvaluationRequest request;
    request.job_id = job_id;
    request.checkpoint = checkpoint;
    request.overrides = overrides;
    request.wait_for_workers = true;
    return coordinator_->EvaluateCheckpoint(request);
  }

  std::string PathOf(const std::string& job_id, const std::string& name) const {
    return absl::StrCat(data_dir_, "/artifacts/", job_id, "/", name);
  }

  // The artifact's bytes as a client reads them.
  std::string Read(const std::string& job_id, const std::string& name) {
    auto reader = coordinator_->OpenArtifact(job_id, name);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string all;
    while (true) {
      auto chunk = (*reader)->Read(1 << 16);
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok() || chunk->empty()) return all;
      all += *chunk;
    }
  }

  size_t JobCount() { return coordinator_->ListJobs({}, 0)->size(); }

  FakeClock clock_;
  std::string data_dir_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<FakeWorker> worker_;
};

TEST_F(EvaluateCheckpointTest, NewJobEvaluatesTheNewestCheckpointAsItsOwnLinkedArtifact) {
  const std::string source = TrainSource();
  auto job = Evaluate(source, "", {"evaluate.classifiers=[mlp]", "evaluate.tsne=true", "priority=5"});
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_NE(job->id(), source);
  EXPECT_EQ(job->name(), "src-eval");
  EXPECT_EQ(job->priority(), 5);
  EXPECT_EQ(job->world_size(), 1);
  EXPECT_EQ(job->evaluates().job_id(), source);
  EXPECT_EQ(job->evaluates().checkpoint(), "checkpoints/step-4.ckpt");
  EXPECT_EQ(job->evaluates().step(), 4);
  EXPECT_EQ(coordinator_->GetJob(job->id())->evaluates().checkpoint(), "checkpoints/step-4.ckpt");

  // The source's job file, ending at the checkpoint's step, with the overrides.
  auto spec = jobspec::ParseJobSpec(job->spec_yaml(), {});
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto source_spec = jobspec::ParseJobSpec(coordinator_->GetJob(source)->spec_yaml(), {});
  ASSERT_TRUE(source_spec.ok()) << source_spec.status();
  EXPECT_EQ(spec->train.max_steps, 4);
  EXPECT_THAT(spec->evaluate.classifiers, ElementsAre("mlp"));
  EXPECT_TRUE(spec->evaluate.tsne);
  jobspec::JobSpec expected = *source_spec;
  expected.name = "src-eval";
  expected.priority = 5;
  expected.evaluate = spec->evaluate;
  EXPECT_TRUE(jobspec::SpecsEqual(*spec, expected)) << job->spec_yaml();

  // The checkpoint is the new job's artifact: the same file, not a copy.
  auto artifacts = coordinator_->ListArtifacts(job->id());
  ASSERT_TRUE(artifacts.ok()) << artifacts.status();
  ASSERT_EQ(artifacts->size(), 1u);
  EXPECT_EQ((*artifacts)[0].name(), "checkpoints/step-4.ckpt");
  EXPECT_EQ((*artifacts)[0].kind(), dfv::v1::CHECKPOINT);
  EXPECT_EQ((*artifacts)[0].step(), 4);
  EXPECT_EQ((*artifacts)[0].attempt(), 0);
  struct stat from {}, to {};
  ASSERT_EQ(::stat(PathOf(source, "checkpoints/step-4.ckpt").c_str(), &from), 0);
  ASSERT_EQ(::stat(PathOf(job->id(), "checkpoints/step-4.ckpt").c_str(), &to), 0);
  EXPECT_EQ(from.st_ino, to.st_ino);
  EXPECT_EQ(from.st_nlink, 2u);

  // Its events: queued, what it evaluates, the artifact, and placed at once
  // on the free worker.
  auto events = coordinator_->ReadEvents(job->id(), 0, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 4u);
  EXPECT_EQ((*events)[3].state().state(), dfv::v1::SCHEDULED);
  EXPECT_EQ((*events)[0].state().state(), dfv::v1::QUEUED);
  EXPECT_THAT((*events)[1].message().text(), HasSubstr("checkpoints/step-4.ckpt (step 4) of job " + source));
  EXPECT_EQ((*events)[2].artifact().name(), "checkpoints/step-4.ckpt");

  // Its first attempt resumes from it, with the stored spec.
  auto beat = worker_->Beat();
  ASSERT_TRUE(beat.ok()) << beat.status();
  ASSERT_EQ(beat->assignments_size(), 1);
  const dfv::v1::Assignment a = beat->assignments(0);
  EXPECT_EQ(a.job_id(), job->id());
  EXPECT_EQ(a.resume_artifact(), "checkpoints/step-4.ckpt");
  EXPECT_EQ(a.spec_yaml(), job->spec_yaml());
  EXPECT_TRUE(coordinator_->CheckCheckpointReader(worker_->id(), job->id(), a.attempt()).ok());

  // Deleting the source's artifacts leaves the evaluation's checkpoint.
  ASSERT_TRUE(coordinator_->DeleteJobArtifacts(source).ok());
  EXPECT_FALSE(std::filesystem::exists(PathOf(source, "checkpoints/step-4.ckpt")));
  EXPECT_EQ(Read(job->id(), "checkpoints/step-4.ckpt"), "four");
  EXPECT_TRUE(worker_->Upload(a, "report.json", dfv::v1::REPORT, 4, R"({"evaluation": {}})").ok());
  EXPECT_TRUE(worker_->Complete(a, dfv::v1::OUTCOME_SUCCEEDED).ok());
  EXPECT_EQ(coordinator_->GetJob(job->id())->state(), dfv::v1::SUCCEEDED);
  EXPECT_EQ(coordinator_->GetJob(job->id())->evaluates().job_id(), source);
}

TEST_F(EvaluateCheckpointTest, ANamedCheckpointIsFoundByItsArtifactOrFileName) {
  const std::string source = TrainSource({"evaluate.swap=true"});
  for (const std::string name : {"checkpoints/step-2.ckpt", "step-2.ckpt"}) {
    // The source's evaluation is enough: no override needed.
    auto job = Evaluate(source, name, {"name=second-look"});
    ASSERT_TRUE(job.ok()) << name << ": " << job.status();
    EXPECT_EQ(job->name(), "second-look");
    EXPECT_EQ(job->evaluates().checkpoint(), "checkpoints/step-2.ckpt");
    EXPECT_EQ(job->evaluates().step(), 2);
    auto spec = jobspec::ParseJobSpec(job->spec_yaml(), {});
    ASSERT_TRUE(spec.ok());
    EXPECT_EQ(spec->train.max_steps, 2);
    EXPECT_TRUE(spec->evaluate.swap);
    EXPECT_EQ(Read(job->id(), "checkpoints/step-2.ckpt"), "two");
  }
}

TEST_F(EvaluateCheckpointTest, RefusalsNameWhatIsWrongAndStoreNothing) {
  const std::string source = TrainSource();
  const size_t jobs = JobCount();

  auto unknown = Evaluate("j-000099");
  EXPECT_TRUE(absl::IsNotFound(unknown.status())) << unknown.status();

  auto no_such = Evaluate(source, "step-3.ckpt");
  EXPECT_TRUE(absl::IsNotFound(no_such.status())) << no_such.status();
  EXPECT_THAT(no_such.status().message(), HasSubstr("checkpoints/step-4.ckpt, checkpoints/step-2.ckpt"));

  auto nothing = Evaluate(source, "", {});
  EXPECT_TRUE(absl::IsFailedPrecondition(nothing.status())) << nothing.status();
  EXPECT_THAT(nothing.status().message(), HasSubstr("evaluate.classifiers=[mlp]"));

  auto training = Evaluate(source, "", {"evaluate.tsne=true", "train.lr=0.5", "dataset.sprites_test=8"});
  EXPECT_TRUE(absl::IsInvalidArgument(training.status())) << training.status();
  EXPECT_THAT(training.status().message(), HasSubstr("--set train.lr=0.5: train.lr: an evaluation keeps"));
  EXPECT_THAT(training.status().message(), HasSubstr("--set dataset.sprites_test=8"));

  auto bad_value = Evaluate(source, "", {"evaluate.classifiers=[forest]"});
  EXPECT_TRUE(absl::IsInvalidArgument(bad_value.status())) << bad_value.status();
  EXPECT_THAT(bad_value.status().message(), HasSubstr("evaluate.classifiers"));

  // A job with no checkpoint (queued; no worker is free for it).
  auto queued = coordinator_->SubmitJob(testing::JobYaml("later", 2), "job.yaml", {}, true);
  ASSERT_TRUE(queued.ok());
  auto none = Evaluate(queued->id());
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status())) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("has no checkpoint"));

  // Too few workers, unless waiting.
  Coordinator::EvaluationRequest request;
  request.job_id = source;
  request.overrides = {"evaluate.classifiers=[mlp]", "resources.workers=2"};
  auto capacity = coordinator_->EvaluateCheckpoint(request);
  EXPECT_TRUE(absl::IsFailedPrecondition(capacity.status())) << capacity.status();
  EXPECT_THAT(capacity.status().message(), HasSubstr("resources.workers"));

  EXPECT_EQ(JobCount(), jobs + 1);  // only `queued`
}

TEST_F(EvaluateCheckpointTest, DamagedCheckpointsAreRefusedOrPassedOver) {
  const std::string source = TrainSource();
  // Same size, other bytes: only the CRC-32 tells.
  {
    std::ofstream damaged(PathOf(source, "checkpoints/step-4.ckpt"), std::ios::binary | std::ios::trunc);
    damaged << "FOUR";
  }
  auto named = Evaluate(source, "step-4.ckpt");
  EXPECT_TRUE(absl::IsDataLoss(named.status())) << named.status();
  EXPECT_THAT(named.status().message(), HasSubstr("checkpoints/step-4.ckpt"));

  auto newest = Evaluate(source);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->evaluates().checkpoint(), "checkpoints/step-2.ckpt");

  std::filesystem::remove(PathOf(source, "checkpoints/step-2.ckpt"));
  auto none = Evaluate(source);
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status())) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("verifies"));
}

}  // namespace
}  // namespace dfv::server
