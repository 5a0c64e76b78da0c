#include "worker/dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

// Non-blocking communicators (ncclConfig_t.blocking = 0) arrived in NCCL
// 2.14; with an older NCCL initialisation and the first collective (which
// connects the peers) can block without a limit.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
#define DFV_NCCL_NONBLOCKING 1
#else
#define DFV_NCCL_NONBLOCKING 0
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
#define DFV_NCCL_HAS_LAST_ERROR 1
#else
#define DFV_NCCL_HAS_LAST_ERROR 0
#endif

namespace dfv::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Broadcasts fused into one NCCL group call.
constexpr size_t kMaxOpsPerGroup = 64;
// Tearing down a healthy communicator waits at most this for the peers.
constexpr std::chrono::milliseconds kMaxTeardown = std::chrono::seconds(60);

double Seconds(std::chrono::milliseconds ms) { return ms.count() / 1000.0; }

// --- Status from CUDA and NCCL results -------------------------------------

absl::Status CudaStatus(cudaError_t err, const std::string& call) {
  if (err == cudaSuccess) return absl::OkStatus();
  // Clear the thread's last error (unless it is sticky), so LibTorch's own
  // launch checks do not report ours later.
  (void)cudaGetLastError();
  std::string message = absl::StrCat(call, ": ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ")");
  switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
#if CUDART_VERSION >= 11000
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
#endif
      return absl::FailedPreconditionError(message);
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status NcclStatus(ncclResult_t result, const std::string& call) {
  if (result == ncclSuccess) return absl::OkStatus();
  std::string message = absl::StrCat(call, ": ", ncclGetErrorString(result));
#if DFV_NCCL_HAS_LAST_ERROR
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && last[0] != '\0') absl::StrAppend(&message, " (", last, ")");
#endif
  switch (result) {
    case ncclInvalidArgument:
    case ncclInvalidUsage:
      return absl::InvalidArgumentError(message);
    case ncclUnhandledCudaError:
      return absl::InternalError(message);
    default:  // system, internal, remote errors: the network or a peer
      return absl::UnavailableError(message);
  }
}

absl::Status StoreFailure(const std::string& context, const std::string& what) {
  const std::string first_line = what.substr(0, what.find('\n'));
  const std::string lower = absl::AsciiStrToLower(first_line);
  const bool timeout = absl::StrContains(lower, "timeout") || absl::StrContains(lower, "timed out") ||
                       absl::StrContains(lower, "deadline");
  std::string message = absl::StrCat(context, ": ", first_line);
  return timeout ? absl::DeadlineExceededError(message) : absl::UnavailableError(message);
}

// Makes `device` the calling thread's current CUDA device. It is left so (no
// restore): restoring device 0 on a thread that never used CUDA would create
// a context on GPU 0 in every process of a multi-GPU host.
absl::Status UseDevice(int device) {
  int current = -1;
  cudaError_t err = cudaGetDevice(&current);
  if (err == cudaSuccess && current == device) return absl::OkStatus();
  return CudaStatus(cudaSetDevice(device), absl::StrCat("cudaSetDevice(", device, ")"));
}

// Polling with a short spin, then short sleeps: collectives usually finish
// within microseconds to milliseconds of their peers.
class Backoff {
 public:
  void Pause() {
    ++polls_;
    if (polls_ < 64) {
      std::this_thread::yield();
    } else if (polls_ < 4096) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  int polls_ = 0;
};

// Waits while `comm` is ncclInProgress (non-blocking mode: a call returned
// before its work was enqueued). OK once ncclSuccess; the async error
// otherwise; DEADLINE_EXCEEDED past `deadline`.
absl::Status AwaitCommReady(ncclComm_t comm, Clock::time_point deadline, const std::string& what,
                            std::chrono::milliseconds limit) {
  Backoff backoff;
  while (true) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t result = ncclCommGetAsyncError(comm, &state);
    if (result != ncclSuccess) return NcclStatus(result, absl::StrCat(what, ": ncclCommGetAsyncError"));
    if (state == ncclSuccess) return absl::OkStatus();
    if (state != ncclInProgress) return NcclStatus(state, what);
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": not finished within ", Seconds(limit), " s"));
    }
    backoff.Pause();
  }
}

absl::Status CheckDevicePointer(const void* data, int device, const std::string& what) {
  if (data == nullptr) return absl::InvalidArgumentError(absl::StrCat(what, ": null device pointer"));
  cudaPointerAttributes attributes;
  std::memset(&attributes, 0, sizeof(attributes));
  cudaError_t err = cudaPointerGetAttributes(&attributes, data);
  if (err != cudaSuccess) {
    absl::Status status = CudaStatus(err, "cudaPointerGetAttributes");
    if (err == cudaErrorInvalidValue) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not CUDA memory (", status.message(), ")"));
    }
    return status;
  }
  if (attributes.type == cudaMemoryTypeManaged) return absl::OkStatus();
  if (attributes.type != cudaMemoryTypeDevice) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the pointer is host memory, not device memory"));
  }
  if (attributes.device != device) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": the memory is on CUDA device ", attributes.device,
                                                   ", the communicator on device ", device));
  }
  return absl::OkStatus();
}

}  // namespace

// --- Shared state -------------------------------------------------------------

// Everything that touches `comm` holds `mu`: NCCL calls on one communicator
// must not overlap, and an abort from a waiting thread must not free the
// communicator under a launch in another.
struct NcclCommunicator::State {
  int device = 0;
  std::chrono::milliseconds timeout{0};

  mutable std::mutex mu;
  ncclComm_t comm = nullptr;            // null once aborted or destroyed
  cudaStream_t stream = nullptr;        // private, non-blocking
  cudaEvent_t ready = nullptr;          // recorded on stream 0 before each launch
  absl::Status failure;                 // the first failure (OK while healthy)

  ~State() { Teardown(); }

  // Aborts the communicator after `status` (the first failure is kept).
  void AbortLocked(const absl::Status& status) {
    if (failure.ok()) failure = status;
    if (comm != nullptr) {
      (void)ncclCommAbort(comm);
      comm = nullptr;
    }
  }
  void Abort(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    AbortLocked(status);
  }

  absl::Status UnusableLocked() const {
    if (!failure.ok()) {
      return absl::Status(failure.code(),
                          absl::StrCat("the NCCL communicator was aborted after an earlier failure: ", failure.message()));
    }
    if (comm == nullptr) return absl::FailedPreconditionError("the NCCL communicator is closed");
    return absl::OkStatus();
  }

  // Queues `enqueue` (NCCL calls on `stream`) after everything already on
  // stream 0, and returns an event recorded after it. A failure aborts the
  // communicator, except a call NCCL itself rejected without harm (invalid
  // arguments, the communicator still healthy).
  absl::StatusOr<cudaEvent_t> Launch(const std::string& what,
                                     const std::function<ncclResult_t(ncclComm_t, cudaStream_t)>& enqueue) {
    std::lock_guard<std::mutex> lock(mu);
    if (absl::Status s = UnusableLocked(); !s.ok()) return s;
    if (absl::Status s = UseDevice(device); !s.ok()) return s;

    cudaEvent_t done = nullptr;
    absl::Status status = CudaStatus(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    if (!status.ok()) return status;
    auto fail = [&](absl::Status s) -> absl::StatusOr<cudaEvent_t> {
      cudaEventDestroy(done);
      AbortLocked(s);
      return s;
    };
    status = CudaStatus(cudaEventRecord(ready, cudaStreamLegacy), absl::StrCat(what, ": cudaEventRecord(stream 0)"));
    if (!status.ok()) return fail(status);
    status = CudaStatus(cudaStreamWaitEvent(stream, ready, 0), absl::StrCat(what, ": cudaStreamWaitEvent"));
    if (!status.ok()) return fail(status);

    const Clock::time_point deadline = Clock::now() + timeout;
    ncclResult_t result = enqueue(comm, stream);
    if (result == ncclInProgress) {
      status = AwaitCommReady(comm, deadline, what, timeout);
      if (!status.ok()) return fail(status);
    } else if (result != ncclSuccess) {
      status = NcclStatus(result, what);
      ncclResult_t state = ncclSuccess;
      const bool healthy = ncclCommGetAsyncError(comm, &state) == ncclSuccess && state == ncclSuccess;
      if (healthy && (result == ncclInvalidArgument || result == ncclInvalidUsage)) {
        cudaEventDestroy(done);
        return status;
      }
      return fail(status);
    }
    status = CudaStatus(cudaEventRecord(done, stream), absl::StrCat(what, ": cudaEventRecord"));
    if (!status.ok()) return fail(status);
    return done;
  }

  // Blocks until `done` has completed, watching the communicator for
  // asynchronous errors, then orders stream 0 after it. Aborts on a failure
  // or after `timeout`.
  absl::Status Await(cudaEvent_t done, const std::string& what) {
    const Clock::time_point deadline = Clock::now() + timeout;
    Backoff backoff;
    while (true) {
      cudaError_t query = cudaEventQuery(done);
      if (query != cudaSuccess && query != cudaErrorNotReady) {
        absl::Status status = CudaStatus(query, absl::StrCat(what, ": cudaEventQuery"));
        Abort(status);
        return status;
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        // Aborted meanwhile (by another Wait): the kernels were killed, so a
        // completed event proves nothing.
        if (absl::Status s = UnusableLocked(); !s.ok()) return s;
        ncclResult_t state = ncclSuccess;
        ncclResult_t result = ncclCommGetAsyncError(comm, &state);
        if (result != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
          absl::Status status = result != ncclSuccess
                                    ? NcclStatus(result, absl::StrCat(what, ": ncclCommGetAsyncError"))
                                    : NcclStatus(state, absl::StrCat(what, " failed (a peer died or the network broke)"));
          if (status.code() == absl::StatusCode::kInvalidArgument) {
            status = absl::UnavailableError(status.message());
          }
          AbortLocked(status);
          return status;
        }
        if (query == cudaSuccess) break;
        if (Clock::now() >= deadline) {
          absl::Status status = absl::DeadlineExceededError(
              absl::StrCat(what, ": not finished within ", Seconds(timeout),
                           " s (a peer is missing or stuck); the NCCL communicator was aborted"));
          AbortLocked(status);
          return status;
        }
      }
      backoff.Pause();
    }
    if (absl::Status s = UseDevice(device); !s.ok()) return s;
    return CudaStatus(cudaStreamWaitEvent(cudaStreamLegacy, done, 0),
                      absl::StrCat(what, ": cudaStreamWaitEvent(stream 0)"));
  }

  void Teardown() {
    std::lock_guard<std::mutex> lock(mu);
    (void)UseDevice(device);
    if (comm != nullptr) {
#if DFV_NCCL_NONBLOCKING
      // Finalize (flushes outstanding work, quiesces with the peers), then
      // destroy; abort instead if that fails or takes too long.
      const std::chrono::milliseconds limit = std::min(timeout, kMaxTeardown);
      ncclResult_t result = ncclCommFinalize(comm);
      absl::Status status = NcclStatus(result == ncclInProgress ? ncclSuccess : result, "ncclCommFinalize");
      if (status.ok()) status = AwaitCommReady(comm, Clock::now() + limit, "ncclCommFinalize", limit);
      if (status.ok()) {
        (void)ncclCommDestroy(comm);
      } else {
        (void)ncclCommAbort(comm);
      }
#else
      (void)ncclCommDestroy(comm);
#endif
      comm = nullptr;
    }
    if (ready != nullptr) {
      cudaEventDestroy(ready);
      ready = nullptr;
    }
    if (stream != nullptr) {
      cudaStreamDestroy(stream);
      stream = nullptr;
    }
    (void)cudaGetLastError();
  }
};

namespace {

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclCommunicator::State> state, cudaEvent_t done, std::string what, torch::Tensor keep)
      : state_(std::move(state)), done_(done), what_(std::move(what)), keep_(std::move(keep)) {}
  ~NcclWork() override {
    if (done_ != nullptr) cudaEventDestroy(done_);  // released once complete
  }

  absl::Status Wait() override {
    if (!waited_) {
      waited_ = true;
      result_ = state_->Await(done_, what_);
    }
    return result_;
  }

 private:
  std::shared_ptr<NcclCommunicator::State> state_;
  cudaEvent_t done_;
  std::string what_;
  torch::Tensor keep_;  // alive until the collective is done
  bool waited_ = false;
  absl::Status result_;
};

std::unique_ptr<Work> Completed(absl::Status status) { return std::make_unique<CompletedWork>(std::move(status)); }

}  // namespace

// --- Free functions -------------------------------------------------------------

int CudaDeviceCount() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

bool CudaDeviceAvailable() { return CudaDeviceCount() > 0; }

namespace nccl_internal {

absl::Status CheckTensor(const torch::Tensor& tensor, int cuda_device, bool all_reduce) {
  const char* what = all_reduce ? "nccl all-reduce" : "nccl broadcast";
  try {
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat(what, ": undefined tensor"));
    if (!tensor.is_cuda()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": the tensor must be a CUDA tensor (got one on ", tensor.device().str(), ")"));
    }
    if (tensor.get_device() != cuda_device) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": the tensor is on cuda:", tensor.get_device(),
                                                     ", the communicator on cuda:", cuda_device));
    }
    if (all_reduce && tensor.scalar_type() != torch::kFloat32) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": the tensor must be float32 (got ", c10::toString(tensor.scalar_type()), ")"));
    }
    if (all_reduce && !tensor.is_contiguous()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": the tensor must be contiguous"));
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.what()));
  }
}

absl::StatusOr<std::vector<uint8_t>> ExchangeUniqueId(c10d::Store& store, const std::string& key, int rank,
                                                      const std::vector<uint8_t>& id, size_t expected_bytes) {
  const std::string context = rank == 0 ? absl::StrCat("publishing the NCCL unique id under '", key, "'")
                                        : absl::StrCat("rank ", rank, " reading the NCCL unique id '", key,
                                                       "' (store timeout ", Seconds(store.getTimeout()), " s)");
  try {
    if (rank == 0) {
      if (id.size() != expected_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat(context, ": the id has ", id.size(), " bytes, expected ", expected_bytes));
      }
      store.set(key, id);
      return id;
    }
    std::vector<uint8_t> value = store.get(key);  // blocks up to the store's timeout
    if (value.size() != expected_bytes) {
      return absl::InternalError(
          absl::StrCat(context, ": the store holds ", value.size(), " bytes, expected ", expected_bytes));
    }
    return value;
  } catch (const c10::Error& e) {
    return StoreFailure(context, e.what_without_backtrace());
  } catch (const std::exception& e) {
    return StoreFailure(context, e.what());
  }
}

}  // namespace nccl_internal

// --- NcclCommunicator ----------------------------------------------------------

NcclCommunicator::NcclCommunicator(std::shared_ptr<State> state, int rank, int world_size, int device)
    : state_(std::move(state)), rank_(rank), world_size_(world_size), device_(device) {}

NcclCommunicator::~NcclCommunicator() = default;  // State tears down once no Work holds it

absl::StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::Create(c10::intrusive_ptr<c10d::Store> store,
                                                                       int rank, int world_size, int cuda_device,
                                                                       std::chrono::milliseconds timeout) {
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> created =
      CreateNccl(std::move(store), rank, world_size, cuda_device, timeout);
  if (!created.ok()) return created.status();
  return std::unique_ptr<Communicator>(std::move(*created));
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::CreateNccl(
    c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, int cuda_device,
    std::chrono::milliseconds timeout) {
  if (!store) return absl::InvalidArgumentError("nccl: no store");
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("nccl: rank ", rank, " of world size ", world_size));
  }
  if (cuda_device < 0) return absl::InvalidArgumentError(absl::StrCat("nccl: CUDA device ", cuda_device));
  if (timeout <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError(absl::StrCat("nccl: timeout ", timeout.count(), " ms"));
  }
  try {
    int count = 0;
    absl::Status status = CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("nccl: no usable CUDA device: ", status.message()));
    }
    if (cuda_device >= count) {
      return absl::FailedPreconditionError(
          absl::StrCat("nccl: CUDA device ", cuda_device, " does not exist (this machine has ", count, ")"));
    }
    if (status = UseDevice(cuda_device); !status.ok()) return status;

    // The unique id: rank 0 makes it, the others read it from the store.
    std::vector<uint8_t> id_bytes;
    if (rank == 0) {
      ncclUniqueId id;
      if (status = NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"); !status.ok()) return status;
      id_bytes.assign(reinterpret_cast<const uint8_t*>(id.internal),
                      reinterpret_cast<const uint8_t*>(id.internal) + sizeof(id.internal));
    }
    absl::StatusOr<std::vector<uint8_t>> exchanged =
        nccl_internal::ExchangeUniqueId(*store, kNcclUniqueIdKey, rank, id_bytes, NCCL_UNIQUE_ID_BYTES);
    if (!exchanged.ok()) return exchanged.status();
    ncclUniqueId id;
    std::memcpy(id.internal, exchanged->data(), sizeof(id.internal));

    auto state = std::make_shared<State>();
    state->device = cuda_device;
    state->timeout = timeout;
    if (status = CudaStatus(cudaStreamCreateWithFlags(&state->stream, cudaStreamNonBlocking), "cudaStreamCreate");
        !status.ok()) {
      return status;
    }
    if (status = CudaStatus(cudaEventCreateWithFlags(&state->ready, cudaEventDisableTiming), "cudaEventCreate");
        !status.ok()) {
      return status;
    }

    const std::string what = absl::StrCat("ncclCommInitRank (rank ", rank, " of ", world_size, ", cuda:", cuda_device,
                                          ")");
    ncclComm_t comm = nullptr;
#if DFV_NCCL_NONBLOCKING
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t result = ncclCommInitRankConfig(&comm, world_size, id, rank, &config);
    if (result == ncclInProgress || result == ncclSuccess) {
      status = comm == nullptr ? NcclStatus(ncclInternalError, what)
                               : AwaitCommReady(comm, Clock::now() + timeout, what, timeout);
      if (absl::IsDeadlineExceeded(status)) {
        status = absl::DeadlineExceededError(
            absl::StrCat(what, ": not all ", world_size, " ranks connected within ", Seconds(timeout), " s"));
      }
    } else {
      status = NcclStatus(result, what);
    }
#else
    status = NcclStatus(ncclCommInitRank(&comm, world_size, id, rank), what);
#endif
    if (!status.ok()) {
      if (comm != nullptr) (void)ncclCommAbort(comm);
      return status;  // ~State frees the stream and event
    }
    state->comm = comm;
    return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(state), rank, world_size, cuda_device));
  } catch (const c10::Error& e) {
    return StoreFailure("nccl: connecting", e.what_without_backtrace());
  } catch (const std::exception& e) {
    return StoreFailure("nccl: connecting", e.what());
  }
}

absl::Status NcclCommunicator::health() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->failure;
}

std::unique_ptr<Work> NcclCommunicator::StartAllReduceSum(torch::Tensor tensor) {
  if (absl::Status s = nccl_internal::CheckTensor(tensor, device_, /*all_reduce=*/true); !s.ok()) return Completed(s);
  try {
    if (tensor.numel() == 0) return Completed(absl::OkStatus());
    float* data = tensor.data_ptr<float>();
    const size_t count = static_cast<size_t>(tensor.numel());
    absl::StatusOr<cudaEvent_t> done =
        state_->Launch("nccl all-reduce", [data, count](ncclComm_t comm, cudaStream_t stream) {
          return ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm, stream);
        });
    if (!done.ok()) return Completed(done.status());
    return std::make_unique<NcclWork>(state_, *done, "nccl all-reduce", std::move(tensor));
  } catch (const std::exception& e) {
    return Completed(absl::InternalError(absl::StrCat("nccl all-reduce: ", e.what())));
  }
}

std::unique_ptr<Work> NcclCommunicator::StartAllReduceSumDevice(float* data, size_t count) {
  if (count == 0) return Completed(absl::OkStatus());
  if (absl::Status s = UseDevice(device_); !s.ok()) return Completed(s);
  if (absl::Status s = CheckDevicePointer(data, device_, "nccl all-reduce"); !s.ok()) return Completed(s);
  absl::StatusOr<cudaEvent_t> done =
      state_->Launch("nccl all-reduce", [data, count](ncclComm_t comm, cudaStream_t stream) {
        return ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm, stream);
      });
  if (!done.ok()) return Completed(done.status());
  return std::make_unique<NcclWork>(state_, *done, "nccl all-reduce", torch::Tensor());
}

absl::Status NcclCommunicator::BroadcastDevice(const std::vector<DeviceBuffer>& buffers, int root) {
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat("nccl broadcast: root ", root, " of world size ", world_size_));
  }
  std::vector<DeviceBuffer> nonempty;
  for (const DeviceBuffer& b : buffers) {
    if (b.bytes == 0) continue;
    nonempty.push_back(b);
  }
  if (nonempty.empty()) return absl::OkStatus();
  if (absl::Status s = UseDevice(device_); !s.ok()) return s;
  for (const DeviceBuffer& b : nonempty) {
    if (absl::Status s = CheckDevicePointer(b.data, device_, "nccl broadcast"); !s.ok()) return s;
  }
  for (size_t begin = 0; begin < nonempty.size(); begin += kMaxOpsPerGroup) {
    const size_t end = std::min(nonempty.size(), begin + kMaxOpsPerGroup);
    absl::StatusOr<cudaEvent_t> done =
        state_->Launch("nccl broadcast", [&nonempty, begin, end, root](ncclComm_t comm, cudaStream_t stream) {
          ncclResult_t result = ncclGroupStart();
          if (result != ncclSuccess) return result;
          for (size_t i = begin; i < end; ++i) {
            result = ncclBroadcast(nonempty[i].data, nonempty[i].data, nonempty[i].bytes, ncclUint8, root, comm,
                                   stream);
            if (result != ncclSuccess && result != ncclInProgress) {
              (void)ncclGroupEnd();
              return result;
            }
          }
          return ncclGroupEnd();
        });
    if (!done.ok()) return done.status();
    NcclWork work(state_, *done, "nccl broadcast", torch::Tensor());
    if (absl::Status s = work.Wait(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status NcclCommunicator::Broadcast(std::vector<torch::Tensor> tensors, int root) {
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat("nccl broadcast: root ", root, " of world size ", world_size_));
  }
  for (const torch::Tensor& t : tensors) {
    if (absl::Status s = nccl_internal::CheckTensor(t, device_, /*all_reduce=*/false); !s.ok()) return s;
  }
  try {
    // NCCL moves contiguous bytes; a strided view goes through a copy.
    std::vector<torch::Tensor> staged;
    std::vector<DeviceBuffer> buffers;
    staged.reserve(tensors.size());
    buffers.reserve(tensors.size());
    for (const torch::Tensor& t : tensors) {
      torch::Tensor buffer = t.is_contiguous() ? t : t.contiguous();
      buffers.push_back(DeviceBuffer{buffer.data_ptr(), buffer.nbytes()});
      staged.push_back(std::move(buffer));
    }
    if (absl::Status s = BroadcastDevice(buffers, root); !s.ok()) return s;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!staged[i].is_same(tensors[i])) tensors[i].copy_(staged[i]);
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("nccl broadcast: ", e.what()));
  }
}

absl::Status NcclAllReduceSumDevicePointer(Communicator& communicator, float* device_ptr, size_t count) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&communicator);
  if (nccl == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("device-pointer all-reduce needs the nccl backend, not ", communicator.backend()));
  }
  return nccl->AllReduceSumDevice(device_ptr, count);
}

absl::Status NcclBroadcastDevicePointers(Communicator& communicator, const std::vector<DeviceBuffer>& buffers,
                                         int root) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&communicator);
  if (nccl == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("device-pointer broadcast needs the nccl backend, not ", communicator.backend()));
  }
  return nccl->BroadcastDevice(buffers, root);
}

}  // namespace dfv::dist
