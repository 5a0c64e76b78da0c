#include "worker/data/tensor.h"

#include <array>
#include <exception>
#include <string>

#include "absl/strings/str_cat.h"

namespace dfv::data {
namespace {

absl::Status CheckIndices(const ImageSet& set, const std::vector<int64_t>& indices) {
  for (size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] < 0 || indices[k] >= set.size) {
      return absl::InvalidArgumentError(
          absl::StrCat("index ", indices[k], " (position ", k, ") is outside the image set [0, ", set.size, ")"));
    }
  }
  return absl::OkStatus();
}

// Runs `make` and turns any exception LibTorch throws into INTERNAL.
template <typename Make>
absl::StatusOr<torch::Tensor> Guarded(const char* what, Make make) {
  try {
    return make();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, ": ", e.what()));
  }
}

// byte -> byte / 255.0f, exactly as a division would round it.
const std::array<float, 256>& ByteToUnit() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[static_cast<size_t>(v)] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  return table;
}

}  // namespace

absl::StatusOr<torch::Tensor> ImagesToTensor(const ImageSet& set, const std::vector<int64_t>& indices) {
  if (auto st = CheckIndices(set, indices); !st.ok()) return st;
  return Guarded("ImagesToTensor", [&] {
    const int64_t n = static_cast<int64_t>(indices.size());
    torch::Tensor t = torch::empty({n, set.channels, set.height, set.width}, torch::kFloat32);
    float* out = t.data_ptr<float>();
    const auto& lut = ByteToUnit();
    const int64_t bytes = set.ImageBytes();
    for (int64_t k = 0; k < n; ++k) {
      const uint8_t* src = set.Image(indices[static_cast<size_t>(k)]);
      float* dst = out + k * bytes;
      for (int64_t p = 0; p < bytes; ++p) dst[p] = lut[src[p]];
    }
    return t;
  });
}

absl::StatusOr<torch::Tensor> LabelsToTensor(const ImageSet& set, const std::vector<int64_t>& indices) {
  if (auto st = CheckIndices(set, indices); !st.ok()) return st;
  return Guarded("LabelsToTensor", [&] {
    const int64_t n = static_cast<int64_t>(indices.size());
    torch::Tensor t = torch::empty({n}, torch::kInt64);
    int64_t* out = t.data_ptr<int64_t>();
    for (int64_t k = 0; k < n; ++k) out[k] = set.labels[static_cast<size_t>(indices[static_cast<size_t>(k)])];
    return t;
  });
}

absl::StatusOr<torch::Tensor> FactorsToTensor(const ImageSet& set, const std::vector<int64_t>& indices) {
  if (set.NumFactors() == 0) return absl::FailedPreconditionError("the image set has no ground-truth factors");
  if (auto st = CheckIndices(set, indices); !st.ok()) return st;
  return Guarded("FactorsToTensor", [&] {
    const int64_t n = static_cast<int64_t>(indices.size());
    const int64_t f = set.NumFactors();
    torch::Tensor t = torch::empty({n, f}, torch::kFloat32);
    float* out = t.data_ptr<float>();
    for (int64_t k = 0; k < n; ++k) {
      const float* src = set.factors.data() + indices[static_cast<size_t>(k)] * f;
      std::copy(src, src + f, out + k * f);
    }
    return t;
  });
}

std::vector<int64_t> IndexRange(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  if (end <= begin) return out;
  out.reserve(static_cast<size_t>(end - begin));
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

}  // namespace dfv::data
