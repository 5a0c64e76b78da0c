// The collective-communication seam of data-parallel training: one small
// interface with a Gloo implementation (LibTorch's c10d, CPU tensors), a
// shared-memory one (CPU tensors, ranks on one host) and an NCCL one (CUDA
// tensors, built when the CUDA toolkit is present). The gradient reducer
// (reducer.h) and the trainer talk only to this.
//
// Collectives are matched by order: every rank must start the same
// collectives, on tensors of the same shapes, in the same order. Nothing here
// throws; a failed or timed-out collective (a peer died, the network broke)
// comes back as UNAVAILABLE or DEADLINE_EXCEEDED.
#ifndef DFV_WORKER_DIST_COMMUNICATOR_H_
#define DFV_WORKER_DIST_COMMUNICATOR_H_

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace dfv::dist {

// A collective in flight.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective has finished (for NCCL: until its result is
  // ordered before later work on the tensor's device). Call once.
  virtual absl::Status Wait() = 0;
};

// A Work whose result is known when it is made: a call refused before it
// started, a collective with nothing to do, or one that failed to launch.
class CompletedWork final : public Work {
 public:
  explicit CompletedWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "gloo", "shm" or "nccl".
  virtual std::string backend() const = 0;

  // Starts summing `tensor` across ranks, in place. The tensor must be
  // contiguous, float32 (or float64 on the CPU backends), on this backend's
  // device, and must stay alive and untouched until Wait() returns.
  virtual std::unique_ptr<Work> StartAllReduceSum(torch::Tensor tensor) = 0;

  // Copies rank `root`'s tensors into every other rank's, in place (same
  // count and shapes on every rank). Blocks.
  virtual absl::Status Broadcast(std::vector<torch::Tensor> tensors, int root) = 0;

  // AllReduceSum, then wait: the blocking form.
  absl::Status AllReduceSum(torch::Tensor tensor) { return StartAllReduceSum(std::move(tensor))->Wait(); }
};

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_COMMUNICATOR_H_
