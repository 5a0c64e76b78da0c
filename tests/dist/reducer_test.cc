// GradientReducer on two ranks (threads over loopback Gloo): gradients come
// back as the mean over ranks with overlap on and off, buckets follow the
// size setting, hooks launch buckets during backward, a parameter without a
// gradient stays without one, and several optimisers keep separate plans.
#include "worker/dist/reducer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "tests/dist/dist_test_util.h"

namespace dfv {
namespace {

// A small MLP with an unused head, identical on every rank (seeded).
struct NetImpl : torch::nn::Module {
  NetImpl() {
    torch::manual_seed(7);
    a = register_module("a", torch::nn::Linear(32, 64));
    b = register_module("b", torch::nn::Linear(64, 64));
    c = register_module("c", torch::nn::Linear(64, 4));
    unused = register_module("unused", torch::nn::Linear(4, 4));
  }
  torch::Tensor forward(const torch::Tensor& x) { return c(torch::relu(b(torch::relu(a(x))))); }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr}, unused{nullptr};
};
TORCH_MODULE(Net);

// Seeded draws use the global generator: make them on the main thread only.
torch::Tensor RankInput(int rank) {
  torch::manual_seed(100 + rank);
  return torch::randn({16, 32});
}

struct Replicas {
  Replicas() : nets{Net(), Net()}, inputs{RankInput(0), RankInput(1)} {}
  Net nets[2];
  torch::Tensor inputs[2];
};

torch::Tensor Loss(Net& net, const torch::Tensor& x) { return net->forward(x).pow(2).mean(); }

// The mean over both ranks of each parameter's gradient, computed in one
// process: the gradient of the mean of the two ranks' losses.
std::vector<torch::Tensor> ReferenceGradients() {
  Net net;
  torch::Tensor loss = (Loss(net, RankInput(0)) + Loss(net, RankInput(1))) / 2;
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : net->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return grads;
}

void ExpectMeanGradients(bool overlap, int64_t bucket_bytes, int64_t expected_buckets) {
  const std::vector<torch::Tensor> reference = ReferenceGradients();
  Replicas replicas;
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::ReducerOptions options;
    options.overlap = overlap;
    options.bucket_bytes = bucket_bytes;
    dist::GradientReducer reducer(*group.communicator, options);
    Net& net = replicas.nets[rank];
    std::vector<torch::Tensor> params = net->parameters();
    EXPECT_EQ(static_cast<int64_t>(reducer.BucketCount(params)), expected_buckets);
    for (int repeat = 0; repeat < 2; ++repeat) {  // the plan is reused
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      reducer.BeforeBackward(params);
      Loss(net, replicas.inputs[rank]).backward();
      reducer.Synchronize(params);
      for (size_t i = 0; i < params.size(); ++i) {
        if (!reference[i].defined()) {
          EXPECT_FALSE(params[i].grad().defined()) << "parameter " << i << " had no gradient; it must not get one";
          continue;
        }
        ASSERT_TRUE(params[i].grad().defined()) << i;
        EXPECT_TRUE(torch::allclose(params[i].grad(), reference[i], 1e-5, 1e-7))
            << "parameter " << i << " rank " << rank << " overlap " << overlap;
      }
    }
    const dist::ReducerStats stats = reducer.stats();
    EXPECT_EQ(stats.buckets, 2 * expected_buckets);
    if (overlap) {
      // The first backward learns that the head is unused (its bucket holds
      // back the rest once); from the second on, every bucket is started by a
      // hook while backward is still running.
      EXPECT_GE(stats.launched_in_backward, expected_buckets);
    } else {
      EXPECT_EQ(stats.launched_in_backward, 0);
    }
  });
}

TEST(GradientReducerTest, MeanGradientsWithOverlapInOneBucket) { ExpectMeanGradients(true, 25 << 20, 1); }

TEST(GradientReducerTest, MeanGradientsWithOverlapInManyBuckets) {
  // 4-byte buckets: every parameter tensor is its own bucket.
  ExpectMeanGradients(true, 4, 8);
}

TEST(GradientReducerTest, MeanGradientsWithoutOverlap) { ExpectMeanGradients(false, 4, 8); }

TEST(GradientReducerTest, BucketsFollowTheSizeSetting) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    // Four 1 MiB parameters.
    std::vector<torch::Tensor> params;
    for (int i = 0; i < 4; ++i) params.push_back(torch::zeros({1 << 18}).requires_grad_());
    dist::ReducerOptions two_mib;
    two_mib.bucket_bytes = 2 << 20;
    EXPECT_EQ(dist::GradientReducer(*group.communicator, two_mib).BucketCount(params), 2u);
    dist::ReducerOptions big;
    EXPECT_EQ(dist::GradientReducer(*group.communicator, big).BucketCount(params), 1u);
    dist::ReducerOptions tiny;
    tiny.bucket_bytes = 1;
    EXPECT_EQ(dist::GradientReducer(*group.communicator, tiny).BucketCount(params), 4u);
  });
}

TEST(GradientReducerTest, OptimisersKeepSeparatePlansAndLeaveOthersGradientsAlone) {
  const std::vector<torch::Tensor> reference = ReferenceGradients();
  Replicas replicas;
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::GradientReducer reducer(*group.communicator, {});
    Net& net = replicas.nets[rank];
    std::vector<torch::Tensor> first = net->a->parameters();
    std::vector<torch::Tensor> rest = net->c->parameters();
    // Backward reaches a, b and c, but only `first` is reduced.
    reducer.BeforeBackward(first);
    Loss(net, replicas.inputs[rank]).backward();
    reducer.Synchronize(first);
    EXPECT_TRUE(torch::allclose(net->a->weight.grad(), reference[0], 1e-5, 1e-7));
    const torch::Tensor local_c = net->c->weight.grad().clone();
    // c's gradient is still this rank's own (the two ranks' inputs differ).
    EXPECT_FALSE(torch::allclose(local_c, reference[4], 1e-5, 1e-7));
    // Now c on its own plan.
    for (auto& p : rest) p.mutable_grad() = torch::Tensor();
    reducer.BeforeBackward(rest);
    Loss(net, replicas.inputs[rank]).backward();
    reducer.Synchronize(rest);
    EXPECT_TRUE(torch::allclose(net->c->weight.grad(), reference[4], 1e-5, 1e-7));
  });
}

TEST(GradientReducerTest, AveragesValuesAndBroadcastsFromRankZero) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    dist::GradientReducer reducer(*group.communicator, {});
    std::vector<double> values{static_cast<double>(rank), 0.25 + rank};
    reducer.AverageValues(values);
    EXPECT_DOUBLE_EQ(values[0], 0.5);
    EXPECT_DOUBLE_EQ(values[1], 0.75);
    torch::Tensor w = torch::full({3, 3}, static_cast<float>(rank + 5));
    reducer.BroadcastFromFirstRank({w});
    EXPECT_TRUE(torch::equal(w, torch::full({3, 3}, 5.0f)));
  });
}

}  // namespace
}  // namespace dfv
