// dist::Communicator over NCCL, called directly (nccl.h + cuda_runtime.h, not
// c10d's ProcessGroupNCCL, which CPU builds of LibTorch lack): the CUDA
// backend. Built only when the CUDA toolkit and NCCL are found at configure
// time (worker/dist/nccl.cmake defines DFV_HAVE_NCCL=1 for its users).
//
// Stream ordering. The ATen CUDA headers are absent from CPU builds of
// LibTorch, so this class cannot ask for LibTorch's "current stream"; it
// assumes LibTorch's default, the legacy default stream (stream 0), which is
// where the trainer's kernels run unless it installs a stream guard. Each
// collective: an event recorded on stream 0 -> a private non-blocking NCCL
// stream waits on it -> the NCCL call -> a completion event; Wait() makes
// stream 0 wait on the completion event and polls it, so later kernels see
// the result and the host returns only once the collective has finished.
//
// Failure. The communicator runs in NCCL's non-blocking mode (NCCL >= 2.14),
// so no call can hang: initialisation and every collective are polled with
// ncclCommGetAsyncError. A peer that died gives UNAVAILABLE; a collective (or
// initialisation) that has not finished within `timeout` aborts the
// communicator (ncclCommAbort) and gives DEADLINE_EXCEEDED. After either,
// every later call fails at once with the first failure. Nothing here
// throws.
#ifndef DFV_WORKER_DIST_NCCL_COMMUNICATOR_H_
#define DFV_WORKER_DIST_NCCL_COMMUNICATOR_H_

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/dist/communicator.h"

namespace dfv::dist {

// True when the CUDA runtime sees at least one device (cudaGetDeviceCount
// succeeds and is > 0). False on a machine without a GPU or a driver.
bool CudaDeviceAvailable();
// cudaGetDeviceCount, or 0 when it fails.
int CudaDeviceCount();

// The store key rank 0 publishes its ncclUniqueId under. Each communicator
// needs a store (or a c10d::PrefixStore) of its own: a second communicator on
// the same keys would read the first one's id.
inline constexpr char kNcclUniqueIdKey[] = "dfv/nccl/unique_id";

// A span of device memory for the pointer-level API.
struct DeviceBuffer {
  void* data = nullptr;
  size_t bytes = 0;
};

class NcclCommunicator final : public Communicator {
 public:
  // Connects rank `rank` of `world_size` on CUDA device `cuda_device`. Rank 0
  // creates the NCCL unique id and sets it in `store` under kNcclUniqueIdKey;
  // the others get() it (blocking up to the store's own timeout). Every rank
  // must call this at about the same time: initialisation waits for all of
  // them, up to `timeout`, which is also each collective's limit.
  // Errors: INVALID_ARGUMENT (null store, bad rank/size/device/timeout),
  // FAILED_PRECONDITION (no such CUDA device, no driver), DEADLINE_EXCEEDED
  // (the id or a peer did not arrive in time), UNAVAILABLE (the store or a
  // peer went away), INTERNAL (another CUDA failure).
  static absl::StatusOr<std::unique_ptr<Communicator>> Create(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                              int world_size, int cuda_device,
                                                              std::chrono::milliseconds timeout);
  // The same, typed: for callers (tests) that use the pointer-level API.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateNccl(c10::intrusive_ptr<c10d::Store> store,
                                                                      int rank, int world_size, int cuda_device,
                                                                      std::chrono::milliseconds timeout);

  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::string backend() const override { return "nccl"; }
  int cuda_device() const { return device_; }

  // `tensor`: contiguous float32 on this communicator's CUDA device, else a
  // Work failing with INVALID_ARGUMENT.
  std::unique_ptr<Work> StartAllReduceSum(torch::Tensor tensor) override;
  // CUDA tensors of any dtype on this device (copied as bytes); a tensor
  // that is not contiguous is staged through a contiguous copy.
  absl::Status Broadcast(std::vector<torch::Tensor> tensors, int root) override;

  // Pointer-level forms, usable without LibTorch CUDA tensors (CPU builds):
  // `data` is device memory on cuda_device() holding `count` floats, ordered
  // after work already queued on stream 0 like the tensor forms.
  std::unique_ptr<Work> StartAllReduceSumDevice(float* data, size_t count);
  absl::Status AllReduceSumDevice(float* data, size_t count) { return StartAllReduceSumDevice(data, count)->Wait(); }
  // Broadcasts each buffer's bytes from rank `root` (one NCCL group). Blocks.
  absl::Status BroadcastDevice(const std::vector<DeviceBuffer>& buffers, int root);

  // The first failure that aborted this communicator, or OK.
  absl::Status health() const;

  struct State;  // CUDA/NCCL handles, shared with the Work objects in flight

 private:
  NcclCommunicator(std::shared_ptr<State> state, int rank, int world_size, int device);

  std::shared_ptr<State> state_;
  int rank_;
  int world_size_;
  int device_;
};

// Free-function forms of the pointer-level API: INVALID_ARGUMENT when
// `communicator` is not an NcclCommunicator.
absl::Status NcclAllReduceSumDevicePointer(Communicator& communicator, float* device_ptr, size_t count);
absl::Status NcclBroadcastDevicePointers(Communicator& communicator, const std::vector<DeviceBuffer>& buffers,
                                         int root);

namespace nccl_internal {

// What StartAllReduceSum (all_reduce = true: contiguous float32 required) and
// Broadcast check on a tensor before touching NCCL; exposed for tests.
absl::Status CheckTensor(const torch::Tensor& tensor, int cuda_device, bool all_reduce);

// Rank 0 sets `id` under `key`; the others get() it and check its length
// (id.size() bytes are expected; rank 0's `id` is returned as is). A store
// failure becomes DEADLINE_EXCEEDED (a timeout) or UNAVAILABLE. Exposed for
// tests.
absl::StatusOr<std::vector<uint8_t>> ExchangeUniqueId(c10d::Store& store, const std::string& key, int rank,
                                                      const std::vector<uint8_t>& id, size_t expected_bytes);

}  // namespace nccl_internal

}  // namespace dfv::dist

#endif  // DFV_WORKER_DIST_NCCL_COMMUNICATOR_H_
