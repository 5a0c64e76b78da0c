// 8-bit PNG encoding and decoding (libpng's simplified API).
#ifndef DFV_COMMON_PNG_H_
#define DFV_COMMON_PNG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dfv {

// An 8-bit image, interleaved (HWC): channels is 1 (grey) or 3 (RGB).
struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels bytes
};

// Encodes `image` as PNG bytes. INVALID_ARGUMENT for a malformed image.
absl::StatusOr<std::string> EncodePng(const Image8& image);

// Decodes PNG bytes into grey (if the file is grey) or RGB.
absl::StatusOr<Image8> DecodePng(const std::string& bytes);

// Encodes and writes atomically.
absl::Status WritePngFile(const std::string& path, const Image8& image);
absl::StatusOr<Image8> ReadPngFile(const std::string& path);

}  // namespace dfv

#endif  // DFV_COMMON_PNG_H_
