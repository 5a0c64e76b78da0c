#include "worker/data/image_set.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dfv::data {
namespace {

uint8_t RoundToByte(float v) {
  if (!(v > 0.0f)) return 0;  // also maps NaN to 0
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v + 0.5f);
}

// Separable resampling weights for one axis: for every output coordinate, the
// first contributing input coordinate and the normalised weights.
struct AxisWeights {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // out_size * max_taps, row o starts at o * max_taps
  int max_taps = 0;
};

AxisWeights ComputeAxisWeights(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  // Triangle filter of radius 1 in input pixels, stretched by the scale when
  // shrinking so every input pixel contributes (area-correct downsampling).
  const double support = std::max(scale, 1.0);
  AxisWeights w;
  w.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(out_size);
  w.count.resize(out_size);
  w.weights.assign(static_cast<size_t>(out_size) * w.max_taps, 0.0f);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;  // in input pixel units
    int lo = std::max(0, static_cast<int>(std::floor(center - support)));
    int hi = std::min(in_size, static_cast<int>(std::ceil(center + support)));
    std::vector<double> taps;
    double total = 0.0;
    for (int i = lo; i < hi; ++i) {
      double t = std::abs((i + 0.5 - center) / support);
      double v = t < 1.0 ? 1.0 - t : 0.0;
      taps.push_back(v);
      total += v;
    }
    // Trim zero taps at both ends so count stays within max_taps.
    int begin = 0;
    int end = static_cast<int>(taps.size());
    while (begin < end && taps[begin] == 0.0) ++begin;
    while (end > begin && taps[end - 1] == 0.0) --end;
    if (begin == end) {  // cannot happen for in_size >= 1; keep a safe fallback
      begin = 0;
      end = 1;
      taps.assign(1, 1.0);
      total = 1.0;
      lo = std::min(std::max(0, static_cast<int>(center)), in_size - 1);
    }
    w.first[o] = lo + begin;
    w.count[o] = std::min(end - begin, w.max_taps);
    for (int k = 0; k < w.count[o]; ++k) {
      w.weights[static_cast<size_t>(o) * w.max_taps + k] = static_cast<float>(taps[begin + k] / total);
    }
  }
  return w;
}

}  // namespace

absl::Status ValidateImageSet(const ImageSet& set) {
  if (set.size < 0) return absl::InvalidArgumentError(absl::StrCat("negative image count ", set.size));
  if (set.channels != 1 && set.channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("channels must be 1 or 3, got ", set.channels));
  }
  if (set.height <= 0 || set.width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad image size ", set.height, "x", set.width));
  }
  if (static_cast<int64_t>(set.pixels.size()) != set.size * set.ImageBytes()) {
    return absl::InvalidArgumentError(absl::StrCat("pixel buffer holds ", set.pixels.size(), " bytes, expected ",
                                                   set.size * set.ImageBytes()));
  }
  if (static_cast<int64_t>(set.labels.size()) != set.size) {
    return absl::InvalidArgumentError(absl::StrCat(set.labels.size(), " labels for ", set.size, " images"));
  }
  if (set.num_classes <= 0) return absl::InvalidArgumentError("num_classes must be positive");
  if (static_cast<int>(set.class_names.size()) != set.num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat(set.class_names.size(), " class names for ", set.num_classes, " classes"));
  }
  for (int64_t i = 0; i < set.size; ++i) {
    int64_t l = set.labels[static_cast<size_t>(i)];
    if (l < 0 || l >= set.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", l, " of image ", i, " is outside [0, ", set.num_classes, ")"));
    }
  }
  if (static_cast<int64_t>(set.factors.size()) != set.size * set.NumFactors()) {
    return absl::InvalidArgumentError(absl::StrCat(set.factors.size(), " factor values, expected ",
                                                   set.size * set.NumFactors()));
  }
  return absl::OkStatus();
}

ImageSet TakeFirst(const ImageSet& set, int64_t n) {
  n = std::clamp<int64_t>(n, 0, set.size);
  ImageSet out;
  out.size = n;
  out.channels = set.channels;
  out.height = set.height;
  out.width = set.width;
  out.pixels.assign(set.pixels.begin(), set.pixels.begin() + n * set.ImageBytes());
  out.labels.assign(set.labels.begin(), set.labels.begin() + n);
  out.num_classes = set.num_classes;
  out.class_names = set.class_names;
  out.factor_names = set.factor_names;
  out.factors.assign(set.factors.begin(), set.factors.begin() + n * set.NumFactors());
  return out;
}

ImageSet ResizeImages(const ImageSet& set, int height, int width) {
  if (height == set.height && width == set.width) return set;
  ImageSet out;
  out.size = set.size;
  out.channels = set.channels;
  out.height = height;
  out.width = width;
  out.labels = set.labels;
  out.num_classes = set.num_classes;
  out.class_names = set.class_names;
  out.factor_names = set.factor_names;
  out.factors = set.factors;
  out.pixels.resize(static_cast<size_t>(out.size * out.ImageBytes()));

  const AxisWeights wx = ComputeAxisWeights(set.width, width);
  const AxisWeights wy = ComputeAxisWeights(set.height, height);
  // Horizontal pass into a float buffer (in_h x out_w), then vertical pass.
  std::vector<float> tmp(static_cast<size_t>(set.height) * width);
  const int64_t planes = set.size * set.channels;
  for (int64_t p = 0; p < planes; ++p) {
    const uint8_t* src = set.pixels.data() + p * set.height * set.width;
    uint8_t* dst = out.pixels.data() + p * height * width;
    for (int y = 0; y < set.height; ++y) {
      const uint8_t* row = src + static_cast<int64_t>(y) * set.width;
      for (int x = 0; x < width; ++x) {
        const float* w = &wx.weights[static_cast<size_t>(x) * wx.max_taps];
        const uint8_t* in = row + wx.first[x];
        float acc = 0.0f;
        for (int k = 0; k < wx.count[x]; ++k) acc += w[k] * in[k];
        tmp[static_cast<size_t>(y) * width + x] = acc;
      }
    }
    for (int y = 0; y < height; ++y) {
      const float* w = &wy.weights[static_cast<size_t>(y) * wy.max_taps];
      uint8_t* out_row = dst + static_cast<int64_t>(y) * width;
      for (int x = 0; x < width; ++x) {
        float acc = 0.0f;
        for (int k = 0; k < wy.count[y]; ++k) {
          acc += w[k] * tmp[static_cast<size_t>(wy.first[y] + k) * width + x];
        }
        out_row[x] = RoundToByte(acc);
      }
    }
  }
  return out;
}

absl::StatusOr<ImageSet> ConvertChannels(const ImageSet& set, int channels) {
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("channels must be 1 or 3, got ", channels));
  }
  if (set.channels != 1 && set.channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("cannot convert images with ", set.channels, " channels"));
  }
  if (channels == set.channels) return set;
  ImageSet out = set;
  out.channels = channels;
  out.pixels.assign(static_cast<size_t>(out.size * out.ImageBytes()), 0);
  const int64_t plane = int64_t{set.height} * set.width;
  for (int64_t i = 0; i < set.size; ++i) {
    const uint8_t* src = set.Image(i);
    uint8_t* dst = out.pixels.data() + i * out.ImageBytes();
    if (channels == 3) {
      for (int c = 0; c < 3; ++c) std::copy(src, src + plane, dst + c * plane);
    } else {
      for (int64_t k = 0; k < plane; ++k) {
        // Integer BT.601 luma with weights summing to 1000, rounded half up.
        int v = 299 * src[k] + 587 * src[plane + k] + 114 * src[2 * plane + k];
        dst[k] = static_cast<uint8_t>((v + 500) / 1000);
      }
    }
  }
  return out;
}

}  // namespace dfv::data
