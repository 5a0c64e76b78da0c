#include "worker/daemon/daemon.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/cpu_cores.h"
#include "common/data_roots.h"
#include "common/file_util.h"
#include "common/rpc/rpc.h"
#include "common/rpc/tls.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"
#include "worker/daemon/data_plane.h"

namespace dfv::daemon {
namespace {

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string DefaultName() { return absl::StrCat(HostName(), "-", getpid()); }

// The stderr of the trainer prestarted for `slot`, until an assignment's
// runner renames it to its trainer.log.
std::string PrestartedLog(const std::string& work_dir, int slot) {
  return (std::filesystem::path(work_dir) / absl::StrCat("prestarted-slot", slot + 1, ".log")).string();
}

// The host others reach this worker at: the flag, else the listen host unless
// that is a wildcard (0.0.0.0 reaches nothing from another host), then the
// data-plane address, then the host name (which a container network's DNS
// resolves).
std::string AdvertisedHost(const WorkerDaemonOptions& options, const std::string& listen_host) {
  if (!options.advertise_host.empty()) return options.advertise_host;
  if (!rpc::IsWildcardHost(listen_host)) return listen_host;
  if (!options.data_plane_address.empty()) return options.data_plane_address;
  return HostName();
}

// HOST:PORT with the host in brackets when it is an IPv6 literal.
std::string JoinHostPort(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return v6 ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Create(WorkerDaemonOptions options) {
  if (options.coordinator.empty()) return absl::InvalidArgumentError("--coordinator: required");
  DFV_RETURN_IF_ERROR(rpc::ParseHostPort(options.coordinator, "--coordinator").status());
  if (!options.tls.empty()) {
    // The worker needs all three: the CA to check the coordinator, its
    // certificate and key to be admitted.
    DFV_RETURN_IF_ERROR(rpc::ValidateTlsFiles(options.tls, /*require_identity=*/true, /*require_ca=*/true));
  }
  DFV_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, rpc::MakeChannel(options.coordinator, options.tls));
  auto link = std::make_unique<GrpcCoordinatorLink>(std::move(channel));
  return Create(std::move(options), std::move(link));
}

absl::StatusOr<std::unique_ptr<WorkerDaemon>> WorkerDaemon::Create(WorkerDaemonOptions options,
                                                                   std::unique_ptr<CoordinatorLink> link) {
  if (link == nullptr) return absl::InvalidArgumentError("no coordinator link");
  // The health service asks no client certificate: it tells only whether
  // the daemon is up.
  DFV_ASSIGN_OR_RETURN(rpc::ServerListen server_listen,
                       rpc::PrepareServerListen(options.listen, options.tls, options.insecure,
                                                rpc::ClientCertificates::kNotRequested));
  const rpc::HostPort listen = server_listen.address;
  const rpc::ListenExposure exposure = server_listen.exposure;
  std::shared_ptr<grpc::ServerCredentials> credentials = server_listen.credentials;
  if (options.slots < 1 || options.slots > 64) {
    return absl::InvalidArgumentError(absl::StrCat("--slots: ", options.slots, " is not in 1..64"));
  }
  if (options.device != "cpu" && options.device != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--device: '", options.device, "' is not cpu or cuda"));
  }
  if (options.name.empty()) options.name = DefaultName();
  if (!IsSafePathComponent(options.name) || options.name.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--name: '", options.name, "' must be 1-64 letters, digits, '.', '_' or '-'"));
  }
  if (options.trainer_command.empty()) return absl::InvalidArgumentError("no trainer command");
  if (options.register_retry <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("register_retry: must be positive");
  }
  if (options.spool_bytes < options.slots) {
    return absl::InvalidArgumentError(
        absl::StrCat("--spool-bytes: ", options.spool_bytes, " is less than one byte per slot"));
  }
  if (options.metrics_job_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--metrics-job-grace: must be >= 0");
  }
  if (options.data_roots.empty()) return absl::InvalidArgumentError("--data-root: at least one folder");
  DFV_ASSIGN_OR_RETURN(options.data_roots, ResolveDataRoots(options.data_roots));
  if (!options.data_plane_address.empty() && !options.data_plane_interface.empty()) {
    return absl::InvalidArgumentError("--data-plane-address and --data-plane-interface: give one of them");
  }
  if (!options.data_plane_interface.empty()) {
    DFV_ASSIGN_OR_RETURN(options.data_plane_address, InterfaceIpv4Address(options.data_plane_interface));
  }
  spdlog::info("data roots: {}; data plane: {}", absl::StrJoin(options.data_roots, ", "),
               options.data_plane_address.empty()
                   ? std::string("the address the coordinator gives rank 0")
                   : absl::StrCat(options.data_plane_address,
                                  options.data_plane_interface.empty()
                                      ? ""
                                      : absl::StrCat(" (interface ", options.data_plane_interface, ")")));
  if (!options.advertise_host.empty()) {
    DFV_RETURN_IF_ERROR(rpc::ParseHostPort(JoinHostPort(options.advertise_host, 1), "--advertise-host").status());
    if (rpc::IsWildcardHost(options.advertise_host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--advertise-host: '", options.advertise_host, "' is a wildcard; give an address others can reach"));
    }
  }
  if (options.work_dir.empty()) options.work_dir = (std::filesystem::path("dfv-work") / options.name).string();
  DFV_RETURN_IF_ERROR(MakeDirs(options.work_dir));

  auto daemon = std::unique_ptr<WorkerDaemon>(new WorkerDaemon(std::move(options), std::move(link)));
  daemon->cpus_ = AffinityCpus();
  if (daemon->options_.share_cores && daemon->options_.slots > 1 && !daemon->cpus_.empty()) {
    std::vector<std::string> shares;
    for (int slot = 0; slot < daemon->options_.slots; ++slot) {
      shares.push_back(FormatCpuList(CoreShare(daemon->cpus_, daemon->options_.slots, slot)));
    }
    spdlog::info("cores: {} shared among {} slots as {}{}", FormatCpuList(daemon->cpus_), daemon->options_.slots,
                 absl::StrJoin(shares, " | "),
                 daemon->options_.slots > static_cast<int>(daemon->cpus_.size())
                     ? " (more slots than cores: some share one)"
                     : "");
  }
  if (!daemon->options_.metrics_listen.empty()) {
    DFV_ASSIGN_OR_RETURN(daemon->metrics_server_,
                         metrics::MetricsServer::Create(daemon->options_.metrics_listen, daemon->options_.insecure));
    daemon->metrics_server_->Register(daemon->metrics_);
    if (daemon->options_.device == "cuda") {
      daemon->gpu_metrics_ = GpuCollector::Create();
      if (daemon->gpu_metrics_->status().ok()) {
        spdlog::info("GPU metrics: {} device(s) through NVML", daemon->gpu_metrics_->device_count());
      } else {
        spdlog::warn("no GPU metrics: {}", daemon->gpu_metrics_->status().ToString());
      }
      daemon->metrics_server_->Register(daemon->gpu_metrics_);
    }
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  rpc::ConfigureServerBuilder(builder);
  int port = 0;
  builder.AddListeningPort(daemon->options_.listen, credentials, &port);
  // gRPC refuses to start a server with no service of its own; the generic
  // service answers every method but health checking with UNIMPLEMENTED.
  builder.RegisterCallbackGenericService(&daemon->unimplemented_);
  daemon->health_server_ = builder.BuildAndStart();
  if (daemon->health_server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("--listen: cannot bind ", daemon->options_.listen));
  }
  daemon->health_server_->GetHealthCheckService()->SetServingStatus(true);
  const std::string advertised_host = AdvertisedHost(daemon->options_, listen.host);
  daemon->address_ = JoinHostPort(advertised_host, port);
  if (daemon->metrics_server_ != nullptr) {
    DFV_ASSIGN_OR_RETURN(rpc::HostPort metrics,
                         rpc::ParseHostPort(daemon->metrics_server_->address(), "--metrics-listen"));
    daemon->metrics_address_ = rpc::IsWildcardHost(metrics.host) ? JoinHostPort(advertised_host, metrics.port)
                                                                  : daemon->metrics_server_->address();
  }
  if (daemon->address_ != absl::StrCat(listen.host, ":", port)) {
    spdlog::info("reached at {} (listening on {}:{})", daemon->address_, listen.host, port);
  }
  daemon->exposure_ = exposure;
  if (exposure == rpc::ListenExposure::kInsecurePlaintext) {
    spdlog::warn("{}", rpc::InsecureListenWarning("--listen", daemon->address_));
  }
  if (daemon->metrics_server_ != nullptr && daemon->options_.insecure) {
    DFV_ASSIGN_OR_RETURN(rpc::HostPort metrics,
                         rpc::ParseHostPort(daemon->metrics_server_->address(), "--metrics-listen"));
    if (!rpc::IsLoopbackHost(metrics.host)) {
      spdlog::warn("{}", rpc::InsecureListenWarning("--metrics-listen", daemon->metrics_server_->address()));
    }
  }
  return daemon;
}

WorkerDaemon::WorkerDaemon(WorkerDaemonOptions options, std::unique_ptr<CoordinatorLink> link)
    : options_(std::move(options)), link_(std::move(link)) {
  WorkerMetricsOptions metrics;
  metrics.slots = options_.slots;
  metrics.job_grace = options_.metrics_job_grace;
  metrics_ = std::make_shared<WorkerMetrics>(std::move(metrics));
}

WorkerDaemon::~WorkerDaemon() {
  runners_.clear();  // abandons and joins
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

void WorkerDaemon::Stop() {
  absl::MutexLock lock(&mu_);
  stop_ = true;
}

bool WorkerDaemon::WaitForStop(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopped), timeout);
  return stop_;
}

absl::Status WorkerDaemon::Register() {
  v1::RegisterWorkerRequest request;
  request.set_name(options_.name);
  request.set_slots(options_.slots);
  request.set_device(options_.device);
  request.set_address(address_);
  request.set_metrics_address(metrics_address());
  // What still runs from an earlier session, for the coordinator to adopt.
  ReapFinished();
  for (const auto& runner : runners_) {
    v1::RunningAssignment* running = request.add_running();
    running->set_job_id(runner->key().job_id);
    running->set_attempt(runner->key().attempt);
    running->set_rank(runner->key().rank);
    running->set_started(runner->started());
  }
  DFV_ASSIGN_OR_RETURN(const v1::RegisterWorkerResponse response, link_->RegisterWorker(request));
  if (response.heartbeat_interval_ms() > 0) {
    heartbeat_interval_ = absl::Milliseconds(response.heartbeat_interval_ms());
  }
  spdlog::info("registered with {} as {} ({}), {} slot(s), {}", options_.coordinator, options_.name,
               response.worker_id(), options_.slots, options_.device);
  if (request.running_size() > 0) {
    // The others get cancels in the heartbeat answers.
    spdlog::info("the coordinator adopted {} of the {} assignment(s) still running here", response.adopted_size(),
                 request.running_size());
  }
  return absl::OkStatus();
}

std::string WorkerDaemon::AssignmentDir(const v1::Assignment& a) const {
  return (std::filesystem::path(options_.work_dir) /
          absl::StrCat(a.job_id(), "-a", a.attempt(), "-r", a.rank()))
      .string();
}

void WorkerDaemon::StartAssignment(const v1::Assignment& a) {
  if (!IsSafePathComponent(a.job_id())) {
    spdlog::error("refusing assignment with unsafe job id '{}'", a.job_id());
    return;
  }
  const AssignmentKey key{a.job_id(), a.attempt(), a.rank()};
  for (const auto& runner : runners_) {
    if (runner->key() == key) return;  // delivered again
  }
  RunnerOptions options;
  options.assignment = a;
  options.work_dir = AssignmentDir(a);
  options.trainer_command = options_.trainer_command;
  options.data_roots = options_.data_roots;
  options.data_plane_address = options_.data_plane_address;
  options.data_plane_interface = options_.data_plane_interface;
  options.link = link_.get();
  options.cancel_grace = options_.cancel_grace;
  options.spool_bytes = options_.spool_bytes / options_.slots;
  options.metrics = metrics_.get();
  // The lowest slot no runner holds; its share of the cores, when shared.
  std::vector<bool> taken(static_cast<size_t>(options_.slots), false);
  for (const auto& runner : runners_) {
    if (runner->slot() >= 0 && runner->slot() < options_.slots) taken[static_cast<size_t>(runner->slot())] = true;
  }
  options.slot = static_cast<int>(std::find(taken.begin(), taken.end(), false) - taken.begin());
  options.slots = options_.slots;
  if (options.slot < options_.slots) {
    options.cpus = SlotCpus(options.slot);
    if (static_cast<size_t>(options.slot) < prestarted_.size() && prestarted_[options.slot] != nullptr) {
      options.prestarted = std::move(prestarted_[options.slot]);
      options.prestarted_log = PrestartedLog(options_.work_dir, options.slot);
    }
  }
  spdlog::info("assignment {} attempt {} rank {}/{}{}", a.job_id(), a.attempt(), a.rank(), a.world_size(),
               options.cpus.empty() ? std::string()
                                    : absl::StrCat(", slot ", options.slot + 1, ", cpus ", FormatCpuList(options.cpus)));
  runners_.push_back(AssignmentRunner::Start(std::move(options)));
  UpdateSlotMetrics();
}

std::vector<int> WorkerDaemon::SlotCpus(int slot) const {
  if (!options_.share_cores || options_.slots < 2) return {};
  return CoreShare(cpus_, options_.slots, slot);
}

void WorkerDaemon::Prestart() {
  if (!options_.prestart_trainers) return;
  prestarted_.resize(static_cast<size_t>(options_.slots));
  std::vector<bool> taken(static_cast<size_t>(options_.slots), false);
  for (const auto& runner : runners_) {
    if (runner->slot() >= 0 && runner->slot() < options_.slots) taken[static_cast<size_t>(runner->slot())] = true;
  }
  for (int slot = 0; slot < options_.slots; ++slot) {
    std::unique_ptr<Subprocess>& trainer = prestarted_[static_cast<size_t>(slot)];
    if (trainer != nullptr && trainer->TryWait().has_value()) {
      spdlog::warn("the trainer prestarted for slot {} exited ({}); see {}", slot + 1,
                   DescribeExit(*trainer->TryWait()), PrestartedLog(options_.work_dir, slot));
      trainer.reset();
      continue;  // tried again at the next heartbeat, not in a tight loop
    }
    if (taken[static_cast<size_t>(slot)] || trainer != nullptr) continue;
    SpawnOptions spawn;
    spawn.argv = options_.trainer_command;
    spawn.argv.push_back("--prestarted");
    spawn.stderr_path = PrestartedLog(options_.work_dir, slot);
    std::error_code ignored;
    std::filesystem::remove(spawn.stderr_path, ignored);  // a log of an earlier one
    spawn.cpus = SlotCpus(slot);
    spawn.stdin_pipe = true;
    absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Spawn(spawn);
    if (!started.ok()) {
      spdlog::warn("cannot prestart a trainer for slot {}: {}", slot + 1, started.status().ToString());
      continue;
    }
    trainer = std::move(*started);
  }
}

void WorkerDaemon::UpdateSlotMetrics() { metrics_->SetBusySlots(static_cast<int>(runners_.size())); }

void WorkerDaemon::ReapFinished() {
  runners_.erase(std::remove_if(runners_.begin(), runners_.end(), [](const auto& r) { return r->finished(); }),
                 runners_.end());
  UpdateSlotMetrics();
}

absl::StatusOr<bool> WorkerDaemon::Heartbeat() {
  ReapFinished();  // they reported their outcome
  Prestart();      // for the slots they freed
  v1::HeartbeatRequest request;  // the link quotes the session's worker id
  request.set_wait_ms(absl::ToInt64Milliseconds(heartbeat_interval_));
  for (const auto& runner : runners_) {
    auto* running = request.add_running();
    running->set_job_id(runner->key().job_id);
    running->set_attempt(runner->key().attempt);
    running->set_rank(runner->key().rank);
  }
  DFV_ASSIGN_OR_RETURN(const v1::HeartbeatResponse response, link_->Heartbeat(request));
  for (const v1::CancelAssignment& cancel : response.cancels()) {
    for (const auto& runner : runners_) {
      if (runner->key().job_id == cancel.job_id() && runner->key().attempt == cancel.attempt()) {
        spdlog::info("cancel {} attempt {}: {}", cancel.job_id(), cancel.attempt(), cancel.reason());
        runner->Cancel(cancel.reason());
      }
    }
  }
  for (const v1::Assignment& assignment : response.assignments()) StartAssignment(assignment);
  return response.assignments_size() > 0;
}

absl::Status WorkerDaemon::Run() {
  bool ready_written = false;
  bool registered = false;
  absl::Time last_contact = absl::Now();
  absl::Time next_beat = absl::InfinitePast();
  while (!WaitForStop(registered ? std::max(absl::ZeroDuration(), next_beat - absl::Now()) : absl::ZeroDuration())) {
    if (!registered) {
      absl::Status status = Register();
      if (!status.ok()) {
        spdlog::warn("cannot register with {}: {}", options_.coordinator, status.ToString());
        if (WaitForStop(options_.register_retry)) break;
        continue;
      }
      registered = true;
      last_contact = absl::Now();
      if (!ready_written && !options_.ready_file.empty()) {
        DFV_RETURN_IF_ERROR(rpc::WriteReadyFile(options_.ready_file, address_, metrics_address()));
        ready_written = true;
      }
      continue;
    }
    const absl::Time beat_start = absl::Now();
    absl::StatusOr<bool> delivered = Heartbeat();
    absl::Status status = delivered.status();
    // A held (long-polled) beat has taken the interval already; one that
    // brought assignments is followed at once (more may come for the other
    // slots); one answered at once waits out the rest of the interval.
    next_beat = delivered.ok() && *delivered ? absl::Now() : beat_start + heartbeat_interval_;
    if (status.ok()) {
      last_contact = absl::Now();
    } else if (absl::IsNotFound(status)) {
      // The coordinator forgot this session (lease expired, or it
      // restarted). The trainers keep running: registering again lists them,
      // and the coordinator keeps those it still wants.
      spdlog::warn("session unknown to the coordinator ({}); registering again with {} trainer(s) running",
                   std::string(status.message()), runners_.size());
      registered = false;
    } else {
      spdlog::warn("heartbeat failed ({} since last contact): {}",
                   absl::FormatDuration(absl::Trunc(absl::Now() - last_contact, absl::Milliseconds(100))),
                   status.ToString());
    }
  }
  prestarted_.clear();  // killed and reaped
  spdlog::info("stopping: abandoning {} running trainer(s)", runners_.size());
  for (const auto& runner : runners_) runner->Abandon();
  runners_.clear();
  return absl::OkStatus();
}

}  // namespace dfv::daemon
