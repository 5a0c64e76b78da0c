// Checks shared by the model tests: every grid a job promises renders, goes
// through PNG, and has its size.
#ifndef DFV_TESTS_MODELS_GRID_CHECK_H_
#define DFV_TESTS_MODELS_GRID_CHECK_H_

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "worker/models/model.h"

namespace dfv::testing {

// Renders each of `grids` from 32 random `channels` x `size` x `size` test
// images of 4 classes, encodes it as PNG, decodes it, and expects
// `channels` channels and cells.at(grid) = {rows, columns} cells of size x
// size with 2-pixel borders. `grids` must name exactly the grids in `cells`.
void ExpectGridsAtTheirSizes(models::Model& model, const std::vector<std::string>& grids,
                             const std::map<std::string, std::pair<int, int>>& cells, int channels, int size);

// Test name suffix "28x28x1" for an (image size, channels) parameter.
std::string SizeAndChannelsName(const ::testing::TestParamInfo<std::pair<int, int>>& info);

}  // namespace dfv::testing

#endif  // DFV_TESTS_MODELS_GRID_CHECK_H_
