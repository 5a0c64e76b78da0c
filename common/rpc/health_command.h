// The `health` verb of both daemons, defined once: asks a running daemon's
// gRPC health service whether it serves, for container HEALTHCHECKs and
// scripts (no curl or shell trick needed). Header-only, for the mains, which
// link CLI11.
//
//   dfv-coordinator health [--address HOST:PORT] [--tls-ca PEM [--tls-server-name N]] [--timeout S]
//
// Prints "HOST:PORT SERVING" and exits 0, or "<program>: HOST:PORT: why" on
// stderr and exits 1. The address and the CA also come from the environment
// (DFV_HEALTH_ADDRESS, DFV_TLS_CA), so an image sets them once.
#ifndef DFV_COMMON_RPC_HEALTH_COMMAND_H_
#define DFV_COMMON_RPC_HEALTH_COMMAND_H_

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "absl/time/time.h"
#include "common/rpc/health.h"

namespace dfv::rpc {

// Adds the `health` subcommand to `app`, filling `options` (which must outlive
// the parse); `default_address` is the daemon's usual gRPC port.
inline CLI::App* AddHealthCommand(CLI::App& app, HealthCheckOptions& options, const std::string& default_address) {
  options.address = default_address;
  CLI::App* health = app.add_subcommand("health", "ask a running daemon's gRPC health service whether it serves "
                                                  "(exit 0: SERVING)");
  health->add_option("--address", options.address, "the daemon's gRPC HOST:PORT")
      ->envname("DFV_HEALTH_ADDRESS")
      ->capture_default_str();
  health->add_option("--tls-ca", options.tls.ca, "the CA that signed the daemon's certificate (the daemon serves TLS)")
      ->envname("DFV_TLS_CA");
  health->add_option("--tls-server-name", options.tls.server_name,
                     "the name the daemon's certificate must carry (default: the address's host)");
  health->add_option_function<double>(
            "--timeout", [&options](double seconds) { options.timeout = absl::Seconds(seconds); },
            "seconds to wait for the answer")
      ->default_str("5")
      ->check(CLI::Range(0.1, 600.0));
  return health;
}

// Runs the parsed verb; the process's exit code.
inline int RunHealthCommand(const char* program, const HealthCheckOptions& options) {
  absl::Status status = CheckDaemonHealth(options);
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", program, std::string(status.message()).c_str());
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("%s SERVING\n", options.address.c_str());
  return 0;
}

}  // namespace dfv::rpc

#endif  // DFV_COMMON_RPC_HEALTH_COMMAND_H_
