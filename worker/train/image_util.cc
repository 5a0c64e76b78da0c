#include "worker/train/image_util.h"

#include <cstring>

namespace dfv::train {

Image8 TensorToImage8(const torch::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3),
              "expected a [1|3, H, W] image tensor, got ", image.sizes());
  torch::Tensor hwc = (image.detach().to(torch::kCPU, torch::kFloat).clamp(0, 1) * 255.0)
                          .round()
                          .to(torch::kUInt8)
                          .permute({1, 2, 0})
                          .contiguous();
  Image8 out;
  out.channels = static_cast<int>(image.size(0));
  out.height = static_cast<int>(image.size(1));
  out.width = static_cast<int>(image.size(2));
  out.pixels.resize(hwc.numel());
  std::memcpy(out.pixels.data(), hwc.data_ptr<uint8_t>(), out.pixels.size());
  return out;
}

torch::Tensor Image8ToTensor(const Image8& image) {
  torch::Tensor hwc = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                       {image.height, image.width, image.channels}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).to(torch::kFloat).div(255.0).contiguous();
}

}  // namespace dfv::train
