#include "worker/data/registry.h"

#include <functional>
#include <map>

#include "worker/data/idx_dataset.h"
#include "worker/data/image_folder.h"
#include "worker/data/sprites.h"

namespace dfv::data {
namespace {

const std::map<std::string, DatasetLoader, std::less<>>& Loaders() {
  static const auto* loaders = new std::map<std::string, DatasetLoader, std::less<>>{
      {"fashion_mnist", LoadFashionMnistDataset},
      {"mnist", LoadMnistDataset},
      {"sprites", LoadSpritesDataset},
      {"image_folder", LoadImageFolderDataset},
  };
  return *loaders;
}

}  // namespace

DatasetLoader FindDatasetLoader(std::string_view kind) {
  auto it = Loaders().find(kind);
  return it == Loaders().end() ? nullptr : it->second;
}

std::vector<std::string> RegisteredDatasets() {
  std::vector<std::string> kinds;
  for (const auto& [kind, loader] : Loaders()) kinds.push_back(kind);
  return kinds;
}

}  // namespace dfv::data
