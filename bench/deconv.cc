// dfv_bench_deconv: forward plus backward of every transposed convolution in
// the catalogue (the 28x28 examples' layer shapes, batch 64), through the
// stock nn::ConvTranspose2d (LibTorch 1.13: slow_conv_transpose2d, im2col and
// OpenBLAS) against dfv's ConvTranspose2dOneDnn (worker/models/conv_transpose.h:
// oneDNN's convolution kernels), at each thread count given. Both modules
// hold the same weights; each repetition runs both, the order alternating;
// medians over the repetitions after the warm-up; the ratio is stock / dfv
// (above 1: dfv's is faster). Also the largest relative difference of the
// outputs and gradients, which must be float rounding. glibc malloc keeps
// freed memory as dfv-trainer has it (common/malloc_tuning.h): without that,
// both sides' times depend on which buffers happen to be mmapped fresh, and
// single layers came out up to 7x slower from one run to the next.
//
//   dfv_bench_deconv [--threads 1,2] [--batch 64] [--reps 50] [--warmup 5]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "bench/launch.h"
#include "common/malloc_tuning.h"
#include "worker/models/conv_transpose.h"

namespace {

using Clock = std::chrono::steady_clock;
using dfv::bench::Median;

struct Layer {
  const char* where;
  int64_t in, out, kernel, stride, padding, size;  // size: the input's height and width
};

// worker/models/nets.cc's DeconvTrunk (the decoders of vae, cycle_vae and
// mathieu), gan_nets.cc's GanGenerator (dcgan, acgan, infogan) and lord.cc's
// generator, at 28x28 grey.
const Layer kLayers[] = {
    {"DeconvTrunk 1", 128, 32, 4, 2, 0, 2},  {"DeconvTrunk 2", 32, 16, 4, 2, 0, 6},
    {"DeconvTrunk 3", 16, 1, 4, 2, 1, 14},   {"GanGenerator 1", 100, 64, 7, 1, 0, 1},
    {"GanGenerator 2", 64, 32, 4, 2, 1, 7},  {"GanGenerator 3", 32, 1, 4, 2, 1, 14},
    {"lord up1", 128, 64, 4, 2, 0, 2},       {"lord up2", 64, 32, 4, 2, 0, 6},
    {"lord out", 32, 1, 4, 2, 1, 14},
};

double MaxRelative(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-30, b.abs().max().item<double>());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfv_bench_deconv: transposed convolutions, stock vs oneDNN (dfv), forward + backward"};
  std::vector<int> threads = {1, 2};
  int batch = 64, reps = 50, warmup = 5;
  app.add_option("--threads", threads, "intra-op thread counts")->delimiter(',');
  app.add_option("--batch", batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed repetitions first")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (absl::Status kept = dfv::KeepFreedMemoryAsTheTrainer(); !kept.ok()) {
    std::fprintf(stderr, "dfv_bench_deconv: %s\n", std::string(kept.message()).c_str());
    return 1;
  }

  std::printf("forward + backward, batch %d, median of %d repetitions (ms); ratio = stock / dfv\n", batch, reps);
  std::printf("%-16s %-22s %7s %9s %9s %7s %10s\n", "layer", "shape", "threads", "stock", "dfv", "ratio",
              "max rel.");
  double stock_sum = 0, dfv_sum = 0;
  for (int t : threads) {
    torch::set_num_threads(t);
    for (const Layer& l : kLayers) {
      const auto options = torch::nn::ConvTranspose2dOptions(l.in, l.out, l.kernel).stride(l.stride).padding(l.padding);
      torch::nn::ConvTranspose2d stock(options);
      dfv::models::ConvTranspose2dOneDnn fast(options);
      {
        torch::NoGradGuard no_grad;
        fast->weight.copy_(stock->weight);
        fast->bias.copy_(stock->bias);
      }
      const torch::Tensor x = torch::randn({batch, l.in, l.size, l.size}).requires_grad_();
      const torch::Tensor grad = torch::randn_like(stock->forward(x));
      auto pass = [&](auto& module) {
        const torch::Tensor y = module->forward(x);
        std::vector<torch::Tensor> g = torch::autograd::grad({y}, {x, module->weight, module->bias}, {grad});
        g.push_back(y);
        return g;
      };
      const std::vector<torch::Tensor> a = pass(stock), b = pass(fast);
      double worst = 0;
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, MaxRelative(b[i], a[i]));
      std::vector<double> stock_ms, fast_ms;
      for (int r = 0; r < warmup + reps; ++r) {
        for (int k = 0; k < 2; ++k) {
          const bool stock_turn = (r + k) % 2 == 0;
          const auto start = Clock::now();
          if (stock_turn) pass(stock); else pass(fast);
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
          if (r >= warmup) (stock_turn ? stock_ms : fast_ms).push_back(ms);
        }
      }
      const double s = Median(stock_ms), f = Median(fast_ms);
      stock_sum += s;
      dfv_sum += f;
      char shape[64];
      std::snprintf(shape, sizeof(shape), "%ldx%ld %ld->%ld k%ld s%ld", static_cast<long>(l.size),
                    static_cast<long>(l.size), static_cast<long>(l.in), static_cast<long>(l.out),
                    static_cast<long>(l.kernel), static_cast<long>(l.stride));
      std::printf("%-16s %-22s %7d %9.3f %9.3f %6.2fx %10.1e\n", l.where, shape, t, s, f, s / f, worst);
    }
    std::printf("%-16s %-22s %7d %9.3f %9.3f %6.2fx\n", "all layers", "", t, stock_sum, dfv_sum,
                stock_sum / dfv_sum);
    stock_sum = dfv_sum = 0;
  }
  return 0;
}
