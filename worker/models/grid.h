// Layout of sample grids. Every function takes images [N, C, H, W] with values
// in [0, 1] and returns one image [C, H', W']; cells are separated by a
// 2-pixel mid-grey border so dark and light images both stand out.
#ifndef DFV_WORKER_MODELS_GRID_H_
#define DFV_WORKER_MODELS_GRID_H_

#include <torch/torch.h>

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

// Linear interpolation weights 0, 1/(n-1), ..., 1 as a [n] float tensor.
torch::Tensor InterpolationWeights(int64_t n);

}  // namespace dfv::models

#endif  // DFV_WORKER_MODELS_GRID_H_
