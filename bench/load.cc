// dfv_bench_load: the coordinator under a cluster's load, on loopback, with
// no trainers. A real dfv-coordinator process; simulated workers that speak
// the real worker protocol (WorkerGateway over gRPC, the way Determined
// load-tests its master with no-op trials); client threads submitting jobs;
// watchers following them. Each simulated job reports RUNNING, `rows`
// metrics rows and one small artifact, then completes.
//
// It prints submit latency, submit-to-running, heartbeat latency, the events
// per second watchers received, and the coordinator's CPU time and peak
// memory, and checks that every job reached one final state exactly once and
// that every watcher saw every event of its job, in order, without a gap.
// Exit 1 when a check fails.
//
//   dfv_bench_load --coordinator build/bin/dfv-coordinator [--workers 1000]
//       [--jobs 2000] [--submitters 16] [--watchers 100] [--rows 50]
//       [--heartbeat-threads 32] [--player-threads 16]
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/checksum.h"
#include "proto/dfv.grpc.pb.h"
#include "worker/daemon/subprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Latencies in milliseconds, from any thread.
class Samples {
 public:
  void Add(double ms) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.push_back(ms);
  }
  // The q-quantile (0..1) by nearest rank; 0 with no samples.
  double Quantile(double q) {
    std::lock_guard<std::mutex> lock(mu_);
    if (values_.empty()) return 0;
    std::vector<double> sorted = values_;
    std::sort(sorted.begin(), sorted.end());
    const size_t rank = static_cast<size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(rank, sorted.size() - 1)];
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_.size();
  }

 private:
  std::mutex mu_;
  std::vector<double> values_;
};

// CPU seconds (user + system) and peak resident MiB of a process, from /proc.
std::pair<double, double> ProcessUsage(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  // Fields after the command (which may hold spaces) start at ") ".
  std::vector<std::string> fields = absl::StrSplit(line.substr(line.rfind(") ") + 2), ' ');
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpu = fields.size() > 12 ? (std::stod(fields[11]) + std::stod(fields[12])) / ticks : 0;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  double peak_mib = 0;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) peak_mib = std::stod(line.substr(6)) / 1024.0;
  }
  return {cpu, peak_mib};
}

struct Options {
  std::string coordinator_binary;
  int workers = 1000;
  int jobs = 2000;
  int submitters = 16;
  int watchers = 100;
  int rows = 50;
  int heartbeat_threads = 32;
  int player_threads = 16;
  int64_t heartbeat_interval_ms = 500;  // the coordinator's default
};

const char kJobYaml[] = R"(name: load
model: vae
dataset: {kind: sprites, sprites_train: 64, sprites_test: 16}
train: {max_steps: 50, batch_size: 8}
)";

// Shared state of one run.
struct Run {
  Options options;
  std::shared_ptr<grpc::Channel> channel;
  Samples submit_ms, submit_to_delivered_ms, submit_to_running_ms, heartbeat_ms;
  absl::Mutex mu;
  std::map<std::string, Clock::time_point> submitted_at ABSL_GUARDED_BY(mu);  // by job id
  std::set<std::string> running ABSL_GUARDED_BY(mu);                          // jobs that reported RUNNING
  std::map<std::string, int> completed ABSL_GUARDED_BY(mu);                   // CompleteAssignment calls
  std::atomic<int64_t> errors{0};
  std::atomic<bool> done{false};
  std::string first_error;  // guarded by mu
  void Error(const std::string& what) {
    if (errors.fetch_add(1) == 0) {
      absl::MutexLock lock(&mu);
      first_error = what;
    }
  }
};

// A simulated worker daemon: one slot; plays each assignment it receives.
class SimulatedWorker {
 public:
  SimulatedWorker(Run* run, int index) : run_(run), name_(absl::StrCat("sim-", index)) {}

  bool Register(dfv::v1::WorkerGateway::Stub& stub) {
    dfv::v1::RegisterWorkerRequest request;
    request.set_name(name_);
    request.set_slots(1);
    request.set_device("cpu");
    request.set_address(absl::StrCat("127.0.0.1:", 20000 + name_.size()));
    dfv::v1::RegisterWorkerResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub.RegisterWorker(&context, request, &response);
    if (!status.ok()) {
      run_->Error(absl::StrCat("RegisterWorker: ", status.error_message()));
      return false;
    }
    id_ = response.worker_id();
    return true;
  }

  Clock::time_point next_beat() const { return next_beat_; }

  // One heartbeat listing what is still being played; new assignments are
  // handed to `play` (another thread plays them, as a daemon's runners do).
  void Beat(dfv::v1::WorkerGateway::Stub& stub,
            const std::function<void(SimulatedWorker*, dfv::v1::Assignment)>& play) {
    dfv::v1::HeartbeatRequest request;
    request.set_worker_id(id_);
    {
      absl::MutexLock lock(&mu_);
      for (const dfv::v1::Assignment& a : running_) {
        dfv::v1::RunningAssignment* r = request.add_running();
        r->set_job_id(a.job_id());
        r->set_attempt(a.attempt());
        r->set_rank(a.rank());
      }
    }
    dfv::v1::HeartbeatResponse response;
    grpc::ClientContext context;
    const Clock::time_point start = Clock::now();
    grpc::Status status = stub.Heartbeat(&context, request, &response);
    run_->heartbeat_ms.Add(Ms(Clock::now() - start));
    next_beat_ = start + std::chrono::milliseconds(run_->options.heartbeat_interval_ms);
    if (!status.ok()) {
      run_->Error(absl::StrCat(name_, " Heartbeat: ", status.error_message()));
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) Register(stub);  // as a daemon does
      return;
    }
    for (const dfv::v1::Assignment& a : response.assignments()) {
      {
        absl::MutexLock lock(&run_->mu);
        auto it = run_->submitted_at.find(a.job_id());
        if (it != run_->submitted_at.end()) run_->submit_to_delivered_ms.Add(Ms(Clock::now() - it->second));
      }
      {
        absl::MutexLock lock(&mu_);
        running_.push_back(a);
      }
      play(this, a);
    }
  }

  void Play(dfv::v1::WorkerGateway::Stub& stub, const dfv::v1::Assignment& a) {
    PlayJob(stub, a);
    absl::MutexLock lock(&mu_);
    running_.erase(std::remove_if(running_.begin(), running_.end(),
                                  [&](const dfv::v1::Assignment& r) { return r.job_id() == a.job_id(); }),
                   running_.end());
  }

 private:
  template <typename Call>
  bool Check(const char* what, Call call) {
    grpc::ClientContext context;
    grpc::Status status = call(&context);
    if (!status.ok()) run_->Error(absl::StrCat(name_, " ", what, ": ", status.error_message()));
    return status.ok();
  }

  void Report(dfv::v1::WorkerGateway::Stub& stub, const dfv::v1::Assignment& a,
              const std::vector<dfv::v1::JobEvent>& events) {
    dfv::v1::ReportEventsRequest request;
    request.set_worker_id(id_);
    request.set_job_id(a.job_id());
    request.set_attempt(a.attempt());
    request.set_rank(a.rank());
    for (const auto& e : events) *request.add_events() = e;
    dfv::v1::ReportEventsResponse response;
    Check("ReportEvents", [&](grpc::ClientContext* c) { return stub.ReportEvents(c, request, &response); });
  }

  void PlayJob(dfv::v1::WorkerGateway::Stub& stub, const dfv::v1::Assignment& a) {
    dfv::v1::JobEvent running;
    running.mutable_state()->set_state(dfv::v1::RUNNING);
    Report(stub, a, {running});
    {
      absl::MutexLock lock(&run_->mu);
      auto it = run_->submitted_at.find(a.job_id());
      if (it != run_->submitted_at.end()) run_->submit_to_running_ms.Add(Ms(Clock::now() - it->second));
      run_->running.insert(a.job_id());
    }
    // The rows in batches of 10, as a daemon flushes them.
    std::vector<dfv::v1::JobEvent> batch;
    for (int step = 1; step <= run_->options.rows; ++step) {
      dfv::v1::JobEvent row;
      row.mutable_metrics()->set_step(step);
      dfv::v1::MetricValue* value = row.mutable_metrics()->add_values();
      value->set_name("loss");
      value->set_value(1.0 / step);
      batch.push_back(row);
      if (batch.size() == 10 || step == run_->options.rows) {
        Report(stub, a, batch);
        batch.clear();
      }
    }
    const std::string data(1024, 'r');
    Check("UploadArtifact", [&](grpc::ClientContext* c) {
      dfv::v1::UploadArtifactResponse response;
      auto writer = stub.UploadArtifact(c, &response);
      dfv::v1::UploadArtifactRequest header;
      dfv::v1::UploadArtifactRequest::Header* h = header.mutable_header();
      h->set_worker_id(id_);
      h->set_job_id(a.job_id());
      h->set_attempt(a.attempt());
      h->mutable_info()->set_name("report.json");
      h->mutable_info()->set_kind(dfv::v1::REPORT);
      h->mutable_info()->set_step(run_->options.rows);
      h->mutable_info()->set_size(static_cast<int64_t>(data.size()));
      h->mutable_info()->set_checksum(dfv::Crc32Hex(dfv::Crc32(data)));
      writer->Write(header);
      dfv::v1::UploadArtifactRequest chunk;
      chunk.set_data(data);
      writer->Write(chunk);
      writer->WritesDone();
      return writer->Finish();
    });
    dfv::v1::CompleteAssignmentRequest complete;
    complete.set_worker_id(id_);
    complete.set_job_id(a.job_id());
    complete.set_attempt(a.attempt());
    complete.set_rank(a.rank());
    complete.set_outcome(dfv::v1::OUTCOME_SUCCEEDED);
    dfv::v1::CompleteAssignmentResponse response;
    if (Check("CompleteAssignment", [&](grpc::ClientContext* c) { return stub.CompleteAssignment(c, complete, &response); })) {
      absl::MutexLock lock(&run_->mu);
      ++run_->completed[a.job_id()];
    }
  }

  Run* run_;
  std::string name_;
  std::string id_;
  Clock::time_point next_beat_ = Clock::now();  // the beating thread's own
  absl::Mutex mu_;
  std::vector<dfv::v1::Assignment> running_ ABSL_GUARDED_BY(mu_);  // delivered, not yet completed
};

// Follows one job to its end; checks the sequence numbers.
struct WatchResult {
  int64_t events = 0;
  bool gap_free = true;
  bool ended_final = false;
  std::string problem;
};

WatchResult Watch(Run& run, const std::string& job_id) {
  auto stub = dfv::v1::Coordinator::NewStub(run.channel);
  WatchResult result;
  int64_t last_seq = 0;
  dfv::v1::JobState final_state = dfv::v1::JOB_STATE_UNSPECIFIED;
  // Reconnects from the last sequence number seen, as dfvctl does.
  for (int tries = 0; tries < 5 && !result.ended_final; ++tries) {
    grpc::ClientContext context;
    dfv::v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_after_seq(last_seq);
    auto reader = stub->WatchJob(&context, request);
    dfv::v1::JobEvent event;
    while (reader->Read(&event)) {
      if (event.seq() != last_seq + 1) {
        result.gap_free = false;
        result.problem = absl::StrCat(job_id, ": seq ", event.seq(), " after ", last_seq);
      }
      last_seq = event.seq();
      ++result.events;
      if (event.has_state()) final_state = event.state().state();
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) result.ended_final = final_state == dfv::v1::SUCCEEDED;
  }
  if (!result.ended_final && result.problem.empty()) result.problem = absl::StrCat(job_id, ": did not end SUCCEEDED");
  return result;
}

int Main(const Options& options) {
  const std::string dir = absl::StrCat(std::filesystem::temp_directory_path().string(), "/dfv_bench_load-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  dfv::daemon::SpawnOptions spawn;
  spawn.argv = {options.coordinator_binary, "--data-dir", dir + "/data", "--listen", "127.0.0.1:0",
                "--ready-file", dir + "/ready", "--metrics-listen", "", "--log-level", "warn"};
  spawn.stderr_path = dir + "/coordinator.log";
  auto coordinator = dfv::daemon::Subprocess::Spawn(spawn);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "cannot start %s: %s\n", options.coordinator_binary.c_str(),
                 coordinator.status().ToString().c_str());
    return 1;
  }
  std::string address;
  for (int i = 0; i < 200 && address.empty(); ++i) {
    std::ifstream ready(dir + "/ready");
    std::getline(ready, address);
    if (address.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  if (address.empty()) {
    std::fprintf(stderr, "the coordinator did not start; see %s/coordinator.log\n", dir.c_str());
    return 1;
  }

  Run run;
  run.options = options;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  run.channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto gateway = dfv::v1::WorkerGateway::NewStub(run.channel);

  // Workers register, then heartbeat from a pool of threads.
  std::vector<std::unique_ptr<SimulatedWorker>> workers;
  for (int i = 0; i < options.workers; ++i) {
    workers.push_back(std::make_unique<SimulatedWorker>(&run, i));
    if (!workers.back()->Register(*gateway)) break;
  }
  // Assignments wait here for a player thread.
  absl::Mutex queue_mu;
  std::deque<std::pair<SimulatedWorker*, dfv::v1::Assignment>> queue;
  auto play = [&](SimulatedWorker* worker, dfv::v1::Assignment a) {
    absl::MutexLock lock(&queue_mu);
    queue.emplace_back(worker, std::move(a));
  };
  std::vector<std::thread> players;
  for (int t = 0; t < options.player_threads; ++t) {
    players.emplace_back([&] {
      auto stub = dfv::v1::WorkerGateway::NewStub(run.channel);
      while (true) {
        std::pair<SimulatedWorker*, dfv::v1::Assignment> next;
        {
          absl::MutexLock lock(&queue_mu);
          auto ready = [&] { return run.done.load() || !queue.empty(); };
          queue_mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(100));
          if (queue.empty()) {
            if (run.done.load()) return;
            continue;
          }
          next = std::move(queue.front());
          queue.pop_front();
        }
        next.first->Play(*stub, next.second);
      }
    });
  }
  std::vector<std::thread> beaters;
  for (int t = 0; t < options.heartbeat_threads; ++t) {
    beaters.emplace_back([&, t] {
      auto stub = dfv::v1::WorkerGateway::NewStub(run.channel);
      while (!run.done.load()) {
        Clock::time_point soonest = Clock::now() + std::chrono::milliseconds(options.heartbeat_interval_ms);
        for (size_t i = static_cast<size_t>(t); i < workers.size(); i += static_cast<size_t>(options.heartbeat_threads)) {
          if (run.done.load()) break;
          if (workers[i]->next_beat() <= Clock::now()) workers[i]->Beat(*stub, play);
          soonest = std::min(soonest, workers[i]->next_beat());
        }
        std::this_thread::sleep_until(soonest);
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(2 * options.heartbeat_interval_ms));  // every worker has beaten once

  const auto [cpu_before, ignored] = ProcessUsage((*coordinator)->pid());
  const Clock::time_point load_start = Clock::now();
  // Submitters; the first `watchers` jobs get a watcher each.
  std::atomic<int> next_job{0};
  std::vector<std::string> watched;
  absl::Mutex watched_mu;
  std::vector<std::thread> watchers;
  std::vector<WatchResult> watch_results(static_cast<size_t>(options.watchers));
  std::vector<std::thread> submitters;
  for (int t = 0; t < options.submitters; ++t) {
    submitters.emplace_back([&] {
      auto stub = dfv::v1::Coordinator::NewStub(run.channel);
      for (int n = next_job.fetch_add(1); n < options.jobs; n = next_job.fetch_add(1)) {
        dfv::v1::SubmitJobRequest request;
        request.set_spec_yaml(kJobYaml);
        request.set_source_name("load.yaml");
        request.set_wait_for_workers(true);
        dfv::v1::SubmitJobResponse response;
        grpc::ClientContext context;
        const Clock::time_point start = Clock::now();
        grpc::Status status = stub->SubmitJob(&context, request, &response);
        const Clock::time_point end = Clock::now();
        run.submit_ms.Add(Ms(end - start));
        if (!status.ok()) {
          run.Error(absl::StrCat("SubmitJob: ", status.error_message()));
          continue;
        }
        {
          absl::MutexLock lock(&run.mu);
          run.submitted_at[response.job().id()] = end;
        }
        absl::MutexLock lock(&watched_mu);
        if (static_cast<int>(watched.size()) < options.watchers) {
          const size_t slot = watched.size();
          watched.push_back(response.job().id());
          watchers.emplace_back([&, slot, id = response.job().id()] { watch_results[slot] = Watch(run, id); });
        }
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  // Every job completes.
  const Clock::time_point deadline = Clock::now() + std::chrono::minutes(10);
  while (Clock::now() < deadline) {
    {
      absl::MutexLock lock(&run.mu);
      if (static_cast<int>(run.completed.size()) >= options.jobs) break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  const Clock::time_point load_end = Clock::now();
  {
    absl::MutexLock lock(&watched_mu);
    for (std::thread& t : watchers) t.join();
  }
  const auto [cpu_after, peak_mib] = ProcessUsage((*coordinator)->pid());
  run.done.store(true);
  for (std::thread& t : beaters) t.join();
  for (std::thread& t : players) t.join();

  // Checks: each job completed once and is SUCCEEDED in the store; watchers
  // saw gap-free logs that ended SUCCEEDED.
  int failures = 0;
  auto client = dfv::v1::Coordinator::NewStub(run.channel);
  int succeeded = 0;
  {
    dfv::v1::ListJobsRequest request;
    dfv::v1::ListJobsResponse response;
    grpc::ClientContext context;
    grpc::Status status = client->ListJobs(&context, request, &response);
    if (!status.ok()) {
      std::printf("FAIL ListJobs: %s\n", status.error_message().c_str());
      ++failures;
    }
    for (const dfv::v1::Job& job : response.jobs()) succeeded += job.state() == dfv::v1::SUCCEEDED ? 1 : 0;
  }
  int completed_twice = 0;
  int completed = 0;
  {
    absl::MutexLock lock(&run.mu);
    completed = static_cast<int>(run.completed.size());
    for (const auto& [id, count] : run.completed) completed_twice += count > 1 ? 1 : 0;
  }
  if (succeeded != options.jobs || completed != options.jobs || completed_twice > 0) {
    std::printf("FAIL jobs: %d submitted, %d completed, %d SUCCEEDED, %d completed twice\n", options.jobs, completed,
                succeeded, completed_twice);
    ++failures;
  }
  int64_t watched_events = 0;
  for (const WatchResult& w : watch_results) {
    watched_events += w.events;
    if (!w.gap_free || !w.ended_final) {
      if (failures++ < 5) std::printf("FAIL watch: %s\n", w.problem.c_str());
    }
  }
  if (run.errors.load() > 0) {
    absl::MutexLock lock(&run.mu);
    std::printf("FAIL %lld RPC error(s); the first: %s\n", static_cast<long long>(run.errors.load()),
                run.first_error.c_str());
    ++failures;
  }
  const double seconds = std::chrono::duration<double>(load_end - load_start).count();
  std::printf("load: %d simulated workers (heartbeat every %lld ms), %d jobs from %d submitters, %d watchers, "
              "%d metrics rows and one 1 KiB artifact per job\n",
              options.workers, static_cast<long long>(options.heartbeat_interval_ms), options.jobs, options.submitters,
              options.watchers, options.rows);
  std::printf("| figure | value |\n| --- | --- |\n");
  std::printf("| wall time, first submit to last completion | %.1f s |\n", seconds);
  std::printf("| submit latency p50 / p99 | %.1f / %.1f ms |\n", run.submit_ms.Quantile(0.5),
              run.submit_ms.Quantile(0.99));
  std::printf("| submit to the assignment in a heartbeat answer p50 / p99 | %.0f / %.0f ms |\n",
              run.submit_to_delivered_ms.Quantile(0.5), run.submit_to_delivered_ms.Quantile(0.99));
  std::printf("| submit to RUNNING accepted p50 / p99 (includes the generator's queue of jobs to play) | %.0f / %.0f ms |\n",
              run.submit_to_running_ms.Quantile(0.5), run.submit_to_running_ms.Quantile(0.99));
  std::printf("| heartbeat latency p50 / p99 (%zu calls) | %.1f / %.1f ms |\n", run.heartbeat_ms.size(),
              run.heartbeat_ms.Quantile(0.5), run.heartbeat_ms.Quantile(0.99));
  std::printf("| events delivered to watchers | %lld (%.0f per second) |\n", static_cast<long long>(watched_events),
              static_cast<double>(watched_events) / seconds);
  std::printf("| coordinator CPU | %.1f s (%.0f%% of one core) |\n", cpu_after - cpu_before,
              100.0 * (cpu_after - cpu_before) / seconds);
  std::printf("| coordinator peak resident memory | %.0f MiB |\n", peak_mib);
  std::printf("| jobs SUCCEEDED, each once | %d of %d |\n", succeeded, options.jobs);
  (*coordinator)->Signal(SIGTERM);
  (*coordinator)->Wait();
  if (failures == 0) std::filesystem::remove_all(dir);
  std::printf(failures == 0 ? "all checks passed\n" : "%d check(s) failed; the coordinator's log: %s\n", failures,
              (dir + "/coordinator.log").c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfv_bench_load: the coordinator under many simulated workers, submitters and watchers"};
  Options options;
  app.add_option("--coordinator", options.coordinator_binary, "the dfv-coordinator binary")->required();
  app.add_option("--workers", options.workers, "simulated workers (one slot each)")->capture_default_str();
  app.add_option("--jobs", options.jobs, "jobs to submit")->capture_default_str();
  app.add_option("--submitters", options.submitters, "client threads submitting")->capture_default_str();
  app.add_option("--watchers", options.watchers, "jobs followed by a watcher each")->capture_default_str();
  app.add_option("--rows", options.rows, "metrics rows each job reports")->capture_default_str();
  app.add_option("--heartbeat-threads", options.heartbeat_threads, "threads sending the workers' heartbeats")
      ->capture_default_str();
  app.add_option("--player-threads", options.player_threads, "threads playing the workers' jobs")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return Main(options);
}
