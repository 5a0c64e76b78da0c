// The NCCL backend of dist::Communicator. The first group runs anywhere
// (argument checks, the store exchange of the unique id, the CUDA probe); the
// NcclGpuTest group needs a CUDA device and skips without one. Device memory
// comes from cudaMalloc through the pointer-level API, so these run with a
// CPU build of LibTorch too; the CUDA-tensor test needs a CUDA LibTorch.
#include "worker/dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace dfv::dist {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

c10::intrusive_ptr<c10d::Store> NewStore(milliseconds timeout = seconds(60)) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  store->setTimeout(timeout);
  return store;
}

// A HashStore whose reads and writes fail the way a broken TCPStore
// connection does.
class BrokenStore : public c10d::HashStore {
 public:
  void set(const std::string& key, const std::vector<uint8_t>& value) override {
    TORCH_CHECK(false, "Connection reset by peer");
  }
  std::vector<uint8_t> get(const std::string& key) override {
    TORCH_CHECK(false, "Connection reset by peer");
    return {};
  }
};

// Any other backend.
class FakeCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "gloo"; }
  std::unique_ptr<Work> StartAllReduceSum(torch::Tensor tensor) override { return nullptr; }
  absl::Status Broadcast(std::vector<torch::Tensor> tensors, int root) override { return absl::OkStatus(); }
};

// --- Without a GPU ----------------------------------------------------------

TEST(NcclCommunicatorTest, CreateRejectsBadArguments) {
  auto store = NewStore();
  struct Case {
    c10::intrusive_ptr<c10d::Store> store;
    int rank, world_size, device;
    milliseconds timeout;
  };
  const std::vector<Case> cases = {
      {c10::intrusive_ptr<c10d::Store>(), 0, 1, 0, seconds(1)},  // no store
      {store, 0, 0, 0, seconds(1)},                              // empty world
      {store, -1, 2, 0, seconds(1)},                             // negative rank
      {store, 2, 2, 0, seconds(1)},                              // rank past the world
      {store, 0, 1, -1, seconds(1)},                             // negative device
      {store, 0, 1, 0, milliseconds(0)},                         // no time at all
      {store, 0, 1, 0, milliseconds(-5)},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Communicator>> created =
        NcclCommunicator::Create(c.store, c.rank, c.world_size, c.device, c.timeout);
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument) << created.status();
  }
  // Nothing was published for a rejected call.
  EXPECT_FALSE(store->check({kNcclUniqueIdKey}));
}

TEST(NcclCommunicatorTest, CreateOnAMissingDeviceFailsFastWithoutTouchingTheStore) {
  // One past the last device: every index on a machine without a GPU.
  const int missing = CudaDeviceCount();
  for (int rank : {0, 1}) {
    auto store = NewStore(seconds(30));
    const auto start = steady_clock::now();
    absl::StatusOr<std::unique_ptr<Communicator>> created =
        NcclCommunicator::Create(store, rank, 2, missing, seconds(30));
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.status().code(), absl::StatusCode::kFailedPrecondition) << created.status();
    EXPECT_LT(steady_clock::now() - start, seconds(10)) << "rank " << rank << " waited on the store";
    EXPECT_FALSE(store->check({kNcclUniqueIdKey}));
  }
}

TEST(NcclCommunicatorTest, CudaDeviceAvailableAgreesWithTheRuntime) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  EXPECT_EQ(CudaDeviceAvailable(), err == cudaSuccess && count > 0) << cudaGetErrorString(err);
  EXPECT_EQ(CudaDeviceCount(), err == cudaSuccess ? count : 0);
  // Asking twice changes nothing (no sticky error left behind).
  EXPECT_EQ(CudaDeviceAvailable(), err == cudaSuccess && count > 0);
}

TEST(NcclTensorCheckTest, RejectsCpuAndUndefinedTensors) {
  for (bool all_reduce : {true, false}) {
    absl::Status cpu = nccl_internal::CheckTensor(torch::ones({4}), 0, all_reduce);
    EXPECT_EQ(cpu.code(), absl::StatusCode::kInvalidArgument) << cpu;
    EXPECT_NE(cpu.message().find("CUDA tensor"), std::string::npos) << cpu;
    absl::Status undefined = nccl_internal::CheckTensor(torch::Tensor(), 0, all_reduce);
    EXPECT_EQ(undefined.code(), absl::StatusCode::kInvalidArgument) << undefined;
  }
}

TEST(NcclPointerApiTest, RejectsOtherBackends) {
  FakeCommunicator gloo;
  absl::Status reduce = NcclAllReduceSumDevicePointer(gloo, nullptr, 4);
  EXPECT_EQ(reduce.code(), absl::StatusCode::kInvalidArgument) << reduce;
  absl::Status broadcast = NcclBroadcastDevicePointers(gloo, {DeviceBuffer{nullptr, 16}}, 0);
  EXPECT_EQ(broadcast.code(), absl::StatusCode::kInvalidArgument) << broadcast;
}

std::vector<uint8_t> SampleId(size_t bytes) {
  std::vector<uint8_t> id(bytes);
  for (size_t i = 0; i < bytes; ++i) id[i] = static_cast<uint8_t>(i * 7 + 3);
  return id;
}

TEST(NcclUniqueIdExchangeTest, OtherRanksReadRankZerosId) {
  auto store = NewStore();
  const std::vector<uint8_t> id = SampleId(128);
  absl::StatusOr<std::vector<uint8_t>> root = nccl_internal::ExchangeUniqueId(*store, "k", 0, id, 128);
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, id);
  for (int rank : {1, 2}) {
    absl::StatusOr<std::vector<uint8_t>> other = nccl_internal::ExchangeUniqueId(*store, "k", rank, {}, 128);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(*other, id);
  }
}

TEST(NcclUniqueIdExchangeTest, ReaderWaitsForALateRankZero) {
  auto store = NewStore(seconds(30));
  const std::vector<uint8_t> id = SampleId(128);
  std::thread root([&] {
    std::this_thread::sleep_for(milliseconds(200));
    (void)nccl_internal::ExchangeUniqueId(*store, "k", 0, id, 128);
  });
  absl::StatusOr<std::vector<uint8_t>> other = nccl_internal::ExchangeUniqueId(*store, "k", 1, {}, 128);
  root.join();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(*other, id);
}

TEST(NcclUniqueIdExchangeTest, MissingIdIsDeadlineExceeded) {
  auto store = NewStore(milliseconds(300));
  const auto start = steady_clock::now();
  absl::StatusOr<std::vector<uint8_t>> other = nccl_internal::ExchangeUniqueId(*store, "k", 1, {}, 128);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kDeadlineExceeded) << other.status();
  EXPECT_LT(steady_clock::now() - start, seconds(20));
  // One line, no C++ backtrace.
  EXPECT_EQ(std::string(other.status().message()).find('\n'), std::string::npos) << other.status();
}

TEST(NcclUniqueIdExchangeTest, BrokenStoreIsUnavailable) {
  BrokenStore store;
  absl::StatusOr<std::vector<uint8_t>> root = nccl_internal::ExchangeUniqueId(store, "k", 0, SampleId(128), 128);
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), absl::StatusCode::kUnavailable) << root.status();
  EXPECT_NE(std::string(root.status().message()).find("Connection reset"), std::string::npos) << root.status();
  absl::StatusOr<std::vector<uint8_t>> other = nccl_internal::ExchangeUniqueId(store, "k", 1, {}, 128);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable) << other.status();
}

TEST(NcclUniqueIdExchangeTest, WrongLengthsAreRejected) {
  auto store = NewStore();
  absl::StatusOr<std::vector<uint8_t>> root = nccl_internal::ExchangeUniqueId(*store, "k", 0, SampleId(5), 128);
  EXPECT_EQ(root.status().code(), absl::StatusCode::kInvalidArgument) << root.status();
  store->set("k", SampleId(3));
  absl::StatusOr<std::vector<uint8_t>> other = nccl_internal::ExchangeUniqueId(*store, "k", 1, {}, 128);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(std::string(other.status().message()).find("3 bytes"), std::string::npos) << other.status();
}

// --- With a GPU -------------------------------------------------------------

class NcclGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CudaDeviceAvailable()) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

// cudaMalloc'd floats on one device.
class DeviceFloats {
 public:
  DeviceFloats(int device, const std::vector<float>& values) : device_(device), size_(values.size()) {
    cudaSetDevice(device_);
    status_ = cudaMalloc(reinterpret_cast<void**>(&data_), size_ * sizeof(float));
    if (status_ == cudaSuccess) {
      status_ = cudaMemcpy(data_, values.data(), size_ * sizeof(float), cudaMemcpyHostToDevice);
    }
  }
  ~DeviceFloats() {
    if (data_ != nullptr) {
      cudaSetDevice(device_);
      cudaFree(data_);
    }
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  bool ok() const { return status_ == cudaSuccess; }
  float* data() const { return data_; }
  size_t size() const { return size_; }
  DeviceBuffer buffer() const { return DeviceBuffer{data_, size_ * sizeof(float)}; }
  // Reads back after everything queued so far (a blocking copy on stream 0).
  std::vector<float> Read() const {
    std::vector<float> out(size_);
    cudaSetDevice(device_);
    EXPECT_EQ(cudaMemcpy(out.data(), data_, size_ * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }

 private:
  int device_;
  size_t size_;
  float* data_ = nullptr;
  cudaError_t status_ = cudaSuccess;
};

std::vector<float> Ramp(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>(i);
  return v;
}

TEST_F(NcclGpuTest, WorldSizeOneAllReduceKeepsTheValues) {
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
      NcclCommunicator::CreateNccl(NewStore(), 0, 1, 0, seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->rank(), 0);
  EXPECT_EQ((*comm)->world_size(), 1);
  EXPECT_EQ((*comm)->backend(), "nccl");

  const std::vector<float> a = Ramp(1000, 0.5f), b = Ramp(1 << 20, -1.0f);
  DeviceFloats da(0, a), db(0, b);
  ASSERT_TRUE(da.ok() && db.ok());
  EXPECT_TRUE((*comm)->AllReduceSumDevice(da.data(), da.size()).ok());
  // Two in flight at once, waited out of order.
  std::unique_ptr<Work> first = (*comm)->StartAllReduceSumDevice(da.data(), da.size());
  std::unique_ptr<Work> second = (*comm)->StartAllReduceSumDevice(db.data(), db.size());
  EXPECT_TRUE(second->Wait().ok());
  EXPECT_TRUE(first->Wait().ok());
  EXPECT_TRUE(NcclAllReduceSumDevicePointer(**comm, da.data(), da.size()).ok());
  EXPECT_TRUE((*comm)->AllReduceSumDevice(da.data(), 0).ok());
  EXPECT_EQ(da.Read(), a);
  EXPECT_EQ(db.Read(), b);
  EXPECT_TRUE((*comm)->health().ok());
}

TEST_F(NcclGpuTest, WorldSizeOneBroadcast) {
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
      NcclCommunicator::CreateNccl(NewStore(), 0, 1, 0, seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  const std::vector<float> a = Ramp(17, 2.0f), b = Ramp(4096, 3.0f);
  DeviceFloats da(0, a), db(0, b);
  ASSERT_TRUE(da.ok() && db.ok());
  EXPECT_TRUE((*comm)->BroadcastDevice({da.buffer(), db.buffer(), DeviceBuffer{nullptr, 0}}, 0).ok());
  EXPECT_TRUE(NcclBroadcastDevicePointers(**comm, {db.buffer()}, 0).ok());
  EXPECT_TRUE((*comm)->BroadcastDevice({}, 0).ok());
  EXPECT_EQ(da.Read(), a);
  EXPECT_EQ(db.Read(), b);

  EXPECT_EQ((*comm)->BroadcastDevice({da.buffer()}, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*comm)->BroadcastDevice({da.buffer()}, -1).code(), absl::StatusCode::kInvalidArgument);
  // Host memory is refused before NCCL sees it; the communicator stays usable.
  std::vector<float> host(8, 1.0f);
  absl::Status on_host = (*comm)->BroadcastDevice({DeviceBuffer{host.data(), 32}}, 0);
  EXPECT_EQ(on_host.code(), absl::StatusCode::kInvalidArgument) << on_host;
  EXPECT_EQ((*comm)->AllReduceSumDevice(host.data(), host.size()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*comm)->health().ok());
  EXPECT_TRUE((*comm)->AllReduceSumDevice(da.data(), da.size()).ok());
}

TEST_F(NcclGpuTest, CpuTensorsAreRefusedOnALiveCommunicator) {
  absl::StatusOr<std::unique_ptr<Communicator>> comm = NcclCommunicator::Create(NewStore(), 0, 1, 0, seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  absl::Status reduce = (*comm)->AllReduceSum(torch::ones({4}));
  EXPECT_EQ(reduce.code(), absl::StatusCode::kInvalidArgument) << reduce;
  absl::Status broadcast = (*comm)->Broadcast({torch::ones({4})}, 0);
  EXPECT_EQ(broadcast.code(), absl::StatusCode::kInvalidArgument) << broadcast;
  EXPECT_TRUE(static_cast<NcclCommunicator&>(**comm).health().ok());
}

TEST_F(NcclGpuTest, AMissingPeerTimesOutInitialisation) {
  // Rank 0 of 2 publishes its id; rank 1 never comes.
  auto store = NewStore();
  const auto start = steady_clock::now();
  absl::StatusOr<std::unique_ptr<Communicator>> comm = NcclCommunicator::Create(store, 0, 2, 0, seconds(3));
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kDeadlineExceeded) << comm.status();
  EXPECT_LT(steady_clock::now() - start, seconds(60));
  EXPECT_TRUE(store->check({kNcclUniqueIdKey}));
}

TEST_F(NcclGpuTest, TwoRanksOnTwoGpus) {
  if (CudaDeviceCount() < 2) GTEST_SKIP() << "needs 2 CUDA devices, found " << CudaDeviceCount();
  auto store = NewStore();
  constexpr size_t kCount = 1 << 16;
  struct Result {
    absl::Status create, reduce, broadcast, second_reduce;
    std::vector<float> reduced, broadcasted;
  };
  Result results[2];
  auto run_rank = [&](int rank) {
    Result& r = results[rank];
    absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
        NcclCommunicator::CreateNccl(store, rank, 2, /*cuda_device=*/rank, seconds(60));
    r.create = comm.status();
    if (!comm.ok()) return;
    DeviceFloats values(rank, Ramp(kCount, static_cast<float>(rank + 1)));
    r.reduce = (*comm)->AllReduceSumDevice(values.data(), kCount);
    r.reduced = values.Read();
    DeviceFloats params(rank, std::vector<float>(kCount, rank == 1 ? 7.0f : 0.0f));
    r.broadcast = (*comm)->BroadcastDevice({params.buffer()}, /*root=*/1);
    r.broadcasted = params.Read();
    std::unique_ptr<Work> work = (*comm)->StartAllReduceSumDevice(params.data(), kCount);
    r.second_reduce = work->Wait();
    // The communicators are torn down here, on both threads at once.
  };
  std::thread rank1(run_rank, 1);
  run_rank(0);
  rank1.join();

  for (int rank : {0, 1}) {
    const Result& r = results[rank];
    ASSERT_TRUE(r.create.ok()) << "rank " << rank << ": " << r.create;
    EXPECT_TRUE(r.reduce.ok()) << r.reduce;
    EXPECT_TRUE(r.broadcast.ok()) << r.broadcast;
    EXPECT_TRUE(r.second_reduce.ok()) << r.second_reduce;
    EXPECT_EQ(r.reduced, Ramp(kCount, 3.0f)) << "rank " << rank;
    EXPECT_EQ(r.broadcasted, std::vector<float>(kCount, 7.0f)) << "rank " << rank;
  }
}

TEST_F(NcclGpuTest, CudaTensorsWhenLibTorchHasCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has no CUDA";
  absl::StatusOr<std::unique_ptr<Communicator>> comm = NcclCommunicator::Create(NewStore(), 0, 1, 0, seconds(60));
  ASSERT_TRUE(comm.ok()) << comm.status();
  const torch::Device cuda(torch::kCUDA, 0);
  torch::Tensor t = torch::arange(16, torch::kFloat32).to(cuda);
  const torch::Tensor expected = t.clone();
  EXPECT_TRUE((*comm)->AllReduceSum(t).ok());
  EXPECT_TRUE(torch::equal(t.cpu(), expected.cpu()));

  torch::Tensor grid = torch::arange(16, torch::kFloat32).view({4, 4}).to(cuda);
  torch::Tensor strided = grid.t();  // not contiguous: staged through a copy
  torch::Tensor counts = torch::arange(3, torch::kInt64).to(cuda);
  EXPECT_TRUE((*comm)->Broadcast({strided, counts}, 0).ok());
  EXPECT_TRUE(torch::equal(grid.cpu(), torch::arange(16, torch::kFloat32).view({4, 4})));

  EXPECT_EQ(nccl_internal::CheckTensor(counts, 0, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nccl_internal::CheckTensor(strided, 0, true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(nccl_internal::CheckTensor(strided, 0, false).ok());
  EXPECT_EQ(nccl_internal::CheckTensor(t, 1, true).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dfv::dist
