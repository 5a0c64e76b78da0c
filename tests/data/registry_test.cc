// The data set registry (worker/data) against the job schema's data set
// catalogue (common/jobspec): a kind the coordinator accepts must have a
// loader on the workers, and a loader must be reachable from a job file.
#include "worker/data/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/jobspec/dataset_catalogue.h"

namespace dfv::data {
namespace {

TEST(DatasetRegistryTest, RegistryAndCatalogueHaveTheSameKinds) {
  std::vector<std::string> catalogue = jobspec::DatasetKinds();
  std::sort(catalogue.begin(), catalogue.end());
  EXPECT_EQ(RegisteredDatasets(), catalogue)
      << "a data set needs both its catalogue entry (common/jobspec/dataset_catalogue.cc) and its "
         "loader's line in worker/data/registry.cc";
  for (const std::string& kind : catalogue) EXPECT_NE(FindDatasetLoader(kind), nullptr) << kind;
  EXPECT_EQ(FindDatasetLoader("cifar"), nullptr);
}

}  // namespace
}  // namespace dfv::data
