#include "worker/models/grid.h"

#include <gtest/gtest.h>

#include "common/png.h"
#include "worker/train/image_util.h"

namespace dfv {
namespace {

TEST(GridTest, SwapGridPutsInputsOnTheEdgesAndSwapsInCells) {
  // 2 row inputs (values 0.1, 0.2), 3 column inputs (0.3..0.5), cells 0.6+.
  torch::Tensor rows = torch::stack({torch::full({1, 4, 4}, 0.1), torch::full({1, 4, 4}, 0.2)});
  torch::Tensor cols = torch::stack({torch::full({1, 4, 4}, 0.3), torch::full({1, 4, 4}, 0.4),
                                     torch::full({1, 4, 4}, 0.5)});
  std::vector<torch::Tensor> cells;
  for (int i = 0; i < 6; ++i) cells.push_back(torch::full({1, 4, 4}, 0.6 + 0.05 * i));
  torch::Tensor grid = models::SwapGrid(rows, cols, torch::stack(cells));
  ASSERT_EQ(grid.size(1), 3 * 6 + 2);
  ASSERT_EQ(grid.size(2), 4 * 6 + 2);
  auto at = [&](int r, int c) { return grid[0][2 + r * 6 + 1][2 + c * 6 + 1].item<float>(); };
  EXPECT_FLOAT_EQ(at(0, 0), 0.0f);  // blank corner
  EXPECT_FLOAT_EQ(at(0, 2), 0.4f);  // second column input on the top row
  EXPECT_FLOAT_EQ(at(2, 0), 0.2f);  // second row input in the left column
  EXPECT_FLOAT_EQ(at(2, 3), 0.6f + 0.05f * 5);  // row 1, column 2 -> cell 5
}

TEST(GridTest, ReconstructionGridIsInputsOverOutputs) {
  torch::Tensor in = torch::zeros({3, 1, 5, 5});
  torch::Tensor out = torch::ones({3, 1, 5, 5});
  torch::Tensor grid = models::ReconstructionGrid(in, out);
  EXPECT_EQ(grid.size(1), 2 * 7 + 2);
  EXPECT_EQ(grid.size(2), 3 * 7 + 2);
  EXPECT_FLOAT_EQ(grid[0][2 + 2][2 + 2].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(grid[0][2 + 7 + 2][2 + 2].item<float>(), 1.0f);
}

TEST(GridTest, GridSurvivesAPngRoundTrip) {
  torch::manual_seed(1);
  torch::Tensor grid = models::TileBatch(torch::rand({6, 3, 8, 8}), 2, 3);
  Image8 image = train::TensorToImage8(grid);
  auto png = EncodePng(image);
  ASSERT_TRUE(png.ok());
  auto decoded = DecodePng(*png);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->width, grid.size(2));
  EXPECT_EQ(decoded->height, grid.size(1));
  torch::Tensor back = train::Image8ToTensor(*decoded);
  EXPECT_LE((back - grid).abs().max().item<float>(), 0.5f / 255.0f + 1e-6f);
}

}  // namespace
}  // namespace dfv
