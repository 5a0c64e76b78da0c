#include "worker/models/split_codes.h"

#include <utility>

#include "worker/models/grid.h"

namespace dfv::models {

torch::Tensor ReconstructWithSplitCodes(SplitEncoder& encoder, SplitDecoder& decoder, const torch::Tensor& images) {
  SplitCodes c = encoder->forward(images);
  return decoder->forward(c.mu, c.s);
}

std::map<std::string, torch::Tensor> EncodeSplitCodes(SplitEncoder& encoder, const torch::Tensor& images) {
  SplitCodes c = encoder->forward(images);
  return {{"s", c.s}, {"z", c.mu}, {Model::kZLogVariance, c.logvar}};
}

torch::Tensor DecodeSplitCodes(SplitDecoder& decoder, const torch::Tensor& s, const torch::Tensor& z) {
  return decoder->forward(z, s);
}

torch::Tensor SplitCodesGrid(const std::string& model, const std::string& name, const GridInputs& in,
                             SplitEncoder& encoder, SplitDecoder& decoder) {
  torch::Tensor grid = SplitCodeGrid(
      name, in.images, in.labels,
      [&encoder](const torch::Tensor& x) {
        SplitCodes c = encoder->forward(x);
        return std::make_pair(c.s, c.mu);
      },
      [&decoder](const torch::Tensor& s, const torch::Tensor& z) { return decoder->forward(z, s); });
  TORCH_CHECK(grid.defined(), model, " has no grid named '", name, "'");
  return grid;
}

}  // namespace dfv::models
