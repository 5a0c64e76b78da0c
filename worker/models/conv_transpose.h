// Transposed convolutions served by oneDNN. LibTorch 1.13 runs a CPU float
// nn::ConvTranspose2d through slow_conv_transpose2d (im2col and an OpenBLAS
// matrix product, forward and backward), while a plain convolution and both
// halves of its backward go to oneDNN's direct kernels. A transposed
// convolution is the input gradient of the convolution with the same weight,
// so the whole layer can be computed with oneDNN's kernels:
//
//   y  = conv_transpose2d(x, w)  = convolution_backward's input gradient
//                                  for grad_output x, weight w (the stock
//                                  operator for outputs of fewer than 16
//                                  channels, which oneDNN pads to 16)
//   gx = conv2d(gy, w)             (same stride and padding)
//   gw = convolution_backward's weight gradient for input gy, grad_output x
//   gb = gy summed over batch and space
//
// Measured by bench/deconv.cc (dfv_bench_deconv) over the catalogue's layers.
// The results equal slow_conv_transpose2d's to float rounding
// (tests/models/conv_transpose_test.cc), not bit for bit: the kernels sum in
// another order.
#ifndef DFV_WORKER_MODELS_CONV_TRANSPOSE_H_
#define DFV_WORKER_MODELS_CONV_TRANSPOSE_H_

#include <torch/torch.h>

namespace dfv::models {

// True when ConvTranspose2dAsConvolution serves these arguments: a CPU
// float32 input and weight of 4 dimensions, groups 1, dilation 1 (it also
// needs output padding below the stride, as the stock operator does). Elsewhere (CUDA, where cuDNN already serves the layer;
// other types) callers use the stock operator.
bool ConvolutionServesTranspose(const torch::Tensor& input, const torch::Tensor& weight, torch::IntArrayRef dilation,
                                int64_t groups);

// conv_transpose2d(input, weight, bias, stride, padding, output_padding) with
// groups 1 and dilation 1, forward and backward as oneDNN convolutions (see
// above). `bias` may be undefined. Differentiable in input, weight and bias.
// Requires ConvolutionServesTranspose(input, weight, {1, 1}, 1); throws
// c10::Error otherwise, as the stock operator does on bad arguments.
torch::Tensor ConvTranspose2dAsConvolution(const torch::Tensor& input, const torch::Tensor& weight,
                                           const torch::Tensor& bias, torch::IntArrayRef stride,
                                           torch::IntArrayRef padding, torch::IntArrayRef output_padding);

// nn::ConvTranspose2d with the same options, parameters (names, shapes,
// initialisation) and state dict, whose forward goes through
// ConvTranspose2dAsConvolution where that serves it (and through the stock
// operator otherwise, or when an output_size is given). InitNormal and other
// code that looks for nn::ConvTranspose2dImpl find it.
class ConvTranspose2dOneDnnImpl : public torch::nn::ConvTranspose2dImpl {
 public:
  using torch::nn::ConvTranspose2dImpl::ConvTranspose2dImpl;
  torch::Tensor forward(const torch::Tensor& input,
                        const c10::optional<at::IntArrayRef>& output_size = c10::nullopt);

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(c10::optional<at::IntArrayRef>())})
};
TORCH_MODULE(ConvTranspose2dOneDnn);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_CONV_TRANSPOSE_H_
