// gRPC glue shared by the coordinator, the worker daemon and dfvctl: the one
// conversion between absl::Status and grpc::Status, listen-address parsing,
// ready files, and channel creation (TLS in common/rpc/tls.h).
#ifndef DFV_COMMON_RPC_RPC_H_
#define DFV_COMMON_RPC_RPC_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dfv::rpc {

// The only place an absl::Status becomes a grpc::Status (same code, same
// message) and back.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

struct HostPort {
  std::string host;  // "127.0.0.1", "localhost", "[::1]", "0.0.0.0"
  int port = 0;      // 0: pick a free port
};

// Parses "HOST:PORT" (IPv6 in brackets). INVALID_ARGUMENT naming `flag`
// when malformed or the port is outside 0..65535.
absl::StatusOr<HostPort> ParseHostPort(const std::string& text, const std::string& flag);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

// True for the hosts that bind every interface: "0.0.0.0", "::", "[::]"
// (and "", which gRPC reads the same way). Such a host names no peer.
bool IsWildcardHost(const std::string& host);

// Writes "<address>\n" to `path` atomically, so a reader never sees half a
// line; with a `metrics_address` a second line "metrics <HOST:PORT>" follows.
// Scripts and tests read the bound address from the first line.
absl::Status WriteReadyFile(const std::string& path, const std::string& address,
                            const std::string& metrics_address = "");

// dfv's channel settings: message sizes, keepalive pings so a dead peer is
// noticed, quick reconnects.
grpc::ChannelArguments DefaultChannelArguments();

// A plaintext channel to `address` with DefaultChannelArguments (for TLS see
// MakeChannel(address, TlsFiles) in common/rpc/tls.h).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// Applies dfv's server-side settings (keepalive, message sizes) to `builder`.
void ConfigureServerBuilder(grpc::ServerBuilder& builder);

// Largest message either side sends; artifact chunks are well below it.
inline constexpr int kMaxMessageBytes = 64 << 20;
// Artifact transfer chunk size.
inline constexpr int kArtifactChunkBytes = 1 << 20;

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_RPC_H_
