#include "worker/daemon/assignment_runner.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "spdlog/spdlog.h"
#include "worker/daemon/subprocess.h"
#include "worker/protocol/trainer_report.h"

namespace dfv::daemon {
namespace {

// The last non-empty line of a log file, for a failure reason.
std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  if (last.size() > 500) last = last.substr(0, 500) + "...";
  return last;
}

// A call to the coordinator worth repeating.
bool Retryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) || absl::IsResourceExhausted(status);
}

}  // namespace

bool IsRetryableTrainerError(const absl::Status& error) {
  return absl::IsUnavailable(error) || absl::IsDeadlineExceeded(error) || absl::IsAborted(error);
}

std::unique_ptr<AssignmentRunner> AssignmentRunner::Start(RunnerOptions options) {
  auto runner = std::unique_ptr<AssignmentRunner>(new AssignmentRunner(std::move(options)));
  runner->thread_ = std::thread([r = runner.get()] { r->Run(); });
  return runner;
}

AssignmentRunner::AssignmentRunner(RunnerOptions options) : options_(std::move(options)) {
  key_.job_id = options_.assignment.job_id();
  key_.attempt = options_.assignment.attempt();
  key_.rank = options_.assignment.rank();
  run_dir_ = (std::filesystem::path(options_.work_dir) / "run").string();
}

AssignmentRunner::~AssignmentRunner() {
  if (!finished_.load()) Abandon();
  if (thread_.joinable()) thread_.join();
}

void AssignmentRunner::Cancel(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  if (cancel_requested_) return;
  cancel_requested_ = true;
  cancel_reason_ = reason;
}

void AssignmentRunner::Abandon() { abandon_.store(true); }

bool AssignmentRunner::StopRequested() const {
  if (abandon_.load()) return true;
  absl::MutexLock lock(&mu_);
  return cancel_requested_;
}

template <typename Call>
absl::Status AssignmentRunner::Retry(const char* what, Call call) {
  absl::Time give_up = absl::Now() + options_.retry_for;
  absl::Duration backoff = absl::Milliseconds(200);
  for (;;) {
    absl::Status status = call();
    if (status.ok() || !Retryable(status) || abandon_.load() || absl::Now() > give_up) {
      if (!status.ok()) {
        spdlog::warn("{} {} attempt {} rank {}: {}", what, key_.job_id, key_.attempt, key_.rank,
                     status.ToString());
      }
      return status;
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void AssignmentRunner::Run() {
  absl::StatusOr<std::unique_ptr<ReportSpool>> spool = ReportSpool::Create(
      (std::filesystem::path(options_.work_dir) / "spool").string(), options_.spool_bytes);
  if (spool.ok()) {
    spool_ = std::move(*spool);
  } else {
    spdlog::error("{} attempt {} rank {}: no report spool, reports go out directly: {}", key_.job_id, key_.attempt,
                  key_.rank, spool.status().ToString());
  }
  auto [outcome, reason] = RunTrainer();
  if (trainer_started_ && options_.metrics != nullptr) {
    TrainerOutcome ended = TrainerOutcome::kAbandoned;
    if (!abandon_.load()) {
      ended = outcome == v1::OUTCOME_SUCCEEDED   ? TrainerOutcome::kSucceeded
              : outcome == v1::OUTCOME_CANCELLED ? TrainerOutcome::kCancelled
                                                 : TrainerOutcome::kFailed;
    }
    options_.metrics->TrainerEnded(key_, ended);
  }
  if (!abandon_.load()) {
    SpooledReport completion;
    completion.kind = SpooledReport::Kind::kCompletion;
    completion.outcome = outcome;
    completion.reason = reason;
    completion.retryable = outcome == v1::OUTCOME_FAILED && IsRetryableTrainerError(trainer_error_);
    Queue(std::move(completion));
    // Everything still spooled goes out first; the coordinator may be away
    // for a while, and the worker lists this assignment until then.
    while (!Deliver()) {
      while (absl::Now() < next_send_ && !abandon_.load()) absl::SleepFor(absl::Milliseconds(20));
    }
    spdlog::info("{} attempt {} rank {}: {}{}{}", key_.job_id, key_.attempt, key_.rank,
                 v1::Outcome_Name(outcome), reason.empty() ? "" : ": ", reason);
  }
  finished_.store(true);
}

void AssignmentRunner::Queue(SpooledReport report) {
  if (spool_ != nullptr) {
    absl::Status queued;
    switch (report.kind) {
      case SpooledReport::Kind::kEvents:
        queued = spool_->PushEvents(std::move(report.events));
        break;
      case SpooledReport::Kind::kUpload:
        queued = spool_->PushUpload(report.artifact, report.path);
        break;
      case SpooledReport::Kind::kCompletion:
        queued = spool_->PushCompletion(report.outcome, report.reason, report.retryable);
        break;
    }
    if (queued.ok()) {
      Deliver();
      return;
    }
    spdlog::warn("{} attempt {} rank {}: cannot spool a report, sending it directly: {}", key_.job_id, key_.attempt,
                 key_.rank, queued.ToString());
  }
  // No spool: the old way, retried for a while, unnumbered.
  Retry("reporting to the coordinator about", [&] { return Send(report); }).IgnoreError();
}

bool AssignmentRunner::MustWait(const absl::Status& status) {
  if (Retryable(status)) return true;
  if (!absl::IsNotFound(status)) return false;
  // The session is unknown until the daemon has registered again; an
  // unknown job stays unknown.
  const absl::Time now = absl::Now();
  if (not_found_since_ == absl::InfiniteFuture()) not_found_since_ = now;
  return now - not_found_since_ < options_.retry_for;
}

bool AssignmentRunner::Deliver() {
  if (spool_ == nullptr) return true;
  while (!spool_->empty()) {
    if (abandon_.load()) return true;
    if (absl::Now() < next_send_) return false;
    absl::StatusOr<SpooledReport> report = spool_->Front();
    absl::Status status = report.status();
    if (report.ok()) {
      status = Send(*report);
      spool_->MarkFrontSent();
      if (!status.ok() && MustWait(status)) {
        if (!waiting_) {
          waiting_ = true;
          spdlog::warn("{} attempt {} rank {}: the coordinator takes no reports now ({}); they wait in the spool",
                       key_.job_id, key_.attempt, key_.rank, status.ToString());
        }
        next_send_ = absl::Now() + backoff_;
        backoff_ = std::min(backoff_ * 2, absl::Seconds(2));
        return false;
      }
    }
    if (!status.ok()) {
      spdlog::warn("{} attempt {} rank {}: dropping a report the coordinator refused: {}", key_.job_id,
                   key_.attempt, key_.rank, status.ToString());
    }
    spool_->Pop();
    backoff_ = absl::Milliseconds(200);
    not_found_since_ = absl::InfiniteFuture();
    if (waiting_) {
      waiting_ = false;
      spdlog::info("{} attempt {} rank {}: the coordinator takes reports again; {} more queued", key_.job_id,
                   key_.attempt, key_.rank, spool_->size());
    }
  }
  return true;
}

absl::Status AssignmentRunner::Send(const SpooledReport& report) {
  switch (report.kind) {
    case SpooledReport::Kind::kEvents: {
      bool cancel = false;
      absl::Status status = options_.link->ReportEvents(key_, report.batch, report.events, &cancel);
      if (status.ok() && cancel) Cancel("the coordinator ended this attempt");
      return status;
    }
    case SpooledReport::Kind::kUpload:
      return options_.link->UploadArtifact(key_, report.artifact, report.path);
    case SpooledReport::Kind::kCompletion:
      return options_.link->CompleteAssignment(key_, report.outcome, report.reason, report.retryable);
  }
  return absl::InternalError("unknown report kind");
}

std::pair<v1::Outcome, std::string> AssignmentRunner::RunTrainer() {
  const v1::Assignment& a = options_.assignment;
  const std::filesystem::path work(options_.work_dir);
  const std::string log_path = (work / "trainer.log").string();
  auto failed = [](const std::string& why) { return std::make_pair(v1::OUTCOME_FAILED, why); };

  absl::Status status = MakeDirs(run_dir_);
  if (status.ok()) status = WriteFileAtomically((work / "job.yaml").string(), a.spec_yaml());
  if (!status.ok()) return failed(absl::StrCat("preparing the work folder: ", status.message()));

  std::vector<std::string> argv = options_.trainer_command;
  argv.insert(argv.end(), {"--job", (work / "job.yaml").string(), "--out", run_dir_, "--rank",
                           std::to_string(a.rank()), "--world-size", std::to_string(a.world_size())});
  if (!a.resume_artifact().empty()) {
    status = ValidateRelativePath(a.resume_artifact(), "resume artifact");
    if (!status.ok()) return failed(std::string(status.message()));
    const std::string local = (work / "resume" / std::filesystem::path(a.resume_artifact()).filename()).string();
    status = MakeDirs((work / "resume").string());
    if (status.ok()) {
      status = Retry("downloading checkpoint for",
                     [&] { return options_.link->FetchCheckpoint(a.job_id(), a.attempt(), a.resume_artifact(), local); });
    }
    if (!status.ok()) return failed(absl::StrCat("fetching checkpoint to resume from: ", status.message()));
    argv.insert(argv.end(), {"--resume", local});
  }
  for (const std::string& root : options_.data_roots) argv.insert(argv.end(), {"--data-root", root});
  SpawnOptions spawn;
  if (!a.rendezvous().empty()) {
    argv.insert(argv.end(), {"--rendezvous", a.rendezvous()});
    if (!options_.data_plane_address.empty()) {
      argv.insert(argv.end(), {"--data-plane-address", options_.data_plane_address});
    }
    if (!options_.data_plane_interface.empty()) {
      spawn.env.push_back(absl::StrCat("NCCL_SOCKET_IFNAME=", options_.data_plane_interface));
    }
  }
  // In the environment, not argv: `ps` shows every process's arguments.
  if (!a.rendezvous_secret().empty()) {
    spawn.env.push_back(absl::StrCat(protocol::kRendezvousSecretEnv, "=", a.rendezvous_secret()));
  }
  if (!options_.cpus.empty()) {
    argv.insert(argv.end(), {"--core-share", absl::StrCat("slot ", options_.slot + 1, " of ", options_.slots)});
    spawn.cpus = options_.cpus;
  }
  spawn.argv = argv;
  spawn.stderr_path = log_path;
  std::shared_ptr<Subprocess> child = HandOver(spawn);
  const bool prestarted = child != nullptr;
  if (child == nullptr) {
    auto child_or = Subprocess::Spawn(spawn);
    if (!child_or.ok()) return failed(std::string(child_or.status().message()));
    child = std::move(child_or).value();
  }
  spdlog::info("{} attempt {} rank {}/{}: trainer pid {}{}", a.job_id(), a.attempt(), a.rank(), a.world_size(),
               child->pid(), prestarted ? " (prestarted)" : "");
  if (options_.metrics != nullptr) {
    options_.metrics->TrainerStarted(a, child->pid());
    trainer_started_ = true;
  }

  std::string pending;  // a partial line
  bool stopping = false;
  absl::Time kill_at = absl::InfiniteFuture();
  // Events not yet queued: metrics rows and progress wait here until
  // options_.rows_every has passed since rows were last sent.
  std::vector<v1::JobEvent> events;
  absl::Time rows_sent = absl::InfinitePast();
  for (bool eof = false; !eof;) {
    if (!stopping && StopRequested()) {
      stopping = true;
      child->Signal(SIGTERM);
      kill_at = absl::Now() + (abandon_.load() ? absl::ZeroDuration() : options_.cancel_grace);
    }
    if (stopping && absl::Now() >= kill_at) child->Signal(SIGKILL);
    const absl::Duration wait =
        events.empty() ? absl::Milliseconds(200)
                       : std::clamp(rows_sent + options_.rows_every - absl::Now(), absl::ZeroDuration(),
                                    absl::Milliseconds(200));
    auto chunk = child->ReadStdout(wait, &eof);
    if (!chunk.ok()) {
      spdlog::warn("{}: {}", a.job_id(), chunk.status().ToString());
      break;
    }
    pending += *chunk;
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (!line.empty()) HandleLine(line, &events);
    }
    if (!abandon_.load()) {
      const auto is_row = [](const v1::JobEvent& e) { return e.has_metrics() || e.has_progress(); };
      const absl::Time now = absl::Now();
      if (!events.empty() &&
          (eof || stopping || !std::all_of(events.begin(), events.end(), is_row) ||
           now >= rows_sent + options_.rows_every)) {
        if (std::any_of(events.begin(), events.end(), is_row)) rows_sent = now;
        FlushEvents(&events);
      }
      Deliver();  // what waits in the spool, when its time has come
    } else {
      events.clear();  // an abandoned attempt reports nothing
    }
  }
  if (!abandon_.load()) FlushEvents(&events);  // rows still held when reading failed
  // The trainer closed stdout; it exits right after (or was killed). Its pid
  // stops being its once reaped below.
  if (options_.metrics != nullptr) options_.metrics->TrainerExited(key_);
  if (stopping) {
    while (!child->TryWait().has_value()) {
      if (absl::Now() >= kill_at) child->Signal(SIGKILL);
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ExitStatus exit = child->Wait();

  if (abandon_.load()) return {v1::OUTCOME_CANCELLED, "abandoned"};
  if (key_.rank == 0) {
    if (std::filesystem::exists(std::filesystem::path(run_dir_) / "metrics.csv")) {
      Upload(v1::METRICS, "metrics.csv", 0);
    }
  }
  // Every rank's log is kept: a failure on rank 1 is explained by its log.
  if (std::filesystem::exists(log_path)) {
    SpooledReport upload;
    upload.kind = SpooledReport::Kind::kUpload;
    upload.artifact.set_name(key_.rank == 0 ? "trainer.log" : absl::StrCat("trainer-rank", key_.rank, ".log"));
    upload.artifact.set_kind(v1::LOG);
    upload.path = log_path;
    Queue(std::move(upload));
  }

  {
    absl::MutexLock lock(&mu_);
    if (cancel_requested_) return {v1::OUTCOME_CANCELLED, cancel_reason_};
  }
  if (exit.exited && exit.code == 0 && saw_finished_) return {v1::OUTCOME_SUCCEEDED, ""};
  if (!trainer_error_.ok()) return failed(std::string(trainer_error_.message()));
  std::string last = LastLine(log_path);
  return failed(absl::StrCat("trainer ", DescribeExit(exit), last.empty() ? "" : "; last log line: ", last));
}

std::shared_ptr<Subprocess> AssignmentRunner::HandOver(const SpawnOptions& spawn) {
  std::shared_ptr<Subprocess> trainer = std::move(options_.prestarted);
  if (trainer == nullptr) return nullptr;
  if (trainer->TryWait().has_value()) {
    spdlog::warn("{} attempt {} rank {}: the prestarted trainer had exited ({}); starting one", key_.job_id,
                 key_.attempt, key_.rank, DescribeExit(*trainer->TryWait()));
    return nullptr;
  }
  // Its stderr so far (nothing, normally) and from now on is this
  // assignment's log: the open file is renamed, not copied.
  std::error_code ec;
  std::filesystem::rename(options_.prestarted_log, spawn.stderr_path, ec);
  if (ec) {
    spdlog::warn("{}: cannot move the prestarted trainer's log {} to {}: {}", key_.job_id, options_.prestarted_log,
                 spawn.stderr_path, ec.message());
  }
  v1::PrestartedAssignment handed;
  // The flags after the trainer command, which the prestarted trainer was
  // started with.
  for (size_t i = options_.trainer_command.size(); i < spawn.argv.size(); ++i) handed.add_args(spawn.argv[i]);
  for (const std::string& entry : spawn.env) handed.add_env(entry);
  absl::Status sent = trainer->WriteStdin(protocol::EncodePrestartedAssignment(handed) + "\n");
  trainer->CloseStdin();
  if (!sent.ok()) {
    spdlog::warn("{} attempt {} rank {}: the prestarted trainer did not take its assignment ({}); starting one",
                 key_.job_id, key_.attempt, key_.rank, sent.ToString());
    return nullptr;  // its destructor kills and reaps it
  }
  return trainer;
}

void AssignmentRunner::HandleLine(const std::string& line, std::vector<v1::JobEvent>* events) {
  absl::StatusOr<v1::TrainerReport> decoded = protocol::DecodeReport(line);
  if (!decoded.ok()) {
    // A stray print from a library: keep it in the daemon log, do not fail.
    spdlog::warn("{}: {}", key_.job_id, std::string(decoded.status().message()));
    return;
  }
  v1::TrainerReport& report = *decoded;
  // Before the payloads below are moved into events.
  if (options_.metrics != nullptr) options_.metrics->TrainerReported(key_, report);
  switch (report.report_case()) {
    case v1::TrainerReport::kStarted: {
      started_.store(true);
      // "This rank is training": the coordinator turns the job RUNNING once
      // every rank has said so.
      v1::StateChange* running = events->emplace_back().mutable_state();
      running->set_state(v1::RUNNING);
      running->set_reason(absl::StrCat("training from step ", report.started().step(), " of ",
                                       report.started().total_steps()));
      break;
    }
    case v1::TrainerReport::kMetrics:
      events->emplace_back().mutable_metrics()->Swap(report.mutable_metrics());
      break;
    case v1::TrainerReport::kProgress:
      events->emplace_back().mutable_progress()->Swap(report.mutable_progress()->mutable_progress());
      break;
    case v1::TrainerReport::kMessage:
      events->emplace_back().mutable_message()->Swap(report.mutable_message());
      break;
    case v1::TrainerReport::kArtifact:
      if (report.artifact().kind() == v1::CHECKPOINT && options_.metrics != nullptr) {
        std::error_code ec;
        const auto bytes = std::filesystem::file_size(std::filesystem::path(run_dir_) / report.artifact().path(), ec);
        options_.metrics->CheckpointWritten(key_, report.artifact().write_seconds(),
                                            ec ? 0 : static_cast<int64_t>(bytes));
      }
      // Events first, so the artifact event follows the metrics before it.
      FlushEvents(events);
      if (key_.rank == 0) Upload(report.artifact().kind(), report.artifact().path(), report.artifact().step());
      break;
    case v1::TrainerReport::kFinished:
      saw_finished_ = true;
      break;
    case v1::TrainerReport::kRendezvous: {
      if (key_.rank != 0 || options_.assignment.world_size() < 2) {
        spdlog::warn("{} attempt {} rank {}/{}: ignoring a rendezvous report (only rank 0 of a multi-rank job "
                     "publishes one): {}",
                     key_.job_id, key_.attempt, key_.rank, options_.assignment.world_size(), line);
        break;
      }
      AssignmentKey key = key_;
      const std::string address = report.rendezvous().address();
      spdlog::info("{} attempt {}: rank 0's rendezvous listens at {}", key_.job_id, key_.attempt, address);
      // Logged by Retry. Without it the other ranks never start; the
      // trainer's own rendezvous timeout (or the coordinator's backstop)
      // then ends the attempt.
      Retry("publishing the rendezvous of", [&] { return options_.link->PublishRendezvous(key, address); })
          .IgnoreError();
      break;
    }
    case v1::TrainerReport::kError:
      trainer_error_ = protocol::StatusFromError(report.error());
      break;
    case v1::TrainerReport::kWindow:
      break;  // this worker's metrics only (above); the coordinator gets the MetricsRow
    case v1::TrainerReport::REPORT_NOT_SET:
      break;  // DecodeReport refuses it
  }
}

void AssignmentRunner::FlushEvents(std::vector<v1::JobEvent>* events) {
  if (events->empty()) return;
  SpooledReport report;
  report.kind = SpooledReport::Kind::kEvents;
  report.events = std::move(*events);
  events->clear();
  Queue(std::move(report));
}

void AssignmentRunner::Upload(v1::ArtifactKind kind, const std::string& relative_path, int64_t step) {
  SpooledReport report;
  report.kind = SpooledReport::Kind::kUpload;
  report.artifact.set_name(relative_path);
  report.artifact.set_kind(kind);
  report.artifact.set_step(step);
  report.path = (std::filesystem::path(run_dir_) / relative_path).string();
  // A refused or missing grid is logged; it must not fail the training.
  Queue(std::move(report));
}

}  // namespace dfv::daemon
