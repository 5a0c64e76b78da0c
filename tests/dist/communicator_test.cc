// The Gloo communicator and the per-job rendezvous, with ranks as threads
// meeting over loopback: collectives, timeouts, two groups side by side on
// one host, and a peer that goes away in the middle of a collective. The
// shared-memory transport has its own tests (shm_communicator_test.cc).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "tests/dist/dist_test_util.h"
#include "worker/dist/rendezvous.h"

namespace dfv {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

TEST(GlooCommunicatorTest, AllReduceSumsAndBroadcastCopiesFromRoot) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    EXPECT_EQ(group.communicator->rank(), rank);
    EXPECT_EQ(group.communicator->world_size(), 2);
    EXPECT_EQ(group.communicator->backend(), "gloo");
    EXPECT_EQ(group.local_world_size, 2) << "both ranks run on this host";
    torch::Tensor t = torch::full({1000}, static_cast<float>(rank + 1));
    ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
    EXPECT_TRUE(torch::allclose(t, torch::full({1000}, 3.0f)));

    // Broadcast, including a non-contiguous view.
    torch::Tensor a = torch::full({4, 4}, static_cast<float>(10 * rank));
    torch::Tensor b = torch::arange(16, torch::kFloat32).view({4, 4}).add(rank).t();
    ASSERT_TRUE(group.communicator->Broadcast({a, b}, 0).ok());
    EXPECT_TRUE(torch::equal(a, torch::zeros({4, 4})));
    EXPECT_TRUE(torch::equal(b, torch::arange(16, torch::kFloat32).view({4, 4}).t()));
  }, seconds(30), testing::UseGloo);
}

TEST(GlooCommunicatorTest, RejectsTensorsItCannotReduce) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    torch::Tensor view = torch::zeros({4, 4}).t();
    absl::Status status = group.communicator->AllReduceSum(view);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }, seconds(30), testing::UseGloo);
}

TEST(RendezvousTest, FailsWithDeadlineWhenARankNeverArrives) {
  dist::RendezvousOptions options;
  options.address = "127.0.0.1:0";
  options.rank = 0;
  options.world_size = 2;
  options.timeout = milliseconds(1500);
  std::string announced;
  options.on_listening = [&](const std::string& a) { announced = a; };
  const auto start = Clock::now();
  absl::StatusOr<dist::ProcessGroup> group = dist::Rendezvous(options);
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.status().code(), absl::StatusCode::kDeadlineExceeded) << group.status();
  EXPECT_TRUE(absl::StrContains(group.status().message(), "not all 2 ranks arrived within 1.5 s"))
      << group.status();
  EXPECT_TRUE(absl::StartsWith(announced, "127.0.0.1:")) << announced;
  EXPECT_NE(announced, "127.0.0.1:0");
  EXPECT_LT(took, 10.0);
}

TEST(RendezvousTest, ARankThatCannotReachRankZeroGivesUp) {
  // A port nobody listens on: bind a store, note its port, let it go.
  std::string address;
  {
    dist::RendezvousOptions probe;
    probe.address = "127.0.0.1:0";
    probe.world_size = 1;
    probe.on_listening = [&](const std::string& a) { address = a; };
    ASSERT_TRUE(dist::Rendezvous(probe).ok());
  }
  dist::RendezvousOptions options;
  options.address = address;
  options.rank = 1;
  options.world_size = 2;
  options.timeout = milliseconds(1500);
  const auto start = Clock::now();
  absl::StatusOr<dist::ProcessGroup> group = dist::Rendezvous(options);
  ASSERT_FALSE(group.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(group.status()) || absl::IsUnavailable(group.status())) << group.status();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 15.0);
}

TEST(RendezvousTest, RejectsBadOptions) {
  dist::RendezvousOptions options;
  options.address = "127.0.0.1:0";
  options.rank = 1;
  options.world_size = 2;
  EXPECT_EQ(dist::Rendezvous(options).status().code(), absl::StatusCode::kInvalidArgument);  // needs a port
  options.rank = 2;
  EXPECT_EQ(dist::Rendezvous(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.rank = 0;
  options.address = "no-port";
  EXPECT_EQ(dist::Rendezvous(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.address = "127.0.0.1:0";
  options.backend = "mpi";
  EXPECT_EQ(dist::Rendezvous(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RendezvousTest, TwoJobsShareAHostWithoutClashing) {
  std::thread other([] {
    testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
      torch::Tensor t = torch::full({8}, 100.0f);
      ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
      EXPECT_TRUE(torch::equal(t, torch::full({8}, 200.0f)));
    });
  });
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    torch::Tensor t = torch::full({8}, 1.0f);
    ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
    EXPECT_TRUE(torch::equal(t, torch::full({8}, 2.0f)));
  });
  other.join();
}

TEST(RendezvousTest, ARankWithoutTheAttemptsSecretCannotJoinAndOneWithItCan) {
  // Rank 0 holds the attempt's secret; a process that reaches its port with
  // another secret is never counted as rank 1.
  std::promise<std::string> listening;
  std::future<std::string> address = listening.get_future();
  absl::Status rank0_status;
  std::thread rank0([&] {
    dist::RendezvousOptions options;
    options.address = "127.0.0.1:0";
    options.secret = testing::kTestSecret;
    options.world_size = 2;
    options.timeout = milliseconds(2500);
    options.on_listening = [&](const std::string& a) { listening.set_value(a); };
    rank0_status = dist::Rendezvous(options).status();
  });
  dist::RendezvousOptions intruder;
  intruder.address = address.get();
  intruder.secret = "ffffffffffffffffffffffffffffffff";
  intruder.rank = 1;
  intruder.world_size = 2;
  intruder.timeout = milliseconds(2500);
  absl::Status intruder_status = dist::Rendezvous(intruder).status();
  rank0.join();
  EXPECT_EQ(intruder_status.code(), absl::StatusCode::kDeadlineExceeded) << intruder_status;
  EXPECT_EQ(rank0_status.code(), absl::StatusCode::kDeadlineExceeded) << rank0_status;
  EXPECT_TRUE(absl::StrContains(rank0_status.message(), "not all 2 ranks arrived")) << rank0_status;

  // Without any secret (the plain keys a c10d client would use) it fails the same way.
  std::promise<std::string> listening2;
  std::future<std::string> address2 = listening2.get_future();
  std::thread rank0_again([&] {
    dist::RendezvousOptions options;
    options.address = "127.0.0.1:0";
    options.secret = testing::kTestSecret;
    options.world_size = 2;
    options.timeout = milliseconds(2500);
    options.on_listening = [&](const std::string& a) { listening2.set_value(a); };
    rank0_status = dist::Rendezvous(options).status();
  });
  intruder.address = address2.get();
  intruder.secret.clear();
  intruder_status = dist::Rendezvous(intruder).status();
  rank0_again.join();
  EXPECT_EQ(intruder_status.code(), absl::StatusCode::kDeadlineExceeded) << intruder_status;
  EXPECT_EQ(rank0_status.code(), absl::StatusCode::kDeadlineExceeded) << rank0_status;

  // The same two ranks with the same secret meet and reduce.
  std::atomic<int> reduced{0};
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    torch::Tensor t = torch::full({4}, 1.0f + rank);
    ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
    EXPECT_TRUE(torch::equal(t, torch::full({4}, 3.0f)));
    ++reduced;
  });
  EXPECT_EQ(reduced.load(), 2);
}

TEST(RendezvousTest, RankZeroAnnouncesItsDataPlaneAddressAndGlooBindsToIt) {
  std::string announced;
  std::atomic<int> reduced{0};
  testing::RunRanks(
      2,
      [&](int rank, dist::ProcessGroup& group) {
        torch::Tensor t = torch::ones({4});
        ASSERT_TRUE(group.communicator->AllReduceSum(t).ok());
        EXPECT_TRUE(torch::equal(t, torch::full({4}, 2.0f)));
        ++reduced;
      },
      seconds(30),
      [&](dist::RendezvousOptions& options) {
        testing::UseGloo(options);
        options.data_plane_address = "127.0.0.1";
        if (options.rank == 0) {
          // The control address names the host differently; the data plane wins.
          options.address = "localhost:0";
          auto announce = options.on_listening;
          options.on_listening = [&announced, announce](const std::string& a) {
            announced = a;
            announce(a);
          };
        }
      });
  EXPECT_EQ(reduced.load(), 2);
  EXPECT_TRUE(absl::StartsWith(announced, "127.0.0.1:")) << announced;
}

TEST(GlooCommunicatorTest, APeerThatGoesAwayFailsTheCollectiveInsteadOfHanging) {
  const testing::AfterThePeerLeft seen = testing::AllReduceAfterThePeerLeft(testing::UseGloo);
  EXPECT_TRUE(absl::IsUnavailable(seen.status) || absl::IsDeadlineExceeded(seen.status)) << seen.status;
  EXPECT_LT(seen.seconds, 10.0) << seen.status;
}

}  // namespace
}  // namespace dfv
