// dfv-coordinator: the coordinator daemon. Serves the Coordinator (clients)
// and WorkerGateway (worker daemons) gRPC services until SIGINT or SIGTERM.
//
//   dfv-coordinator --data-dir DIR [--listen 127.0.0.1:7070] [--ready-file PATH]
//                   [--metrics-listen 127.0.0.1:0] [--prometheus-sd-file PATH]
//                   [--tls-cert PEM --tls-key PEM --tls-ca PEM [--tls-refresh S]] [--insecure]
//                   [--auth-file PATH] [--min-free-space 64M]
//                   [--job-artifact-quota SIZE] [--artifact-quota SIZE]
//   dfv-coordinator hash-token < TOKEN_FILE   (prints the auth-file hash of a token)
//   dfv-coordinator health [--address HOST:PORT] [--tls-ca PEM]   (exit 0 when serving)
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "common/malloc_tuning.h"
#include "common/rpc/bearer_token.h"
#include "common/rpc/health_command.h"
#include "common/rpc/rpc.h"
#include "common/rpc/tls.h"
#include "common/rpc/tls_flags.h"
#include "server/auth.h"
#include "server/service.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "dfv-coordinator: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ||
                 status.code() == absl::StatusCode::kFailedPrecondition
             ? 2
             : 1;
}

// hash-token: the token on stdin (its first non-empty line) in the form an
// auth file lists it. The token is read from stdin, never from the command
// line, where `ps` would show it.
int HashToken() {
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  absl::StatusOr<std::string> token = dfv::rpc::TokenFromText(text, "stdin");
  if (!token.ok()) return Fail(token.status());
  std::printf("%s\n", dfv::server::HashToken(*token).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Uploads arrive as 1 MiB messages: with glibc's defaults each buffer for
  // one is mmapped fresh or trimmed back to the system after use, and its
  // pages fault in again for every message (half the coordinator's CPU for a
  // 200 MB checkpoint, bench/overhead.sh). Keep such buffers in the heap.
  if (absl::Status kept = dfv::KeepFreedMemoryInHeap(size_t{64} << 20, size_t{256} << 20); !kept.ok()) {
    return Fail(kept);
  }
  CLI::App app{"dfv-coordinator: schedules dfv jobs on worker daemons"};
  dfv::server::CoordinatorServerOptions options;
  std::string ready_file;
  std::string log_level = "info";
  app.add_option("--listen", options.listen_address, "HOST:PORT to serve on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", options.coordinator.data_dir,
                 "folder for the job database and artifacts (required)");
  app.add_option("--ready-file", ready_file,
                 "once serving, write the bound HOST:PORT to this file (first line; a second line "
                 "'metrics HOST:PORT' with metrics on)");
  app.add_option("--metrics-listen", options.metrics_listen,
                 "HOST:PORT to serve Prometheus /metrics on (loopback; port 0: any free port; "
                 "empty: no metrics)")
      ->capture_default_str();
  app.add_option("--prometheus-sd-file", options.prometheus_sd_file,
                 "keep a Prometheus file-SD JSON of the live workers' /metrics endpoints here");
  dfv::rpc::AddTlsFlags(app, options.tls, options.insecure,
                        "the coordinator's certificate (PEM); with --tls-key and --tls-ca the port serves TLS",
                        "the cluster CA (PEM); a worker's client certificate must be signed by it");
  app.add_option("--auth-file", options.auth.auth_file,
                 "clients need a bearer token listed (hashed) in this file, one "
                 "'sha256:<hex> viewer|submitter NAME' per line; without it clients need none");
  app.add_option("--min-free-space", options.coordinator.min_free_bytes,
                 "refuse submissions and uploads that would leave less free than this on the data "
                 "folder's file system (bytes; K, M, G suffixes are powers of 1024; 0: no check)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--job-artifact-quota", options.coordinator.job_artifact_quota_bytes,
                 "the bytes one job's artifacts may take; an upload past it is refused (0: no quota)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  app.add_option("--artifact-quota", options.coordinator.artifact_quota_bytes,
                 "the bytes all jobs' artifacts may take together (0: no quota)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  double adopt_grace_seconds = static_cast<double>(options.coordinator.adopt_grace_ms) / 1000.0;
  app.add_option("--adopt-grace", adopt_grace_seconds,
                 "seconds a job left running by a previous coordinator waits for its workers to "
                 "come back with it after a restart, before it is requeued (0: requeue at once)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 24.0 * 3600.0));
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  auto* hash_token = app.add_subcommand(
      "hash-token", "read a token on stdin and print the line's 'sha256:<hex>' for --auth-file");
  dfv::rpc::HealthCheckOptions health_options;
  auto* health = dfv::rpc::AddHealthCommand(app, health_options, "127.0.0.1:7070");
  CLI11_PARSE(app, argc, argv);
  if (*hash_token) return HashToken();
  if (*health) return dfv::rpc::RunHealthCommand("dfv-coordinator", health_options);
  if (options.coordinator.data_dir.empty()) {
    std::fprintf(stderr, "dfv-coordinator: --data-dir is required\n");
    return 2;
  }
  options.coordinator.adopt_grace_ms = static_cast<int64_t>(adopt_grace_seconds * 1000.0);
  dfv::InitLogging("dfv-coordinator", log_level);

  // Block the stop signals in every thread (gRPC's threads inherit the mask)
  // and take them synchronously below: no work in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = dfv::server::CoordinatorServer::Create(options);
  if (!server.ok()) return Fail(server.status());
  spdlog::info("listening on {} ({}); data in {}", (*server)->address(),
               dfv::rpc::DescribeExposure((*server)->exposure()), options.coordinator.data_dir);
  if (!options.auth.auth_file.empty()) {
    spdlog::info("clients need a bearer token from {}", options.auth.auth_file);
  }
  if (!(*server)->metrics_address().empty()) {
    spdlog::info("metrics on http://{}/metrics", (*server)->metrics_address());
  }
  if (!ready_file.empty()) {
    absl::Status status =
        dfv::rpc::WriteReadyFile(ready_file, (*server)->address(), (*server)->metrics_address());
    if (!status.ok()) {
      (*server)->Shutdown();
      return Fail(status);
    }
  }

  int signal_number = 0;
  while (sigwait(&stop_signals, &signal_number) != 0) {
  }
  spdlog::info("{} received; shutting down", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown();
  (*server)->Wait();
  spdlog::info("stopped");
  return 0;
}
