// The coordinator's gRPC face: the Coordinator (clients) and WorkerGateway
// (worker daemons) services on gRPC's callback API, and CoordinatorServer,
// which runs them.
//
// Every call is first authorized by the server's one Authenticator
// (server/auth.h): tokens and roles for clients, certificate identities for
// workers. A worker with a certificate acts only through sessions of its
// own name. Refused calls get UNAUTHENTICATED or PERMISSION_DENIED before
// the request is looked at.
//
// The services check each request's shape (ids, sizes, counts, attempt >= 1;
// INVALID_ARGUMENT naming the field), call the Coordinator, and turn its
// absl::Status into a grpc::Status with rpc::ToGrpcStatus. They make no
// decisions of their own: what a worker may report or how it may complete
// is the Coordinator's to refuse.
// No handler blocks waiting: streams are reactors that never wait for an
// event, artifact file work (writes, fsync, reads) runs on an IoExecutor,
// and no exception leaves a handler (it becomes INTERNAL). Database work
// runs inline: it is short (indexed rows; in WAL mode a commit does not
// fsync).
#ifndef DFV_SERVER_SERVICE_H_
#define DFV_SERVER_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/metrics/metrics_server.h"
#include "common/rpc/tls.h"
#include "proto/dfv.grpc.pb.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/heartbeat_parking.h"
#include "server/io_executor.h"
#include "server/metrics.h"

namespace dfv::server {

class WatchJobReactor;

// dfv.v1.Coordinator. Thread-safe; `coordinator`, `io` and `auth` must
// outlive it.
class ClientService final : public dfv::v1::Coordinator::CallbackService {
 public:
  // WatchJob replays at most `watch_batch` events per read of the log.
  ClientService(Coordinator* coordinator, IoExecutor* io, const Authenticator* auth,
                int watch_batch = 256);
  ~ClientService() override;

  // Ends every open WatchJob stream with UNAVAILABLE (the client resumes
  // from its last seq elsewhere or later) and refuses new ones.
  void BeginShutdown() ABSL_LOCKS_EXCLUDED(watch_mu_);

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const dfv::v1::SubmitJobRequest* request,
                                      dfv::v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const dfv::v1::GetJobRequest* request,
                                   dfv::v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const dfv::v1::ListJobsRequest* request,
                                     dfv::v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const dfv::v1::CancelJobRequest* request,
                                      dfv::v1::CancelJobResponse* response) override;
  grpc::ServerWriteReactor<dfv::v1::JobEvent>* WatchJob(
      grpc::CallbackServerContext* context, const dfv::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* ListArtifacts(grpc::CallbackServerContext* context,
                                          const dfv::v1::ListArtifactsRequest* request,
                                          dfv::v1::ListArtifactsResponse* response) override;
  grpc::ServerWriteReactor<dfv::v1::ArtifactChunk>* GetArtifact(
      grpc::CallbackServerContext* context, const dfv::v1::GetArtifactRequest* request) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* context,
                                        const dfv::v1::ListWorkersRequest* request,
                                        dfv::v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* DeleteArtifacts(grpc::CallbackServerContext* context,
                                            const dfv::v1::DeleteArtifactsRequest* request,
                                            dfv::v1::DeleteArtifactsResponse* response) override;
  grpc::ServerUnaryReactor* CollectGarbage(grpc::CallbackServerContext* context,
                                           const dfv::v1::CollectGarbageRequest* request,
                                           dfv::v1::CollectGarbageResponse* response) override;
  // Reads the checkpoint back on the IoExecutor before it answers.
  grpc::ServerUnaryReactor* EvaluateCheckpoint(grpc::CallbackServerContext* context,
                                               const dfv::v1::EvaluateCheckpointRequest* request,
                                               dfv::v1::EvaluateCheckpointResponse* response) override;

 private:
  friend class WatchJobReactor;
  // False once shutting down (the reactor then finishes itself).
  bool RegisterWatch(WatchJobReactor* reactor) ABSL_LOCKS_EXCLUDED(watch_mu_);
  void UnregisterWatch(WatchJobReactor* reactor) ABSL_LOCKS_EXCLUDED(watch_mu_);

  Coordinator* const coordinator_;
  IoExecutor* const io_;
  const Authenticator* const auth_;
  const int watch_batch_;
  absl::Mutex watch_mu_;
  std::set<WatchJobReactor*> watches_ ABSL_GUARDED_BY(watch_mu_);
  bool shutting_down_ ABSL_GUARDED_BY(watch_mu_) = false;
};

// dfv.v1.WorkerGateway. Thread-safe; `coordinator`, `io`, `auth` and
// `parking` must outlive it. A Heartbeat with wait_ms > 0 and nothing to
// deliver waits in `parking` (null: answered at once) for up to
// min(wait_ms, max_heartbeat_wait_ms).
class WorkerGatewayService final : public dfv::v1::WorkerGateway::CallbackService {
 public:
  WorkerGatewayService(Coordinator* coordinator, IoExecutor* io, const Authenticator* auth,
                       HeartbeatParking* parking = nullptr, int64_t max_heartbeat_wait_ms = 0);

  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const dfv::v1::RegisterWorkerRequest* request,
                                           dfv::v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const dfv::v1::HeartbeatRequest* request,
                                      dfv::v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportEvents(grpc::CallbackServerContext* context,
                                         const dfv::v1::ReportEventsRequest* request,
                                         dfv::v1::ReportEventsResponse* response) override;
  grpc::ServerReadReactor<dfv::v1::UploadArtifactRequest>* UploadArtifact(
      grpc::CallbackServerContext* context, dfv::v1::UploadArtifactResponse* response) override;
  grpc::ServerUnaryReactor* PublishRendezvous(grpc::CallbackServerContext* context,
                                              const dfv::v1::PublishRendezvousRequest* request,
                                              dfv::v1::PublishRendezvousResponse* response) override;
  grpc::ServerWriteReactor<dfv::v1::ArtifactChunk>* FetchCheckpoint(
      grpc::CallbackServerContext* context, const dfv::v1::FetchCheckpointRequest* request) override;
  grpc::ServerUnaryReactor* CompleteAssignment(grpc::CallbackServerContext* context,
                                               const dfv::v1::CompleteAssignmentRequest* request,
                                               dfv::v1::CompleteAssignmentResponse* response) override;

 private:
  Coordinator* const coordinator_;
  IoExecutor* const io_;
  const Authenticator* const auth_;
  HeartbeatParking* const parking_;
  const int64_t max_heartbeat_wait_ms_;
};

struct CoordinatorServerOptions {
  // HOST:PORT to listen on; port 0 picks a free port (see port()). Without
  // TLS the host must be a loopback address unless `insecure`.
  std::string listen_address = "127.0.0.1:7070";
  // The coordinator's certificate, key and the cluster CA: all three or none
  // (plaintext). With them the one port serves TLS; client certificates are
  // requested and, when presented, verified against the CA (common/rpc/tls.h).
  rpc::TlsFiles tls;
  // Allow a non-loopback listen (and metrics) address without TLS, with a
  // warning (--insecure).
  bool insecure = false;
  // The Coordinator's options (data_dir is required; metrics must be null:
  // the server makes and owns them).
  CoordinatorOptions coordinator;
  // HOST:PORT of the /metrics endpoint (loopback unless `insecure`; port 0 picks a free port,
  // see metrics_address()); empty: no metrics at all.
  std::string metrics_listen = "127.0.0.1:0";
  // When set, a Prometheus file-SD JSON listing the live workers' metrics
  // endpoints is kept here (written at start, rewritten when the set changes).
  std::string prometheus_sd_file;
  // How often Coordinator::Tick runs (leases, cancels, scheduling).
  int64_t tick_interval_ms = 200;
  // Threads for artifact file work.
  int io_threads = 2;
  // How long Shutdown lets in-flight calls finish before cancelling them.
  int64_t shutdown_grace_ms = 2000;
  // Who may call what (see server/auth.h); by default no auth file: clients
  // need no token.
  AuthOptions auth;
};

// The coordinator process's server: a Coordinator, both services, gRPC
// health checking (SERVING while up), and the Tick thread.
// Thread-safety: all methods are thread-safe.
class CoordinatorServer {
 public:
  // Opens the Coordinator and starts serving. INVALID_ARGUMENT for a bad
  // Opens the Coordinator and starts serving. INVALID_ARGUMENT for a bad
  // listen or metrics address, a non-loopback host without TLS or
  // `insecure`, TLS files that are incomplete, unreadable or not PEM
  // (naming the flag and file), or a bad auth file (the error of reading one
  // that cannot be read); UNAVAILABLE when an address cannot be bound; the
  // error of writing prometheus_sd_file the first time.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Create(
      const CoordinatorServerOptions& options);
  // Shuts down if still running.
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  // The bound port and "HOST:PORT" address clients can dial
  // ("127.0.0.1:PORT" for a localhost listen address).
  int port() const { return port_; }
  const std::string& address() const { return address_; }
  // How the port is exposed (TLS, plaintext on loopback, or --insecure).
  rpc::ListenExposure exposure() const { return exposure_; }
  Coordinator* coordinator() const { return coordinator_.get(); }
  // "HOST:PORT" of /metrics with the bound port; "" without metrics.
  const std::string& metrics_address() const { return metrics_address_; }
  // Null without metrics.
  CoordinatorMetrics* metrics() const { return metrics_.get(); }

  // Stops accepting calls, ends watch streams with UNAVAILABLE, lets other
  // calls finish (up to shutdown_grace_ms) and stops the Tick thread.
  // Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(shutdown_mu_);
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  CoordinatorServer(const CoordinatorServerOptions& options,
                    std::shared_ptr<CoordinatorMetrics> metrics,
                    std::unique_ptr<dfv::metrics::MetricsServer> metrics_server,
                    std::unique_ptr<Authenticator> auth, std::unique_ptr<Coordinator> coordinator,
                    std::unique_ptr<HeartbeatParking> parking);
  void TickLoop();
  // Rewrites the service-discovery file when the workers' endpoints changed.
  void UpdateSdFile();

  const CoordinatorServerOptions options_;
  // Destroyed in reverse order: the server before the services and the
  // executor its reactors use, then the Coordinator, then /metrics (which
  // reads the Coordinator until it is gone), the metrics last (the server's
  // interceptors write to them).
  std::shared_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<dfv::metrics::MetricsServer> metrics_server_;
  std::string metrics_address_;
  std::unique_ptr<PrometheusSdFile> sd_file_;  // used by the tick thread only
  bool sd_file_ok_ = true;                     // likewise
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<IoExecutor> io_;
  // Before the services that park heartbeats in it; stopped before the
  // gRPC server shuts down.
  std::unique_ptr<HeartbeatParking> parking_;
  std::unique_ptr<ClientService> client_service_;
  std::unique_ptr<WorkerGatewayService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  rpc::ListenExposure exposure_ = rpc::ListenExposure::kLoopback;
  absl::Notification stop_ticking_;
  std::thread tick_thread_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  absl::Notification shutdown_done_;
};

}  // namespace dfv::server

#endif  // DFV_SERVER_SERVICE_H_
