// What the models built on SplitEncoder and SplitDecoder (cycle_vae,
// mathieu) share outside training: the unspecified code z is the encoder's
// mean, the specified code s its s head, and the decoder takes (z, s).
#ifndef DFV_WORKER_MODELS_SPLIT_CODES_H_
#define DFV_WORKER_MODELS_SPLIT_CODES_H_

#include <torch/torch.h>

#include <map>
#include <string>

#include "worker/models/model.h"
#include "worker/models/nets.h"

namespace dfv::models {

// decoder(z = mu, s) of each image: Model::Reconstruct.
torch::Tensor ReconstructWithSplitCodes(SplitEncoder& encoder, SplitDecoder& decoder, const torch::Tensor& images);

// {"s": s, "z": mu}: Model::Encode.
std::map<std::string, torch::Tensor> EncodeSplitCodes(SplitEncoder& encoder, const torch::Tensor& images);

// decoder(z, s): Model::Decode.
torch::Tensor DecodeSplitCodes(SplitDecoder& decoder, const torch::Tensor& s, const torch::Tensor& z);

// SplitCodeGrid's grids (reconstruction, swap, interpolation) of `in`;
// Model::RenderGrid. Throws, naming `model`, for any other grid name.
torch::Tensor SplitCodesGrid(const std::string& model, const std::string& name, const GridInputs& in,
                             SplitEncoder& encoder, SplitDecoder& decoder);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_SPLIT_CODES_H_
