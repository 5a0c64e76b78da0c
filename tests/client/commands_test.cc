// Tests of dfvctl's verbs against a scripted coordinator: what goes to
// stdout (ids, tables, JSON, folders) and stderr, what is sent, and the
// outcome each verb returns.
#include "client/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "google/protobuf/util/json_util.h"
#include "tests/client/fake_coordinator.h"

namespace dfv::client {
namespace {

namespace fs = std::filesystem;
using testing::CapturedFile;
using ::testing::ElementsAre;
using testing::FakeCoordinator;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::MessageEvent;
using ::testing::StartsWith;
using testing::StateEvent;

constexpr char kValidJob[] = "name: minimal\nmodel: vae\ndataset:\n  kind: fashion_mnist\n";

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("dfv_commands_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    ASSERT_TRUE(MakeDirs(dir_.string()).ok());
    console_.out = out_.get();
    console_.err = err_.get();
    console_.zone = absl::UTCTimeZone();
    console_.now_ms = [] { return int64_t{1714564800000}; };
    coordinator_.job.set_id("j-000001");
    coordinator_.job.set_name("minimal");
    coordinator_.job.set_model("vae");
    coordinator_.job.set_state(v1::QUEUED);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteJob(const std::string& text, const std::string& name = "job.yaml") {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(WriteFileAtomically(path, text).ok());
    return path;
  }

  // A job that runs to `final_state` with two artifacts to download.
  void ScriptRun(v1::JobState final_state, const std::string& reason = "") {
    coordinator_.watch_scripts.push_back(
        {{StateEvent(1, v1::QUEUED), StateEvent(2, v1::RUNNING), MessageEvent(3, "training"),
          StateEvent(4, final_state, reason)},
         absl::OkStatus()});
    coordinator_.job.set_state(final_state);
    coordinator_.job.set_reason(reason);
    coordinator_.AddArtifact("job.yaml", kValidJob, v1::JOB_SPEC);
    coordinator_.AddArtifact("grids/swap-step00000100.png", std::string(300, 'p'));
  }

  fs::path dir_;
  CapturedFile out_, err_;
  Console console_;
  FakeCoordinator coordinator_;
};

TEST_F(CommandsTest, SubmitRefusesABadFileLocallyAndSendsNothing) {
  SubmitOptions options;
  options.file = WriteJob("name: x\nmodel: nope\ntrain: {lr: -1}\n");
  options.overrides = {"train.epochs=abc"};
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(ExitCode(status), 2);
  EXPECT_THAT(status.message(), HasSubstr("4 errors; nothing was submitted"));
  EXPECT_THAT(coordinator_.submitted, IsEmpty());
  EXPECT_EQ(out_.text(), "");
  std::vector<std::string> lines = absl::StrSplit(err_.text(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << err_.text();
  EXPECT_THAT(err_.text(), HasSubstr(options.file + ":2: model: must be one of"));
  EXPECT_THAT(err_.text(), HasSubstr(options.file + ":3: train.lr: must be a number > 0"));
  EXPECT_THAT(lines[3], StartsWith("--set train.epochs=abc: train.epochs:"));
}

TEST_F(CommandsTest, SubmitSendsTheFileTextAndOverridesAndPrintsOnlyTheId) {
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.overrides = {"train.epochs=2", "priority=3"};
  coordinator_.job.set_id("j-000007");
  ASSERT_TRUE(RunSubmit(coordinator_, options, console_).ok());
  EXPECT_EQ(out_.text(), "j-000007\n");
  EXPECT_EQ(err_.text(), "");
  ASSERT_EQ(coordinator_.submitted.size(), 1u);
  const v1::SubmitJobRequest& request = coordinator_.submitted[0];
  EXPECT_EQ(request.spec_yaml(), kValidJob);  // the file as written, not re-printed
  EXPECT_EQ(request.source_name(), options.file);
  EXPECT_THAT(request.overrides(), ElementsAre("train.epochs=2", "priority=3"));
  EXPECT_THAT(coordinator_.watch_after_seqs, IsEmpty());  // no --follow
  EXPECT_FALSE(request.wait_for_workers());              // no --wait
}

TEST_F(CommandsTest, SubmitWaitAsksTheCoordinatorToQueueWithoutWorkers) {
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.wait_for_workers = true;
  ASSERT_TRUE(RunSubmit(coordinator_, options, console_).ok());
  EXPECT_EQ(out_.text(), "j-000001\n");
  ASSERT_EQ(coordinator_.submitted.size(), 1u);
  EXPECT_TRUE(coordinator_.submitted[0].wait_for_workers());
}

TEST_F(CommandsTest, SubmitRefusedForWantOfWorkersPrintsNoIdAndExitsOne) {
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  coordinator_.submit_status = absl::FailedPreconditionError(
      "resources.workers: 3 ranks need 3 cpu worker slots, the cluster has 2 (w1: 1, w2: 1); "
      "submit with --wait to queue it until workers join");
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(ExitCode(status), 1);
  EXPECT_EQ(out_.text(), "");
  ReportError(status, err_.get());
  EXPECT_EQ(err_.text(),
            "dfvctl: resources.workers: 3 ranks need 3 cpu worker slots, the cluster has 2 (w1: 1, "
            "w2: 1); submit with --wait to queue it until workers join\n");
}

TEST_F(CommandsTest, SubmitPrintsTheCoordinatorsValidationErrorsLineByLine) {
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  coordinator_.submit_status = absl::InvalidArgumentError(
      "job.yaml: dataset.path: folder does not exist on the coordinator\n"
      "job.yaml: resources.workers: 4 requested, the largest worker has 2 slots\n");
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("refused " + options.file));
  EXPECT_EQ(err_.text(),
            "job.yaml: dataset.path: folder does not exist on the coordinator\n"
            "job.yaml: resources.workers: 4 requested, the largest worker has 2 slots\n");
  EXPECT_EQ(out_.text(), "");
}

TEST_F(CommandsTest, SubmitOfAMissingFileIsNotFound) {
  SubmitOptions options;
  options.file = (dir_ / "absent.yaml").string();
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("absent.yaml"));
  EXPECT_THAT(coordinator_.submitted, IsEmpty());
}

TEST_F(CommandsTest, SubmitFollowWatchesDownloadsAndPrintsTheFolderLast) {
  ScriptRun(v1::SUCCEEDED);
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.follow = true;
  options.download_dir = (dir_ / "results").string();
  absl::Status status = RunSubmit(coordinator_, options, console_);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(out_.text(), "j-000001\n" + options.download_dir + "\n");
  EXPECT_THAT(coordinator_.watch_after_seqs, ElementsAre(0));
  const std::string err = err_.text();
  EXPECT_THAT(err, HasSubstr("#2 state RUNNING attempt 1\n"));
  EXPECT_THAT(err, HasSubstr("#3 message training\n"));
  EXPECT_THAT(err, HasSubstr("j-000001 SUCCEEDED\n"));
  EXPECT_THAT(err, HasSubstr("downloaded 2 artifacts (356 B) to " + options.download_dir));
  EXPECT_EQ(ReadFileToString(options.download_dir + "/grids/swap-step00000100.png").value(),
            std::string(300, 'p'));
  EXPECT_EQ(ReadFileToString(options.download_dir + "/job.yaml").value(), kValidJob);
}

TEST_F(CommandsTest, SubmitFollowDownloadsIntoRunsJobIdByDefault) {
  ScriptRun(v1::SUCCEEDED);
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.follow = true;
  const fs::path previous = fs::current_path();
  fs::current_path(dir_);
  absl::Status status = RunSubmit(coordinator_, options, console_);
  fs::current_path(previous);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(out_.text(), "j-000001\nruns/j-000001\n");
  EXPECT_TRUE(fs::exists(dir_ / "runs/j-000001/job.yaml"));
}

TEST_F(CommandsTest, SubmitFollowOfAFailedJobStillDownloadsButFails) {
  ScriptRun(v1::FAILED, "trainer exited with status 1: out of memory");
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.follow = true;
  options.download_dir = (dir_ / "results").string();
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(status.message(), "job j-000001 FAILED: trainer exited with status 1: out of memory");
  EXPECT_EQ(ExitCode(status), 1);
  EXPECT_EQ(out_.text(), "j-000001\n" + options.download_dir + "\n");
  EXPECT_TRUE(fs::exists(options.download_dir + "/job.yaml"));
}

TEST_F(CommandsTest, SubmitFollowRefusesAJobIdThatCannotNameAFolder) {
  ScriptRun(v1::SUCCEEDED);
  coordinator_.job.set_id("../escape");
  SubmitOptions options;
  options.file = WriteJob(kValidJob);
  options.follow = true;
  absl::Status status = RunSubmit(coordinator_, options, console_);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("cannot name a folder"));
}

TEST_F(CommandsTest, EvalSendsTheJobCheckpointAndOverridesAndPrintsOnlyTheNewId) {
  coordinator_.job.set_id("j-000008");
  EvalOptions options;
  options.job_id = "j-000003";
  options.checkpoint = "step-00000060.ckpt";
  options.overrides = {"evaluate.classifiers=[mlp]", "evaluate.swap=true"};
  ASSERT_TRUE(RunEval(coordinator_, options, console_).ok());
  EXPECT_EQ(out_.text(), "j-000008\n");
  EXPECT_EQ(err_.text(), "");
  ASSERT_EQ(coordinator_.evaluated.size(), 1u);
  const v1::EvaluateCheckpointRequest& request = coordinator_.evaluated[0];
  EXPECT_EQ(request.job_id(), "j-000003");
  EXPECT_EQ(request.checkpoint(), "step-00000060.ckpt");
  EXPECT_THAT(request.overrides(), ElementsAre("evaluate.classifiers=[mlp]", "evaluate.swap=true"));
  EXPECT_FALSE(request.wait_for_workers());
  EXPECT_THAT(coordinator_.watch_after_seqs, IsEmpty());
  EXPECT_THAT(coordinator_.submitted, IsEmpty());
}

TEST_F(CommandsTest, EvalPrintsRefusedOverridesLineByLineAndOtherRefusalsAsTheyAre) {
  EvalOptions options;
  options.job_id = "j-000003";
  options.overrides = {"train.lr=1", "model=vae"};
  coordinator_.evaluate_status = absl::InvalidArgumentError(
      "--set train.lr=1: train.lr: an evaluation keeps the job file the checkpoint was trained with\n"
      "--set model=vae: model: an evaluation keeps the job file the checkpoint was trained with");
  absl::Status status = RunEval(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(ExitCode(status), 2);
  EXPECT_THAT(status.message(), HasSubstr("refused to evaluate j-000003"));
  EXPECT_EQ(err_.text(),
            "--set train.lr=1: train.lr: an evaluation keeps the job file the checkpoint was trained with\n"
            "--set model=vae: model: an evaluation keeps the job file the checkpoint was trained with\n");
  EXPECT_EQ(out_.text(), "");

  coordinator_.evaluate_status =
      absl::NotFoundError("job j-000003 has no checkpoint step-9.ckpt; its checkpoints: checkpoints/step-00000060.ckpt");
  status = RunEval(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("its checkpoints: checkpoints/step-00000060.ckpt"));
  EXPECT_EQ(out_.text(), "");

  options.job_id = "";
  EXPECT_TRUE(absl::IsInvalidArgument(RunEval(coordinator_, options, console_)));
}

TEST_F(CommandsTest, EvalFollowWatchesTheNewJobAndDownloadsItsResults) {
  ScriptRun(v1::SUCCEEDED);
  EvalOptions options;
  options.job_id = "j-000003";
  options.wait_for_workers = true;
  options.follow = true;
  options.download_dir = (dir_ / "evaluated").string();
  absl::Status status = RunEval(coordinator_, options, console_);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(out_.text(), "j-000001\n" + options.download_dir + "\n");
  ASSERT_EQ(coordinator_.evaluated.size(), 1u);
  EXPECT_TRUE(coordinator_.evaluated[0].wait_for_workers());
  EXPECT_THAT(coordinator_.watch_after_seqs, ElementsAre(0));
  EXPECT_THAT(err_.text(), HasSubstr("j-000001 SUCCEEDED\n"));
  EXPECT_TRUE(fs::exists(options.download_dir + "/grids/swap-step00000100.png"));
}

TEST_F(CommandsTest, WatchPrintsEventsThenTheFinalState) {
  ScriptRun(v1::SUCCEEDED);
  WatchOptions options;
  options.job_id = "j-000001";
  ASSERT_TRUE(RunWatch(coordinator_, options, console_).ok());
  EXPECT_EQ(out_.text(),
            "#1 state QUEUED attempt 1\n"
            "#2 state RUNNING attempt 1\n"
            "#3 message training\n"
            "#4 state SUCCEEDED attempt 1\n"
            "j-000001 SUCCEEDED\n");
  EXPECT_EQ(err_.text(), "");
}

TEST_F(CommandsTest, WatchOfACancelledJobFailsWithTheReason) {
  ScriptRun(v1::CANCELLED, "cancelled by alice");
  WatchOptions options;
  options.job_id = "j-000001";
  absl::Status status = RunWatch(coordinator_, options, console_);
  EXPECT_EQ(status, absl::FailedPreconditionError("job j-000001 CANCELLED: cancelled by alice"));
  EXPECT_THAT(out_.text(), HasSubstr("j-000001 CANCELLED: cancelled by alice\n"));
}

TEST_F(CommandsTest, WatchJsonIsOneEventPerLine) {
  ScriptRun(v1::SUCCEEDED);
  WatchOptions options;
  options.job_id = "j-000001";
  options.format = OutputFormat::kJson;
  options.follow_options.after_seq = 2;
  ASSERT_TRUE(RunWatch(coordinator_, options, console_).ok());
  std::vector<std::string> lines = absl::StrSplit(out_.text(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << out_.text();  // seq 3 and 4
  v1::JobEvent event;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[1], &event).ok());
  EXPECT_EQ(event.seq(), 4);
  EXPECT_EQ(event.state().state(), v1::SUCCEEDED);
  EXPECT_THAT(coordinator_.watch_after_seqs, ElementsAre(2));
}

TEST_F(CommandsTest, WatchOfAnUnknownJobIsNotFound) {
  coordinator_.get_job_status = absl::NotFoundError("no job j-000404");
  WatchOptions options;
  options.job_id = "j-000404";
  absl::Status status = RunWatch(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsNotFound(status)) << status;
  EXPECT_THAT(coordinator_.watch_after_seqs, IsEmpty());
}

TEST_F(CommandsTest, ListPrintsATableAndPassesTheFilter) {
  *coordinator_.jobs.add_jobs() = coordinator_.job;
  ListOptions options;
  options.states = {"queued", "Running"};
  options.limit = 5;
  ASSERT_TRUE(RunList(coordinator_, options, console_).ok());
  EXPECT_EQ(out_.text(),
            "ID        NAME     MODEL  STATE   PRIORITY  ATTEMPT  PROGRESS  AGE\n"
            "j-000001  minimal  vae    QUEUED  0         0        -         -\n");
  ASSERT_EQ(coordinator_.list_requests.size(), 1u);
  EXPECT_THAT(coordinator_.list_requests[0].states(), ElementsAre(v1::QUEUED, v1::RUNNING));
  EXPECT_EQ(coordinator_.list_requests[0].limit(), 5);
}

TEST_F(CommandsTest, ListRefusesAnUnknownState) {
  ListOptions options;
  options.states = {"sleeping"};
  absl::Status status = RunList(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(),
              HasSubstr("not one of queued, scheduled, running, succeeded, failed, cancelled"));
  EXPECT_THAT(coordinator_.list_requests, IsEmpty());
}

TEST_F(CommandsTest, ListWithNoJobsSaysSoOnStderr) {
  ASSERT_TRUE(RunList(coordinator_, ListOptions(), console_).ok());
  EXPECT_EQ(out_.text(), "");
  EXPECT_EQ(err_.text(), "no jobs\n");
}

TEST_F(CommandsTest, ListJsonParsesBack) {
  *coordinator_.jobs.add_jobs() = coordinator_.job;
  ListOptions options;
  options.format = OutputFormat::kJson;
  ASSERT_TRUE(RunList(coordinator_, options, console_).ok());
  v1::ListJobsResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.text(), &parsed).ok());
  ASSERT_EQ(parsed.jobs_size(), 1);
  EXPECT_EQ(parsed.jobs(0).id(), "j-000001");
}

TEST_F(CommandsTest, GetPrintsDetailsOrJson) {
  ASSERT_TRUE(RunGet(coordinator_, {"j-000001", OutputFormat::kText}, console_).ok());
  EXPECT_THAT(out_.text(), StartsWith("id:         j-000001\nname:       minimal\n"));
  CapturedFile json_out;
  console_.out = json_out.get();
  ASSERT_TRUE(RunGet(coordinator_, {"j-000001", OutputFormat::kJson}, console_).ok());
  v1::Job parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json_out.text(), &parsed).ok());
  EXPECT_EQ(parsed.state(), v1::QUEUED);
}

TEST_F(CommandsTest, CancelSendsTheReasonAndPrintsTheState) {
  coordinator_.job.set_state(v1::CANCELLED);
  coordinator_.job.set_reason("wrong learning rate");
  ASSERT_TRUE(RunCancel(coordinator_, {"j-000001", "wrong learning rate"}, console_).ok());
  EXPECT_THAT(
      coordinator_.cancelled,
      ElementsAre(std::make_pair(std::string("j-000001"), std::string("wrong learning rate"))));
  EXPECT_EQ(out_.text(), "j-000001 CANCELLED: wrong learning rate\n");
}

TEST_F(CommandsTest, ArtifactsListsOrDownloads) {
  coordinator_.AddArtifact("report.json", "{}", v1::REPORT);
  ASSERT_TRUE(RunArtifacts(coordinator_, {"j-000001", "", OutputFormat::kText}, console_).ok());
  EXPECT_EQ(out_.text(),
            "NAME         KIND    STEP  SIZE  ATTEMPT\n"
            "report.json  report  0     2 B   1\n");

  CapturedFile download_out;
  console_.out = download_out.get();
  const std::string target = (dir_ / "dl").string();
  ASSERT_TRUE(RunArtifacts(coordinator_, {"j-000001", target, OutputFormat::kText}, console_).ok());
  EXPECT_EQ(download_out.text(), target + "\n");
  EXPECT_THAT(err_.text(), HasSubstr("fetched " + target + "/report.json (2 B)\n"));
  EXPECT_EQ(ReadFileToString(target + "/report.json").value(), "{}");
}

TEST_F(CommandsTest, DeleteNamesTheJobAndWhatItFreed) {
  v1::DeleteArtifactsResponse response;
  response.set_files(14);
  response.set_bytes(3 << 20);
  coordinator_.delete_result = response;
  ASSERT_TRUE(RunDelete(coordinator_, {"j-000003"}, console_).ok());
  EXPECT_THAT(coordinator_.deleted_jobs, ElementsAre("j-000003"));
  EXPECT_EQ(out_.text(), "j-000003: deleted 14 artifacts (3.0 MiB)\n");
  coordinator_.delete_result = absl::FailedPreconditionError("job j-000004 is RUNNING");
  EXPECT_TRUE(absl::IsFailedPrecondition(RunDelete(coordinator_, {"j-000004"}, console_)));
  EXPECT_TRUE(absl::IsInvalidArgument(RunDelete(coordinator_, {""}, console_)));
}

TEST_F(CommandsTest, GcPrintsEachReasonThisPassAndSinceStart) {
  for (const char* reason : {"keep_last", "deleted", "orphan"}) {
    v1::FreedSpace* pass = coordinator_.garbage.add_this_pass();
    pass->set_reason(reason);
    v1::FreedSpace* total = coordinator_.garbage.add_since_start();
    total->set_reason(reason);
    total->set_files(2);
    total->set_bytes(2048);
  }
  coordinator_.garbage.mutable_this_pass(2)->set_files(1);
  coordinator_.garbage.mutable_this_pass(2)->set_bytes(3);
  coordinator_.garbage.set_stored_bytes(5 << 20);
  coordinator_.garbage.set_available_bytes(int64_t{12} << 30);
  ASSERT_TRUE(RunGc(coordinator_, {OutputFormat::kText}, console_).ok());
  EXPECT_EQ(out_.text(),
            "REASON     FILES  FREED  FILES SINCE START  FREED SINCE START\n"
            "keep_last  0      0 B    2                  2.0 KiB\n"
            "deleted    0      0 B    2                  2.0 KiB\n"
            "orphan     1      3 B    2                  2.0 KiB\n"
            "artifacts stored: 5.0 MiB; free on the coordinator's data folder: 12.0 GiB\n");
}

TEST_F(CommandsTest, WorkersTable) {
  v1::WorkerInfo* w = coordinator_.workers.add_workers();
  w->set_id("wk-1");
  w->set_name("cpu-a");
  w->set_device("cpu");
  w->set_slots(2);
  w->set_free_slots(2);
  w->set_state(v1::WORKER_ALIVE);
  w->set_address("127.0.0.1:7071");
  w->set_last_heartbeat_ms(1714564800000 - 1000);
  ASSERT_TRUE(RunWorkers(coordinator_, {OutputFormat::kText}, console_).ok());
  EXPECT_EQ(out_.text(),
            "ID    NAME   DEVICE  SLOTS  STATE  ADDRESS         HEARTBEAT  JOBS\n"
            "wk-1  cpu-a  cpu     2/2    alive  127.0.0.1:7071  1s ago     -\n");
}

TEST_F(CommandsTest, TopShowsWorkersAndUnfinishedJobsScreenAfterScreen) {
  v1::WorkerInfo* w = coordinator_.workers.add_workers();
  w->set_name("cpu-a");
  w->set_device("cpu");
  w->set_slots(2);
  w->set_free_slots(1);
  w->set_state(v1::WORKER_ALIVE);
  w->set_last_heartbeat_ms(1714564800000 - 1000);
  w->add_job_ids("j-000007");
  v1::Job* job = coordinator_.jobs.add_jobs();
  job->set_id("j-000007");
  job->set_name("cyclevae");
  job->set_model("cycle_vae");
  job->set_state(v1::RUNNING);
  job->set_world_size(1);
  job->mutable_progress()->set_step(1200);
  job->mutable_progress()->set_total_steps(5622);
  job->mutable_progress()->set_samples_per_second(1450.4);
  job->mutable_progress()->set_step_seconds(0.0441);
  job->mutable_progress()->set_eta_seconds(151);
  std::vector<absl::Duration> slept;
  TopOptions options;
  options.iterations = 2;
  options.interval = absl::Seconds(3);
  options.sleep = [&](absl::Duration d) { slept.push_back(d); };
  ASSERT_TRUE(RunTop(coordinator_, options, console_).ok());
  const std::string screen =
      "dfv top  12:00:00  workers 1 alive of 1, slots 1/2 busy  jobs 1 running, 0 queued\n"
      "\n"
      "WORKER  DEVICE  BUSY  STATE  HEARTBEAT  JOBS\n"
      "cpu-a   cpu     1/2   alive  1s ago     j-000007\n"
      "\n"
      "JOB       NAME      MODEL      STATE    RANKS  STEP           SAMPLES/S  STEP TIME  ETA\n"
      "j-000007  cyclevae  cycle_vae  RUNNING  1      1200/5622 21%  1450       0.044 s    2m31s\n";
  EXPECT_EQ(out_.text(), screen + "\n" + screen);
  EXPECT_EQ(slept, (std::vector<absl::Duration>{absl::Seconds(3)}));
  // Only unfinished jobs are asked for.
  ASSERT_EQ(coordinator_.list_requests.size(), 2u);
  EXPECT_EQ(coordinator_.list_requests[0].states_size(), 3);

  // On a terminal each screen is drawn in place.
  CapturedFile tty;
  console_.out = tty.get();
  console_.out_is_tty = true;
  options.iterations = 1;
  ASSERT_TRUE(RunTop(coordinator_, options, console_).ok());
  EXPECT_EQ(tty.text(), "\x1b[H\x1b[2J" + screen);
}

TEST_F(CommandsTest, ReportShowsTwoJobsSideBySide) {
  const std::string first = R"({"job": "cvae", "model": "cycle_vae", "dataset": "sprites", "steps": 40,
      "wall_seconds": 12.5, "final_metrics": {"loss": 0.25},
      "evaluation": {"test_images": 64, "reconstruction_mse": 0.0123,
                     "latent": {"s": {"mlp": {"test_accuracy": 0.9}, "chance": {"majority": 0.1}}},
                     "predictors": {"z_to_s": {"regeneration_mse": 0.002}}}})";
  const std::string second = R"({"job": "vae", "model": "vae", "dataset": "sprites", "steps": 40,
      "wall_seconds": 8, "evaluation": {"test_images": 64, "reconstruction_mse": 0.02,
                     "predictors": "not applicable: vae has no separate s and z codes"}})";
  for (const auto& [id, data] : {std::pair<std::string, std::string>{"j-000001", first}, {"j-000002", second}}) {
    coordinator_.job_transfers[id]["report.json"] =
        testing::Transfer(testing::MakeInfo("report.json", data, v1::REPORT), data);
  }
  ReportOptions options;
  options.job_ids = {"j-000001", "j-000002"};
  ASSERT_TRUE(RunReport(coordinator_, options, console_).ok()) << err_.text();
  EXPECT_THAT(coordinator_.artifact_jobs, ElementsAre("j-000001", "j-000002"));
  EXPECT_THAT(coordinator_.artifact_requests, ElementsAre("report.json", "report.json"));
  const std::vector<std::string> lines = absl::StrSplit(out_.text(), '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 8u);
  EXPECT_THAT(lines[0], ::testing::MatchesRegex("FIELD +j-000001 +j-000002"));
  // Leading rows in their fixed order, then the evaluation without its prefix.
  EXPECT_THAT(lines[1], StartsWith("job "));
  EXPECT_THAT(lines[2], StartsWith("model "));
  EXPECT_THAT(lines[2], HasSubstr("cycle_vae"));
  EXPECT_THAT(lines[3], StartsWith("dataset "));
  EXPECT_THAT(out_.text(), HasSubstr("latent.s.mlp.test_accuracy"));
  EXPECT_THAT(out_.text(), ::testing::Not(HasSubstr("evaluation.")));
  // A row one report lacks reads "-"; text values are shown as they are.
  std::string accuracy, predictor;
  for (const std::string& line : lines) {
    if (absl::StartsWith(line, "latent.s.mlp.test_accuracy")) accuracy = line;
    if (absl::StartsWith(line, "predictors")) predictor += line + "\n";
  }
  EXPECT_THAT(accuracy, ::testing::MatchesRegex("latent.s.mlp.test_accuracy +0.9 +-"));
  EXPECT_THAT(predictor, HasSubstr("not applicable: vae has no separate s and z codes"));
  // Sorted by path: the text row of one job sits just before the other's values.
  EXPECT_THAT(predictor, ::testing::MatchesRegex("predictors +- +not applicable[^\n]*\npredictors.z_to_s.regeneration_mse +0.002 +-\n"));
  EXPECT_THAT(out_.text(), HasSubstr("final_metrics.loss"));

  // -o json: one object keyed by job id.
  CapturedFile json_out;
  console_.out = json_out.get();
  options.format = OutputFormat::kJson;
  ASSERT_TRUE(RunReport(coordinator_, options, console_).ok());
  const nlohmann::json all = nlohmann::json::parse(json_out.text());
  EXPECT_EQ(all["j-000001"]["model"], "cycle_vae");
  EXPECT_EQ(all["j-000002"]["evaluation"]["reconstruction_mse"], 0.02);

  // A job without a report names the job; no ids is a usage error.
  options.job_ids = {"j-000003"};
  const absl::Status missing = RunReport(coordinator_, options, console_);
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(std::string(missing.message()), HasSubstr("job j-000003: report.json"));
  options.job_ids.clear();
  EXPECT_TRUE(absl::IsInvalidArgument(RunReport(coordinator_, options, console_)));
}

TEST(CommandHelpersTest, ExitCodesAndOneLineErrors) {
  EXPECT_EQ(ExitCode(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCode(absl::InvalidArgumentError("bad")), 2);
  EXPECT_EQ(ExitCode(absl::UnavailableError("down")), 1);
  EXPECT_EQ(ExitCode(absl::FailedPreconditionError("job FAILED")), 1);
  CapturedFile err;
  ReportError(absl::InternalError("first\nsecond\n"), err.get());
  ReportError(absl::UnimplementedError(""), err.get());
  EXPECT_EQ(err.text(), "dfvctl: first; second\ndfvctl: UNIMPLEMENTED\n");
}

TEST(CommandHelpersTest, ParsesOutputFormatsAndStates) {
  EXPECT_EQ(ParseOutputFormat("json").value(), OutputFormat::kJson);
  EXPECT_EQ(ParseOutputFormat("text").value(), OutputFormat::kText);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseOutputFormat("yaml").status()));
  EXPECT_EQ(ParseJobState("succeeded").value(), v1::SUCCEEDED);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseJobState("job_state_unspecified").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseJobState("").status()));
}

}  // namespace
}  // namespace dfv::client
