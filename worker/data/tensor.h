// ImageSet -> torch tensors, for the loader, evaluation and sample grids.
//
// Images become float32 [N, C, H, W] in [0, 1] (byte / 255, exact); labels
// and indices int64. The tensors are freshly allocated CPU tensors owned by
// the caller. Errors are Statuses (no exception leaves these functions):
// INVALID_ARGUMENT for an index outside the set, INTERNAL if LibTorch throws
// (e.g. allocation failure). Safe to call concurrently on a shared set.
#ifndef DFV_WORKER_DATA_TENSOR_H_
#define DFV_WORKER_DATA_TENSOR_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/data/image_set.h"

namespace dfv::data {

// [indices.size(), C, H, W] float32 in [0, 1].
absl::StatusOr<torch::Tensor> ImagesToTensor(const ImageSet& set, const std::vector<int64_t>& indices);

// [indices.size()] int64 class labels.
absl::StatusOr<torch::Tensor> LabelsToTensor(const ImageSet& set, const std::vector<int64_t>& indices);

// [indices.size(), NumFactors()] float32 ground-truth factors (sprites);
// FAILED_PRECONDITION when the set has no factors.
absl::StatusOr<torch::Tensor> FactorsToTensor(const ImageSet& set, const std::vector<int64_t>& indices);

// begin, begin + 1, ..., end - 1 (empty when end <= begin): e.g. the whole
// test set is IndexRange(0, set.size).
std::vector<int64_t> IndexRange(int64_t begin, int64_t end);

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_TENSOR_H_
