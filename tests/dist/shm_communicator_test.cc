// The shared-memory communicator, with ranks as threads of this process that
// meet through a real rendezvous: sums (several chunks, uneven shares, float32
// and float64, the same bits on every rank), broadcasts, collectives in
// flight together, refusals, a peer that goes away, a peer that never comes,
// closing with a collective in flight, and the fall back to Gloo when the
// segment cannot be made.
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "tests/dist/dist_test_util.h"
#include "worker/dist/rendezvous.h"
#include "worker/dist/shm_communicator.h"

namespace dfv {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// Small chunks, so that every size below spans several of them and the
// ranks' shares of a chunk are uneven.
void SmallChunks(dist::RendezvousOptions& options) { options.shm.chunk_bytes = 4096; }

TEST(ShmCommunicatorTest, RanksOnOneHostShareMemoryAndLeaveNothingInDevShm) {
  testing::RunRanks(3, [](int rank, dist::ProcessGroup& group) {
    EXPECT_EQ(group.communicator->backend(), "shm");
    EXPECT_EQ(group.communicator->rank(), rank);
    EXPECT_EQ(group.communicator->world_size(), 3);
    EXPECT_EQ(group.local_world_size, 3);
    EXPECT_EQ(group.transport_note, "");
    const std::string name = dist::ShmSegmentName(*group.communicator);
    ASSERT_TRUE(absl::StartsWith(name, "/dfv-")) << name;
    torch::Tensor t = torch::full({5}, 1.0f);
    ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
    EXPECT_TRUE(torch::equal(t, torch::full({5}, 3.0f)));
    // Rank 0 unlinks the name once every rank has mapped it, before its
    // first collective; the all-reduce above needed rank 0, so the name is
    // gone on every rank now (straight after setup it may not be yet on
    // ranks other than 0).
    EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name)) << name;
  });
}

TEST(ShmCommunicatorTest, AllReduceSumsInRankOrderAndEveryRankGetsTheSameBits) {
  constexpr int kWorld = 3;
  const std::vector<int64_t> sizes = {1, 17, 1000, 1024, 300001};
  // Each rank's inputs, made from its own seed, and its results.
  std::mutex mu;
  std::array<std::vector<torch::Tensor>, kWorld> inputs, results;
  testing::RunRanks(
      kWorld,
      [&](int rank, dist::ProcessGroup& group) {
        ASSERT_EQ(group.communicator->backend(), "shm");
        for (int64_t n : sizes) {
          for (torch::Dtype dtype : {torch::kFloat32, torch::kFloat64}) {
            torch::Tensor x;
            {
              std::lock_guard<std::mutex> lock(mu);  // one generator for the process
              x = torch::randn({n}, torch::TensorOptions().dtype(dtype));
            }
            torch::Tensor t = x.clone();
            absl::Status s = group.communicator->AllReduceSum(t);
            ASSERT_TRUE(s.ok()) << s;
            std::lock_guard<std::mutex> lock(mu);
            inputs[rank].push_back(x);
            results[rank].push_back(t);
          }
        }
      },
      seconds(30), SmallChunks);
  ASSERT_EQ(results[0].size(), sizes.size() * 2);
  for (size_t i = 0; i < results[0].size(); ++i) {
    // The same additions in the same order, done here: the same bits.
    const torch::Tensor expected = (inputs[0][i] + inputs[1][i]) + inputs[2][i];
    for (int r = 0; r < kWorld; ++r) {
      ASSERT_EQ(results[r].size(), results[0].size());
      EXPECT_TRUE(torch::equal(results[r][i], expected)) << "rank " << r << ", tensor " << i;
    }
  }
}

TEST(ShmCommunicatorTest, BroadcastCopiesFromTheRootWhateverTheLayoutAndType) {
  testing::RunRanks(
      2,
      [](int rank, dist::ProcessGroup& group) {
        torch::Tensor big = torch::full({5000}, static_cast<float>(rank));  // several chunks
        torch::Tensor view = torch::arange(12, torch::kFloat32).view({3, 4}).add(100 * rank).t();
        torch::Tensor ints = torch::full({7}, static_cast<int64_t>(rank + 40), torch::kInt64);
        torch::Tensor empty = torch::zeros({0});
        ASSERT_TRUE(group.communicator->Broadcast({big, view, ints, empty}, /*root=*/1).ok());
        EXPECT_TRUE(torch::equal(big, torch::full({5000}, 1.0f)));
        EXPECT_TRUE(torch::equal(view, torch::arange(12, torch::kFloat32).view({3, 4}).add(100).t()));
        EXPECT_TRUE(torch::equal(ints, torch::full({7}, int64_t{41}, torch::kInt64)));
      },
      seconds(30), SmallChunks);
}

TEST(ShmCommunicatorTest, CollectivesInFlightTogetherFinishInOrder) {
  testing::RunRanks(
      2,
      [](int rank, dist::ProcessGroup& group) {
        std::vector<torch::Tensor> tensors;
        std::vector<std::unique_ptr<dist::Work>> works;
        for (int i = 0; i < 8; ++i) {
          tensors.push_back(torch::full({3000 + 100 * i}, static_cast<float>(i + rank)));
          works.push_back(group.communicator->StartAllReduceSum(tensors.back()));
        }
        for (int i = 7; i >= 0; --i) ASSERT_TRUE(works[i]->Wait().ok()) << i;
        for (int i = 0; i < 8; ++i) EXPECT_TRUE(torch::equal(tensors[i], torch::full({3000 + 100 * i}, 2.0f * i + 1)));
      },
      seconds(30), SmallChunks);
}

TEST(ShmCommunicatorTest, RefusesWhatItCannotDo) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    EXPECT_EQ(group.communicator->AllReduceSum(torch::zeros({4, 4}).t()).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(group.communicator->AllReduceSum(torch::zeros({4}, torch::kInt32)).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(group.communicator->Broadcast({torch::zeros({4})}, 2).code(), absl::StatusCode::kInvalidArgument);
    // Refusals start nothing: the group still works.
    torch::Tensor t = torch::ones({4});
    ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
    EXPECT_TRUE(torch::equal(t, torch::full({4}, 2.0f)));
  });
  auto store = c10::make_intrusive<c10d::HashStore>();
  dist::ShmOptions odd;
  odd.chunk_bytes = 100;
  EXPECT_EQ(dist::CreateShmCommunicator(store, 0, 1, odd).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dist::CreateShmCommunicator(store, 1, 1, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShmCommunicatorTest, APeerThatGoesAwayFailsTheCollectiveInsteadOfHanging) {
  // Closing the segment drops rank 1's lock on it, as a dying process's does.
  const testing::AfterThePeerLeft seen = testing::AllReduceAfterThePeerLeft(nullptr);
  EXPECT_TRUE(absl::IsUnavailable(seen.status)) << seen.status;
  EXPECT_TRUE(absl::StrContains(seen.status.message(), "rank 1 of 2 went away")) << seen.status;
  EXPECT_LT(seen.seconds, 5.0) << seen.status;
  EXPECT_TRUE(absl::IsUnavailable(seen.next)) << "the communicator stays failed: " << seen.next;
}

TEST(ShmCommunicatorTest, APeerThatNeverJoinsTheCollectiveRunsOutTheDeadline) {
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  testing::RunRanks(
      2,
      [&](int rank, dist::ProcessGroup& group) {
        if (rank == 1) {  // alive, holding the segment, but never reducing
          done.wait();
          return;
        }
        torch::Tensor t = torch::ones({64});
        const auto start = Clock::now();
        absl::Status status = group.communicator->AllReduceSum(t);
        const double took = std::chrono::duration<double>(Clock::now() - start).count();
        rank0_done.set_value();
        EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
        EXPECT_GE(took, 1.0);
        EXPECT_LT(took, 5.0);
      },
      seconds(30), [](dist::RendezvousOptions& options) { options.collective_timeout = milliseconds(1000); });
}

TEST(ShmCommunicatorTest, ClosingWithACollectiveInFlightCancelsIt) {
  std::promise<void> rank0_done;
  std::shared_future<void> done = rank0_done.get_future().share();
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    if (rank == 1) {
      done.wait();
      return;
    }
    std::unique_ptr<dist::Work> work = group.communicator->StartAllReduceSum(torch::ones({64}));
    std::this_thread::sleep_for(milliseconds(100));  // let it reach the barrier
    const auto start = Clock::now();
    group.communicator.reset();
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
    absl::Status status = work->Wait();
    EXPECT_TRUE(absl::IsCancelled(status)) << status;
    rank0_done.set_value();
  });
}

TEST(ShmCommunicatorTest, WhenTheSegmentCannotBeMadeEveryRankFallsBackToGloo) {
  // A segment larger than /dev/shm's free space: rank 0 refuses to make it.
  testing::RunRanks(
      2,
      [](int rank, dist::ProcessGroup& group) {
        EXPECT_EQ(group.communicator->backend(), "gloo");
        EXPECT_TRUE(absl::StrContains(group.transport_note, "not over shared memory")) << group.transport_note;
        EXPECT_TRUE(absl::StrContains(group.transport_note, "rank 0: the segment needs")) << group.transport_note;
        EXPECT_TRUE(absl::StrContains(group.transport_note, "rank 1: rank 0 made no segment")) << group.transport_note;
        torch::Tensor t = torch::full({100}, 1.0f + rank);
        ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
        EXPECT_TRUE(torch::equal(t, torch::full({100}, 3.0f)));
      },
      seconds(30), [](dist::RendezvousOptions& options) { options.shm.chunk_bytes = size_t{1} << 40; });
}

}  // namespace
}  // namespace dfv
