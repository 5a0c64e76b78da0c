// Transposed convolutions through oneDNN (worker/models/conv_transpose.h):
// forward and every gradient equal the stock operator's to float rounding on
// the catalogue's layer shapes and on odd ones (output padding, non-square,
// bias, three channels); the module is a drop-in nn::ConvTranspose2d.
#include "worker/models/conv_transpose.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "worker/models/nets.h"

namespace dfv::models {
namespace {

struct Case {
  std::string name;
  std::vector<int64_t> input;   // N, C_in, H, W
  std::vector<int64_t> weight;  // C_in, C_out, kH, kW
  std::vector<int64_t> stride, padding, output_padding;
  bool bias;
};

// Every transposed convolution of the catalogue at 28x28 (nets.cc's decoder
// trunk, gan_nets.cc's generator, lord.cc's decoder), then shapes the
// catalogue does not use.
std::vector<Case> Cases() {
  return {
      {"trunk 128->32, 2x2", {8, 128, 2, 2}, {128, 32, 4, 4}, {2, 2}, {0, 0}, {0, 0}, false},
      {"trunk 32->16, 6x6", {8, 32, 6, 6}, {32, 16, 4, 4}, {2, 2}, {0, 0}, {0, 0}, false},
      {"trunk 16->1, 14x14", {8, 16, 14, 14}, {16, 1, 4, 4}, {2, 2}, {1, 1}, {0, 0}, true},
      {"generator 100->64, 1x1", {8, 100, 1, 1}, {100, 64, 7, 7}, {1, 1}, {0, 0}, {0, 0}, false},
      {"generator 64->32, 7x7", {8, 64, 7, 7}, {64, 32, 4, 4}, {2, 2}, {1, 1}, {0, 0}, false},
      {"generator 32->3, 14x14", {8, 32, 14, 14}, {32, 3, 4, 4}, {2, 2}, {1, 1}, {0, 0}, true},
      {"lord 128->64, 4x4", {8, 128, 4, 4}, {128, 64, 4, 4}, {2, 2}, {1, 1}, {0, 0}, true},
      {"output padding, non-square", {3, 5, 4, 7}, {5, 6, 3, 2}, {2, 3}, {1, 0}, {1, 2}, true},
      {"batch 1, stride 1", {1, 4, 5, 5}, {4, 2, 3, 3}, {1, 1}, {1, 1}, {0, 0}, true},
  };
}

// |a - b| <= 1e-5 * max|b| + 1e-6 everywhere: float rounding in another
// summation order, not a different result.
void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = b.abs().max().item<double>();
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, 1e-5 * scale + 1e-6) << what << ": max |difference| " << diff << " at max |value| " << scale;
}

TEST(ConvTransposeTest, ForwardAndGradientsEqualTheStockOperator) {
  torch::manual_seed(7);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const torch::Tensor x = torch::randn(c.input).requires_grad_();
    const torch::Tensor w = torch::randn(c.weight).mul_(0.1).requires_grad_();
    const torch::Tensor b = c.bias ? torch::randn({c.weight[1]}).requires_grad_() : torch::Tensor();
    ASSERT_TRUE(ConvolutionServesTranspose(x, w, {1, 1}, 1));

    const torch::Tensor expected = torch::conv_transpose2d(x, w, b, c.stride, c.padding, c.output_padding);
    const torch::Tensor actual = ConvTranspose2dAsConvolution(x, w, b, c.stride, c.padding, c.output_padding);
    ExpectClose(actual, expected, "output");

    const torch::Tensor grad = torch::randn(expected.sizes());
    std::vector<torch::Tensor> inputs = {x, w};
    if (c.bias) inputs.push_back(b);
    const auto expected_grads = torch::autograd::grad({expected}, inputs, {grad});
    const auto actual_grads = torch::autograd::grad({actual}, inputs, {grad});
    ExpectClose(actual_grads[0], expected_grads[0], "input gradient");
    ExpectClose(actual_grads[1], expected_grads[1], "weight gradient");
    if (c.bias) ExpectClose(actual_grads[2], expected_grads[2], "bias gradient");
  }
}

TEST(ConvTransposeTest, ComputesOnlyTheGradientsAsked) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 8, 5, 5});
  const torch::Tensor w = torch::randn({8, 4, 4, 4}).requires_grad_();
  // The input needs no gradient: only the weight's is computed.
  torch::Tensor y = ConvTranspose2dAsConvolution(x, w, {}, {2, 2}, {1, 1}, {0, 0});
  y.sum().backward();
  EXPECT_FALSE(x.grad().defined());
  ASSERT_TRUE(w.grad().defined());
  const torch::Tensor expected =
      torch::autograd::grad({torch::conv_transpose2d(x, w, {}, {2, 2}, {1, 1}, {0, 0}).sum()}, {w})[0];
  ExpectClose(w.grad(), expected, "weight gradient");

  // A frozen weight: only the input's gradient.
  const torch::Tensor xi = torch::randn({4, 8, 5, 5}).requires_grad_();
  const torch::Tensor frozen = torch::randn({8, 4, 4, 4});
  ConvTranspose2dAsConvolution(xi, frozen, {}, {2, 2}, {1, 1}, {0, 0}).sum().backward();
  ASSERT_TRUE(xi.grad().defined());
  EXPECT_FALSE(frozen.grad().defined());
}

TEST(ConvTransposeTest, RefusesWhatItDoesNotServe) {
  const torch::Tensor w = torch::randn({4, 2, 3, 3});
  EXPECT_FALSE(ConvolutionServesTranspose(torch::randn({1, 4, 3, 3}, torch::kFloat64), w, {1, 1}, 1));
  EXPECT_FALSE(ConvolutionServesTranspose(torch::randn({4, 3, 3}), w, {1, 1}, 1));
  EXPECT_FALSE(ConvolutionServesTranspose(torch::randn({1, 4, 3, 3}), w, {2, 2}, 1));
  EXPECT_FALSE(ConvolutionServesTranspose(torch::randn({1, 4, 3, 3}), w, {1, 1}, 2));
  EXPECT_THROW(ConvTranspose2dAsConvolution(torch::randn({1, 4, 3, 3}), w, {}, {2, 2}, {0, 0}, {2, 0}), c10::Error);
  EXPECT_THROW(ConvTranspose2dAsConvolution(torch::randn({1, 3, 3, 3}), w, {}, {1, 1}, {0, 0}, {0, 0}), c10::Error);
}

TEST(ConvTransposeTest, TheModuleIsADropInConvTranspose2d) {
  const auto options = torch::nn::ConvTranspose2dOptions(6, 3, 4).stride(2).padding(1);
  torch::manual_seed(11);
  torch::nn::ConvTranspose2d stock(options);
  torch::manual_seed(11);
  ConvTranspose2dOneDnn fast(options);

  // The same parameters under the same names, initialised alike.
  const auto stock_params = stock->named_parameters();
  const auto fast_params = fast->named_parameters();
  ASSERT_EQ(stock_params.keys(), fast_params.keys());
  for (const auto& p : stock_params) EXPECT_TRUE(torch::equal(p.value(), fast_params[p.key()])) << p.key();
  // InitNormal (and anything else that looks for nn::ConvTranspose2dImpl)
  // finds it.
  torch::nn::Sequential net(fast);
  InitNormal(*net, 0.05);
  EXPECT_TRUE(torch::all(fast->bias == 0).item<bool>());
  EXPECT_NEAR(fast->weight.std().item<double>(), 0.05, 0.02);
  {
    torch::NoGradGuard no_grad;
    stock->weight.copy_(fast->weight);
    stock->bias.copy_(fast->bias);
  }

  const torch::Tensor x = torch::randn({2, 6, 5, 5});
  ExpectClose(net->forward(x), stock->forward(x), "through a Sequential");
  // Through the stock operator where oneDNN does not serve: an explicit
  // output size, a double input.
  ExpectClose(fast->forward(x, at::IntArrayRef{11, 11}), stock->forward(x, at::IntArrayRef{11, 11}), "output size");
  fast->to(torch::kFloat64);
  stock->to(torch::kFloat64);
  const torch::Tensor xd = x.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(fast->forward(xd), stock->forward(xd)));
}

}  // namespace
}  // namespace dfv::models
