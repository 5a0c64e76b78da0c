// dist::Communicator over Gloo, through LibTorch's c10d ProcessGroupGloo: the
// CPU backend.
#ifndef DFV_WORKER_DIST_GLOO_COMMUNICATOR_H_
#define DFV_WORKER_DIST_GLOO_COMMUNICATOR_H_

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dist/communicator.h"

namespace dfv::dist {

struct GlooOptions {
  // Address this rank's Gloo connections bind to: a host name or IP of an
  // interface the other ranks can reach ("127.0.0.1" when all ranks share a
  // host); empty = the interface the machine's host name resolves to.
  std::string interface_host;
  // How long a collective (or connecting to the other ranks) may take
  // before it fails with DEADLINE_EXCEEDED.
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Gloo's own worker threads.
  int threads = 2;
};

// Connects to the other ranks through `store` (every rank must call this with
// the same store, world_size and its own rank). Blocks until every rank has
// connected or the store's timeout passes (DEADLINE_EXCEEDED).
absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(c10::intrusive_ptr<c10d::Store> store,
                                                                     int rank, int world_size,
                                                                     const GlooOptions& options);

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_GLOO_COMMUNICATOR_H_
