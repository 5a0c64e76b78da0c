// StepContext::Update in one process: it fills only the gradients of the
// optimiser it steps, and those are the gradients a plain backward gives.
#include "worker/step/step_context.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace dfv::step {
namespace {

// A decoder `dec` feeding an encoder `enc`, as in cycle_vae's reverse cycle:
// the loss depends on both, the optimiser trains only the encoder.
struct Chain {
  Chain() {
    torch::manual_seed(3);
    dec = torch::nn::Linear(8, 16);
    enc = torch::nn::Linear(16, 4);
    input = torch::randn({5, 8}).requires_grad_(true);  // a leaf nobody trains
  }
  torch::Tensor Loss() { return enc(torch::tanh(dec(input))).pow(2).mean(); }
  torch::nn::Linear dec{nullptr}, enc{nullptr};
  torch::Tensor input;
};

TEST(StepContextUpdate, FillsOnlyTheGradientsOfTheOptimiserItSteps) {
  // What a plain backward gives the encoder, and where it steps it.
  Chain plain;
  torch::optim::SGD plain_opt(plain.enc->parameters(), torch::optim::SGDOptions(0.1));
  plain_opt.zero_grad();
  plain.Loss().backward();
  ASSERT_TRUE(plain.dec->weight.grad().defined());  // a plain backward fills these too
  const torch::Tensor plain_grad = plain.enc->weight.grad().clone();
  plain_opt.step();

  Chain chain;
  torch::optim::SGD opt(chain.enc->parameters(), torch::optim::SGDOptions(0.1));
  StepContext ctx(/*sync=*/nullptr);
  ctx.Update(chain.Loss(), opt);
  // The encoder's gradients and step are the plain backward's...
  ASSERT_TRUE(chain.enc->weight.grad().defined());
  EXPECT_TRUE(torch::allclose(chain.enc->weight.grad(), plain_grad, 1e-6, 1e-8));
  EXPECT_TRUE(torch::allclose(chain.enc->weight, plain.enc->weight, 1e-6, 1e-8));
  EXPECT_TRUE(torch::allclose(chain.enc->bias, plain.enc->bias, 1e-6, 1e-8));
  // ...and the branch that leads only to the decoder and the input was never
  // run: nothing accumulated there.
  EXPECT_FALSE(chain.dec->weight.grad().defined());
  EXPECT_FALSE(chain.dec->bias.grad().defined());
  EXPECT_FALSE(chain.input.grad().defined());
}

TEST(StepContextUpdate, AFrozenParameterInTheOptimiserIsSkippedNotAnError) {
  Chain chain;
  chain.enc->bias.requires_grad_(false);  // frozen, as gan_nets' Frozen does
  torch::optim::SGD opt(chain.enc->parameters(), torch::optim::SGDOptions(0.1));
  StepContext ctx(/*sync=*/nullptr);
  const torch::Tensor bias = chain.enc->bias.clone();
  ctx.Update(chain.Loss(), opt);
  EXPECT_TRUE(chain.enc->weight.grad().defined());
  EXPECT_FALSE(chain.enc->bias.grad().defined());
  EXPECT_TRUE(torch::equal(chain.enc->bias, bias));
}

}  // namespace
}  // namespace dfv::step
