#include "worker/data/batch_loader.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <set>
#include <thread>

#include "worker/data/sprites.h"
#include "worker/data/tensor.h"

namespace dfv::data {
namespace {

// n grey 3x4 images; image i's pixels are (i + k) % 256, label i % classes.
std::shared_ptr<const ImageSet> MakeSet(int64_t n, int classes) {
  auto set = std::make_shared<ImageSet>();
  set->size = n;
  set->channels = 1;
  set->height = 3;
  set->width = 4;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 12; ++k) set->pixels.push_back(static_cast<uint8_t>((i * 5 + k * 20) % 256));
    set->labels.push_back(i % classes);
  }
  set->num_classes = classes;
  for (int c = 0; c < classes; ++c) set->class_names.push_back(std::to_string(c));
  return set;
}

LoaderOptions Options(int64_t batch, int rank = 0, int world = 1) {
  LoaderOptions o;
  o.batch_size = batch;
  o.seed = 17;
  o.rank = rank;
  o.world_size = world;
  return o;
}

std::unique_ptr<BatchLoader> MakeLoader(std::shared_ptr<const ImageSet> set, const LoaderOptions& options) {
  auto loader = BatchLoader::Create(std::move(set), options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return loader.ok() ? *std::move(loader) : nullptr;
}

Batch NextOk(BatchLoader& loader) {
  auto batch = loader.Next();
  EXPECT_TRUE(batch.ok()) << batch.status();
  return batch.ok() ? *std::move(batch) : Batch{};
}

std::vector<int64_t> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void ExpectSameBatch(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.global_step, b.global_step);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.step_in_epoch, b.step_in_epoch);
  EXPECT_TRUE(torch::equal(a.indices, b.indices));
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  EXPECT_EQ(a.same_images.defined(), b.same_images.defined());
  if (a.same_images.defined()) {
    EXPECT_TRUE(torch::equal(a.same_images, b.same_images));
  }
  EXPECT_EQ(a.other_images.defined(), b.other_images.defined());
  if (a.other_images.defined()) {
    EXPECT_TRUE(torch::equal(a.other_images, b.other_images));
    EXPECT_TRUE(torch::equal(a.other_labels, b.other_labels));
  }
}

// The images of `indices`, computed independently of the loader.
torch::Tensor Expected(const ImageSet& set, const std::vector<int64_t>& indices) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(indices.size()), set.channels, set.height, set.width});
  for (size_t k = 0; k < indices.size(); ++k) {
    for (int64_t p = 0; p < set.ImageBytes(); ++p) {
      t.view({-1})[static_cast<int64_t>(k) * set.ImageBytes() + p] = set.Image(indices[k])[p] / 255.0f;
    }
  }
  return t;
}

TEST(BatchLoaderTest, ShapesValuesAndLabels) {
  auto set = MakeSet(50, 5);
  auto loader = MakeLoader(set, Options(8));
  ASSERT_NE(loader, nullptr);
  EXPECT_EQ(loader->StepsPerEpoch(), 6);
  for (int step = 0; step < 8; ++step) {
    Batch b = NextOk(*loader);
    EXPECT_EQ(b.global_step, step);
    EXPECT_EQ(b.epoch, step / 6);
    EXPECT_EQ(b.step_in_epoch, step % 6);
    ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{8, 1, 3, 4}));
    EXPECT_EQ(b.images.dtype(), torch::kFloat32);
    EXPECT_EQ(b.labels.dtype(), torch::kInt64);
    EXPECT_EQ(b.indices.sizes(), (std::vector<int64_t>{8}));
    EXPECT_GE(b.images.min().item<float>(), 0.0f);
    EXPECT_LE(b.images.max().item<float>(), 1.0f);
    std::vector<int64_t> idx = ToVector(b.indices);
    EXPECT_TRUE(torch::allclose(b.images, Expected(*set, idx)));
    for (size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(b.labels[static_cast<int64_t>(k)].item<int64_t>(), idx[k] % 5);
    EXPECT_FALSE(b.same_images.defined());
    EXPECT_FALSE(b.other_images.defined());
  }
}

TEST(BatchLoaderTest, EachEpochCoversDistinctItems) {
  auto set = MakeSet(50, 5);
  auto loader = MakeLoader(set, Options(8));
  ASSERT_NE(loader, nullptr);
  std::vector<int64_t> epoch0, epoch1;
  for (int step = 0; step < 12; ++step) {
    std::vector<int64_t> idx = ToVector(NextOk(*loader).indices);
    (step < 6 ? epoch0 : epoch1).insert((step < 6 ? epoch0 : epoch1).end(), idx.begin(), idx.end());
  }
  EXPECT_EQ(std::set<int64_t>(epoch0.begin(), epoch0.end()).size(), 48u);
  EXPECT_EQ(std::set<int64_t>(epoch1.begin(), epoch1.end()).size(), 48u);
  EXPECT_NE(epoch0, epoch1);
}

TEST(BatchLoaderTest, SameOptionsGiveSameBatches) {
  auto set = MakeSet(64, 4);
  LoaderOptions o = Options(5);
  o.same_class_pair = true;
  o.other_class = true;
  auto a = MakeLoader(set, o);
  auto b = MakeLoader(set, o);
  ASSERT_TRUE(a && b);
  for (int step = 0; step < 30; ++step) ExpectSameBatch(NextOk(*a), NextOk(*b));
  o.seed = 18;
  auto c = MakeLoader(set, o);
  auto d = MakeLoader(set, Options(5));  // seed 17
  ASSERT_TRUE(c && d);
  EXPECT_FALSE(torch::equal(NextOk(*c).indices, NextOk(*d).indices));
}

TEST(BatchLoaderTest, SeekMatchesUninterruptedRun) {
  auto set = MakeSet(64, 4);
  LoaderOptions o = Options(6);
  o.same_class_pair = true;
  o.other_class = true;
  o.prefetch = 3;
  auto reference = MakeLoader(set, o);
  ASSERT_NE(reference, nullptr);
  std::vector<Batch> run;
  for (int step = 0; step < 25; ++step) run.push_back(NextOk(*reference));  // 10 steps/epoch: crosses 2 epochs

  auto resumed = MakeLoader(set, o);
  ASSERT_NE(resumed, nullptr);
  for (int64_t k : {13, 0, 24, 7, 10, 9}) {
    resumed->Seek(k);
    EXPECT_EQ(resumed->NextStep(), k);
    ExpectSameBatch(NextOk(*resumed), run[static_cast<size_t>(k)]);
    if (k + 1 < 25) ExpectSameBatch(NextOk(*resumed), run[static_cast<size_t>(k + 1)]);
  }
}

TEST(BatchLoaderTest, PairsAndOthers) {
  auto set = MakeSet(90, 6);
  LoaderOptions o = Options(10, 1, 2);
  o.same_class_pair = true;
  o.other_class = true;
  auto loader = MakeLoader(set, o);
  ASSERT_NE(loader, nullptr);
  for (int step = 0; step < 6; ++step) {
    Batch b = NextOk(*loader);
    ASSERT_EQ(b.same_images.sizes(), b.images.sizes());
    ASSERT_EQ(b.other_images.sizes(), b.images.sizes());
    std::vector<int64_t> idx = ToVector(b.indices), same = ToVector(b.same_indices),
                         other = ToVector(b.other_indices);
    EXPECT_TRUE(torch::allclose(b.same_images, Expected(*set, same)));
    EXPECT_TRUE(torch::allclose(b.other_images, Expected(*set, other)));
    for (size_t k = 0; k < idx.size(); ++k) {
      EXPECT_NE(same[k], idx[k]);
      EXPECT_EQ(same[k] % 6, idx[k] % 6);
      EXPECT_NE(other[k] % 6, idx[k] % 6);
      EXPECT_EQ(b.other_labels[static_cast<int64_t>(k)].item<int64_t>(), other[k] % 6);
    }
  }
}

TEST(BatchLoaderTest, RanksReadDisjointSlicesOfTheGlobalBatch) {
  auto set = MakeSet(100, 5);
  auto r0 = MakeLoader(set, Options(4, 0, 2));
  auto r1 = MakeLoader(set, Options(4, 1, 2));
  auto single = MakeLoader(set, Options(8, 0, 1));
  ASSERT_TRUE(r0 && r1 && single);
  EXPECT_EQ(r0->StepsPerEpoch(), 12);
  EXPECT_EQ(single->StepsPerEpoch(), 12);
  for (int step = 0; step < 15; ++step) {
    Batch a = NextOk(*r0), b = NextOk(*r1), s = NextOk(*single);
    EXPECT_TRUE(torch::equal(torch::cat({a.indices, b.indices}), s.indices));
    EXPECT_TRUE(torch::equal(torch::cat({a.images, b.images}), s.images));
  }
}

TEST(BatchLoaderTest, SpritesBatches) {
  auto sprites = GenerateSprites(3, SpriteSplit::kTrain, 64, 32);
  ASSERT_TRUE(sprites.ok());
  auto set = std::make_shared<const ImageSet>(*std::move(sprites));
  LoaderOptions o = Options(16);
  o.same_class_pair = true;
  auto loader = MakeLoader(set, o);
  ASSERT_NE(loader, nullptr);
  Batch b = NextOk(*loader);
  EXPECT_EQ(b.images.sizes(), (std::vector<int64_t>{16, 3, 32, 32}));
  EXPECT_EQ(b.same_images.sizes(), (std::vector<int64_t>{16, 3, 32, 32}));
  EXPECT_GT(b.images.max().item<float>(), 0.5f);
}

TEST(BatchLoaderTest, ShutsDownCleanlyWithAFullQueue) {
  auto set = MakeSet(200, 5);
  LoaderOptions o = Options(4);
  o.prefetch = 2;
  for (int round = 0; round < 20; ++round) {
    auto loader = MakeLoader(set, o);
    ASSERT_NE(loader, nullptr);
    if (round % 2 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the queue fill
    auto start = std::chrono::steady_clock::now();
    loader.reset();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  }
  // Seek while the producer is blocked on a full queue also returns promptly.
  auto loader = MakeLoader(set, o);
  ASSERT_NE(loader, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  loader->Seek(3);
  EXPECT_EQ(NextOk(*loader).global_step, 3);
}

TEST(BatchLoaderTest, CreateRejectsBadInput) {
  auto set = MakeSet(10, 2);
  EXPECT_EQ(BatchLoader::Create(nullptr, Options(2)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BatchLoader::Create(set, Options(11)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(BatchLoader::Create(set, Options(2, 2, 2)).status().code(), absl::StatusCode::kInvalidArgument);
  LoaderOptions o = Options(2);
  o.prefetch = 0;
  EXPECT_EQ(BatchLoader::Create(set, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(2);
  o.other_class = true;
  EXPECT_EQ(BatchLoader::Create(MakeSet(10, 1), o).status().code(), absl::StatusCode::kFailedPrecondition);
  auto broken = std::make_shared<ImageSet>(*MakeSet(10, 2));
  broken->labels.pop_back();
  EXPECT_EQ(BatchLoader::Create(broken, Options(2)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorTest, ImagesLabelsAndFactors) {
  auto set = MakeSet(10, 3);
  auto images = ImagesToTensor(*set, {9, 0, 9});
  ASSERT_TRUE(images.ok());
  EXPECT_EQ(images->sizes(), (std::vector<int64_t>{3, 1, 3, 4}));
  EXPECT_TRUE(torch::equal((*images)[0], (*images)[2]));
  EXPECT_FLOAT_EQ((*images)[1][0][0][1].item<float>(), 20.0f / 255.0f);
  auto labels = LabelsToTensor(*set, IndexRange(0, 10));
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ(labels->sum().item<int64_t>(), 0 + 1 + 2 + 0 + 1 + 2 + 0 + 1 + 2 + 0);
  EXPECT_EQ(ImagesToTensor(*set, {10}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LabelsToTensor(*set, {-1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FactorsToTensor(*set, {0}).status().code(), absl::StatusCode::kFailedPrecondition);
  auto sprites = GenerateSprites(1, SpriteSplit::kTest, 4, 16);
  ASSERT_TRUE(sprites.ok());
  auto factors = FactorsToTensor(*sprites, {3, 1});
  ASSERT_TRUE(factors.ok());
  EXPECT_EQ(factors->sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_FLOAT_EQ((*factors)[0][2].item<float>(), sprites->factors[3 * 6 + 2]);
  auto white = ImagesToTensor(*sprites, IndexRange(0, 4));
  ASSERT_TRUE(white.ok());
  EXPECT_LE(white->max().item<float>(), 1.0f);
  EXPECT_TRUE(IndexRange(5, 5).empty());
}

}  // namespace
}  // namespace dfv::data
