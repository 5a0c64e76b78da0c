#include "worker/models/conv_transpose.h"

#include <torch/csrc/autograd/custom_function.h>

#include <tuple>
#include <vector>

namespace dfv::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kUnitDilation[] = {1, 1};
constexpr int64_t kNoOutputPadding[] = {0, 0};
// oneDNN's channel block for float32 on AVX-512 (its blocked layouts,
// aBcd16b): an output with fewer channels is padded up to it.
constexpr int64_t kOneDnnChannelBlock = 16;

// The transposed convolution of `input` by `weight` ([in, out, kh, kw]) as
// the input gradient of the convolution by `weight`; bias added by the
// caller.
class TransposeAsConvolution : public torch::autograd::Function<TransposeAsConvolution> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                               std::vector<int64_t> stride, std::vector<int64_t> padding,
                               std::vector<int64_t> output_padding) {
    torch::Tensor output;
    if (weight.size(1) < kOneDnnChannelBlock) {
      // oneDNN would compute the output's channels padded to a whole block:
      // 16 -> 1 channels at 28x28, batch 64, took 1.1 ms that way against
      // 0.3 ms through the stock operator (DNNL_VERBOSE=1 in a vae step).
      output = at::conv_transpose2d(input, weight, {}, stride, padding, output_padding);
    } else {
      // Only its shape is read: the convolution's input, whose gradient the
      // transposed convolution is.
      std::vector<int64_t> shape = {input.size(0), weight.size(1), 0, 0};
      for (int d = 0; d < 2; ++d) {
        shape[2 + d] = (input.size(2 + d) - 1) * stride[d] - 2 * padding[d] + weight.size(2 + d) + output_padding[d];
      }
      const torch::Tensor output_shape = torch::empty(shape, input.options());
      output = std::get<0>(at::convolution_backward(input.contiguous(), output_shape, weight, c10::nullopt, stride,
                                                    padding, kUnitDilation, /*transposed=*/false, kNoOutputPadding,
                                                    /*groups=*/1, {true, false, false}));
    }
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = std::move(stride);
    ctx->saved_data["padding"] = std::move(padding);
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& input = saved[0];
    const torch::Tensor& weight = saved[1];
    const std::vector<int64_t> stride = ctx->saved_data["stride"].toIntVector();
    const std::vector<int64_t> padding = ctx->saved_data["padding"].toIntVector();
    const torch::Tensor grad = grad_outputs[0].contiguous();
    torch::Tensor grad_input, grad_weight;
    if (ctx->needs_input_grad(0)) {
      // The convolution by the same weight maps the output's space back onto
      // the input's (output padding is below the stride, so the sizes agree).
      grad_input = at::convolution(grad, weight, c10::nullopt, stride, padding, kUnitDilation, /*transposed=*/false,
                                   kNoOutputPadding, /*groups=*/1);
    }
    if (ctx->needs_input_grad(1)) {
      // <grad, T_w x> = <conv_w(grad), x>: the weight gradient of the
      // convolution of `grad` whose output gradient is `input`.
      grad_weight = std::get<1>(at::convolution_backward(input.contiguous(), grad, weight, c10::nullopt, stride,
                                                         padding, kUnitDilation, /*transposed=*/false,
                                                         kNoOutputPadding, /*groups=*/1, {false, true, false}));
    }
    return {grad_input, grad_weight, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool ConvolutionServesTranspose(const torch::Tensor& input, const torch::Tensor& weight, torch::IntArrayRef dilation,
                                int64_t groups) {
  return input.device().is_cpu() && input.layout() == torch::kStrided && input.scalar_type() == torch::kFloat32 &&
         weight.scalar_type() == torch::kFloat32 && weight.layout() == torch::kStrided && input.dim() == 4 &&
         weight.dim() == 4 && groups == 1 && dilation.size() == 2 && dilation[0] == 1 && dilation[1] == 1;
}

torch::Tensor ConvTranspose2dAsConvolution(const torch::Tensor& input, const torch::Tensor& weight,
                                           const torch::Tensor& bias, torch::IntArrayRef stride,
                                           torch::IntArrayRef padding, torch::IntArrayRef output_padding) {
  TORCH_CHECK(ConvolutionServesTranspose(input, weight, kUnitDilation, 1),
              "ConvTranspose2dAsConvolution: needs a 4-D CPU float32 input and weight, got ", input.sizes(), " ",
              input.dtype(), " on ", input.device(), " and ", weight.sizes());
  TORCH_CHECK(input.size(1) == weight.size(0), "ConvTranspose2dAsConvolution: input has ", input.size(1),
              " channels, the weight expects ", weight.size(0));
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && output_padding.size() == 2,
              "ConvTranspose2dAsConvolution: stride, padding and output_padding need 2 values each");
  for (int d = 0; d < 2; ++d) {
    TORCH_CHECK(output_padding[d] >= 0 && output_padding[d] < stride[d],
                "ConvTranspose2dAsConvolution: output padding must be below the stride, got ", output_padding,
                " and ", stride);
  }
  torch::Tensor output = TransposeAsConvolution::apply(input, weight, stride.vec(), padding.vec(), output_padding.vec());
  if (bias.defined()) output = output + bias.view({1, -1, 1, 1});
  return output;
}

torch::Tensor ConvTranspose2dOneDnnImpl::forward(const torch::Tensor& input,
                                                 const c10::optional<at::IntArrayRef>& output_size) {
  const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&options.padding());
  if (output_size.has_value() || padding == nullptr ||
      !ConvolutionServesTranspose(input, weight, options.dilation(), options.groups())) {
    return torch::nn::ConvTranspose2dImpl::forward(input, output_size);
  }
  return ConvTranspose2dAsConvolution(input, weight, bias, options.stride(), *padding, options.output_padding());
}

}  // namespace dfv::models
