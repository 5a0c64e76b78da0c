// The client side of gRPC's standard health service (grpc.health.v1.Health),
// which both daemons serve: `dfv-coordinator health` and `dfv-worker health`
// (container HEALTHCHECKs, scripts) and the tests ask through CheckHealth.
#ifndef DFV_COMMON_RPC_HEALTH_H_
#define DFV_COMMON_RPC_HEALTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/tls.h"

namespace dfv::rpc {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// "SERVING", "NOT_SERVING", ... as the proto names them.
const char* ServingStatusName(ServingStatus status);

// One Health/Check call for `service` ("" = the server as a whole) on
// `channel`, waiting at most `timeout`. The answer's status, or the call's
// error (UNAVAILABLE when nothing answers, DEADLINE_EXCEEDED, ...), or
// INTERNAL when the reply is not a HealthCheckResponse. Blocking;
// thread-safe.
absl::StatusOr<ServingStatus> CheckHealth(grpc::Channel& channel, absl::Duration timeout,
                                          const std::string& service = "");

// What the `health` verb of the daemons takes.
struct HealthCheckOptions {
  // HOST:PORT of the daemon's gRPC port.
  std::string address;
  // ca (and server_name) for a daemon that serves TLS; empty: plaintext. No
  // client certificate is needed: neither daemon asks one of a health check.
  TlsFiles tls;
  absl::Duration timeout = absl::Seconds(5);
};

// OK when the daemon at options.address answers SERVING. Otherwise
// UNAVAILABLE "<address>: NOT_SERVING", or the call's error prefixed with the
// address; INVALID_ARGUMENT for bad TLS files.
absl::Status CheckDaemonHealth(const HealthCheckOptions& options);

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_HEALTH_H_
