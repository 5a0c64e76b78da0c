// dfv_bench_overhead: what the service adds on top of the trainer, on
// loopback (issue 17, "Service overhead"). Two parts, each against real
// processes started here:
//
//   latency  A real dfv-coordinator and one real dfv-worker daemon (1 slot,
//            real dfv-trainer). `--jobs` tiny jobs (1 step) one after the
//            other, each submitted when the last one ended; per job, from
//            the SubmitJob return: the RUNNING event and the step-1 metrics
//            row (the trainer's first step) as a watcher receives them.
//            Then the trainer process on its own: `--starts` times
//            `dfv-trainer assignment` of the same job spawned here, from
//            posix_spawn to its first report line, to its "started" report
//            and to its step-1 metrics report. p50/p99 of each.
//   upload   A fresh dfv-coordinator; this program registers as a worker
//            through the daemon's own GrpcCoordinatorLink, takes a job's
//            assignment, and uploads a `--upload-mb` MiB checkpoint file of
//            random bytes `--uploads` times through
//            GrpcCoordinatorLink::UploadArtifact (what a daemon's runner
//            calls for each spooled upload); MB/s of each, and the median.
//
//   dfv_bench_overhead --coordinator build/bin/dfv-coordinator
//       --worker build/bin/dfv-worker --trainer build/bin/dfv-trainer
//       [--jobs 100] [--starts 20] [--settle-ms 3000] [--upload-mb 200] [--uploads 5]
//       [--only latency|upload]
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "proto/dfv.grpc.pb.h"
#include "worker/daemon/coordinator_link.h"
#include "worker/daemon/subprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The q-quantile (0..1) by nearest rank; 0 with no samples.
double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

void PrintRow(const char* what, const std::vector<double>& ms) {
  std::printf("  %-44s p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms  (n=%zu)\n", what, Quantile(ms, 0.5),
              Quantile(ms, 0.99), Quantile(ms, 1.0), ms.size());
}

// User + system CPU seconds of a process so far, from /proc.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t end = line.rfind(") ");
  if (end == std::string::npos) return 0;
  std::istringstream fields(line.substr(end + 2));
  std::string field;
  double ticks = 0;
  for (int i = 0; i < 13 && fields >> field; ++i) {
    if (i == 11 || i == 12) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

struct Options {
  std::string coordinator_binary, worker_binary, trainer_binary;
  int jobs = 100;
  int starts = 20;
  int upload_mb = 200;
  int uploads = 5;
  int settle_ms = 3000;
  std::string only;  // "", "latency" or "upload"
};

// A job that trains one step of a small model on generated data: what is
// measured is everything around the step.
const char kTinyJob[] = R"(name: overhead-tiny
model: vae
dataset: {kind: sprites, image_size: 28, channels: 1, sprites_train: 64, sprites_test: 64, seed: 3}
train: {max_steps: 1, batch_size: 8, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 1}
checkpoint: {every_steps: 0}
samples: {every_steps: 0}
)";

// A started process that wrote its address to a ready file.
struct Server {
  std::unique_ptr<dfv::daemon::Subprocess> process;
  std::string address;
};

absl::StatusOr<Server> StartServer(std::vector<std::string> argv, const std::string& ready,
                                   const std::string& log) {
  dfv::daemon::SpawnOptions spawn;
  spawn.argv = std::move(argv);
  spawn.stderr_path = log;
  auto process = dfv::daemon::Subprocess::Spawn(spawn);
  if (!process.ok()) return process.status();
  Server server;
  server.process = std::move(*process);
  for (int i = 0; i < 600 && server.address.empty(); ++i) {
    std::ifstream in(ready);
    std::getline(in, server.address);
    if (server.address.empty()) absl::SleepFor(absl::Milliseconds(50));
  }
  if (server.address.empty()) return absl::UnavailableError(absl::StrCat(spawn.argv[0], " did not start; see ", log));
  return server;
}

absl::StatusOr<Server> StartCoordinator(const Options& options, const std::string& dir) {
  std::filesystem::create_directories(dir);
  return StartServer({options.coordinator_binary, "--data-dir", dir + "/data", "--listen", "127.0.0.1:0",
                      "--ready-file", dir + "/ready", "--metrics-listen", "", "--log-level", "warn"},
                     dir + "/ready", dir + "/coordinator.log");
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// ---------------------------------------------------------------------------
// latency

struct JobTimes {
  double running_ms = -1, first_step_ms = -1;
  bool succeeded = false;
};

// Submits the tiny job and follows it to its end.
JobTimes SubmitAndFollow(dfv::v1::Coordinator::Stub& stub) {
  JobTimes times;
  dfv::v1::SubmitJobRequest request;
  request.set_spec_yaml(kTinyJob);
  request.set_source_name("overhead-tiny.yaml");
  dfv::v1::SubmitJobResponse response;
  grpc::ClientContext submit;
  if (!stub.SubmitJob(&submit, request, &response).ok()) return times;
  const Clock::time_point submitted = Clock::now();
  grpc::ClientContext watch;
  watch.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  dfv::v1::WatchJobRequest watch_request;
  watch_request.set_job_id(response.job().id());
  auto reader = stub.WatchJob(&watch, watch_request);
  dfv::v1::JobEvent event;
  while (reader->Read(&event)) {
    const Clock::time_point now = Clock::now();
    if (event.has_state()) {
      if (event.state().state() == dfv::v1::RUNNING && times.running_ms < 0) times.running_ms = Ms(now - submitted);
      if (event.state().state() == dfv::v1::SUCCEEDED) times.succeeded = true;
    } else if (event.has_metrics() && event.metrics().step() == 1 && times.first_step_ms < 0) {
      times.first_step_ms = Ms(now - submitted);
    }
  }
  reader->Finish();
  return times;
}

struct StartTimes {
  double first_line_ms = -1, started_ms = -1, first_step_ms = -1;
};

// Spawns `dfv-trainer assignment` of the tiny job and times its reports.
StartTimes TimeTrainerStart(const Options& options, const std::string& dir) {
  StartTimes times;
  std::filesystem::create_directories(dir + "/run");
  {
    std::ofstream job(dir + "/job.yaml");
    job << kTinyJob;
  }
  dfv::daemon::SpawnOptions spawn;
  spawn.argv = {options.trainer_binary, "assignment", "--job", dir + "/job.yaml", "--out", dir + "/run"};
  spawn.stderr_path = dir + "/trainer.log";
  const Clock::time_point start = Clock::now();
  auto child = dfv::daemon::Subprocess::Spawn(spawn);
  if (!child.ok()) return times;
  std::string pending;
  for (bool eof = false; !eof;) {
    auto chunk = (*child)->ReadStdout(absl::Seconds(60), &eof);
    if (!chunk.ok()) break;
    const Clock::time_point now = Clock::now();
    pending += *chunk;
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (times.first_line_ms < 0) times.first_line_ms = Ms(now - start);
      if (times.started_ms < 0 && absl::StartsWith(line, "{\"started\"")) times.started_ms = Ms(now - start);
      if (times.first_step_ms < 0 && absl::StartsWith(line, "{\"metrics\"")) times.first_step_ms = Ms(now - start);
    }
  }
  (*child)->Wait();
  return times;
}

int Latency(const Options& options, const std::string& dir) {
  auto coordinator = StartCoordinator(options, dir + "/coordinator");
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  auto worker = StartServer({options.worker_binary, "--coordinator", coordinator->address, "--name", "overhead",
                             "--slots", "1", "--work-dir", dir + "/worker", "--trainer", options.trainer_binary,
                             "--ready-file", dir + "/worker.ready", "--metrics-listen", "", "--log-level", "warn"},
                            dir + "/worker.ready", dir + "/worker.log");
  if (!worker.ok()) {
    std::fprintf(stderr, "%s\n", worker.status().ToString().c_str());
    return 1;
  }
  auto stub = dfv::v1::Coordinator::NewStub(Channel(coordinator->address));
  std::printf("latency: %d one-step jobs one after the other on an idle cluster (1 worker, 1 slot; each submitted "
              "%d ms after the last one's slot was free); load %s\n",
              options.jobs, options.settle_ms, LoadAverage().c_str());
  std::vector<double> running, first_step;
  int failed = 0;
  for (int i = 0; i < options.jobs; ++i) {
    // Idle: the last job's slot is free again, and then `--settle-ms` pass
    // with nothing happening (a daemon restarts its prestarted trainer for
    // the freed slot meanwhile).
    for (int wait = 0; wait < 600; ++wait) {
      dfv::v1::ListWorkersResponse workers;
      grpc::ClientContext context;
      if (stub->ListWorkers(&context, dfv::v1::ListWorkersRequest(), &workers).ok() && workers.workers_size() > 0 &&
          workers.workers(0).free_slots() == workers.workers(0).slots()) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    absl::SleepFor(absl::Milliseconds(options.settle_ms));
    const JobTimes t = SubmitAndFollow(*stub);
    if (!t.succeeded || t.running_ms < 0 || t.first_step_ms < 0) {
      ++failed;
      continue;
    }
    running.push_back(t.running_ms);
    first_step.push_back(t.first_step_ms);
  }
  std::vector<double> first_line, started, trainer_step;
  for (int i = 0; i < options.starts; ++i) {
    const StartTimes t = TimeTrainerStart(options, absl::StrCat(dir, "/start-", i));
    if (t.first_step_ms < 0) {
      ++failed;
      continue;
    }
    first_line.push_back(t.first_line_ms);
    started.push_back(t.started_ms);
    trainer_step.push_back(t.first_step_ms);
  }
  std::printf(" through the service (SubmitJob return -> a watcher receives):\n");
  PrintRow("RUNNING event", running);
  PrintRow("step-1 metrics row (the trainer's first step)", first_step);
  std::printf(" the trainer process alone (posix_spawn of dfv-trainer assignment ->):\n");
  PrintRow("first report line (LibTorch loaded, job read)", first_line);
  PrintRow("\"started\" report (data and model ready)", started);
  PrintRow("step-1 metrics report", trainer_step);
  std::printf("  target: p99 under 100 ms from submit to the trainer's first step: %s\n",
              Quantile(first_step, 0.99) < 100 ? "met" : "missed");
  std::printf("load after: %s\n", LoadAverage().c_str());
  if (failed > 0) std::fprintf(stderr, "%d job(s) or trainer start(s) failed; see %s\n", failed, dir.c_str());
  return failed > 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------
// upload

int Upload(const Options& options, const std::string& dir) {
  auto coordinator = StartCoordinator(options, dir + "/upload-coordinator");
  if (!coordinator.ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<grpc::Channel> channel = Channel(coordinator->address);
  dfv::daemon::GrpcCoordinatorLink link(channel);
  dfv::v1::RegisterWorkerRequest registration;
  registration.set_name("upload-bench");
  registration.set_slots(1);
  registration.set_device("cpu");
  registration.set_address("127.0.0.1:1");
  if (auto registered = link.RegisterWorker(registration); !registered.ok()) {
    std::fprintf(stderr, "RegisterWorker: %s\n", registered.status().ToString().c_str());
    return 1;
  }
  auto stub = dfv::v1::Coordinator::NewStub(channel);
  dfv::v1::SubmitJobRequest submit;
  submit.set_spec_yaml(absl::StrCat(kTinyJob, "\n# keeps every upload: retention would delete older ones\n"));
  submit.add_overrides(absl::StrCat("checkpoint.keep_last=", options.uploads + 1));
  dfv::v1::SubmitJobResponse submitted;
  grpc::ClientContext submit_context;
  if (grpc::Status s = stub->SubmitJob(&submit_context, submit, &submitted); !s.ok()) {
    std::fprintf(stderr, "SubmitJob: %s\n", s.error_message().c_str());
    return 1;
  }
  dfv::v1::Assignment assignment;
  for (int i = 0; i < 100 && assignment.job_id().empty(); ++i) {
    auto beat = link.Heartbeat(dfv::v1::HeartbeatRequest());
    if (beat.ok() && beat->assignments_size() > 0) assignment = beat->assignments(0);
    if (assignment.job_id().empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  if (assignment.job_id().empty()) {
    std::fprintf(stderr, "no assignment arrived\n");
    return 1;
  }
  const dfv::AssignmentKey key{assignment.job_id(), assignment.attempt(), assignment.rank()};
  // Keeps the session's lease, as the daemon's heartbeats do meanwhile.
  std::atomic<bool> uploads_done{false};
  std::thread heartbeats([&] {
    dfv::v1::HeartbeatRequest beat;
    dfv::v1::RunningAssignment* running = beat.add_running();
    running->set_job_id(key.job_id);
    running->set_attempt(key.attempt);
    running->set_rank(key.rank);
    while (!uploads_done.load()) {
      link.Heartbeat(beat).IgnoreError();
      absl::SleepFor(absl::Milliseconds(500));
    }
  });
  struct JoinOnExit {
    std::atomic<bool>* done;
    std::thread* thread;
    ~JoinOnExit() {
      done->store(true);
      thread->join();
    }
  } join_heartbeats{&uploads_done, &heartbeats};

  const std::string file = dir + "/checkpoint.bin";
  const int64_t bytes = int64_t{options.upload_mb} << 20;
  {
    // Random bytes: a checkpoint's floats do not compress either.
    std::mt19937_64 random(17);
    std::vector<uint64_t> block(1 << 17);
    std::ofstream out(file, std::ios::binary);
    for (int64_t written = 0; written < bytes; written += static_cast<int64_t>(block.size() * 8)) {
      for (uint64_t& word : block) word = random();
      out.write(reinterpret_cast<const char*>(block.data()),
                static_cast<std::streamsize>(std::min<int64_t>(bytes - written, block.size() * 8)));
    }
  }
  std::printf("upload: a %d MiB checkpoint, %d times, through GrpcCoordinatorLink::UploadArtifact into a real "
              "coordinator on loopback; load %s\n",
              options.upload_mb, options.uploads, LoadAverage().c_str());
  std::vector<double> rates, client_cpus, coordinator_cpus;
  for (int i = 0; i < options.uploads; ++i) {
    dfv::v1::ArtifactInfo info;
    info.set_name(absl::StrCat("checkpoints/bench-", i + 1, ".pt"));
    info.set_kind(dfv::v1::CHECKPOINT);
    info.set_step(i + 1);
    const double client_cpu_before = ProcessCpuSeconds(getpid());
    const double coordinator_cpu_before = ProcessCpuSeconds(coordinator->process->pid());
    const Clock::time_point start = Clock::now();
    absl::Status status = link.UploadArtifact(key, info, file);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double client_cpu = ProcessCpuSeconds(getpid()) - client_cpu_before;
    const double coordinator_cpu = ProcessCpuSeconds(coordinator->process->pid()) - coordinator_cpu_before;
    if (!status.ok()) {
      std::fprintf(stderr, "upload %d: %s\n", i + 1, status.ToString().c_str());
      return 1;
    }
    rates.push_back(static_cast<double>(bytes) / 1e6 / seconds);
    client_cpus.push_back(client_cpu);
    coordinator_cpus.push_back(coordinator_cpu);
    std::printf("  upload %d: %.2f s, %.0f MB/s; CPU: uploader %.2f s, coordinator %.2f s\n", i + 1, seconds,
                rates.back(), client_cpu, coordinator_cpu);
  }
  std::printf("  median %.0f MB/s (target: at least 500 MB/s: %s); median CPU per upload: uploader %.2f s, "
              "coordinator %.2f s (the heartbeat thread's share of the uploader's is negligible)\n",
              Quantile(rates, 0.5), Quantile(rates, 0.5) >= 500 ? "met" : "missed", Quantile(client_cpus, 0.5),
              Quantile(coordinator_cpus, 0.5));
  std::printf("load after: %s\n", LoadAverage().c_str());
  link.CompleteAssignment(key, dfv::v1::OUTCOME_SUCCEEDED, "", false).IgnoreError();
  std::filesystem::remove(file);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"dfv_bench_overhead: submit-to-first-step latency and checkpoint upload on loopback"};
  app.add_option("--coordinator", options.coordinator_binary, "dfv-coordinator binary")->required();
  app.add_option("--worker", options.worker_binary, "dfv-worker binary");
  app.add_option("--trainer", options.trainer_binary, "dfv-trainer binary");
  app.add_option("--jobs", options.jobs, "tiny jobs submitted one after the other")->capture_default_str();
  app.add_option("--starts", options.starts, "trainer processes started on their own")->capture_default_str();
  app.add_option("--settle-ms", options.settle_ms,
                 "pause between a job's slot being free and the next submit (an idle cluster)")
      ->capture_default_str();
  app.add_option("--upload-mb", options.upload_mb, "checkpoint size (MiB)")->capture_default_str();
  app.add_option("--uploads", options.uploads, "uploads of it")->capture_default_str();
  app.add_option("--only", options.only, "latency or upload (default: both)")
      ->check(CLI::IsMember({"latency", "upload"}));
  CLI11_PARSE(app, argc, argv);
  if (options.only != "upload" && (options.worker_binary.empty() || options.trainer_binary.empty())) {
    std::fprintf(stderr, "the latency part needs --worker and --trainer\n");
    return 2;
  }
  const std::string dir =
      absl::StrCat(std::filesystem::temp_directory_path().string(), "/dfv_bench_overhead-", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  int rc = 0;
  if (options.only != "upload") rc |= Latency(options, dir);
  if (options.only != "latency") rc |= Upload(options, dir);
  if (rc == 0) std::filesystem::remove_all(dir);
  return rc;
}
