#include "server/coordinator.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/random_secret.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "proto/enums.h"
#include "server/scheduler.h"

namespace dfv::server {
namespace {

using dfv::v1::JobEvent;
using dfv::v1::JobState;

JobEvent StateEvent(JobState state, int32_t attempt, const std::string& reason,
                    const google::protobuf::RepeatedPtrField<std::string>& workers) {
  JobEvent event;
  dfv::v1::StateChange* change = event.mutable_state();
  change->set_state(state);
  change->set_attempt(attempt);
  change->set_reason(reason);
  *change->mutable_workers() = workers;
  return event;
}

JobEvent MessageEvent(const std::string& text) {
  JobEvent event;
  event.mutable_message()->set_text(text);
  return event;
}

const std::string& StateName(JobState state) { return dfv::v1::JobState_Name(state); }

absl::Status NoOp(JobStore::Tx&) { return absl::OkStatus(); }

// What a worker may report: RUNNING state changes and metrics, progress and
// messages. (Artifacts are uploaded; final states come with
// CompleteAssignment.)
absl::Status CheckReportedEvents(const dfv::v1::ReportEventsRequest& request) {
  for (int i = 0; i < request.events_size(); ++i) {
    const JobEvent& event = request.events(i);
    switch (event.payload_case()) {
      case JobEvent::kState:
        if (event.state().state() != dfv::v1::RUNNING) {
          return absl::InvalidArgumentError(absl::StrCat(
              "events[", i, "].state.state: a worker may only report RUNNING, got ",
              StateName(event.state().state())));
        }
        break;
      case JobEvent::kMetrics:
      case JobEvent::kProgress:
      case JobEvent::kMessage:
        break;
      case JobEvent::kArtifact:
        return absl::InvalidArgumentError(absl::StrCat(
            "events[", i, "]: artifact events come from UploadArtifact, not ReportEvents"));
      case JobEvent::PAYLOAD_NOT_SET:
        return absl::InvalidArgumentError(absl::StrCat("events[", i, "]: has no payload"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Coordinator::DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(const CoordinatorOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("data_dir must be set");
  if (options.lease_ttl_ms <= 0 || options.heartbeat_interval_ms <= 0 ||
      options.heartbeat_interval_ms >= options.lease_ttl_ms) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat interval (", options.heartbeat_interval_ms,
        " ms) must be > 0 and below the lease TTL (", options.lease_ttl_ms, " ms)"));
  }
  if (options.cancel_grace_ms < 0) {
    return absl::InvalidArgumentError("cancel_grace_ms must be >= 0");
  }
  if (options.min_free_bytes < 0 || options.job_artifact_quota_bytes < 0 || options.artifact_quota_bytes < 0) {
    return absl::InvalidArgumentError(
        "--min-free-space, --job-artifact-quota and --artifact-quota must be >= 0");
  }
  if (options.adopt_grace_ms < 0) {
    return absl::InvalidArgumentError("adopt grace must be >= 0");
  }
  const Clock* clock = options.clock != nullptr ? options.clock : RealClock::Get();
  DFV_RETURN_IF_ERROR(MakeDirs(options.data_dir));

  const std::string lock_path = absl::StrCat(options.data_dir, "/LOCK");
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  auto lock = std::make_unique<DirLock>(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data folder ", options.data_dir, " is in use by another dfv-coordinator"));
  }

  JobStore::CommitObserver on_commit;
  if (CoordinatorMetrics* metrics = options.metrics; metrics != nullptr) {
    on_commit = [metrics](double seconds) { metrics->StoreCommitted(seconds); };
  }
  DFV_ASSIGN_OR_RETURN(
      std::unique_ptr<JobStore> store,
      JobStore::Create(absl::StrCat(options.data_dir, "/dfv.db"), std::move(on_commit)));
  auto events = std::make_unique<EventLog>(store.get(), clock);
  DFV_ASSIGN_OR_RETURN(
      std::unique_ptr<ArtifactStore> artifacts,
      ArtifactStore::Create(absl::StrCat(options.data_dir, "/artifacts"), store.get(), clock));
  std::unique_ptr<Coordinator> coordinator(new Coordinator(options, clock, std::move(lock),
                                                           std::move(store), std::move(events),
                                                           std::move(artifacts)));
  DFV_RETURN_IF_ERROR(coordinator->Recover());
  if (coordinator->metrics_ != nullptr) {
    coordinator->metrics_->SetStateSource(
        [c = coordinator.get()] { return c->MetricsState(); });
  }
  return coordinator;
}

Coordinator::Coordinator(CoordinatorOptions options, const Clock* clock,
                         std::unique_ptr<DirLock> lock, std::unique_ptr<JobStore> store,
                         std::unique_ptr<EventLog> events, std::unique_ptr<ArtifactStore> artifacts)
    : lock_(std::move(lock)),
      options_(std::move(options)),
      clock_(clock),
      store_(std::move(store)),
      events_(std::move(events)),
      artifacts_(std::move(artifacts)),
      metrics_(options_.metrics),
      registry_(clock, WorkerRegistryOptions{options_.lease_ttl_ms, options_.heartbeat_interval_ms,
                                             options_.lost_worker_retention_ms}),
      tracker_(&registry_) {}

Coordinator::~Coordinator() {
  // A scrape in progress finishes before the members it reads go away.
  if (metrics_ != nullptr) metrics_->SetStateSource(nullptr);
}

void Coordinator::AdoptSpec(const jobspec::JobSpec& spec, ActiveJob& job) {
  job.device = spec.resources.device;
  job.rendezvous_timeout_seconds = spec.resources.rendezvous_timeout_seconds;
  job.keep_last = spec.checkpoint.keep_last;
}

absl::Status Coordinator::Recover() {
  Outbox outbox;
  {
    absl::MutexLock lock(&mu_);
    DFV_RETURN_IF_ERROR(RecoverLocked(&outbox));
  }
  Publish(outbox);  // no watcher yet; this counts the events
  CheckResumes();   // requeued jobs resume from verified checkpoints
  return absl::OkStatus();
}

absl::Status Coordinator::RecoverLocked(Outbox* outbox) {
  DFV_ASSIGN_OR_RETURN(auto counts, store_->CountJobsByState());
  for (int state = 0; state < dfv::v1::JobState_ARRAYSIZE; ++state) {
    if (dfv::v1::IsFinalState(static_cast<JobState>(state))) final_jobs_[state] = counts[state];
  }
  DFV_ASSIGN_OR_RETURN(artifact_bytes_, store_->ArtifactBytes());
  DFV_ASSIGN_OR_RETURN(
      std::vector<JobRecord> jobs,
      store_->ListJobs({dfv::v1::QUEUED, dfv::v1::SCHEDULED, dfv::v1::RUNNING}, /*limit=*/0));
  std::reverse(jobs.begin(), jobs.end());  // oldest first, as submitted
  for (JobRecord& record : jobs) {
    const std::string id = record.job.id();
    ActiveJob job;
    job.record = std::move(record);
    job.queued_ms = job.record.job.updated_ms();
    const JobState state = job.record.job.state();
    const bool was_placed = state == dfv::v1::SCHEDULED || state == dfv::v1::RUNNING;
    const int32_t attempt = job.record.job.attempt();
    // Whether a job placed before the restart ever ran is not stored: only
    // jobs never placed still count towards submit-to-running.
    job.first_running_pending = attempt == 0;

    // The stored spec was valid when submitted; a newer schema may refuse
    // it, and then the job cannot run.
    jobspec::ParseOptions parse_options;
    parse_options.source_name = absl::StrCat(id, "/job.yaml");
    // Jobs stored before each data set kind had its own fields list every
    // kind's fields; those of other kinds are dropped.
    parse_options.drop_other_kind_fields = true;
    jobspec::ParseResult parsed =
        jobspec::ParseJobSpecWithErrors(job.record.job.spec_yaml(), parse_options);
    JobRecord next = job.record;
    next.cancel_requested = false;
    if (parsed.ok()) {
      // Workers parse the stored form strictly: keep it in this version's
      // canonical form.
      const std::string canonical = jobspec::JobSpecToYaml(parsed.spec);
      if (canonical != next.job.spec_yaml()) {
        next.job.set_spec_yaml(canonical);
        spdlog::info("job {}: stored job file rewritten in this version's canonical form", id);
      }
    }
    std::vector<JobEvent> payloads;
    AttemptOutcome outcome = AttemptOutcome::kInterrupted;
    if (!parsed.ok()) {
      next.job.set_state(dfv::v1::FAILED);
      next.job.set_reason(absl::StrCat("the stored job file no longer validates: ",
                                       jobspec::SpecErrorsToStatus(parsed.errors).message()));
      outcome = AttemptOutcome::kFailed;
    } else if (!was_placed) {
      if (next.job.spec_yaml() != job.record.job.spec_yaml()) {
        DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next), {}, outbox));
      }
      AdoptSpec(parsed.spec, job);
      active_.emplace(id, std::move(job));
      continue;
    } else if (job.record.cancel_requested) {
      next.job.set_state(dfv::v1::CANCELLED);
      outcome = AttemptOutcome::kCancelled;
    } else if (options_.adopt_grace_ms > 0) {
      // Its trainers may well still run: wait for their workers.
      AdoptSpec(parsed.spec, job);
      DFV_RETURN_IF_ERROR(AwaitWorkersLocked(job, std::move(next), outbox));
      spdlog::info("recovered job {}: {} attempt {} awaits its workers ({}) for {} ms", id,
                   StateName(state), attempt, absl::StrJoin(job.record.job.workers(), ","),
                   options_.adopt_grace_ms);
      active_.emplace(id, std::move(job));
      continue;
    } else {
      next.job.set_state(dfv::v1::QUEUED);
      next.job.set_reason("coordinator restarted");
    }
    payloads.push_back(StateEvent(next.job.state(), attempt, next.job.reason(), next.job.workers()));
    auto end_attempt = [&](JobStore::Tx& tx) -> absl::Status {
      if (!was_placed) return absl::OkStatus();
      return tx.EndAttempt(id, attempt, clock_->NowMs(), outcome, "coordinator restarted");
    };
    DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next), payloads, outbox, end_attempt));
    spdlog::info("recovered job {}: {} -> {} ({})", id, StateName(state),
                 StateName(job.record.job.state()), job.record.job.reason());
    if (metrics_ != nullptr && job.record.job.state() == dfv::v1::QUEUED) {
      metrics_->JobRequeued(RestartReason::kCoordinatorRestarted);
    }
    if (!dfv::v1::IsFinalState(job.record.job.state())) {
      AdoptSpec(parsed.spec, job);
      active_.emplace(id, std::move(job));
    }
  }
  return absl::OkStatus();
}

absl::Status Coordinator::AwaitWorkersLocked(ActiveJob& job, JobRecord next, Outbox* outbox) {
  const std::string id = job.record.job.id();
  const int32_t number = job.record.job.attempt();
  std::vector<std::string> workers(job.record.job.workers().begin(), job.record.job.workers().end());
  std::string rendezvous;
  DFV_ASSIGN_OR_RETURN(std::vector<AttemptRecord> attempts, store_->ListAttempts(id));
  for (const AttemptRecord& stored : attempts) {
    if (stored.attempt != number) continue;
    workers = stored.workers;
    rendezvous = stored.rendezvous;
  }
  std::vector<AttemptTracker::RecoveredRank> ranks;
  for (const std::string& name : workers) ranks.push_back({name});
  DFV_ASSIGN_OR_RETURN(std::vector<AttemptRankRecord> stored, store_->ListAttemptRanks(id, number));
  for (const AttemptRankRecord& rank : stored) {
    if (rank.rank < 0 || rank.rank >= static_cast<int32_t>(ranks.size())) continue;
    ranks[rank.rank].last_batch = rank.last_batch;
    ranks[rank.rank].completed = rank.completed;
  }
  const int64_t now = clock_->NowMs();
  const std::string text = absl::StrCat(
      "coordinator restarted; attempt ", number, " waits up to ",
      static_cast<double>(options_.adopt_grace_ms) / 1000.0, " s for its workers (",
      absl::StrJoin(workers, ", "), ") to come back with it");
  DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next), {MessageEvent(text)}, outbox));
  tracker_.Recover(id, number, now, job.rendezvous_timeout_seconds, ranks, rendezvous,
                   /*started=*/job.record.job.state() == dfv::v1::RUNNING,
                   now + options_.adopt_grace_ms);
  return absl::OkStatus();
}

void Coordinator::AdoptRunningLocked(const dfv::v1::RegisterWorkerRequest& request,
                                     WorkerRecord& worker,
                                     dfv::v1::RegisterWorkerResponse* response, Outbox* outbox) {
  std::set<std::string> adopted_jobs;
  for (const dfv::v1::RunningAssignment& running : request.running()) {
    const AssignmentKey key{running.job_id(), running.attempt(), running.rank()};
    if (!tracker_.Adopt(key, worker, running.started())) {
      // Its first heartbeat lists it and gets the cancel.
      spdlog::info("worker {} still runs job {} attempt {} rank {}, which is not adopted: {}",
                   worker.name, key.job_id, key.attempt, key.rank, StopReasonLocked(key));
      continue;
    }
    spdlog::info("worker {} came back with job {} attempt {} rank {}: adopted", worker.name,
                 key.job_id, key.attempt, key.rank);
    *response->add_adopted() = running;
    adopted_jobs.insert(key.job_id);
  }

  // Ranks awaited from this worker that it did not bring back never will.
  std::map<std::string, std::vector<int32_t>> gone;
  for (const AssignmentKey& key : tracker_.AwaitingOn(worker.name)) {
    gone[key.job_id].push_back(key.rank);
  }
  for (const auto& [id, ranks] : gone) {
    auto it = active_.find(id);
    const LiveAttempt* attempt = tracker_.Find(id);
    if (it == active_.end() || attempt == nullptr) continue;
    absl::Status status = RequeueOrFailLocked(
        it->second,
        absl::StrCat("coordinator restarted; worker ", worker.name,
                     " came back without rank(s) ", absl::StrJoin(ranks, ", "), " of attempt ",
                     attempt->number),
        RestartReason::kCoordinatorRestarted, outbox);
    if (!status.ok()) spdlog::error("job {}: cannot record its new state: {}", id, status.ToString());
  }

  // Attempts whose last awaited rank came back now go on as they were.
  const int64_t now = clock_->NowMs();
  for (const std::string& id : adopted_jobs) {
    auto it = active_.find(id);
    const LiveAttempt* attempt = tracker_.Find(id);
    if (it == active_.end() || attempt == nullptr || attempt->adopt_deadline_ms != 0) continue;
    // Ranks that completed before the restart had nothing to bring back.
    const auto back = std::count_if(attempt->ranks.begin(), attempt->ranks.end(),
                                    [](const RankState& rank) { return !rank.completed; });
    const std::string text = absl::StrCat(
        "coordinator restarted; attempt ", attempt->number, " adopted: its ", back,
        " running rank(s) came back after ",
        static_cast<double>(now - attempt->recovered_ms) / 1000.0, " s and go on");
    spdlog::info("job {}: {}", id, text);
    absl::Status status = CommitJobLocked(it->second, it->second.record, {MessageEvent(text)}, outbox);
    if (!status.ok()) spdlog::error("job {}: cannot record the adoption: {}", id, status.ToString());
  }
}

// ---------------------------------------------------------------------------
// Committing changes

absl::Status Coordinator::CommitJobLocked(ActiveJob& job, JobRecord new_record,
                                          const std::vector<JobEvent>& payloads, Outbox* outbox) {
  return CommitJobLocked(job, std::move(new_record), payloads, outbox, NoOp);
}

absl::Status Coordinator::CommitJobLocked(ActiveJob& job, JobRecord new_record,
                                          const std::vector<JobEvent>& payloads, Outbox* outbox,
                                          absl::FunctionRef<absl::Status(JobStore::Tx&)> extra) {
  new_record.job.set_updated_ms(clock_->NowMs());
  const std::string& id = new_record.job.id();
  std::vector<JobEvent> appended;
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
    appended.clear();
    DFV_RETURN_IF_ERROR(extra(tx));
    DFV_RETURN_IF_ERROR(tx.UpdateJob(new_record));
    for (const JobEvent& payload : payloads) {
      DFV_ASSIGN_OR_RETURN(JobEvent event, events_->AppendInTransaction(tx, id, payload));
      appended.push_back(std::move(event));
    }
    return absl::OkStatus();
  }));
  new_record.job.set_last_seq(appended.empty() ? job.record.job.last_seq()
                                               : appended.back().seq());
  const JobState before = job.record.job.state();
  job.record = std::move(new_record);
  outbox->insert(outbox->end(), appended.begin(), appended.end());
  if (job.record.job.state() != before) NoteStateChangeLocked(job, before);
  return absl::OkStatus();
}

void Coordinator::NoteStateChangeLocked(ActiveJob& job, JobState before) {
  const JobState after = job.record.job.state();
  const int64_t now = job.record.job.updated_ms();  // the commit's time
  if (after == dfv::v1::QUEUED) job.queued_ms = now;
  if (after == dfv::v1::RUNNING && job.first_running_pending) {
    job.first_running_pending = false;
    if (metrics_ != nullptr) {
      metrics_->JobFirstRunning(static_cast<double>(now - job.record.job.created_ms()) / 1000.0);
    }
  }
  if (dfv::v1::IsFinalState(after) && !dfv::v1::IsFinalState(before)) {
    ++final_jobs_[after];
    if (metrics_ != nullptr) metrics_->JobFinished(after);
  }
}

absl::Status Coordinator::EndAttemptLocked(ActiveJob& job, AttemptOutcome outcome,
                                           JobState next_state, std::string reason,
                                           bool count_restart, Outbox* outbox) {
  const std::string id = job.record.job.id();
  const LiveAttempt* live = tracker_.Find(id);
  const int32_t number = live != nullptr ? live->number : job.record.job.attempt();
  const JobState previous = job.record.job.state();
  JobRecord next = job.record;
  next.job.set_state(next_state);
  next.job.set_reason(reason);
  next.cancel_requested = false;
  if (count_restart) ++next.restarts;
  const int64_t now = clock_->NowMs();
  DFV_RETURN_IF_ERROR(CommitJobLocked(
      job, std::move(next), {StateEvent(next_state, number, reason, job.record.job.workers())},
      outbox,
      [&](JobStore::Tx& tx) { return tx.EndAttempt(id, number, now, outcome, reason); }));
  spdlog::info("job {} attempt {}: {} -> {}{}{}", id, number, StateName(previous),
               StateName(next_state), reason.empty() ? "" : ": ", reason);
  tracker_.End(id);
  if (dfv::v1::IsFinalState(next_state)) active_.erase(id);
  return absl::OkStatus();
}

absl::Status Coordinator::RequeueOrFailLocked(ActiveJob& job, const std::string& reason,
                                              RestartReason why, Outbox* outbox) {
  if (job.record.restarts < job.record.job.max_restarts()) {
    DFV_RETURN_IF_ERROR(EndAttemptLocked(job, AttemptOutcome::kInterrupted, dfv::v1::QUEUED,
                                         reason, /*count_restart=*/true, outbox));
    if (metrics_ != nullptr) metrics_->JobRequeued(why);
    return absl::OkStatus();
  }
  return EndAttemptLocked(job, AttemptOutcome::kInterrupted, dfv::v1::FAILED,
                          absl::StrCat(reason, "; no restarts left (max_restarts: ",
                                       job.record.job.max_restarts(), ")"),
                          /*count_restart=*/false, outbox);
}

absl::Status Coordinator::PlaceLocked(ActiveJob& job, const std::vector<std::string>& worker_ids,
                                      Outbox* outbox) {
  const std::string id = job.record.job.id();
  const int32_t number = job.record.job.attempt() + 1;
  std::vector<WorkerRecord*> workers;
  for (const std::string& worker_id : worker_ids) {
    WorkerRecord* worker = registry_.FindAlive(worker_id);
    if (worker == nullptr) {
      return absl::InternalError(absl::StrCat("placement of ", id, " names unknown worker ", worker_id));
    }
    workers.push_back(worker);
  }
  if (job.resume_checked_after != job.record.job.attempt()) {
    return absl::InternalError(absl::StrCat("placement of ", id, " before its checkpoints were checked"));
  }
  const std::string resume = job.resume;

  JobRecord next = job.record;
  next.job.set_state(dfv::v1::SCHEDULED);
  next.job.set_attempt(number);
  next.job.set_reason("");
  next.job.clear_workers();
  for (WorkerRecord* worker : workers) next.job.add_workers(worker->name);
  AttemptRecord attempt;
  attempt.job_id = id;
  attempt.attempt = number;
  attempt.workers.assign(next.job.workers().begin(), next.job.workers().end());
  attempt.started_ms = clock_->NowMs();
  JobEvent event = StateEvent(dfv::v1::SCHEDULED, number, "", next.job.workers());
  DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next), {event}, outbox,
                                      [&](JobStore::Tx& tx) { return tx.InsertAttempt(attempt); }));

  dfv::v1::Assignment base;
  base.set_spec_yaml(job.record.job.spec_yaml());
  base.set_resume_artifact(resume);
  if (workers.size() > 1) {
    // New for every attempt and never stored: a restarted coordinator starts
    // every attempt afresh, and the ranks of an ended attempt cannot meet
    // those of the next.
    DFV_ASSIGN_OR_RETURN(std::string secret, RandomHexSecret(kRendezvousSecretBytes));
    base.set_rendezvous_secret(std::move(secret));
  }
  tracker_.Place(id, number, attempt.started_ms, job.rendezvous_timeout_seconds, workers, base);
  for (const WorkerRecord* worker : workers) deliverable_to_.push_back(worker->id);
  spdlog::info("job {} attempt {}: SCHEDULED on {}{}{}", id, number,
               absl::StrJoin(job.record.job.workers(), ","), resume.empty() ? "" : ", resuming from ",
               resume);
  return absl::OkStatus();
}

void Coordinator::NotifyDeliverable() {
  std::vector<std::string> workers;
  {
    absl::MutexLock lock(&mu_);
    workers.swap(deliverable_to_);
  }
  if (!workers.empty() && options_.on_deliverable) options_.on_deliverable(workers);
}

void Coordinator::Publish(const Outbox& outbox) {
  // Every change that places a job publishes its events here, after its
  // lock is released.
  NotifyDeliverable();
  if (outbox.empty()) return;
  if (metrics_ != nullptr) metrics_->EventsAppended(static_cast<int64_t>(outbox.size()));
  events_->Publish(outbox);
}

// ---------------------------------------------------------------------------
// Reconciling and scheduling

void Coordinator::ReconcileLocked(Outbox* outbox) {
  const int64_t now = clock_->NowMs();
  for (const std::string& id : tracker_.JobIds()) {
    auto it = active_.find(id);
    const LiveAttempt* attempt = tracker_.Find(id);
    if (it == active_.end() || attempt == nullptr) continue;
    ActiveJob& job = it->second;
    absl::Status status;
    if (attempt->cancelling) {
      // A rank on a worker that is gone will never confirm; it counts as stopped.
      bool all_stopped = std::all_of(
          attempt->ranks.begin(), attempt->ranks.end(), [&](const RankState& rank) {
            return rank.completed || registry_.FindAlive(rank.worker_id) == nullptr;
          });
      if (all_stopped || now >= attempt->cancel_deadline_ms) {
        if (!all_stopped) {
          spdlog::warn("job {}: not every worker confirmed the cancel within {} ms", id,
                       options_.cancel_grace_ms);
        }
        status = EndAttemptLocked(job, AttemptOutcome::kCancelled, dfv::v1::CANCELLED,
                                  job.record.job.reason(), /*count_restart=*/false, outbox);
      }
    } else {
      bool ended = false;
      std::vector<std::string> not_back;  // ranks awaited after a restart, past the grace
      for (int r = 0; r < static_cast<int>(attempt->ranks.size()); ++r) {
        const RankState& rank = attempt->ranks[r];
        if (rank.awaiting) {
          if (now >= attempt->adopt_deadline_ms) {
            not_back.push_back(absl::StrCat(r, " (worker ", rank.worker_name, ")"));
          }
          continue;
        }
        if (rank.completed || registry_.FindAlive(rank.worker_id) != nullptr) continue;
        const WorkerRecord* old = registry_.Find(rank.worker_id);
        std::string reason = old != nullptr
                                 ? absl::StrCat("worker ", rank.worker_name, " lost")
                                 : absl::StrCat("worker ", rank.worker_name,
                                                " lost (it registered again)");
        status = RequeueOrFailLocked(job, reason, RestartReason::kWorkerLost, outbox);
        ended = true;
        break;
      }
      if (!ended && !not_back.empty()) {
        status = RequeueOrFailLocked(
            job,
            absl::StrCat("coordinator restarted; rank(s) ", absl::StrJoin(not_back, ", "),
                         " did not come back within ",
                         static_cast<double>(options_.adopt_grace_ms) / 1000.0, " s"),
            RestartReason::kCoordinatorRestarted, outbox);
        ended = true;
      }
      // Ranks that never start (a trainer that cannot be spawned, a worker
      // that never runs it) report nothing: the rendezvous backstop.
      if (!ended) {
        const std::string reason = tracker_.BackstopReason(id, now);
        if (!reason.empty()) {
          status = RequeueOrFailLocked(job, reason, RestartReason::kRendezvous, outbox);
        }
      }
    }
    if (!status.ok()) spdlog::error("job {}: cannot record its new state: {}", id, status.ToString());
  }
  ScheduleLocked(outbox);
}

void Coordinator::ScheduleLocked(Outbox* outbox) {
  std::vector<FreeWorker> free;
  for (WorkerRecord* worker : registry_.AliveWorkers()) {
    if (worker->heartbeats > 0 && worker->free_slots() > 0) {
      free.push_back(FreeWorker{worker->id, worker->name, worker->device, worker->free_slots(),
                                HostOf(*worker)});
    }
  }
  if (free.empty()) return;
  std::vector<QueuedJob> queued;
  for (auto& [id, job] : active_) {
    if (job.record.job.state() != dfv::v1::QUEUED || !ResumeChosenLocked(job)) continue;
    queued.push_back(QueuedJob{id, job.record.job.priority(), job.record.submit_order,
                               job.record.job.world_size(), job.device});
  }
  if (queued.empty()) return;
  for (const Placement& placement : ScheduleJobs(std::move(queued), std::move(free))) {
    auto it = active_.find(placement.job_id);
    if (it == active_.end()) continue;
    absl::Status status = PlaceLocked(it->second, placement.worker_ids, outbox);
    if (!status.ok()) {
      spdlog::error("job {}: placement failed: {}", placement.job_id, status.ToString());
    }
  }
}

std::string Coordinator::StopReasonLocked(const AssignmentKey& key) {
  if (active_.count(key.job_id) > 0) return tracker_.StopReason(key);
  absl::StatusOr<JobRecord> stored = store_->GetJob(key.job_id);
  if (!stored.ok()) return absl::StrCat("job ", key.job_id, " is unknown");
  const dfv::v1::Job& job = stored->job;
  return absl::StrCat("job ", key.job_id, " is ", StateName(job.state()),
                      job.reason().empty() ? "" : ": ", job.reason());
}

absl::Status Coordinator::InactiveJobStatus(const std::string& job_id) const {
  DFV_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  return absl::FailedPreconditionError(
      absl::StrCat("job ", job_id, " is already ", StateName(record.job.state())));
}

// ---------------------------------------------------------------------------
// Clients

absl::Status Coordinator::CheckCapacityLocked(const jobspec::JobSpec& spec) {
  const std::string& device = spec.resources.device;
  const int64_t ranks = spec.resources.workers;
  int64_t slots = 0;
  std::vector<std::pair<std::string, int>> workers;  // name, slots
  for (WorkerRecord* worker : registry_.AliveWorkers()) {
    if (worker->device != device) continue;
    slots += worker->slots;
    workers.emplace_back(worker->name, worker->slots);
  }
  if (slots >= ranks) return absl::OkStatus();
  std::sort(workers.begin(), workers.end());
  std::vector<std::string> listed;
  for (const auto& [name, count] : workers) listed.push_back(absl::StrCat(name, ": ", count));
  return absl::FailedPreconditionError(absl::StrCat(
      "resources.workers: ", ranks, ranks == 1 ? " rank needs " : " ranks need ", ranks, " ",
      device, " worker slot", ranks == 1 ? "" : "s", ", the cluster has ", slots,
      listed.empty() ? absl::StrCat(" (no live ", device, " worker)")
                     : absl::StrCat(" (", absl::StrJoin(listed, ", "), ")"),
      "; submit with --wait to queue it until workers join"));
}

absl::StatusOr<JobRecord> Coordinator::NewJobRecord(const jobspec::JobSpec& spec) const {
  const int64_t now = clock_->NowMs();
  JobRecord record;
  dfv::v1::Job& job = record.job;
  job.set_name(spec.name);
  job.set_model(spec.model);
  job.set_state(dfv::v1::QUEUED);
  job.set_priority(static_cast<int32_t>(spec.priority));
  job.set_spec_yaml(jobspec::JobSpecToYaml(spec));
  job.set_created_ms(now);
  job.set_updated_ms(now);
  job.set_max_restarts(static_cast<int32_t>(spec.max_restarts));
  job.set_world_size(static_cast<int32_t>(spec.resources.workers));
  // The stored job file, its first event and SQLite's pages for them.
  DFV_RETURN_IF_ERROR(CheckFreeSpace(static_cast<int64_t>(job.spec_yaml().size()) + 64 * 1024, "this job"));
  return record;
}

absl::StatusOr<dfv::v1::Job> Coordinator::SubmitJob(const std::string& spec_yaml,
                                                    const std::string& source_name,
                                                    const std::vector<std::string>& overrides,
                                                    bool wait_for_workers) {
  jobspec::ParseOptions parse_options;
  parse_options.source_name = source_name.empty() ? "job.yaml" : source_name;
  parse_options.overrides = overrides;
  jobspec::ParseResult parsed = jobspec::ParseJobSpecWithErrors(spec_yaml, parse_options);
  if (!parsed.ok()) return jobspec::SpecErrorsToStatus(parsed.errors);
  const jobspec::JobSpec& spec = parsed.spec;

  DFV_ASSIGN_OR_RETURN(JobRecord record, NewJobRecord(spec));
  Outbox outbox;
  absl::StatusOr<dfv::v1::Job> result;
  {
    absl::MutexLock lock(&mu_);
    if (!wait_for_workers) DFV_RETURN_IF_ERROR(CheckCapacityLocked(spec));
    result = InsertJobLocked(std::move(record), spec, /*resume=*/"", &outbox,
                             [](JobStore::Tx&, const std::string&) {
                               return std::vector<JobEvent>{};
                             });
  }
  Publish(outbox);
  return result;
}

absl::StatusOr<dfv::v1::Job> Coordinator::InsertJobLocked(JobRecord record, const jobspec::JobSpec& spec,
                                                          const std::string& resume, Outbox* outbox,
                                                          NewJobExtras extras) {
  std::vector<JobEvent> appended;
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
    appended.clear();
    DFV_RETURN_IF_ERROR(tx.InsertJob(&record));
    std::vector<JobEvent> payloads = {StateEvent(dfv::v1::QUEUED, 0, "", record.job.workers())};
    DFV_ASSIGN_OR_RETURN(std::vector<JobEvent> more, extras(tx, record.job.id()));
    payloads.insert(payloads.end(), more.begin(), more.end());
    for (const JobEvent& payload : payloads) {
      DFV_ASSIGN_OR_RETURN(JobEvent event, events_->AppendInTransaction(tx, record.job.id(), payload));
      appended.push_back(std::move(event));
    }
    return absl::OkStatus();
  }));
  record.job.set_last_seq(appended.back().seq());
  outbox->insert(outbox->end(), appended.begin(), appended.end());
  const dfv::v1::Job result = record.job;
  spdlog::info("job {} ({}, model {}, {} worker(s) on {}) QUEUED", result.id(), result.name(), result.model(),
               result.world_size(), spec.resources.device);
  if (metrics_ != nullptr) metrics_->JobSubmitted();
  ActiveJob active;
  active.record = std::move(record);
  active.queued_ms = result.created_ms();
  active.first_running_pending = true;
  if (!resume.empty()) {
    active.resume = resume;
    active.resume_checked_after = 0;
  }
  AdoptSpec(spec, active);
  active_.emplace(result.id(), std::move(active));
  ScheduleLocked(outbox);
  return result;
}

namespace {

// The top-level keys an evaluation's overrides may set: how it is named,
// queued and placed, its grids and its evaluation. Everything else
// (model, data, training) describes the checkpoint as it was trained.
constexpr const char* kEvaluationOverridable[] = {"name",      "priority", "max_restarts",
                                                  "resources", "samples",  "evaluate"};

absl::Status CheckEvaluationOverrides(const std::vector<std::string>& overrides) {
  std::vector<std::string> refused;
  for (const std::string& text : overrides) {
    const std::string key(absl::StripAsciiWhitespace(text.substr(0, text.find('='))));
    const std::string top = key.substr(0, key.find('.'));
    const bool allowed = std::any_of(std::begin(kEvaluationOverridable), std::end(kEvaluationOverridable),
                                     [&](const char* name) { return top == name; });
    if (allowed) continue;
    refused.push_back(absl::StrCat(
        "--set ", text, ": ", key,
        ": an evaluation keeps the job file the checkpoint was trained with; only name, priority, "
        "max_restarts, resources.*, samples.* and evaluate.* may be set"));
  }
  if (refused.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(refused, "\n"));
}

// The checkpoint of `checkpoints` (newest first) that `wanted` names: its
// artifact name, or the file name alone.
const dfv::v1::ArtifactInfo* FindCheckpoint(const std::vector<dfv::v1::ArtifactInfo>& checkpoints,
                                            const std::string& wanted) {
  for (const dfv::v1::ArtifactInfo& info : checkpoints) {
    if (info.name() == wanted) return &info;
  }
  for (const dfv::v1::ArtifactInfo& info : checkpoints) {
    if (absl::EndsWith(info.name(), absl::StrCat("/", wanted))) return &info;
  }
  return nullptr;
}

std::string CheckpointNames(const std::vector<dfv::v1::ArtifactInfo>& checkpoints) {
  std::vector<std::string> names;
  for (const dfv::v1::ArtifactInfo& info : checkpoints) names.push_back(info.name());
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<dfv::v1::Job> Coordinator::EvaluateCheckpoint(const EvaluationRequest& request) {
  const std::string& source_id = request.job_id;
  DFV_RETURN_IF_ERROR(CheckEvaluationOverrides(request.overrides));
  DFV_ASSIGN_OR_RETURN(JobRecord source, store_->GetJob(source_id));
  DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> artifacts, store_->ListArtifacts(source_id));
  const std::vector<dfv::v1::ArtifactInfo> checkpoints = CheckpointsNewestFirst(artifacts);
  if (checkpoints.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("job ", source_id, " (", StateName(source.job.state()),
                                                      ") has no checkpoint to evaluate"));
  }
  std::vector<dfv::v1::ArtifactInfo> candidates = checkpoints;
  if (!request.checkpoint.empty()) {
    const dfv::v1::ArtifactInfo* named = FindCheckpoint(checkpoints, request.checkpoint);
    if (named == nullptr) {
      return absl::NotFoundError(absl::StrCat("job ", source_id, " has no checkpoint ", request.checkpoint,
                                              "; its checkpoints: ", CheckpointNames(checkpoints)));
    }
    candidates = {*named};
  }

  // Read back without the mutex, as a resume check would.
  const dfv::v1::ArtifactInfo* chosen = nullptr;
  std::vector<std::string> damaged;
  for (const dfv::v1::ArtifactInfo& candidate : candidates) {
    absl::Status verified = artifacts_->Verify(source_id, candidate);
    if (verified.ok()) {
      chosen = &candidate;
      break;
    }
    spdlog::warn("job {}: checkpoint {} does not verify: {}", source_id, candidate.name(), verified.ToString());
    damaged.push_back(absl::StrCat(candidate.name(), ": ", verified.message()));
  }
  if (chosen == nullptr && !request.checkpoint.empty()) {
    return absl::DataLossError(absl::StrCat("checkpoint ", damaged.front(), " (job ", source_id,
                                            ") does not verify; its checkpoints: ", CheckpointNames(checkpoints)));
  }
  if (chosen == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("no checkpoint of job ", source_id,
                                                      " verifies: ", absl::StrJoin(damaged, "; ")));
  }
  if (chosen->step() <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", chosen->name(), " of job ", source_id, " holds step ", chosen->step(),
                     ": nothing was trained"));
  }

  // The source's job file, renamed, on one rank, with the caller's
  // overrides, and ending at the checkpoint's step so that nothing trains.
  std::string name = source.job.name().substr(0, 64 - 5);
  std::vector<std::string> overrides = {absl::StrCat("name=\"", name, "-eval\""), "resources.workers=1"};
  overrides.insert(overrides.end(), request.overrides.begin(), request.overrides.end());
  overrides.push_back(absl::StrCat("train.max_steps=", chosen->step()));
  jobspec::ParseOptions parse_options;
  parse_options.source_name = absl::StrCat(source_id, "/job.yaml");
  parse_options.overrides = overrides;
  // A job stored by an older version may list every data set kind's fields.
  parse_options.drop_other_kind_fields = true;
  jobspec::ParseResult parsed = jobspec::ParseJobSpecWithErrors(source.job.spec_yaml(), parse_options);
  if (!parsed.ok()) return jobspec::SpecErrorsToStatus(parsed.errors);
  const jobspec::JobSpec& spec = parsed.spec;
  if (!jobspec::EvaluatesCodes(spec.evaluate)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", source_id, " has no evaluation in its job file (evaluate: asks for no classifiers, tsne, "
        "predictors, swap or factors); add one, e.g. --set evaluate.classifiers=[mlp]"));
  }

  DFV_ASSIGN_OR_RETURN(JobRecord record, NewJobRecord(spec));
  dfv::v1::Evaluates* evaluates = record.job.mutable_evaluates();
  evaluates->set_job_id(source_id);
  evaluates->set_checkpoint(chosen->name());
  evaluates->set_step(chosen->step());

  Outbox outbox;
  absl::StatusOr<dfv::v1::Job> result;
  {
    absl::MutexLock lock(&mu_);
    if (!request.wait_for_workers) DFV_RETURN_IF_ERROR(CheckCapacityLocked(spec));
    std::string shared_into;  // the new job's id once its file is linked
    dfv::v1::ArtifactInfo shared;
    result = InsertJobLocked(
        record, spec, chosen->name(), &outbox,
        [&](JobStore::Tx& tx, const std::string& id) -> absl::StatusOr<std::vector<JobEvent>> {
          // Retention removes files under this mutex: what was verified is
          // still the indexed file, unless it was replaced or removed since.
          absl::StatusOr<dfv::v1::ArtifactInfo> now_indexed = tx.GetArtifact(source_id, chosen->name());
          if (!now_indexed.ok() || now_indexed->checksum() != chosen->checksum() ||
              now_indexed->created_ms() != chosen->created_ms()) {
            return absl::FailedPreconditionError(absl::StrCat("checkpoint ", chosen->name(), " of job ", source_id,
                                                              " was removed or replaced while it was read; try again"));
          }
          DFV_ASSIGN_OR_RETURN(shared, artifacts_->Share(source_id, *chosen, id, tx));
          shared_into = id;
          JobEvent linked;
          *linked.mutable_artifact() = shared;
          return std::vector<JobEvent>{
              MessageEvent(absl::StrCat("evaluates checkpoint ", chosen->name(), " (step ", chosen->step(),
                                        ") of job ", source_id, ", given to this job without a copy")),
              linked};
        });
    if (result.ok()) {
      artifact_bytes_ += shared.size();
    } else if (!shared_into.empty()) {
      // Linked, but the transaction did not commit: nothing indexes the file.
      absl::Status removed = artifacts_->RemoveFiles(shared_into, {shared.name()});
      if (removed.ok()) removed = artifacts_->RemoveJobFolder(shared_into);
      if (!removed.ok()) spdlog::warn("job {}: {}", shared_into, removed.ToString());
    }
  }
  Publish(outbox);
  if (result.ok()) {
    spdlog::info("job {} evaluates checkpoint {} of job {}", result->id(), chosen->name(), source_id);
  }
  return result;
}

absl::StatusOr<dfv::v1::Job> Coordinator::GetJob(const std::string& job_id) const {
  DFV_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  return std::move(record.job);
}

absl::StatusOr<std::vector<dfv::v1::Job>> Coordinator::ListJobs(
    const std::vector<JobState>& states, int limit) const {
  DFV_ASSIGN_OR_RETURN(std::vector<JobRecord> records, store_->ListJobs(states, limit));
  std::vector<dfv::v1::Job> jobs;
  jobs.reserve(records.size());
  for (JobRecord& record : records) jobs.push_back(std::move(record.job));
  return jobs;
}

absl::StatusOr<dfv::v1::Job> Coordinator::CancelJob(const std::string& job_id,
                                                    const std::string& reason) {
  const std::string why = reason.empty() ? "cancelled by user" : reason;
  Outbox outbox;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(job_id);
    if (it == active_.end()) {
      DFV_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " is already ", StateName(record.job.state()),
          "; only QUEUED, SCHEDULED or RUNNING jobs can be cancelled"));
    }
    ActiveJob& job = it->second;
    if (job.record.job.state() == dfv::v1::QUEUED) {
      JobRecord next = job.record;
      next.job.set_state(dfv::v1::CANCELLED);
      next.job.set_reason(why);
      DFV_RETURN_IF_ERROR(CommitJobLocked(
          job, std::move(next),
          {StateEvent(dfv::v1::CANCELLED, job.record.job.attempt(), why, job.record.job.workers())},
          &outbox));
      spdlog::info("job {}: QUEUED -> CANCELLED: {}", job_id, why);
      active_.erase(it);
    } else if (!tracker_.Cancelling(job_id)) {
      JobRecord next = job.record;
      next.cancel_requested = true;
      next.job.set_reason(why);
      DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next),
                                          {MessageEvent(absl::StrCat("cancel requested: ", why))},
                                          &outbox));
      spdlog::info("job {}: cancel requested: {}", job_id, why);
      tracker_.BeginCancel(job_id, why, clock_->NowMs() + options_.cancel_grace_ms);
      ReconcileLocked(&outbox);
    }
  }
  Publish(outbox);
  return GetJob(job_id);
}

std::vector<dfv::v1::WorkerInfo> Coordinator::ListWorkers() const {
  absl::MutexLock lock(&mu_);
  return registry_.List();
}

CoordinatorState Coordinator::MetricsState() const {
  CoordinatorState state;
  {
    absl::MutexLock lock(&mu_);
    const int64_t now = clock_->NowMs();
    int64_t oldest_queued_ms = now;
    for (const auto& [id, job] : active_) {
      const JobState job_state = job.record.job.state();
      ++state.jobs[job_state];
      if (job_state == dfv::v1::QUEUED) {
        oldest_queued_ms = std::min(oldest_queued_ms, job.queued_ms);
      }
    }
    state.oldest_queued_seconds = static_cast<double>(now - oldest_queued_ms) / 1000.0;
    for (int s = 0; s < dfv::v1::JobState_ARRAYSIZE; ++s) {
      if (dfv::v1::IsFinalState(static_cast<JobState>(s))) state.jobs[s] = final_jobs_[s];
    }
    state.workers = registry_.Count();
    state.artifact_stored_bytes = artifact_bytes_;
  }
  state.watchers = events_->SubscriberCount();
  absl::StatusOr<int64_t> available = AvailableBytes(options_.data_dir);
  state.data_available_bytes = available.ok() ? *available : -1;
  return state;
}

std::vector<MetricsTarget> Coordinator::MetricsTargets() const {
  absl::MutexLock lock(&mu_);
  return registry_.MetricsTargets();
}

absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> Coordinator::ListArtifacts(
    const std::string& job_id) const {
  DFV_RETURN_IF_ERROR(store_->GetJob(job_id).status());
  return artifacts_->List(job_id);
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> Coordinator::OpenArtifact(
    const std::string& job_id, const std::string& name) const {
  DFV_RETURN_IF_ERROR(store_->GetJob(job_id).status());
  return artifacts_->Open(job_id, name);
}

// ---------------------------------------------------------------------------
// Space: free space, quotas, retention, deletion

absl::Status Coordinator::CheckFreeSpace(int64_t bytes, const std::string& what) const {
  if (options_.min_free_bytes == 0) return absl::OkStatus();  // the check is off
  absl::StatusOr<int64_t> available = AvailableBytes(options_.data_dir);
  if (!available.ok()) {
    // Not knowing is no reason to refuse; the write itself reports a full disk.
    spdlog::warn("cannot tell the free space of {}: {}", options_.data_dir, available.status().ToString());
    return absl::OkStatus();
  }
  if (*available - bytes >= options_.min_free_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the coordinator's data folder ", options_.data_dir, " has ", FormatBytes(*available),
      " free; ", what, " needs ", FormatBytes(bytes), " and ", FormatBytes(options_.min_free_bytes),
      " must stay free (--min-free-space): free space there (dfvctl delete JOB, dfvctl gc) and try again"));
}

absl::Status Coordinator::CheckQuotasLocked(ActiveJob& job, const dfv::v1::ArtifactInfo& declared,
                                            Outbox* outbox) {
  if (options_.job_artifact_quota_bytes <= 0 && options_.artifact_quota_bytes <= 0) return absl::OkStatus();
  const std::string& id = job.record.job.id();
  DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> all, store_->ListArtifacts(id));
  // What the job holds once the upload commits: the declared file replaces
  // one of the same name, and keep_last removes older checkpoints.
  int64_t released = 0;
  int64_t job_bytes = 0;
  std::vector<dfv::v1::ArtifactInfo> after;
  for (const dfv::v1::ArtifactInfo& info : all) {
    if (info.name() == declared.name()) {
      released += info.size();
      continue;
    }
    job_bytes += info.size();
    after.push_back(info);
  }
  if (declared.kind() == dfv::v1::CHECKPOINT) {
    dfv::v1::ArtifactInfo incoming = declared;
    incoming.set_created_ms(clock_->NowMs());
    after.push_back(incoming);
    for (const dfv::v1::ArtifactInfo& old :
         CheckpointsBeyondKeepLast(after, job.keep_last, ProtectedCheckpointsLocked(id))) {
      job_bytes -= old.size();
      released += old.size();
    }
  }
  job_bytes += declared.size();
  std::string refused;
  if (options_.job_artifact_quota_bytes > 0 && job_bytes > options_.job_artifact_quota_bytes) {
    refused = absl::StrCat("the job's artifacts would take ", FormatBytes(job_bytes), ", over its quota of ",
                           FormatBytes(options_.job_artifact_quota_bytes), " (--job-artifact-quota)");
  } else if (const int64_t total = artifact_bytes_ - released + declared.size();
             options_.artifact_quota_bytes > 0 && total > options_.artifact_quota_bytes) {
    refused = absl::StrCat("the coordinator's artifacts would take ", FormatBytes(total),
                           ", over its quota of ", FormatBytes(options_.artifact_quota_bytes),
                           " (--artifact-quota); dfvctl delete JOB frees a finished job's");
  }
  if (refused.empty()) return absl::OkStatus();
  const std::string text = absl::StrCat("artifact ", declared.name(), " (", FormatBytes(declared.size()),
                                        ") refused: ", refused);
  absl::Status logged = CommitJobLocked(job, job.record, {MessageEvent(text)}, outbox);
  if (!logged.ok()) spdlog::error("job {}: cannot record {}: {}", id, text, logged.ToString());
  return absl::ResourceExhaustedError(text);
}

std::set<std::string> Coordinator::ProtectedCheckpointsLocked(const std::string& job_id) const {
  auto it = active_.find(job_id);
  if (it == active_.end() || it->second.resume.empty()) return {};
  return {it->second.resume};
}

void Coordinator::ArtifactsRemovedLocked(const std::string& job_id,
                                         const std::vector<dfv::v1::ArtifactInfo>& removed,
                                         DeleteReason reason, FreedSpace* freed) {
  std::vector<std::string> names;
  int64_t bytes = 0;
  for (const dfv::v1::ArtifactInfo& info : removed) {
    names.push_back(info.name());
    bytes += info.size();
  }
  // Under the mutex: an upload of the same name commits under it too, so a
  // file is never removed after a new one took its place.
  absl::Status status = artifacts_->RemoveFiles(job_id, names);
  if (!status.ok()) {
    // The rows are gone; a file left behind is an orphan for dfvctl gc.
    spdlog::warn("job {}: {}", job_id, status.ToString());
  }
  if (reason != DeleteReason::kOrphan) artifact_bytes_ -= bytes;
  freed_.Add(reason, static_cast<int64_t>(names.size()), bytes);
  if (freed != nullptr) freed->Add(reason, static_cast<int64_t>(names.size()), bytes);
  if (metrics_ != nullptr) metrics_->ArtifactsDeleted(reason, static_cast<int64_t>(names.size()), bytes);
  spdlog::info("job {}: removed {} artifact file(s), {} ({}): {}", job_id, names.size(), FormatBytes(bytes),
               DeleteReasonLabel(reason), absl::StrJoin(names, ", "));
}

absl::Status Coordinator::PruneJobLocked(const std::string& job_id, int64_t keep_last, FreedSpace* freed) {
  std::vector<dfv::v1::ArtifactInfo> pruned;
  const std::set<std::string> keep = ProtectedCheckpointsLocked(job_id);
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
    DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> all, tx.ListArtifacts(job_id));
    pruned = CheckpointsBeyondKeepLast(all, keep_last, keep);
    for (const dfv::v1::ArtifactInfo& old : pruned) DFV_RETURN_IF_ERROR(tx.DeleteArtifact(job_id, old.name()));
    return absl::OkStatus();
  }));
  if (!pruned.empty()) ArtifactsRemovedLocked(job_id, pruned, DeleteReason::kKeepLast, freed);
  return absl::OkStatus();
}

absl::StatusOr<FreedSpace> Coordinator::DeleteJobArtifacts(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  DFV_ASSIGN_OR_RETURN(JobRecord record, store_->GetJob(job_id));
  if (!dfv::v1::IsFinalState(record.job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " is ", StateName(record.job.state()),
        ": only a finished job's artifacts can be deleted (dfvctl cancel ", job_id, " first)"));
  }
  std::vector<dfv::v1::ArtifactInfo> removed;
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
    DFV_ASSIGN_OR_RETURN(removed, tx.ListArtifacts(job_id));
    for (const dfv::v1::ArtifactInfo& info : removed) DFV_RETURN_IF_ERROR(tx.DeleteArtifact(job_id, info.name()));
    return absl::OkStatus();
  }));
  FreedSpace freed;
  if (!removed.empty()) ArtifactsRemovedLocked(job_id, removed, DeleteReason::kDeleted, &freed);
  absl::Status folder = artifacts_->RemoveJobFolder(job_id);
  if (!folder.ok()) spdlog::warn("job {}: {}", job_id, folder.ToString());
  return freed;
}

absl::StatusOr<Coordinator::GarbageReport> Coordinator::CollectGarbage() {
  GarbageReport report;
  // keep_last, job by job (specs parsed without the mutex).
  DFV_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, store_->ListJobs({}, /*limit=*/0));
  for (const JobRecord& record : jobs) {
    const std::string& id = record.job.id();
    jobspec::ParseOptions parse_options;
    parse_options.source_name = absl::StrCat(id, "/job.yaml");
    parse_options.drop_other_kind_fields = true;
    jobspec::ParseResult parsed = jobspec::ParseJobSpecWithErrors(record.job.spec_yaml(), parse_options);
    if (!parsed.ok()) {
      spdlog::warn("gc: job {}: its stored job file does not validate; its checkpoints are kept", id);
      continue;
    }
    absl::MutexLock lock(&mu_);
    auto it = active_.find(id);
    const int64_t keep_last = it != active_.end() ? it->second.keep_last : parsed.spec.checkpoint.keep_last;
    DFV_RETURN_IF_ERROR(PruneJobLocked(id, keep_last, &report.this_pass));
  }
  // Orphans: found without the mutex, each re-checked under it (an upload
  // renames its file into place and indexes it under the mutex).
  DFV_ASSIGN_OR_RETURN(std::vector<ArtifactStore::Orphan> orphans, artifacts_->FindOrphans());
  {
    absl::MutexLock lock(&mu_);
    for (const ArtifactStore::Orphan& orphan : orphans) {
      absl::StatusOr<dfv::v1::ArtifactInfo> indexed = store_->GetArtifact(orphan.job_id, orphan.name);
      if (indexed.ok()) continue;
      if (!absl::IsNotFound(indexed.status())) return indexed.status();
      dfv::v1::ArtifactInfo info;
      info.set_name(orphan.name);
      info.set_size(orphan.bytes);
      ArtifactsRemovedLocked(orphan.job_id, {info}, DeleteReason::kOrphan, &report.this_pass);
    }
    report.since_start = freed_;
    report.stored_bytes = artifact_bytes_;
  }
  DFV_ASSIGN_OR_RETURN(report.available_bytes, AvailableBytes(options_.data_dir));
  return report;
}

absl::StatusOr<std::vector<JobEvent>> Coordinator::ReadEvents(const std::string& job_id,
                                                              int64_t after_seq, int limit) const {
  return events_->Read(job_id, after_seq, limit);
}

std::unique_ptr<EventLog::Subscription> Coordinator::SubscribeEvents(const std::string& job_id,
                                                                     EventLog::Callback callback) {
  return events_->Subscribe(job_id, std::move(callback));
}

// ---------------------------------------------------------------------------
// Workers

absl::StatusOr<dfv::v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const dfv::v1::RegisterWorkerRequest& request) {
  Outbox outbox;
  dfv::v1::RegisterWorkerResponse response;
  {
    absl::MutexLock lock(&mu_);
    WorkerRegistry::Registration registration =
        registry_.Register(request.name(), request.slots(), request.device(), request.address(),
                           request.metrics_address());
    if (registration.replaced) {
      spdlog::warn("worker {} registered again; its session {} ends", request.name(),
                   registration.replaced->id);
    }
    spdlog::info("worker {} registered as {} ({} {} slot(s), {})", request.name(),
                 registration.worker_id, request.slots(), request.device(), request.address());
    response.set_worker_id(registration.worker_id);
    response.set_lease_ttl_ms(options_.lease_ttl_ms);
    response.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
    AdoptRunningLocked(request, *registry_.FindAlive(registration.worker_id), &response, &outbox);
    // Jobs that ran on the replaced session lost that worker.
    ReconcileLocked(&outbox);
  }
  Publish(outbox);
  return response;
}

absl::Status Coordinator::CheckSessionOwner(const std::string& worker_id,
                                            const std::string& name) {
  absl::MutexLock lock(&mu_);
  DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(worker_id));
  if (worker->name == name) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("worker session ", worker_id,
                                                  " is not the session of worker ", name,
                                                  " (the caller's certificate)"));
}

absl::Status Coordinator::CheckCheckpointReader(const std::string& worker_id, const std::string& job_id,
                                                int32_t attempt) {
  absl::MutexLock lock(&mu_);
  DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(worker_id));
  if (active_.count(job_id) == 0) return InactiveJobStatus(job_id);
  DFV_RETURN_IF_ERROR(tracker_.CheckAttemptMember(job_id, attempt, *worker));
  for (const auto& [key, held] : worker->assignments) {
    if (key.job_id == job_id && key.attempt == attempt) return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("worker ", worker->name, " holds no rank of attempt ", attempt,
                                                  " of job ", job_id));
}

absl::StatusOr<dfv::v1::HeartbeatResponse> Coordinator::Heartbeat(
    const dfv::v1::HeartbeatRequest& request) {
  const std::string& worker_id = request.worker_id();
  Outbox outbox;
  dfv::v1::HeartbeatResponse response;
  {
    absl::MutexLock lock(&mu_);
    DFV_RETURN_IF_ERROR(registry_.Renew(worker_id));
    WorkerRecord* worker = registry_.FindAlive(worker_id);
    std::set<AssignmentKey> reported;
    for (const dfv::v1::RunningAssignment& running : request.running()) {
      reported.insert(AssignmentKey{running.job_id(), running.attempt(), running.rank()});
    }

    // Held assignments the worker does not run.
    bool released = false;  // an assignment the worker no longer reports
    std::vector<AssignmentKey> vanished;  // adopted ranks it no longer runs
    for (auto it = worker->assignments.begin(); it != worker->assignments.end();) {
      const AssignmentKey key = it->first;
      auto next = std::next(it);
      if (reported.count(key) == 0) {
        const bool wanted = tracker_.Wanted(key, worker_id);
        if (wanted && it->second.adopted) {
          // Held again after a restart, it cannot be delivered again.
          vanished.push_back(key);
          worker->assignments.erase(it);
        } else if (wanted && it->second.delivered) {
          // The response that carried it was lost: deliver it again.
          spdlog::warn("worker {} does not report job {} attempt {} rank {}; delivering it again",
                       worker->name, key.job_id, key.attempt, key.rank);
          it->second.delivered = false;
        } else if (!wanted) {
          tracker_.Release(*worker, key);  // stopped, or never started
          released = true;
        }
      }
      it = next;
    }

    for (const AssignmentKey& key : vanished) {
      auto job = active_.find(key.job_id);
      if (job == active_.end()) continue;
      absl::Status status = RequeueOrFailLocked(
          job->second,
          absl::StrCat("worker ", worker->name, " no longer runs rank ", key.rank, " of attempt ",
                       key.attempt, ", adopted after a coordinator restart"),
          RestartReason::kWorkerLost, &outbox);
      if (!status.ok()) {
        spdlog::error("job {}: cannot record its new state: {}", key.job_id, status.ToString());
      }
    }

    // Running assignments that should stop. They keep their slot until the
    // worker stops reporting them.
    for (const AssignmentKey& key : reported) {
      if (tracker_.Wanted(key, worker_id)) continue;
      dfv::v1::CancelAssignment* cancel = response.add_cancels();
      cancel->set_job_id(key.job_id);
      cancel->set_attempt(key.attempt);
      cancel->set_reason(StopReasonLocked(key));
      if (worker->assignments.count(key) == 0) {
        HeldAssignment held;
        held.assignment.set_job_id(key.job_id);
        held.assignment.set_attempt(key.attempt);
        held.assignment.set_rank(key.rank);
        held.delivered = true;
        worker->assignments.emplace(key, std::move(held));
      }
    }

    // A heartbeat changes attempts only when the worker stopped reporting
    // one (a cancel may be complete now); otherwise only placement can
    // change (its free slots), and leases and backstops are Tick's. Reconciling
    // every live attempt on every heartbeat cost O(attempts) per call, most
    // of the coordinator's CPU with 1,000 workers (bench/load.sh).
    if (released) {
      ReconcileLocked(&outbox);
    } else if (worker->free_slots() > 0) {
      ScheduleLocked(&outbox);
    }

    for (dfv::v1::Assignment& assignment : tracker_.TakeDeliverable(*worker)) {
      *response.add_assignments() = std::move(assignment);
    }
    response.set_lease_ttl_ms(options_.lease_ttl_ms);
  }
  Publish(outbox);
  return response;
}

absl::StatusOr<bool> Coordinator::ReportEvents(const dfv::v1::ReportEventsRequest& request) {
  const AssignmentKey key{request.job_id(), request.attempt(), request.rank()};
  // Refused whatever the session and the attempt, so a worker learns of its
  // bad report at once.
  DFV_RETURN_IF_ERROR(CheckReportedEvents(request));
  Outbox outbox;
  {
    absl::MutexLock lock(&mu_);
    DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(request.worker_id()));
    DFV_RETURN_IF_ERROR(tracker_.CheckRankHolder(key, *worker));
    RankState* rank = tracker_.LiveRank(key, request.worker_id());
    if (rank == nullptr) {
      if (active_.count(key.job_id) == 0) {
        absl::Status inactive = InactiveJobStatus(key.job_id);
        if (absl::IsNotFound(inactive)) return inactive;
      }
      return true;
    }
    ActiveJob& job = active_.at(key.job_id);
    if (tracker_.Cancelling(key.job_id)) return true;
    const int64_t batch = request.batch();
    if (batch > 0 && batch <= rank->last_batch) {
      // A re-send whose answer was lost: applied already.
      spdlog::debug("job {} attempt {} rank {}: batch {} was applied already (last {})",
                    key.job_id, key.attempt, key.rank, batch, rank->last_batch);
      return false;
    }

    JobRecord next = job.record;
    std::vector<JobEvent> payloads;
    bool rank_started = rank->started;
    for (int i = 0; i < request.events_size(); ++i) {
      const JobEvent& event = request.events(i);
      JobEvent payload = event;
      payload.clear_job_id();
      payload.clear_seq();
      payload.clear_time_ms();
      switch (event.payload_case()) {
        case JobEvent::kState:  // RUNNING (CheckReportedEvents)
          rank_started = true;
          if (tracker_.AllOtherRanksStarted(key) && next.job.state() == dfv::v1::SCHEDULED) {
            next.job.set_state(dfv::v1::RUNNING);
            payloads.push_back(StateEvent(dfv::v1::RUNNING, key.attempt, "", next.job.workers()));
          }
          break;
        case JobEvent::kMetrics:
          if (key.rank == 0) payloads.push_back(std::move(payload));
          break;
        case JobEvent::kProgress:
          if (key.rank == 0) {
            *next.job.mutable_progress() = event.progress();
            payloads.push_back(std::move(payload));
          }
          break;
        case JobEvent::kMessage:
          if (key.rank != 0) {
            payload.mutable_message()->set_text(
                absl::StrCat("rank ", key.rank, ": ", event.message().text()));
          }
          payloads.push_back(std::move(payload));
          break;
        case JobEvent::kArtifact:
        case JobEvent::PAYLOAD_NOT_SET:
          break;  // refused by CheckReportedEvents
      }
    }
    if (!payloads.empty() || next.job.state() != job.record.job.state()) {
      const JobState previous = job.record.job.state();
      // The batch's number commits with what it applied.
      DFV_RETURN_IF_ERROR(CommitJobLocked(job, std::move(next), payloads, &outbox,
                                          [&](JobStore::Tx& tx) -> absl::Status {
                                            if (batch <= 0) return absl::OkStatus();
                                            return tx.SetLastReportBatch(key.job_id, key.attempt,
                                                                         key.rank, batch);
                                          }));
      if (previous != job.record.job.state()) {
        spdlog::info("job {} attempt {}: {} -> {}", key.job_id, key.attempt, StateName(previous),
                     StateName(job.record.job.state()));
      }
    }
    rank->started = rank_started;
    if (batch > 0) rank->last_batch = batch;
  }
  Publish(outbox);
  return false;
}

absl::Status Coordinator::CheckUploaderLocked(const std::string& worker_id,
                                              const std::string& job_id, int32_t attempt,
                                              const dfv::v1::ArtifactInfo& info) {
  DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(worker_id));
  if (active_.count(job_id) == 0) {
    absl::Status inactive = InactiveJobStatus(job_id);
    if (absl::IsNotFound(inactive)) return inactive;
    return absl::FailedPreconditionError(
        absl::StrCat(inactive.message(), "; it takes no more artifacts"));
  }
  // A late rank of an ended attempt (a worker back after its lease ran out)
  // must not replace the files of the attempt that took over.
  if (const int32_t current = active_.at(job_id).record.job.attempt(); attempt < current) {
    return absl::FailedPreconditionError(absl::StrCat("attempt ", attempt, " of job ", job_id,
                                                      " has ended and attempt ", current,
                                                      " took over: its artifacts are not taken"));
  }
  DFV_RETURN_IF_ERROR(tracker_.CheckAttemptMember(job_id, attempt, *worker));
  if (worker->assignments.count(AssignmentKey{job_id, attempt, 0}) > 0) return absl::OkStatus();
  // Ranks >= 1 upload only their own trainer log.
  for (const auto& [key, held] : worker->assignments) {
    if (key.job_id != job_id || key.attempt != attempt) continue;
    const std::string own_log = absl::StrCat("trainer-rank", key.rank, ".log");
    if (info.kind() == dfv::v1::LOG && info.name() == own_log) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", worker->name, " runs rank ", key.rank, " of attempt ", attempt, " of job ",
        job_id, ": it may upload only its log ", own_log, " (rank 0 uploads the job's artifacts)"));
  }
  return absl::FailedPreconditionError(absl::StrCat("worker ", worker->name,
                                                    " does not run rank 0 of attempt ", attempt,
                                                    " of job ", job_id));
}

absl::StatusOr<std::unique_ptr<ArtifactUpload>> Coordinator::BeginUpload(
    const dfv::v1::UploadArtifactRequest::Header& header) {
  dfv::v1::ArtifactInfo declared = header.info();
  declared.set_attempt(header.attempt());
  declared.set_created_ms(0);
  Outbox outbox;
  absl::Status allowed;
  {
    absl::MutexLock lock(&mu_);
    DFV_RETURN_IF_ERROR(
        CheckUploaderLocked(header.worker_id(), header.job_id(), header.attempt(), header.info()));
    allowed = CheckQuotasLocked(active_.at(header.job_id()), declared, &outbox);
  }
  Publish(outbox);
  DFV_RETURN_IF_ERROR(allowed);
  DFV_RETURN_IF_ERROR(CheckFreeSpace(declared.size(), absl::StrCat("artifact ", declared.name())));
  return artifacts_->BeginUpload(header.job_id(), declared);
}

absl::StatusOr<dfv::v1::ArtifactInfo> Coordinator::FinishUpload(
    const std::string& worker_id, std::unique_ptr<ArtifactUpload> upload) {
  // The fsync happens here, before the lock.
  DFV_RETURN_IF_ERROR(upload->Seal());
  const std::string job_id = upload->job_id();
  Outbox outbox;
  dfv::v1::ArtifactInfo info;
  {
    absl::MutexLock lock(&mu_);
    DFV_RETURN_IF_ERROR(
        CheckUploaderLocked(worker_id, job_id, upload->declared().attempt(), upload->declared()));
    ActiveJob& job = active_.at(job_id);
    JobEvent appended;
    int64_t replaced_bytes = 0;  // an artifact of the same name is replaced
    std::vector<dfv::v1::ArtifactInfo> pruned;  // checkpoint.keep_last
    const std::set<std::string> keep = ProtectedCheckpointsLocked(job_id);
    bool repeated = false;       // ... unless it is this one again
    DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) -> absl::Status {
      pruned.clear();
      absl::StatusOr<dfv::v1::ArtifactInfo> previous =
          tx.GetArtifact(job_id, upload->declared().name());
      const dfv::v1::ArtifactInfo& declared = upload->declared();
      if (previous.ok() && previous->attempt() == declared.attempt() &&
          previous->size() == declared.size() && previous->checksum() == declared.checksum()) {
        // A re-sent upload whose answer was lost: stored already.
        repeated = true;
        info = *previous;
        return absl::OkStatus();
      }
      if (previous.ok()) {
        replaced_bytes = previous->size();
      } else if (!absl::IsNotFound(previous.status())) {
        return previous.status();
      }
      DFV_ASSIGN_OR_RETURN(info, upload->Commit(tx));
      JobEvent payload;
      *payload.mutable_artifact() = info;
      DFV_ASSIGN_OR_RETURN(appended, events_->AppendInTransaction(tx, job_id, payload));
      if (info.kind() == dfv::v1::CHECKPOINT) {
        DFV_ASSIGN_OR_RETURN(std::vector<dfv::v1::ArtifactInfo> all, tx.ListArtifacts(job_id));
        pruned = CheckpointsBeyondKeepLast(all, job.keep_last, keep);
        for (const dfv::v1::ArtifactInfo& old : pruned) {
          DFV_RETURN_IF_ERROR(tx.DeleteArtifact(job_id, old.name()));
        }
      }
      return absl::OkStatus();
    }));
    if (repeated) {
      spdlog::info("job {}: artifact {} ({}) was stored already; not stored again", job_id,
                   info.name(), info.checksum());
      return info;  // the upload's temporary file goes with it
    }
    job.record.job.set_last_seq(appended.seq());
    outbox.push_back(std::move(appended));
    artifact_bytes_ += info.size() - replaced_bytes;
    if (!pruned.empty()) ArtifactsRemovedLocked(job_id, pruned, DeleteReason::kKeepLast, nullptr);
    if (metrics_ != nullptr) metrics_->ArtifactWritten(info.size());
    spdlog::info("job {}: artifact {} ({} bytes, {})", job_id, info.name(), info.size(),
                 info.checksum());
  }
  Publish(outbox);
  return info;
}

absl::Status Coordinator::CompleteAssignment(const dfv::v1::CompleteAssignmentRequest& request) {
  const AssignmentKey key{request.job_id(), request.attempt(), request.rank()};
  if (request.outcome() != dfv::v1::OUTCOME_SUCCEEDED &&
      request.outcome() != dfv::v1::OUTCOME_FAILED &&
      request.outcome() != dfv::v1::OUTCOME_CANCELLED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "outcome: must be OUTCOME_SUCCEEDED, OUTCOME_FAILED or OUTCOME_CANCELLED, got ",
        static_cast<int>(request.outcome())));
  }
  Outbox outbox;
  absl::Status result;
  {
    absl::MutexLock lock(&mu_);
    DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(request.worker_id()));
    // Before anything changes: another worker's rank is not this one's to end.
    DFV_RETURN_IF_ERROR(tracker_.CheckRankHolder(key, *worker));
    worker->assignments.erase(key);  // the slot is free either way
    RankState* rank = tracker_.LiveRank(key, request.worker_id());
    if (rank == nullptr) {
      // An attempt that is over: completing one of its ranks only frees the slot.
      if (active_.count(key.job_id) == 0) {
        absl::Status inactive = InactiveJobStatus(key.job_id);
        if (absl::IsNotFound(inactive)) return inactive;
      }
    } else {
      ActiveJob& job = active_.at(key.job_id);
      rank->completed = true;
      const std::string where = absl::StrCat("rank ", key.rank, " on worker ", worker->name);
      if (!tracker_.Cancelling(key.job_id)) {
        switch (request.outcome()) {
          case dfv::v1::OUTCOME_FAILED:
            if (request.retryable()) {
              result = RequeueOrFailLocked(
                  job,
                  absl::StrCat(where, ": ", request.reason().empty() ? "failed" : request.reason()),
                  RestartReason::kRankFailed, &outbox);
              break;
            }
            result = EndAttemptLocked(
                job, AttemptOutcome::kFailed, dfv::v1::FAILED,
                absl::StrCat(where, ": ", request.reason().empty() ? "failed" : request.reason()),
                /*count_restart=*/false, &outbox);
            break;
          case dfv::v1::OUTCOME_CANCELLED:
            result = RequeueOrFailLocked(
                job,
                absl::StrCat(where, " was cancelled",
                             request.reason().empty() ? "" : ": ", request.reason()),
                RestartReason::kRankCancelled, &outbox);
            break;
          case dfv::v1::OUTCOME_SUCCEEDED:
            if (tracker_.AllRanksCompleted(key.job_id)) {
              result = EndAttemptLocked(job, AttemptOutcome::kSucceeded, dfv::v1::SUCCEEDED, "",
                                        /*count_restart=*/false, &outbox);
            } else {
              // A restarted coordinator must not wait for this rank.
              result = store_->RunInTransaction([&](JobStore::Tx& tx) {
                return tx.SetRankCompleted(key.job_id, key.attempt, key.rank);
              });
            }
            break;
          default:
            break;  // refused above
        }
        // The job's new state could not be recorded: the rank is not
        // complete, so the worker's retry is processed afresh.
        if (!result.ok()) rank->completed = false;
      }
    }
    ReconcileLocked(&outbox);
  }
  Publish(outbox);
  return result;
}

absl::Status Coordinator::PublishRendezvous(const dfv::v1::PublishRendezvousRequest& request) {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    status = PublishRendezvousLocked(request);
  }
  NotifyDeliverable();  // the ranks it released
  return status;
}

absl::Status Coordinator::PublishRendezvousLocked(const dfv::v1::PublishRendezvousRequest& request) {
  const AssignmentKey key{request.job_id(), request.attempt(), request.rank()};
  const std::string& job_id = key.job_id;
  DFV_ASSIGN_OR_RETURN(WorkerRecord * worker, registry_.FindSession(request.worker_id()));
  if (active_.count(job_id) == 0) {
    absl::Status inactive = InactiveJobStatus(job_id);
    if (absl::IsNotFound(inactive)) return inactive;
    return absl::FailedPreconditionError(
        absl::StrCat(inactive.message(), "; its attempts need no rendezvous"));
  }
  // Rank 0 of another worker is not this one's to publish; any other rank
  // is refused by CheckPublish (only rank 0 publishes), whoever holds it.
  if (key.rank == 0) DFV_RETURN_IF_ERROR(tracker_.CheckRankHolder(key, *worker));
  DFV_ASSIGN_OR_RETURN(AttemptTracker::Publication publication,
                       tracker_.CheckPublish(key, *worker, request.address()));
  if (publication == AttemptTracker::Publication::kRepeat) return absl::OkStatus();
  DFV_RETURN_IF_ERROR(store_->RunInTransaction([&](JobStore::Tx& tx) {
    return tx.SetAttemptRendezvous(job_id, key.attempt, request.address());
  }));
  tracker_.SetRendezvous(job_id, request.address(), clock_->NowMs());
  for (const RankState& rank : tracker_.Find(job_id)->ranks) deliverable_to_.push_back(rank.worker_id);
  spdlog::info("job {} attempt {}: rank 0 on {} published its rendezvous at {}; releasing the other {} rank(s)",
               job_id, key.attempt, worker->name, request.address(),
               tracker_.Find(job_id)->ranks.size() - 1);
  return absl::OkStatus();
}

void Coordinator::Tick() {
  Outbox outbox;
  std::vector<ResumeCheck> checks;
  {
    absl::MutexLock lock(&mu_);
    const std::vector<WorkerRecord> expired = registry_.ExpireLeases();
    for (const WorkerRecord& lost : expired) {
      spdlog::warn("worker {} ({}) lost: no heartbeat for {} ms", lost.name, lost.id,
                   clock_->NowMs() - lost.last_heartbeat_ms);
    }
    if (metrics_ != nullptr && !expired.empty()) {
      metrics_->LeasesExpired(static_cast<int64_t>(expired.size()));
    }
    ReconcileLocked(&outbox);
  }
  Publish(outbox);
  CheckResumes();
}

void Coordinator::CheckResumes() {
  std::vector<ResumeCheck> checks;
  {
    absl::MutexLock lock(&mu_);
    checks = PendingResumeChecksLocked();
  }
  if (checks.empty()) return;
  for (ResumeCheck& check : checks) RunResumeCheck(check);
  Outbox outbox;
  {
    absl::MutexLock lock(&mu_);
    for (const ResumeCheck& check : checks) ApplyResumeCheckLocked(check, &outbox);
    ScheduleLocked(&outbox);
  }
  Publish(outbox);
}

// ---------------------------------------------------------------------------
// Resuming from a checkpoint that verifies

bool Coordinator::ResumeChosenLocked(ActiveJob& job) {
  if (job.resume_checked_after == job.record.job.attempt()) return true;
  if (job.resume_check_pending) return false;
  // First look since the job was queued: a job with no checkpoint starts
  // afresh at once; one with checkpoints waits for Tick to find the newest
  // that verifies (files are not read under the mutex).
  absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> artifacts = store_->ListArtifacts(job.record.job.id());
  if (!artifacts.ok()) {
    spdlog::error("job {}: cannot list its checkpoints: {}", job.record.job.id(), artifacts.status().ToString());
    return false;
  }
  if (!CheckpointsNewestFirst(*artifacts).empty()) {
    job.resume_check_pending = true;
    return false;
  }
  job.resume.clear();
  job.resume_checked_after = job.record.job.attempt();
  return true;
}

std::vector<Coordinator::ResumeCheck> Coordinator::PendingResumeChecksLocked() {
  std::vector<ResumeCheck> checks;
  for (auto& [id, job] : active_) {
    if (job.record.job.state() != dfv::v1::QUEUED || ResumeChosenLocked(job) || !job.resume_check_pending) continue;
    absl::StatusOr<std::vector<dfv::v1::ArtifactInfo>> artifacts = store_->ListArtifacts(id);
    if (!artifacts.ok()) {
      spdlog::error("job {}: cannot list its checkpoints: {}", id, artifacts.status().ToString());
      continue;
    }
    checks.push_back(ResumeCheck{id, job.record.job.attempt(), CheckpointsNewestFirst(*artifacts), "", {}});
  }
  return checks;
}

void Coordinator::RunResumeCheck(ResumeCheck& check) const {
  for (const dfv::v1::ArtifactInfo& candidate : check.candidates) {
    absl::Status verified = artifacts_->Verify(check.job_id, candidate);
    if (verified.ok()) {
      check.chosen = candidate.name();
      return;
    }
    spdlog::warn("job {}: checkpoint {} does not verify: {}", check.job_id, candidate.name(),
                 verified.ToString());
    check.damaged.push_back(absl::StrCat(candidate.name(), ": ", verified.message()));
  }
}

void Coordinator::ApplyResumeCheckLocked(const ResumeCheck& check, Outbox* outbox) {
  auto it = active_.find(check.job_id);
  if (it == active_.end()) return;
  ActiveJob& job = it->second;
  // The job moved on meanwhile (cancelled, or placed by another path): the
  // check no longer applies.
  if (job.record.job.state() != dfv::v1::QUEUED || job.record.job.attempt() != check.after_attempt) return;
  job.resume = check.chosen;
  job.resume_checked_after = check.after_attempt;
  job.resume_check_pending = false;
  if (check.damaged.empty()) return;
  const std::string text = absl::StrCat(
      check.damaged.size() == 1 ? "checkpoint " : "checkpoints ", absl::StrJoin(check.damaged, "; "),
      check.chosen.empty() ? "; no checkpoint verifies: the next attempt starts from the beginning"
                           : absl::StrCat("; the next attempt resumes from ", check.chosen));
  absl::Status status = CommitJobLocked(job, job.record, {MessageEvent(text)}, outbox);
  if (!status.ok()) spdlog::error("job {}: cannot record {}: {}", check.job_id, text, status.ToString());
}

}  // namespace dfv::server
