// Conversion between image tensors and 8-bit images.
#ifndef DFV_WORKER_TRAIN_IMAGE_UTIL_H_
#define DFV_WORKER_TRAIN_IMAGE_UTIL_H_

#include <torch/torch.h>

#include "common/png.h"

namespace dfv::train {

// [C, H, W] float in [0, 1] (values are clamped), C = 1 or 3 -> 8-bit HWC.
Image8 TensorToImage8(const torch::Tensor& image);

// 8-bit HWC -> [C, H, W] float in [0, 1].
torch::Tensor Image8ToTensor(const Image8& image);

}  // namespace dfv::train

#endif  // DFV_WORKER_TRAIN_IMAGE_UTIL_H_
