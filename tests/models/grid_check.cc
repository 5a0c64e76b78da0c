#include "tests/models/grid_check.h"

#include <torch/torch.h>

#include "common/png.h"
#include "worker/train/image_util.h"

namespace dfv::testing {

void ExpectGridsAtTheirSizes(models::Model& model, const std::vector<std::string>& grids,
                             const std::map<std::string, std::pair<int, int>>& cells, int channels, int size) {
  models::GridInputs in;
  in.images = torch::rand({32, channels, size, size});
  in.labels = torch::arange(32) % 4;
  in.noise_seed = 1;
  ASSERT_EQ(grids.size(), cells.size());
  for (const std::string& grid : grids) {
    ASSERT_TRUE(cells.count(grid)) << grid;
    auto png = EncodePng(train::TensorToImage8(model.RenderGrid(grid, in)));
    ASSERT_TRUE(png.ok()) << png.status();
    auto image = DecodePng(*png);
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->channels, channels) << grid;
    EXPECT_EQ(image->height, cells.at(grid).first * (size + 2) + 2) << grid;
    EXPECT_EQ(image->width, cells.at(grid).second * (size + 2) + 2) << grid;
  }
}

std::string SizeAndChannelsName(const ::testing::TestParamInfo<std::pair<int, int>>& info) {
  return std::to_string(info.param.first) + "x" + std::to_string(info.param.first) + "x" +
         std::to_string(info.param.second);
}

}  // namespace dfv::testing
