#include "worker/models/grid.h"

#include "common/jobspec/catalogue.h"

namespace dfv::models {
namespace {
constexpr int64_t kPad = 2;
constexpr float kBorder = 0.5f;
}  // namespace

torch::Tensor TileGrid(const std::vector<torch::Tensor>& cells, int64_t rows, int64_t cols) {
  TORCH_CHECK(static_cast<int64_t>(cells.size()) == rows * cols, "grid needs ", rows * cols,
              " cells, got ", cells.size());
  torch::Tensor first;
  for (const auto& c : cells) {
    if (c.defined()) {
      first = c;
      break;
    }
  }
  TORCH_CHECK(first.defined() && first.dim() == 3, "grid needs at least one [C, H, W] cell");
  const int64_t ch = first.size(0), h = first.size(1), w = first.size(2);
  torch::Tensor out = torch::full({ch, rows * (h + kPad) + kPad, cols * (w + kPad) + kPad}, kBorder);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t y = kPad + r * (h + kPad), x = kPad + c * (w + kPad);
      auto region = out.slice(1, y, y + h).slice(2, x, x + w);
      const auto& cell = cells[r * cols + c];
      if (cell.defined()) {
        region.copy_(cell.detach().to(torch::kCPU, torch::kFloat).clamp(0, 1));
      } else {
        region.zero_();
      }
    }
  }
  return out;
}

torch::Tensor TileBatch(const torch::Tensor& images, int64_t rows, int64_t cols) {
  TORCH_CHECK(images.size(0) == rows * cols, "batch of ", images.size(0), " for a ", rows, "x", cols, " grid");
  std::vector<torch::Tensor> cells;
  cells.reserve(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) cells.push_back(images[i]);
  return TileGrid(cells, rows, cols);
}

torch::Tensor ReconstructionGrid(const torch::Tensor& inputs, const torch::Tensor& outputs) {
  TORCH_CHECK(inputs.sizes() == outputs.sizes(), "reconstruction grid: inputs and outputs differ in shape");
  return TileBatch(torch::cat({inputs, outputs}, 0), 2, inputs.size(0));
}

torch::Tensor SwapGrid(const torch::Tensor& row_inputs, const torch::Tensor& column_inputs,
                       const torch::Tensor& swapped) {
  const int64_t rows = row_inputs.size(0), cols = column_inputs.size(0);
  TORCH_CHECK(swapped.size(0) == rows * cols, "swap grid: expected ", rows * cols, " swapped images");
  std::vector<torch::Tensor> cells;
  cells.reserve((rows + 1) * (cols + 1));
  cells.emplace_back();  // blank corner
  for (int64_t c = 0; c < cols; ++c) cells.push_back(column_inputs[c]);
  for (int64_t r = 0; r < rows; ++r) {
    cells.push_back(row_inputs[r]);
    for (int64_t c = 0; c < cols; ++c) cells.push_back(swapped[r * cols + c]);
  }
  return TileGrid(cells, rows + 1, cols + 1);
}

torch::Tensor InterpolationWeights(int64_t n) {
  return n == 1 ? torch::zeros({1}) : torch::linspace(0.0, 1.0, n);
}

torch::Tensor SplitCodeGrid(const std::string& name, const torch::Tensor& images, const torch::Tensor& labels,
                            const SplitEncodeFn& encode, const SplitDecodeFn& decode) {
  if (name == jobspec::grid::kReconstruction) {
    torch::Tensor x = images.slice(0, 0, 16);
    auto [s, z] = encode(x);
    return ReconstructionGrid(x, decode(s, z));
  }
  if (name == jobspec::grid::kSwap) {
    const int64_t k = 8;
    torch::Tensor rows = images.slice(0, 0, k), cols = images.slice(0, k, 2 * k);
    torch::Tensor s = encode(rows).first.repeat_interleave(k, 0);  // row-major: s fixed along a row
    torch::Tensor z = encode(cols).second.repeat({k, 1});          // z fixed down a column
    return SwapGrid(rows, cols, decode(s, z));
  }
  if (name == jobspec::grid::kInterpolation) {
    int64_t other = 1;
    while (other < labels.size(0) - 1 && labels[other].item<int64_t>() == labels[0].item<int64_t>()) ++other;
    auto [s_a, z_a] = encode(images.slice(0, 0, 1));
    auto [s_b, z_b] = encode(images.slice(0, other, other + 1));
    const int64_t k = 8;
    torch::Tensor w = InterpolationWeights(k).to(images.device()).unsqueeze(1);
    torch::Tensor zs = z_a * (1 - w) + z_b * w;  // [k, z]
    torch::Tensor ss = s_a * (1 - w) + s_b * w;  // [k, s]
    return TileBatch(decode(ss.repeat({k, 1}), zs.repeat_interleave(k, 0)), k, k);
  }
  return {};
}

}  // namespace dfv::models
