// Space on the coordinator: checkpoint.keep_last, quotas, the free-space
// floor, resuming from the newest checkpoint that verifies, dfvctl delete
// and gc. The Coordinator is driven by fake workers with a FakeClock; one
// test fills a real (tmpfs) file system when it runs as root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/clock.h"
#include "server/coordinator.h"
#include "server/retention.h"
#include "tests/server/fake_worker.h"
#include "tests/server/test_util.h"
#include "tests/testing/tmpfs.h"

namespace dfv::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using testing::FakeWorker;
using testing::Running;

dfv::v1::ArtifactInfo Checkpoint(const std::string& name, int64_t step, int64_t created_ms, int64_t size = 10) {
  dfv::v1::ArtifactInfo info;
  info.set_name(name);
  info.set_kind(dfv::v1::CHECKPOINT);
  info.set_step(step);
  info.set_created_ms(created_ms);
  info.set_size(size);
  return info;
}

std::vector<std::string> Names(const std::vector<dfv::v1::ArtifactInfo>& artifacts) {
  std::vector<std::string> names;
  for (const auto& info : artifacts) names.push_back(info.name());
  return names;
}

TEST(RetentionRulesTest, NewestFirstIsByStepThenCreationAndIgnoresOtherKinds) {
  dfv::v1::ArtifactInfo grid = Checkpoint("grids/a.png", 99, 1);
  grid.set_kind(dfv::v1::GRID);
  EXPECT_THAT(Names(CheckpointsNewestFirst({Checkpoint("c/10", 10, 5), grid, Checkpoint("c/20", 20, 1),
                                            Checkpoint("c/20b", 20, 2)})),
              ElementsAre("c/20b", "c/20", "c/10"));
}

TEST(RetentionRulesTest, KeepLastRemovesTheOldestButNeverAProtectedOne) {
  const std::vector<dfv::v1::ArtifactInfo> all = {Checkpoint("c/1", 1, 1), Checkpoint("c/2", 2, 2),
                                                  Checkpoint("c/3", 3, 3), Checkpoint("c/4", 4, 4)};
  EXPECT_THAT(Names(CheckpointsBeyondKeepLast(all, 2, {})), ElementsAre("c/2", "c/1"));
  EXPECT_THAT(Names(CheckpointsBeyondKeepLast(all, 2, {"c/1"})), ElementsAre("c/2"));
  EXPECT_THAT(Names(CheckpointsBeyondKeepLast(all, 0, {})), ElementsAre("c/3", "c/2", "c/1"));  // the newest stays
  EXPECT_THAT(CheckpointsBeyondKeepLast(all, 10, {}), IsEmpty());
}

TEST(RetentionRulesTest, FreedSpaceAddsByReason) {
  FreedSpace a;
  a.Add(DeleteReason::kKeepLast, 2, 100);
  FreedSpace b;
  b.Add(DeleteReason::kOrphan, 1, 5);
  b.Add(DeleteReason::kKeepLast, 1, 10);
  a.Add(b);
  EXPECT_EQ(a.files[static_cast<int>(DeleteReason::kKeepLast)], 3);
  EXPECT_EQ(a.bytes[static_cast<int>(DeleteReason::kKeepLast)], 110);
  EXPECT_EQ(a.total_files(), 4);
  EXPECT_EQ(a.total_bytes(), 115);
  EXPECT_STREQ(DeleteReasonLabel(DeleteReason::kDeleted), "deleted");
}

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    options_.data_dir = data_dir_;
    options_.clock = &clock_;
    options_.min_free_bytes = 0;
  }

  void Open() {
    coordinator_.reset();
    auto coordinator = Coordinator::Create(options_);
    ASSERT_TRUE(coordinator.ok()) << coordinator.status();
    coordinator_ = std::move(*coordinator);
  }

  // A one-rank job with checkpoint.keep_last `keep_last`, placed on a new
  // worker "w" that reports it RUNNING.
  std::string StartJob(int keep_last, int max_restarts = 3) {
    auto job = coordinator_->SubmitJob(testing::JobYaml("kept", 1, 0, max_restarts), "job.yaml",
                                       {absl::StrCat("checkpoint.keep_last=", keep_last)},
                                       /*wait_for_workers=*/true);
    EXPECT_TRUE(job.ok()) << job.status();
    worker_ = std::make_unique<FakeWorker>(coordinator_.get(), "w");
    worker_->Register();
    EXPECT_TRUE(worker_->Beat().ok());
    EXPECT_EQ(worker_->running().size(), 1u);
    EXPECT_TRUE(worker_->Report(worker_->running().at(0), {Running()}).ok());
    return job.ok() ? job->id() : "";
  }

  absl::Status UploadCheckpoint(int64_t step, const std::string& data = "") {
    const std::string bytes = data.empty() ? absl::StrCat("weights at step ", step) : data;
    return worker_->Upload(worker_->running().at(0), absl::StrCat("checkpoints/step-", step, ".ckpt"),
                           dfv::v1::CHECKPOINT, step, bytes)
        .status();
  }

  std::vector<std::string> ArtifactNames(const std::string& id) {
    auto artifacts = coordinator_->ListArtifacts(id);
    EXPECT_TRUE(artifacts.ok()) << artifacts.status();
    std::vector<std::string> names = artifacts.ok() ? Names(*artifacts) : std::vector<std::string>{};
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string FileOf(const std::string& id, const std::string& name) {
    return absl::StrCat(data_dir_, "/artifacts/", id, "/", name);
  }

  std::vector<std::string> Messages(const std::string& id) {
    std::vector<std::string> texts;
    auto events = coordinator_->ReadEvents(id, 0, 0);
    EXPECT_TRUE(events.ok()) << events.status();
    for (const auto& e : events.ok() ? *events : std::vector<dfv::v1::JobEvent>{}) {
      if (e.has_message()) texts.push_back(e.message().text());
    }
    return texts;
  }

  // Ends the job's attempt by losing its worker, and lets a new worker
  // "w2" take attempt 2; returns that assignment.
  dfv::v1::Assignment Requeue() {
    testing::LoseWorkers(clock_, *coordinator_);
    worker_ = std::make_unique<FakeWorker>(coordinator_.get(), "w2");
    worker_->Register();
    EXPECT_TRUE(worker_->Beat().ok());
    EXPECT_EQ(worker_->running().size(), 1u);
    return worker_->running().empty() ? dfv::v1::Assignment() : worker_->running().at(0);
  }

  std::string data_dir_;
  FakeClock clock_;
  CoordinatorOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<FakeWorker> worker_;
};

TEST_F(RetentionTest, KeepLastRemovesOlderCheckpointsAndTheirFilesAsNewOnesArrive) {
  Open();
  const std::string id = StartJob(/*keep_last=*/2);
  for (int step : {10, 20, 30, 40}) {
    clock_.AdvanceMs(1);
    ASSERT_TRUE(UploadCheckpoint(step).ok());
  }
  ASSERT_TRUE(worker_->Upload(worker_->running().at(0), "grids/g.png", dfv::v1::GRID, 40, "png").ok());
  EXPECT_THAT(ArtifactNames(id),
              ElementsAre("checkpoints/step-30.ckpt", "checkpoints/step-40.ckpt", "grids/g.png"));
  EXPECT_FALSE(std::filesystem::exists(FileOf(id, "checkpoints/step-10.ckpt")));
  EXPECT_FALSE(std::filesystem::exists(FileOf(id, "checkpoints/step-20.ckpt")));
  EXPECT_TRUE(std::filesystem::exists(FileOf(id, "checkpoints/step-40.ckpt")));

  auto report = coordinator_->CollectGarbage();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->this_pass.total_files(), 0);  // nothing left to do
  EXPECT_EQ(report->since_start.files[static_cast<int>(DeleteReason::kKeepLast)], 2);
  const int64_t stored = std::string("weights at step 30").size() + std::string("weights at step 40").size() + 3;
  EXPECT_EQ(report->stored_bytes, stored);
  EXPECT_EQ(coordinator_->MetricsState().artifact_stored_bytes, stored);
}

TEST_F(RetentionTest, TheCheckpointAnAttemptResumedFromIsKeptBeyondKeepLast) {
  Open();
  const std::string id = StartJob(/*keep_last=*/1);
  ASSERT_TRUE(UploadCheckpoint(100).ok());
  const dfv::v1::Assignment second = Requeue();
  EXPECT_EQ(second.resume_artifact(), "checkpoints/step-100.ckpt");
  ASSERT_TRUE(worker_->Report(second, {Running()}).ok());
  // keep_last 1 would remove step-100, but a rank of attempt 2 may still be
  // reading it.
  ASSERT_TRUE(UploadCheckpoint(200).ok());
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-100.ckpt", "checkpoints/step-200.ckpt"));
  ASSERT_TRUE(UploadCheckpoint(300).ok());
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-100.ckpt", "checkpoints/step-300.ckpt"));
}

TEST_F(RetentionTest, ADamagedNewestCheckpointIsSkippedAndTheEventsSaySo) {
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(100).ok());
  ASSERT_TRUE(UploadCheckpoint(200).ok());
  ASSERT_TRUE(UploadCheckpoint(300).ok());
  {  // step-300: one byte flipped; step-200: cut short
    std::fstream file(FileOf(id, "checkpoints/step-300.ckpt"), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(3);
    file.put('#');
  }
  std::filesystem::resize_file(FileOf(id, "checkpoints/step-200.ckpt"), 5);

  const dfv::v1::Assignment second = Requeue();
  EXPECT_EQ(second.attempt(), 2);
  EXPECT_EQ(second.resume_artifact(), "checkpoints/step-100.ckpt");
  const std::vector<std::string> messages = Messages(id);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_THAT(messages[0], HasSubstr("checkpoints checkpoints/step-300.ckpt: artifact checkpoints/step-300.ckpt on disk"));
  EXPECT_THAT(messages[0], HasSubstr("checkpoints/step-200.ckpt: artifact checkpoints/step-200.ckpt on disk (5 bytes"));
  EXPECT_THAT(messages[0], HasSubstr("the next attempt resumes from checkpoints/step-100.ckpt"));
}

TEST_F(RetentionTest, WithNoCheckpointThatVerifiesTheJobStartsOver) {
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(100).ok());
  std::filesystem::remove(FileOf(id, "checkpoints/step-100.ckpt"));
  const dfv::v1::Assignment second = Requeue();
  EXPECT_EQ(second.resume_artifact(), "");
  ASSERT_EQ(Messages(id).size(), 1u);
  EXPECT_THAT(Messages(id)[0], HasSubstr("is indexed but its file"));
  EXPECT_THAT(Messages(id)[0], HasSubstr("no checkpoint verifies: the next attempt starts from the beginning"));
}

TEST_F(RetentionTest, ARestartedCoordinatorResumesFromAVerifiedCheckpoint) {
  options_.adopt_grace_ms = 0;  // requeued at once, not waiting for its worker
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(100).ok());
  ASSERT_TRUE(UploadCheckpoint(200).ok());
  std::filesystem::resize_file(FileOf(id, "checkpoints/step-200.ckpt"), 0);
  worker_.reset();
  Open();
  // Without waiting for a tick: the restart itself checked the checkpoints.
  FakeWorker worker(coordinator_.get(), "w", 1);
  worker.Register();
  ASSERT_TRUE(worker.Beat().ok());
  ASSERT_EQ(worker.running().size(), 1u);
  EXPECT_EQ(worker.running()[0].resume_artifact(), "checkpoints/step-100.ckpt");
}

TEST_F(RetentionTest, AJobQuotaRefusesAnUploadThatWouldPassItAndCountsWhatKeepLastFrees) {
  options_.job_artifact_quota_bytes = 100;
  Open();
  const std::string id = StartJob(/*keep_last=*/1);
  ASSERT_TRUE(UploadCheckpoint(1, std::string(60, 'a')).ok());
  // keep_last 1 removes step-1 when step-2 commits: 60 bytes in all, not 120.
  ASSERT_TRUE(UploadCheckpoint(2, std::string(60, 'b')).ok());
  absl::StatusOr<dfv::v1::ArtifactInfo> grid =
      worker_->Upload(worker_->running().at(0), "grids/big.png", dfv::v1::GRID, 2, std::string(50, 'g'));
  ASSERT_TRUE(absl::IsResourceExhausted(grid.status())) << grid.status();
  EXPECT_THAT(grid.status().message(), HasSubstr("artifact grids/big.png (50 B) refused: the job's artifacts would "
                                                 "take 110 B, over its quota of 100 B (--job-artifact-quota)"));
  EXPECT_THAT(Messages(id), ElementsAre(std::string(grid.status().message())));
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-2.ckpt"));
  // Replacing a file of the same name counts only the difference.
  ASSERT_TRUE(UploadCheckpoint(2, std::string(90, 'c')).ok());
}

TEST_F(RetentionTest, TheCoordinatorWideQuotaCountsEveryJob) {
  options_.artifact_quota_bytes = 100;
  Open();
  const std::string id = StartJob(/*keep_last=*/5);
  ASSERT_TRUE(UploadCheckpoint(1, std::string(80, 'a')).ok());
  absl::Status second = UploadCheckpoint(2, std::string(30, 'b'));
  ASSERT_TRUE(absl::IsResourceExhausted(second)) << second;
  EXPECT_THAT(second.message(), HasSubstr("the coordinator's artifacts would take 110 B, over its quota of 100 B "
                                          "(--artifact-quota)"));
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-1.ckpt"));
}

TEST_F(RetentionTest, SubmissionsAndUploadsAreRefusedBelowTheFreeSpaceFloorNamingIt) {
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(1).ok());
  options_.min_free_bytes = int64_t{1} << 60;  // more than any disk has
  worker_.reset();
  Open();
  auto refused = coordinator_->SubmitJob(testing::JobYaml("more"), "job.yaml", {}, true);
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr(absl::StrCat("the coordinator's data folder ", data_dir_, " has ")));
  EXPECT_THAT(refused.status().message(), HasSubstr("free; this job needs"));
  EXPECT_THAT(refused.status().message(), HasSubstr("must stay free (--min-free-space)"));
  auto jobs = coordinator_->ListJobs({}, 0);
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);  // nothing stored
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-1.ckpt"));
}

TEST_F(RetentionTest, DeleteRemovesAFinishedJobsArtifactsOnly) {
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(1).ok());
  ASSERT_TRUE(worker_->Upload(worker_->running().at(0), "report.json", dfv::v1::REPORT, 1, "{}").ok());
  auto running = coordinator_->DeleteJobArtifacts(id);
  ASSERT_TRUE(absl::IsFailedPrecondition(running.status())) << running.status();
  EXPECT_THAT(running.status().message(), HasSubstr("is RUNNING: only a finished job's artifacts can be deleted"));
  EXPECT_TRUE(absl::IsNotFound(coordinator_->DeleteJobArtifacts("j-999999").status()));

  ASSERT_TRUE(worker_->Complete(worker_->running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  const int64_t seq = coordinator_->GetJob(id)->last_seq();
  auto deleted = coordinator_->DeleteJobArtifacts(id);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->total_files(), 2);
  EXPECT_EQ(deleted->total_bytes(), static_cast<int64_t>(std::string("weights at step 1").size() + 2));
  EXPECT_THAT(ArtifactNames(id), IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(absl::StrCat(data_dir_, "/artifacts/", id)));
  EXPECT_EQ(coordinator_->GetJob(id)->state(), dfv::v1::SUCCEEDED);
  EXPECT_EQ(coordinator_->GetJob(id)->last_seq(), seq);  // the final state stays the last event
  EXPECT_EQ(coordinator_->MetricsState().artifact_stored_bytes, 0);
  auto again = coordinator_->DeleteJobArtifacts(id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->total_files(), 0);
}

TEST_F(RetentionTest, GcAppliesKeepLastToOldJobsAndRemovesOrphans) {
  Open();
  const std::string id = StartJob(/*keep_last=*/2);
  ASSERT_TRUE(UploadCheckpoint(1).ok());
  ASSERT_TRUE(worker_->Complete(worker_->running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());
  // Rows a coordinator without retention kept, and an orphan left by a
  // crash between a rename and its index row.
  ASSERT_TRUE(coordinator_->job_store()
                  ->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
                    for (int step : {2, 3}) {
                      dfv::v1::ArtifactInfo info = Checkpoint(absl::StrCat("checkpoints/step-", step, ".ckpt"), step, step);
                      info.set_checksum("crc32:00000000");
                      absl::Status put = tx.PutArtifact(id, info);
                      if (!put.ok()) return put;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  for (int step : {2, 3}) {
    std::ofstream(FileOf(id, absl::StrCat("checkpoints/step-", step, ".ckpt"))) << "0123456789";
  }
  std::filesystem::create_directories(FileOf(id, "grids"));
  std::ofstream(FileOf(id, "grids/orphan.png")) << "abc";
  std::ofstream(FileOf(id, "grids/.orphan.png.upload-0123456789abcdef")) << "in flight";

  auto report = coordinator_->CollectGarbage();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->this_pass.files[static_cast<int>(DeleteReason::kKeepLast)], 1);
  EXPECT_EQ(report->this_pass.bytes[static_cast<int>(DeleteReason::kKeepLast)],
            static_cast<int64_t>(std::string("weights at step 1").size()));
  EXPECT_EQ(report->this_pass.files[static_cast<int>(DeleteReason::kOrphan)], 1);
  EXPECT_EQ(report->this_pass.bytes[static_cast<int>(DeleteReason::kOrphan)], 3);
  EXPECT_GT(report->available_bytes, 0);
  EXPECT_THAT(ArtifactNames(id), ElementsAre("checkpoints/step-2.ckpt", "checkpoints/step-3.ckpt"));
  EXPECT_FALSE(std::filesystem::exists(FileOf(id, "grids/orphan.png")));
  EXPECT_TRUE(std::filesystem::exists(FileOf(id, "grids/.orphan.png.upload-0123456789abcdef")));
  EXPECT_FALSE(std::filesystem::exists(FileOf(id, "checkpoints/step-1.ckpt")));
}

// A real full disk: a 4 MiB tmpfs as the data folder (root only).
TEST_F(RetentionTest, AFullDataFolderRefusesWritesLosesNothingAndRecoversByItself) {
  auto tmpfs = dfv::testing::ScopedTmpfs::Mount(data_dir_, "4m");
  if (!tmpfs.ok()) GTEST_SKIP() << tmpfs.status().message();
  options_.min_free_bytes = 256 * 1024;
  Open();
  const std::string id = StartJob(/*keep_last=*/3);
  ASSERT_TRUE(UploadCheckpoint(1).ok());

  const std::string filler = absl::StrCat(data_dir_, "/filler");
  auto fill = [&] {  // to the brim
    std::ofstream out(filler, std::ios::binary);
    const std::string block(64 * 1024, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    }
  };
  fill();
  // Below the floor: refused before anything is written, the space named.
  auto submit = coordinator_->SubmitJob(testing::JobYaml("full"), "job.yaml", {}, true);
  ASSERT_TRUE(absl::IsResourceExhausted(submit.status())) << submit.status();
  EXPECT_THAT(submit.status().message(), HasSubstr("has 0 B free; this job needs"));
  absl::Status upload = UploadCheckpoint(2);
  ASSERT_TRUE(absl::IsResourceExhausted(upload)) << upload;
  EXPECT_THAT(upload.message(), HasSubstr("has 0 B free; artifact checkpoints/step-2.ckpt needs"));
  std::filesystem::remove(filler);
  ASSERT_TRUE(worker_->Complete(worker_->running().at(0), dfv::v1::OUTCOME_SUCCEEDED).ok());

  // With no floor, writes meet the full disk itself: SQLite answers
  // RESOURCE_EXHAUSTED and rolls the transaction back.
  fill();
  options_.min_free_bytes = 0;
  worker_.reset();
  Open();
  int accepted = 0;
  absl::Status full;
  for (int i = 0; i < 5000 && full.ok(); ++i) {
    auto job = coordinator_->SubmitJob(testing::JobYaml(absl::StrCat("fill-", i)), "job.yaml", {}, true);
    if (job.ok()) {
      ++accepted;
    } else {
      full = job.status();
    }
  }
  ASSERT_TRUE(absl::IsResourceExhausted(full)) << full;
  std::printf("full data folder: %d more job(s) fit in SQLite's WAL, then: %s\n", accepted,
              std::string(full.message()).c_str());
  // What was stored is intact: every accepted job, nothing of the refused one.
  auto jobs = coordinator_->ListJobs({}, 0);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_EQ(static_cast<int>(jobs->size()), 1 + accepted);
  auto reader = coordinator_->OpenArtifact(id, "checkpoints/step-1.ckpt");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(*(*reader)->Read(1024), "weights at step 1");

  // Space comes back: service resumes without a restart.
  std::filesystem::remove(filler);
  auto next = coordinator_->SubmitJob(testing::JobYaml("after"), "job.yaml", {}, true);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->id(), absl::StrFormat("j-%06d", accepted + 2));
  EXPECT_EQ(coordinator_->ReadEvents(next->id(), 0, 0)->size(), 1u);
}

}  // namespace
}  // namespace dfv::server
