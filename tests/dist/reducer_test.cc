// GradientReducer on two ranks (threads over loopback Gloo): gradients come
// back as the sum over ranks of each rank's share of the loss (the mean
// gradient) with overlap on and off, whether backward accumulated into the
// reducer's buckets or left gradients of its own; gradients become aliases of
// the buckets; buckets follow the size setting; hooks launch buckets during
// backward once the reducer has learnt which parameters get no gradient; a
// parameter without a gradient stays without one, one that gets a gradient
// again after its bucket left is still reduced, and several optimisers keep
// separate plans.
#include "worker/dist/reducer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "tests/dist/dist_test_util.h"

namespace dfv {
namespace {

// A small MLP with an input layer that only some steps use, identical on
// every rank (seeded). Registered last, that layer's parameters fill the
// first buckets, but backward reaches them last.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    torch::manual_seed(7);
    a = register_module("a", torch::nn::Linear(32, 64));
    b = register_module("b", torch::nn::Linear(64, 64));
    c = register_module("c", torch::nn::Linear(64, 4));
    pre = register_module("pre", torch::nn::Linear(32, 32));
  }
  torch::Tensor forward(const torch::Tensor& x, bool use_pre) {
    return c(torch::relu(b(torch::relu(a(use_pre ? pre(x) : x)))));
  }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr}, pre{nullptr};
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

torch::Tensor Loss(Net& net, const torch::Tensor& x, bool use_pre = false) {
  return net->forward(x, use_pre).pow(2).mean();
}

// What a rank runs backward on: its share of the mean of the two ranks'
// losses (as StepContext::Update does).
void RankBackward(Net& net, const torch::Tensor& x, bool use_pre = false) { (Loss(net, x, use_pre) / 2).backward(); }

// Zeroes gradients in place, as StepContext::Update does.
void ZeroInPlace(std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (auto& p : params) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

// The mean over both ranks of each parameter's gradient, computed in one
// process: the gradient of the mean of the two ranks' losses.
std::vector<torch::Tensor> ReferenceGradients(bool use_pre = false) {
  Net net;
  torch::Tensor loss = (Loss(net, RankInput(0), use_pre) + Loss(net, RankInput(1), use_pre)) / 2;
  loss.backward();
  std::vector<torch::Tensor> grads;
  for (const auto& p : net->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return grads;
}

void ExpectGradients(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& reference,
                     const std::string& context) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (!reference[i].defined()) {
      EXPECT_FALSE(params[i].grad().defined()) << "parameter " << i << " had no gradient; it must not get one; "
                                               << context;
      continue;
    }
    ASSERT_TRUE(params[i].grad().defined()) << i << " " << context;
    EXPECT_TRUE(torch::allclose(params[i].grad(), reference[i], 1e-5, 1e-7)) << "parameter " << i << " " << context;
  }
}

void ExpectMeanGradients(bool overlap, int64_t bucket_bytes, int64_t expected_buckets) {
  const std::vector<torch::Tensor> reference = ReferenceGradients();
  Replicas replicas;
  constexpr int kRepeats = 3;
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::ReducerOptions options;
    options.overlap = overlap;
    options.bucket_bytes = bucket_bytes;
    dist::GradientReducer reducer(*group.communicator, options);
    Net& net = replicas.nets[rank];
    std::vector<torch::Tensor> params = net->parameters();
    EXPECT_EQ(static_cast<int64_t>(reducer.BucketCount(params).value()), expected_buckets);
    // The plan is reused. Repeat 0 starts without gradients (backward makes
    // its own, the reducer copies them in); 1 zeroes in place (backward
    // accumulates into the buckets); 2 drops them again.
    for (int repeat = 0; repeat < kRepeats; ++repeat) {
      if (repeat == 1) {
        ZeroInPlace(params);
      } else {
        for (auto& p : params) p.mutable_grad() = torch::Tensor();
      }
      ASSERT_TRUE(reducer.BeforeBackward(params).ok());
      RankBackward(net, replicas.inputs[rank]);
      ASSERT_TRUE(reducer.Synchronize(params).ok());
      ExpectGradients(params, reference,
                      "rank " + std::to_string(rank) + " overlap " + std::to_string(overlap) + " repeat " +
                          std::to_string(repeat));
    }
    // The gradients are aliases of the buckets: with one bucket, one buffer.
    if (expected_buckets == 1) {
      for (const auto& p : params) {
        if (p.grad().defined()) {
          EXPECT_TRUE(p.grad().is_alias_of(params[0].grad())) << "gradients should share the bucket's buffer";
        }
      }
    }
    const dist::ReducerStats stats = reducer.stats();
    EXPECT_EQ(stats.buckets, kRepeats * expected_buckets);
    // Every parameter's slice of its bucket goes over the wire each time.
    int64_t param_bytes = 0;
    for (const auto& p : params) param_bytes += p.numel() * int64_t{sizeof(float)};
    EXPECT_EQ(stats.bytes, kRepeats * param_bytes);
    EXPECT_EQ(reducer.TakeReducedBytes(), kRepeats * param_bytes);
    EXPECT_EQ(reducer.TakeReducedBytes(), 0) << "counted since the last call";
    if (overlap) {
      // The first backward learns that `pre` gets no gradient (its buckets
      // hold back the rest once); from the second on, every bucket is
      // started by a hook while backward is still running.
      EXPECT_EQ(stats.launched_in_backward, (kRepeats - 1) * expected_buckets);
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

// `pre` gets a gradient, then none (the reducer stops waiting for it), then
// one again, which backward produces after its bucket has been launched
// without it: that gradient is reduced on its own, and every step's gradients
// are the means.
TEST(GradientReducerTest, AGradientThatComesBackAfterItsBucketLeftIsStillReduced) {
  const std::vector<torch::Tensor> with_pre = ReferenceGradients(true);
  std::vector<torch::Tensor> without_pre = ReferenceGradients(false);
  Replicas replicas;
  testing::RunRanks(2, [&](int rank, dist::ProcessGroup& group) {
    dist::ReducerOptions options;
    options.bucket_bytes = 4;  // one bucket per tensor; pre's leave first
    dist::GradientReducer reducer(*group.communicator, options);
    Net& net = replicas.nets[rank];
    std::vector<torch::Tensor> params = net->parameters();
    const bool uses_pre[] = {true, false, true, true};
    for (size_t step = 0; step < std::size(uses_pre); ++step) {
      ZeroInPlace(params);
      ASSERT_TRUE(reducer.BeforeBackward(params).ok());
      RankBackward(net, replicas.inputs[rank], uses_pre[step]);
      ASSERT_TRUE(reducer.Synchronize(params).ok());
      // Without `pre` this step, its gradient is the zeroed one.
      std::vector<torch::Tensor> expected = uses_pre[step] ? with_pre : without_pre;
      if (!uses_pre[step]) {
        for (size_t i = 6; i < 8; ++i) expected[i] = torch::zeros_like(with_pre[i]);
      }
      ExpectGradients(params, expected, "rank " + std::to_string(rank) + " step " + std::to_string(step));
    }
    // Step 2's two gradients of `pre` came after their buckets had left.
    EXPECT_EQ(reducer.stats().late_gradients, 2);
  });
}

TEST(GradientReducerTest, BucketsFollowTheSizeSetting) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    // Four 1 MiB parameters.
    std::vector<torch::Tensor> params;
    for (int i = 0; i < 4; ++i) params.push_back(torch::zeros({1 << 18}).requires_grad_());
    auto buckets = [&](int64_t bucket_bytes) {
      dist::ReducerOptions options;
      options.bucket_bytes = bucket_bytes;
      return dist::GradientReducer(*group.communicator, options).BucketCount(params).value();
    };
    EXPECT_EQ(buckets(2 << 20), 2u);
    EXPECT_EQ(buckets(25 << 20), 1u);
    EXPECT_EQ(buckets(1), 4u);  // one each
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
    ASSERT_TRUE(reducer.BeforeBackward(first).ok());
    RankBackward(net, replicas.inputs[rank]);
    ASSERT_TRUE(reducer.Synchronize(first).ok());
    EXPECT_TRUE(torch::allclose(net->a->weight.grad(), reference[0], 1e-5, 1e-7));
    const torch::Tensor local_c = 2 * net->c->weight.grad();
    // c's gradient is still this rank's own (the two ranks' inputs differ).
    EXPECT_FALSE(torch::allclose(local_c, reference[4], 1e-5, 1e-7));
    // Now c on its own plan.
    for (auto& p : rest) p.mutable_grad() = torch::Tensor();
    ASSERT_TRUE(reducer.BeforeBackward(rest).ok());
    RankBackward(net, replicas.inputs[rank]);
    ASSERT_TRUE(reducer.Synchronize(rest).ok());
    EXPECT_TRUE(torch::allclose(net->c->weight.grad(), reference[4], 1e-5, 1e-7));
  });
}

TEST(GradientReducerTest, AveragesValuesAndBroadcastsFromRankZero) {
  testing::RunRanks(2, [](int rank, dist::ProcessGroup& group) {
    dist::GradientReducer reducer(*group.communicator, {});
    std::vector<double> values{static_cast<double>(rank), 0.25 + rank};
    ASSERT_TRUE(reducer.AverageValues(values).ok());
    EXPECT_DOUBLE_EQ(values[0], 0.5);
    EXPECT_DOUBLE_EQ(values[1], 0.75);
    torch::Tensor w = torch::full({3, 3}, static_cast<float>(rank + 5));
    ASSERT_TRUE(reducer.BroadcastFromFirstRank({w}).ok());
    EXPECT_TRUE(torch::equal(w, torch::full({3, 3}, 5.0f)));
  });
}

}  // namespace
}  // namespace dfv
