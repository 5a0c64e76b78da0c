// WorkerDaemon over a fake CoordinatorLink: registration and its retries,
// heartbeats, session expiry, duplicate deliveries, cancels and Stop(). The
// trainer is a shell that records its pid and arguments, then sleeps: it
// prints nothing, so these tests do not depend on the trainer's protocol.
#include "worker/daemon/daemon.h"

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cpu_cores.h"
#include "common/file_util.h"
#include "tests/daemon/fake_link.h"
#include "tests/testing/http_get.h"
#include "worker/daemon/data_plane.h"

namespace dfv::daemon {
namespace {

// Generous: a loaded CI machine may be slow. The tests finish as soon as the
// condition holds.
constexpr absl::Duration kTimeout = absl::Seconds(10);

v1::Assignment MakeAssignment(const std::string& job_id, int attempt, int rank) {
  v1::Assignment a;
  a.set_job_id(job_id);
  a.set_attempt(attempt);
  a.set_rank(rank);
  a.set_world_size(1);
  a.set_spec_yaml("name: daemon-test\n");  // read by no one: the trainer is a shell
  return a;
}

v1::HeartbeatResponse Deliver(const std::vector<v1::Assignment>& assignments) {
  v1::HeartbeatResponse response;
  for (const auto& a : assignments) *response.add_assignments() = a;
  return response;
}

// "job/attempt/rank" of each running assignment a heartbeat lists, sorted.
std::vector<std::string> Running(const v1::HeartbeatRequest& request) {
  std::vector<std::string> running;
  for (const auto& r : request.running()) running.push_back(absl::StrCat(r.job_id(), "/", r.attempt(), "/", r.rank()));
  std::sort(running.begin(), running.end());
  return running;
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0; }

class DaemonTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (run_thread_.joinable()) {
      daemon_->Stop();
      run_thread_.join();
    }
    daemon_.reset();
  }

  // Creates the daemon over a new RecordingLink and runs it on a thread.
  // `script` prepares the link before the daemon's first call; `configure`
  // changes the options.
  void StartDaemon(const std::function<void(RecordingLink&)>& script = nullptr,
                   const std::function<void(WorkerDaemonOptions&)>& configure = nullptr) {
    dir_ = std::filesystem::path(::testing::TempDir()) / "daemon_test" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto link = std::make_unique<RecordingLink>();
    link_ = link.get();
    if (script) {
      absl::MutexLock lock(&link_->mu_);
      script(*link_);
    }
    WorkerDaemonOptions options;
    options.coordinator = "fake-coordinator";
    options.name = "test-worker";
    options.slots = 2;
    options.work_dir = (dir_ / "work").string();
    options.ready_file = ReadyFile();
    // The runner's flags become the shell's positional parameters.
    options.trainer_command = {"/bin/sh", "-c",
                               absl::StrCat("echo $$ \"$@\" >> '", (dir_ / "starts").string(), "'; exec sleep 30"),
                               "fake-trainer"};
    options.cancel_grace = absl::Seconds(1);
    options.register_retry = absl::Milliseconds(20);
    // Off unless a test turns it on: the shell trainer would record every
    // prestarted process as a start.
    options.prestart_trainers = false;
    // Off unless a test turns it on: a metrics server takes about 2 s to
    // stop (civetweb), which every test would pay.
    options.metrics_listen = "";
    if (configure) configure(options);
    auto daemon = WorkerDaemon::Create(std::move(options), std::move(link));
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = std::move(daemon).value();
    run_thread_ = std::thread([this] { run_status_ = daemon_->Run(); });
  }

  std::string ReadyFile() const { return (dir_ / "ready").string(); }

  // One line per trainer started: its pid, then its arguments.
  std::vector<std::string> TrainerStarts() const {
    std::vector<std::string> lines;
    std::ifstream in(dir_ / "starts");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }
  pid_t TrainerPid(size_t i) const { return std::stoi(TrainerStarts().at(i)); }
  bool WaitForTrainers(size_t n) {
    return link_->WaitFor([&] { return TrainerStarts().size() >= n; }, kTimeout);
  }

  // Waits for a heartbeat sent after the first `after` ones that satisfies
  // `match`, and returns its index (-1 on timeout).
  int WaitForHeartbeat(size_t after, const std::function<bool(const v1::HeartbeatRequest&)>& match) {
    int found = -1;
    link_->WaitFor(
        [&] {
          absl::MutexLock lock(&link_->mu_);
          for (size_t i = after; i < link_->heartbeat_requests_.size(); ++i) {
            if (match(link_->heartbeat_requests_[i])) {
              found = static_cast<int>(i);
              return true;
            }
          }
          return false;
        },
        kTimeout);
    return found;
  }
  int WaitForRunning(size_t after, const std::vector<std::string>& running) {
    return WaitForHeartbeat(after, [&](const v1::HeartbeatRequest& r) { return Running(r) == running; });
  }
  size_t Heartbeats() {
    absl::MutexLock lock(&link_->mu_);
    return link_->heartbeat_requests_.size();
  }

  void Answer(absl::StatusOr<v1::HeartbeatResponse> answer) {
    absl::MutexLock lock(&link_->mu_);
    link_->heartbeat_answers_.push_back(std::move(answer));
  }

  std::filesystem::path dir_;
  RecordingLink* link_ = nullptr;  // owned by daemon_
  std::unique_ptr<WorkerDaemon> daemon_;
  std::thread run_thread_;
  absl::Status run_status_;
};

TEST_F(DaemonTest, RetriesRegistrationUntilTheCoordinatorAnswersThenWritesTheReadyFile) {
  StartDaemon([](RecordingLink& link) {
    for (int i = 0; i < 3; ++i) link.register_failures_.push_back(absl::UnavailableError("connection refused"));
  });
  ASSERT_TRUE(link_->WaitFor([&] { return std::filesystem::exists(ReadyFile()); }, kTimeout));
  auto ready = ReadFileToString(ReadyFile());
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(*ready, daemon_->address() + "\n");
  {
    absl::MutexLock lock(&link_->mu_);
    ASSERT_EQ(link_->register_requests_.size(), 4u) << "three refused, then the one that wrote the ready file";
    for (const v1::RegisterWorkerRequest& r : link_->register_requests_) {
      EXPECT_EQ(r.name(), "test-worker");
      EXPECT_EQ(r.slots(), 2);
      EXPECT_EQ(r.device(), "cpu");
      EXPECT_EQ(r.address(), daemon_->address());
    }
  }
  // Heartbeats follow, in the session the registration started.
  EXPECT_GE(WaitForHeartbeat(0, [](const v1::HeartbeatRequest& r) { return r.worker_id() == "w-1"; }), 0);
}

TEST_F(DaemonTest, HeartbeatsListRunningAssignmentsAndADuplicateDeliveryStartsOnce) {
  StartDaemon();
  const v1::Assignment a = MakeAssignment("j-1", 1, 0);
  const v1::Assignment b = MakeAssignment("j-2", 3, 0);
  Answer(Deliver({a, a}));  // twice in one response
  ASSERT_GE(WaitForRunning(0, {"j-1/1/0"}), 0);
  Answer(Deliver({a, b}));  // and again in the next
  int both = WaitForRunning(0, {"j-1/1/0", "j-2/3/0"});
  ASSERT_GE(both, 0);
  // Later heartbeats keep listing exactly the two.
  ASSERT_GE(WaitForHeartbeat(both + 3, [](const v1::HeartbeatRequest&) { return true; }), 0);
  {
    absl::MutexLock lock(&link_->mu_);
    for (size_t i = both; i < link_->heartbeat_requests_.size(); ++i) {
      EXPECT_EQ(Running(link_->heartbeat_requests_[i]), (std::vector<std::string>{"j-1/1/0", "j-2/3/0"})) << i;
    }
  }
  // Beats follow a delivery at once now: the trainers may start after them.
  ASSERT_TRUE(WaitForTrainers(2));
  std::vector<std::string> starts = TrainerStarts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_TRUE(absl::StrContains(starts[0], "/j-1-a1-r0/run --rank 0 --world-size 1")) << starts[0];
  EXPECT_TRUE(absl::StrContains(starts[1], "/j-2-a3-r0/run --rank 0 --world-size 1")) << starts[1];
}

// The fake trainer for the core-sharing tests: records its CPU affinity list
// (as the kernel shows it, e.g. "0-1") and its arguments, then sleeps.
void RecordAffinity(WorkerDaemonOptions& options, const std::filesystem::path& starts) {
  options.trainer_command = {
      "/bin/sh", "-c",
      absl::StrCat("echo $$ \"cpus=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)\" \"$@\" >> '",
                   starts.string(), "'; exec sleep 30"),
      "fake-trainer"};
}

// The trainer start line of job `job_id`.
std::string StartOf(const std::vector<std::string>& starts, const std::string& job_id) {
  for (const std::string& line : starts) {
    if (absl::StrContains(line, absl::StrCat("/", job_id, "-a"))) return line;
  }
  return "";
}

TEST_F(DaemonTest, TwoSlotsPinEachTrainerToItsOwnShareOfTheCoresAndReuseAFreedSlot) {
  StartDaemon(nullptr, [this](WorkerDaemonOptions& options) { RecordAffinity(options, dir_ / "starts"); });
  const std::vector<int> cpus = AffinityCpus();
  ASSERT_FALSE(cpus.empty());
  Answer(Deliver({MakeAssignment("j-1", 1, 0)}));
  ASSERT_TRUE(WaitForTrainers(1));
  Answer(Deliver({MakeAssignment("j-2", 1, 0)}));
  ASSERT_TRUE(WaitForTrainers(2));
  std::vector<std::string> starts = TrainerStarts();
  for (int slot : {0, 1}) {
    const std::string line = StartOf(starts, slot == 0 ? "j-1" : "j-2");
    EXPECT_TRUE(absl::StrContains(line, absl::StrCat("cpus=", FormatCpuList(CoreShare(cpus, 2, slot)), " ")))
        << line;
    EXPECT_TRUE(absl::StrContains(line, absl::StrCat("--core-share slot ", slot + 1, " of 2"))) << line;
  }
  // j-1 ends; the next assignment gets its slot (and cores) back.
  const size_t before = Heartbeats();
  v1::HeartbeatResponse cancel;
  cancel.add_cancels()->set_job_id("j-1");
  cancel.mutable_cancels(0)->set_attempt(1);
  Answer(cancel);
  ASSERT_GE(WaitForRunning(before, {"j-2/1/0"}), 0);
  Answer(Deliver({MakeAssignment("j-3", 1, 0)}));
  ASSERT_TRUE(WaitForTrainers(3));
  const std::string third = StartOf(TrainerStarts(), "j-3");
  EXPECT_TRUE(absl::StrContains(third, absl::StrCat("cpus=", FormatCpuList(CoreShare(cpus, 2, 0)), " "))) << third;
  EXPECT_TRUE(absl::StrContains(third, "--core-share slot 1 of 2")) << third;
}

TEST_F(DaemonTest, WithoutCoreSharingOrWithOneSlotTrainersKeepTheDaemonsCores) {
  for (const bool one_slot : {true, false}) {
    SCOPED_TRACE(one_slot ? "one slot" : "--no-core-share");
    TearDown();
    StartDaemon(nullptr, [&](WorkerDaemonOptions& options) {
      RecordAffinity(options, dir_ / "starts");
      if (one_slot) {
        options.slots = 1;
      } else {
        options.share_cores = false;
      }
    });
    Answer(Deliver({MakeAssignment("j-1", 1, 0)}));
    ASSERT_TRUE(WaitForTrainers(1));
    const std::string line = TrainerStarts().at(0);
    EXPECT_TRUE(absl::StrContains(line, absl::StrCat("cpus=", FormatCpuList(AffinityCpus()), " "))) << line;
    EXPECT_FALSE(absl::StrContains(line, "--core-share")) << line;
  }
}

TEST_F(DaemonTest, APrestartedTrainerPerFreeSlotTakesTheNextAssignmentOnItsStdin) {
  const std::filesystem::path handed = std::filesystem::path(::testing::TempDir()) / "daemon_test_handed";
  std::filesystem::remove(handed);
  StartDaemon(nullptr, [&](WorkerDaemonOptions& options) {
    options.prestart_trainers = true;
    // Records its start; prestarted, it records the line it is handed.
    options.trainer_command = {
        "/bin/sh", "-c",
        absl::StrCat("echo $$ \"$@\" >> '", (dir_ / "starts").string(), "'; echo \"pid $$\" >&2; ",
                     "if [ \"$1\" = --prestarted ]; then read line; echo \"$$ $line\" >> '", handed.string(),
                     "'; fi; exec sleep 30"),
        "fake-trainer"};
  });
  ASSERT_TRUE(WaitForTrainers(2)) << "one prestarted per free slot";
  for (const std::string& line : TrainerStarts()) EXPECT_TRUE(absl::StrContains(line, "--prestarted")) << line;
  v1::Assignment a = MakeAssignment("j-1", 1, 0);
  a.set_world_size(2);
  a.set_rendezvous("127.0.0.1:0");
  a.set_rendezvous_secret("00112233445566778899aabbccddeeff");
  Answer(Deliver({a}));
  std::vector<std::string> lines;
  ASSERT_TRUE(link_->WaitFor(
      [&] {
        std::ifstream in(handed);
        lines.clear();
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return !lines.empty();
      },
      kTimeout));
  ASSERT_EQ(lines.size(), 1u);
  const std::string& line = lines[0];
  // A prestarted process took it (the two start in either order): its pid,
  // the assignment's flags and the secret in the environment entries, not in
  // the flags.
  const pid_t taker = std::stoi(line);
  EXPECT_TRUE(taker == TrainerPid(0) || taker == TrainerPid(1)) << line;
  EXPECT_TRUE(absl::StrContains(line, "/j-1-a1-r0/job.yaml")) << line;
  EXPECT_TRUE(absl::StrContains(line, "\"--rank\",\"0\",\"--world-size\",\"2\"")) << line;
  EXPECT_TRUE(absl::StrContains(line, "\"env\":[\"DFV_RENDEZVOUS_SECRET=00112233445566778899aabbccddeeff\"]"))
      << line;
  // Its stderr, the log prestarted for the slot the assignment went to, is
  // the assignment's trainer.log now.
  std::ifstream log(dir_ / "work" / "j-1-a1-r0" / "trainer.log");
  std::string first;
  ASSERT_TRUE(std::getline(log, first));
  EXPECT_EQ(first, absl::StrCat("pid ", taker));
  // The assignment went to slot 1; slot 2's process still waits on its log.
  std::ifstream waiting(dir_ / "work" / "prestarted-slot2.log");
  ASSERT_TRUE(std::getline(waiting, first));
  EXPECT_EQ(first, absl::StrCat("pid ", taker == TrainerPid(0) ? TrainerPid(1) : TrainerPid(0)));
  // The slot is busy: no new process until a slot frees.
  ASSERT_GE(WaitForRunning(Heartbeats(), {"j-1/1/0"}), 0);
  EXPECT_EQ(TrainerStarts().size(), 2u);
}

TEST_F(DaemonTest, AFailedHeartbeatKeepsTheSessionAndTheTrainers) {
  StartDaemon();
  Answer(Deliver({MakeAssignment("j-1", 1, 0)}));
  ASSERT_GE(WaitForRunning(0, {"j-1/1/0"}), 0);
  ASSERT_TRUE(WaitForTrainers(1));
  size_t failing = 0;  // the index of the first heartbeat to fail
  {
    absl::MutexLock lock(&link_->mu_);
    link_->heartbeat_answers_.push_back(absl::UnavailableError("connection refused"));
    link_->heartbeat_answers_.push_back(absl::DeadlineExceededError("deadline exceeded"));
    failing = link_->heartbeat_requests_.size();
  }
  // Two failures, then a heartbeat that still lists the assignment.
  ASSERT_GE(WaitForRunning(failing + 2, {"j-1/1/0"}), 0);
  EXPECT_TRUE(Alive(TrainerPid(0)));
  absl::MutexLock lock(&link_->mu_);
  EXPECT_TRUE(link_->heartbeat_answers_.empty());
  EXPECT_EQ(link_->register_requests_.size(), 1u);
  EXPECT_EQ(link_->heartbeat_requests_.back().worker_id(), "w-1");
  EXPECT_EQ(link_->completions_, 0);
}

// The coordinator forgot the session (its lease expired, or the coordinator
// restarted): the trainers keep running, the daemon registers again listing
// them, and the coordinator's heartbeat answers cancel what it does not adopt.
TEST_F(DaemonTest, SessionExpiryKeepsTheTrainersAndListsThemWhenRegisteringAgain) {
  StartDaemon();
  Answer(Deliver({MakeAssignment("j-1", 1, 0), MakeAssignment("j-1", 1, 1)}));
  ASSERT_GE(WaitForRunning(0, {"j-1/1/0", "j-1/1/1"}), 0);
  ASSERT_TRUE(WaitForTrainers(2));
  const pid_t first = TrainerPid(0), second = TrainerPid(1);
  EXPECT_TRUE(Alive(first));
  EXPECT_TRUE(Alive(second));
  // Written once, at the first registration; a second one must not rewrite it.
  ASSERT_TRUE(std::filesystem::remove(ReadyFile()));
  const size_t before = Heartbeats();
  {
    absl::MutexLock lock(&link_->mu_);
    link_->heartbeat_answers_.push_back(absl::NotFoundError("no worker w-1 (lease expired)"));
    for (int i = 0; i < 2; ++i) link_->register_failures_.push_back(absl::UnavailableError("connection refused"));
  }
  int renewed = WaitForHeartbeat(before, [](const v1::HeartbeatRequest& r) { return r.worker_id() == "w-2"; });
  ASSERT_GE(renewed, 0);
  EXPECT_TRUE(Alive(first));
  EXPECT_TRUE(Alive(second));
  {
    absl::MutexLock lock(&link_->mu_);
    EXPECT_EQ(Running(link_->heartbeat_requests_[renewed]), (std::vector<std::string>{"j-1/1/0", "j-1/1/1"}));
    ASSERT_EQ(link_->register_requests_.size(), 4u) << "the first, two refused, the second session";
    for (size_t i = 1; i < 4; ++i) {
      const v1::RegisterWorkerRequest& again = link_->register_requests_[i];
      ASSERT_EQ(again.running_size(), 2) << i;
      std::vector<std::string> listed;
      for (const v1::RunningAssignment& r : again.running()) {
        listed.push_back(absl::StrCat(r.job_id(), "/", r.attempt(), "/", r.rank()));
        EXPECT_FALSE(r.started()) << "the shell trainer never says it trains";
      }
      std::sort(listed.begin(), listed.end());
      EXPECT_EQ(listed, (std::vector<std::string>{"j-1/1/0", "j-1/1/1"}));
    }
    EXPECT_EQ(link_->register_requests_[0].running_size(), 0);
    EXPECT_EQ(link_->completions_, 0);
  }
  EXPECT_EQ(TrainerStarts().size(), 2u);
  EXPECT_FALSE(std::filesystem::exists(ReadyFile()));

  // The coordinator did not adopt them: its cancel stops both.
  v1::HeartbeatResponse cancel;
  cancel.add_cancels()->set_job_id("j-1");
  cancel.mutable_cancels(0)->set_attempt(1);
  cancel.mutable_cancels(0)->set_reason("attempt 1 of job j-1 is over");
  Answer(cancel);
  ASSERT_TRUE(link_->WaitFor(
      [&] {
        absl::MutexLock lock(&link_->mu_);
        return link_->completions_ == 2;
      },
      kTimeout));
  EXPECT_FALSE(Alive(first));
  EXPECT_FALSE(Alive(second));
  absl::MutexLock lock(&link_->mu_);
  EXPECT_EQ(link_->outcome_, v1::OUTCOME_CANCELLED);
}

TEST_F(DaemonTest, ACancelInAHeartbeatResponseStopsTheTrainerAndReportsCancelled) {
  StartDaemon();
  Answer(Deliver({MakeAssignment("j-1", 2, 0), MakeAssignment("j-2", 1, 0)}));
  ASSERT_GE(WaitForRunning(0, {"j-1/2/0", "j-2/1/0"}), 0);
  ASSERT_TRUE(WaitForTrainers(2));
  std::vector<std::string> starts = TrainerStarts();
  const bool j1_first = absl::StrContains(starts[0], "/j-1-a2-r0/");
  const pid_t cancelled = TrainerPid(j1_first ? 0 : 1), kept = TrainerPid(j1_first ? 1 : 0);
  const size_t before = Heartbeats();
  v1::HeartbeatResponse cancel;
  cancel.add_cancels()->set_job_id("j-1");
  cancel.mutable_cancels(0)->set_attempt(2);
  cancel.mutable_cancels(0)->set_reason("cancelled by the user");
  Answer(cancel);
  ASSERT_TRUE(link_->WaitFor(
      [&] {
        absl::MutexLock lock(&link_->mu_);
        return link_->completions_ > 0;
      },
      kTimeout));
  {
    absl::MutexLock lock(&link_->mu_);
    EXPECT_EQ(link_->completions_, 1);
    ASSERT_EQ(link_->completed_keys_.size(), 1u);
    EXPECT_EQ(link_->completed_keys_[0].job_id, "j-1");
    EXPECT_EQ(link_->completed_keys_[0].attempt, 2);
    EXPECT_EQ(link_->outcome_, v1::OUTCOME_CANCELLED);
    EXPECT_EQ(link_->reason_, "cancelled by the user");
    EXPECT_FALSE(link_->retryable_);
  }
  EXPECT_FALSE(Alive(cancelled));
  EXPECT_TRUE(Alive(kept));
  // The finished runner is reaped: later heartbeats list only the other.
  EXPECT_GE(WaitForRunning(before, {"j-2/1/0"}), 0);
}

TEST_F(DaemonTest, StopAbandonsRunningTrainersAndRunReturns) {
  StartDaemon();
  Answer(Deliver({MakeAssignment("j-1", 1, 0)}));
  ASSERT_GE(WaitForRunning(0, {"j-1/1/0"}), 0);
  ASSERT_TRUE(WaitForTrainers(1));
  const pid_t trainer = TrainerPid(0);
  absl::Time start = absl::Now();
  daemon_->Stop();
  run_thread_.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(run_status_.ok()) << run_status_;
  EXPECT_FALSE(Alive(trainer));
  absl::MutexLock lock(&link_->mu_);
  EXPECT_EQ(link_->completions_, 0);
}

TEST_F(DaemonTest, StopEndsRegistrationRetries) {
  StartDaemon([](RecordingLink& link) {
    for (int i = 0; i < 1000; ++i) link.register_failures_.push_back(absl::UnavailableError("connection refused"));
  });
  ASSERT_TRUE(link_->WaitFor(
      [&] {
        absl::MutexLock lock(&link_->mu_);
        return link_->register_requests_.size() >= 2;
      },
      kTimeout));
  absl::Time start = absl::Now();
  daemon_->Stop();
  run_thread_.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(run_status_.ok()) << run_status_;
  EXPECT_FALSE(std::filesystem::exists(ReadyFile()));
  EXPECT_EQ(Heartbeats(), 0u);
}

// The value of the one sample of /metrics that starts with `series` (a name
// and its labels, e.g. `dfv_worker_slots{state="busy"}`); NaN when absent.
double Scraped(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) return std::stod(std::string(line.substr(series.size() + 1)));
  }
  return std::nan("");
}

TEST_F(DaemonTest, ServesMetricsWithTheBusySlotsAndTheTrainersStarted) {
  StartDaemon(nullptr, [](WorkerDaemonOptions& options) { options.metrics_listen = "127.0.0.1:0"; });
  ASSERT_TRUE(link_->WaitFor([&] { return std::filesystem::exists(ReadyFile()); }, kTimeout));
  // The ready file's second line and the registration name the endpoint.
  ASSERT_FALSE(daemon_->metrics_address().empty());
  EXPECT_EQ(*ReadFileToString(ReadyFile()),
            absl::StrCat(daemon_->address(), "\nmetrics ", daemon_->metrics_address(), "\n"));
  {
    absl::MutexLock lock(&link_->mu_);
    ASSERT_FALSE(link_->register_requests_.empty());
    EXPECT_EQ(link_->register_requests_[0].metrics_address(), daemon_->metrics_address());
  }
  Answer(Deliver({MakeAssignment("j-1", 1, 0)}));
  ASSERT_TRUE(WaitForTrainers(1));
  std::string text;
  ASSERT_TRUE(link_->WaitFor(
      [&] {
        auto response = dfv::testing::HttpGet(daemon_->metrics_address(), "/metrics");
        if (!response.ok() || response->status != 200) return false;
        text = response->body;
        // The runner counts the trainer once its spawn returned, which may
        // be after the trainer itself recorded its start.
        return Scraped(text, "dfv_worker_slots{state=\"busy\"}") == 1 &&
               Scraped(text, "dfv_trainers_started_total") == 1;
      },
      kTimeout))
      << text;
  EXPECT_EQ(Scraped(text, "dfv_worker_slots{state=\"free\"}"), 1);
  EXPECT_EQ(Scraped(text, "dfv_trainers_started_total"), 1);
  EXPECT_GT(Scraped(text, "dfv_trainer_resident_memory_bytes{job_id=\"j-1\",rank=\"0\"}"), 0) << text;
  EXPECT_GT(Scraped(text, "process_resident_memory_bytes"), 0) << "MetricsServer's own process metrics";
  EXPECT_TRUE(absl::StrContains(text, "# TYPE dfv_job_step_seconds histogram")) << text;
}

TEST_F(DaemonTest, MetricsCanBeTurnedOffAndABadAddressIsRefused) {
  EXPECT_EQ(WorkerDaemonOptions().metrics_listen, "127.0.0.1:0") << "on by default";
  StartDaemon();  // the fixture turns them off
  ASSERT_TRUE(link_->WaitFor([&] { return std::filesystem::exists(ReadyFile()); }, kTimeout));
  EXPECT_EQ(daemon_->metrics_address(), "");
  EXPECT_EQ(*ReadFileToString(ReadyFile()), daemon_->address() + "\n");
  {
    absl::MutexLock lock(&link_->mu_);
    ASSERT_FALSE(link_->register_requests_.empty());
    EXPECT_EQ(link_->register_requests_[0].metrics_address(), "");
  }

  for (const char* bad : {"0.0.0.0:0", "not-an-address"}) {
    WorkerDaemonOptions options;
    options.coordinator = "fake-coordinator";
    options.work_dir = (dir_ / "bad").string();
    options.trainer_command = {"/bin/true"};
    options.metrics_listen = bad;
    auto daemon = WorkerDaemon::Create(std::move(options), std::make_unique<RecordingLink>());
    EXPECT_TRUE(absl::IsInvalidArgument(daemon.status())) << bad << ": " << daemon.status();
  }
}

TEST_F(DaemonTest, ACudaWorkerWithoutTheNvidiaDriverStillStartsAndServesMetrics) {
  StartDaemon(nullptr, [](WorkerDaemonOptions& options) {
    options.device = "cuda";
    options.metrics_listen = "127.0.0.1:0";
  });
  ASSERT_TRUE(link_->WaitFor([&] { return std::filesystem::exists(ReadyFile()); }, kTimeout));
  auto response = dfv::testing::HttpGet(daemon_->metrics_address(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(absl::StrContains(response->body, "dfv_worker_slots")) << response->body;
  // On a machine with the driver the GPU series are there; without it, none.
  const bool has_driver = GpuCollector::Create()->status().ok();
  EXPECT_EQ(absl::StrContains(response->body, "dfv_gpu_memory_total_bytes{gpu=\"0\"}"),
            has_driver && GpuCollector::Create()->device_count() > 0)
      << response->body;
}

TEST(DataPlaneTest, AnInterfaceNameResolvesToItsIpv4Address) {
  absl::StatusOr<std::string> lo = InterfaceIpv4Address("lo");
  ASSERT_TRUE(lo.ok()) << lo.status();
  EXPECT_EQ(*lo, "127.0.0.1");
  absl::Status missing = InterfaceIpv4Address("no-such-if0").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_TRUE(absl::StrContains(missing.message(), "'no-such-if0'")) << missing;
  EXPECT_TRUE(absl::StrContains(missing.message(), "lo")) << missing;  // the ones that exist
}

// Options for a daemon that is only created, never run: its work folder
// under the test temp dir, no trainer and no metrics server.
WorkerDaemonOptions CreateOnlyOptions(const std::string& folder) {
  WorkerDaemonOptions o;
  o.coordinator = "fake-coordinator";
  o.work_dir = (std::filesystem::path(::testing::TempDir()) / folder).string();
  o.trainer_command = {"/bin/true"};
  o.metrics_listen = "";
  return o;
}

TEST(DataPlaneTest, TheDaemonTakesAnAddressOrAnInterfaceButNotBoth) {
  auto options = [] { return CreateOnlyOptions("daemon_data_plane"); };
  WorkerDaemonOptions both = options();
  both.data_plane_address = "127.0.0.1";
  both.data_plane_interface = "lo";
  EXPECT_TRUE(absl::IsInvalidArgument(
      WorkerDaemon::Create(std::move(both), std::make_unique<RecordingLink>()).status()));
  WorkerDaemonOptions unknown = options();
  unknown.data_plane_interface = "no-such-if0";
  EXPECT_TRUE(absl::IsNotFound(WorkerDaemon::Create(std::move(unknown), std::make_unique<RecordingLink>()).status()));
  WorkerDaemonOptions no_roots = options();
  no_roots.data_roots.clear();
  EXPECT_TRUE(
      absl::IsInvalidArgument(WorkerDaemon::Create(std::move(no_roots), std::make_unique<RecordingLink>()).status()));
  WorkerDaemonOptions lo = options();
  lo.data_plane_interface = "lo";
  EXPECT_TRUE(WorkerDaemon::Create(std::move(lo), std::make_unique<RecordingLink>()).ok());
}

// A worker listening on every interface (as in a container) tells the
// coordinator and Prometheus an address they can reach: --advertise-host,
// else the data-plane address, else its host name; never 0.0.0.0.
TEST(AdvertiseTest, AWildcardListenAdvertisesAReachableHost) {
  auto options = [] {
    WorkerDaemonOptions o = CreateOnlyOptions("daemon_advertise");
    o.listen = "0.0.0.0:0";
    o.insecure = true;
    return o;
  };
  auto host_of = [](const std::string& address) { return address.substr(0, address.rfind(':')); };

  WorkerDaemonOptions named = options();
  named.advertise_host = "worker-7.example";
  named.metrics_listen = "0.0.0.0:0";
  auto daemon = WorkerDaemon::Create(std::move(named), std::make_unique<RecordingLink>());
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(host_of((*daemon)->address()), "worker-7.example");
  EXPECT_EQ(host_of((*daemon)->metrics_address()), "worker-7.example");
  EXPECT_NE((*daemon)->metrics_address(), "worker-7.example:0");
  daemon->reset();

  WorkerDaemonOptions data_plane = options();
  data_plane.data_plane_interface = "lo";
  daemon = WorkerDaemon::Create(std::move(data_plane), std::make_unique<RecordingLink>());
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(host_of((*daemon)->address()), "127.0.0.1");

  char hostname[256] = {0};
  gethostname(hostname, sizeof(hostname) - 1);
  daemon = WorkerDaemon::Create(options(), std::make_unique<RecordingLink>());
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(host_of((*daemon)->address()), hostname);

  // A named listen host is advertised as it is.
  WorkerDaemonOptions loopback = options();
  loopback.listen = "127.0.0.1:0";
  loopback.insecure = false;
  daemon = WorkerDaemon::Create(std::move(loopback), std::make_unique<RecordingLink>());
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  EXPECT_EQ(host_of((*daemon)->address()), "127.0.0.1");

  WorkerDaemonOptions wildcard = options();
  wildcard.advertise_host = "0.0.0.0";
  absl::Status refused = WorkerDaemon::Create(std::move(wildcard), std::make_unique<RecordingLink>()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "--advertise-host")) << refused;
}

}  // namespace
}  // namespace dfv::daemon
