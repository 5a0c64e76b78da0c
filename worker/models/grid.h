// Layout of sample grids. Every function takes images [N, C, H, W] with values
// in [0, 1] and returns one image [C, H', W']; cells are separated by a
// 2-pixel mid-grey border so dark and light images both stand out.
#ifndef DFV_WORKER_MODELS_GRID_H_
#define DFV_WORKER_MODELS_GRID_H_

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace dfv::models {

// Places `cells` row-major on a rows x cols grid; an undefined tensor leaves
// its cell blank (black). All defined cells share one shape.
torch::Tensor TileGrid(const std::vector<torch::Tensor>& cells, int64_t rows, int64_t cols);

// Tiles a batch [N, C, H, W] row-major, N == rows * cols.
torch::Tensor TileBatch(const torch::Tensor& images, int64_t rows, int64_t cols);

// Inputs over outputs: row 1 holds `inputs`, row 2 `outputs` (same N).
torch::Tensor ReconstructionGrid(const torch::Tensor& inputs, const torch::Tensor& outputs);

// Swap grid: a blank corner, `column_inputs` along the top row, `row_inputs`
// down the left column, and cell (r, c) = swapped[r * C + c], the decoding of
// row r's specified code with column c's unspecified code.
torch::Tensor SwapGrid(const torch::Tensor& row_inputs, const torch::Tensor& column_inputs,
                       const torch::Tensor& swapped);

// The grids of a model with a specified code s and an unspecified code z,
// drawn from test images [N >= 16] and their labels [N]:
//   reconstruction  16 inputs over their decodings
//   swap            8 x 8: rows take s from the left column, columns z from the top row
//   interpolation   8 x 8 between the first image and the first of another
//                   class: s varies across the columns, z down the rows
// `encode` maps images to (s, z); `decode` maps (s, z) to images. Returns an
// undefined tensor for any other name.
using SplitEncodeFn = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& images)>;
using SplitDecodeFn = std::function<torch::Tensor(const torch::Tensor& s, const torch::Tensor& z)>;
torch::Tensor SplitCodeGrid(const std::string& name, const torch::Tensor& images, const torch::Tensor& labels,
                            const SplitEncodeFn& encode, const SplitDecodeFn& decode);

// Linear interpolation weights 0, 1/(n-1), ..., 1 as a [n] float tensor.
torch::Tensor InterpolationWeights(int64_t n);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_GRID_H_
