#include "worker/train/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "tests/train/test_jobs.h"
#include "worker/models/registry.h"

namespace dfv {
namespace {

std::unique_ptr<models::Model> Build(const jobspec::JobSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  auto model = models::CreateModel(testing::SpritesModelContext(spec));
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

bool SameParameters(models::Model& a, models::Model& b) {
  auto ma = a.Modules(), mb = b.Modules();
  if (ma.size() != mb.size()) return false;
  for (size_t i = 0; i < ma.size(); ++i) {
    auto pa = ma[i].second->named_parameters(), pb = mb[i].second->named_parameters();
    if (pa.size() != pb.size()) return false;
    for (const auto& item : pa) {
      if (!torch::equal(item.value(), pb[item.key()])) return false;
    }
  }
  return true;
}

TEST(CheckpointTest, SaveLoadRestoresParametersOptimiserStepAndRng) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae");
  auto a = Build(spec, 1);
  // Give the optimisers some state.
  data::Batch batch;
  batch.images = torch::rand({4, 3, 28, 28});
  batch.same_images = torch::rand({4, 3, 28, 28});
  batch.other_images = torch::rand({4, 3, 28, 28});
  step::StepContext ctx(nullptr);
  a->TrainStep(batch, ctx);

  const std::string path = testing::FreshDir("ckpt_roundtrip") + "/a.ckpt";
  torch::manual_seed(77);
  ASSERT_TRUE(train::SaveCheckpoint(path, *a, {12, 3}, "name: x\n").ok());
  const torch::Tensor expected_draw = torch::rand({5});

  auto b = Build(spec, 2);
  ASSERT_FALSE(SameParameters(*a, *b));
  auto loaded = train::LoadCheckpoint(path, *b);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->state.step, 12);
  EXPECT_EQ(loaded->state.epoch, 3);
  EXPECT_EQ(loaded->job_yaml, "name: x\n");
  EXPECT_TRUE(SameParameters(*a, *b));
  EXPECT_TRUE(torch::equal(torch::rand({5}), expected_draw)) << "RNG state not restored";

  // Same optimiser state: one more identical step (same noise) keeps them identical.
  ctx.BeginStep(1, 5);
  a->TrainStep(batch, ctx);
  ctx.BeginStep(1, 5);
  b->TrainStep(batch, ctx);
  EXPECT_TRUE(SameParameters(*a, *b));
}

TEST(CheckpointTest, CorruptTruncatedAndForeignFilesAreRejected) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("cycle_vae");
  auto model = Build(spec, 1);
  const std::string dir = testing::FreshDir("ckpt_corrupt");
  const std::string good = dir + "/" + train::CheckpointFileName(10);
  ASSERT_TRUE(train::SaveCheckpoint(good, *model, {10, 0}, "").ok());
  std::string bytes = *ReadFileToString(good);

  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x40;
  ASSERT_TRUE(WriteFileAtomically(dir + "/flipped.ckpt", flipped).ok());
  auto st = train::LoadCheckpoint(dir + "/flipped.ckpt", *model).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;

  ASSERT_TRUE(WriteFileAtomically(dir + "/short.ckpt", bytes.substr(0, bytes.size() - 100)).ok());
  st = train::LoadCheckpoint(dir + "/short.ckpt", *model).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;

  ASSERT_TRUE(WriteFileAtomically(dir + "/junk.ckpt", "this is not a checkpoint at all").ok());
  st = train::LoadCheckpoint(dir + "/junk.ckpt", *model).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;

  // A checkpoint of another model names what is missing.
  jobspec::JobSpec vae_spec = testing::SmallSpritesJob("vae");
  auto vae = Build(vae_spec, 1);
  st = train::LoadCheckpoint(good, *vae).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;

  // The newest valid checkpoint skips a corrupt newer one.
  ASSERT_TRUE(WriteFileAtomically(dir + "/" + train::CheckpointFileName(20), flipped).ok());
  auto newest = train::NewestValidCheckpoint(dir);
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(*newest, good);
}

TEST(CheckpointTest, ACheckpointOfAnotherModelImageSizeOrChannelCountIsRefused) {
  jobspec::JobSpec small_spec = testing::SmallSpritesJob("vae", 28, 1);
  auto small = Build(small_spec, 1);
  const std::string dir = testing::FreshDir("ckpt_other_size");
  const std::string path = dir + "/" + train::CheckpointFileName(10);
  ASSERT_TRUE(train::SaveCheckpoint(path, *small, {10, 0}, jobspec::JobSpecToYaml(small_spec)).ok());
  auto loaded = train::LoadCheckpoint(path, *small);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(train::CheckCheckpointFitsJob(loaded->job_yaml, small_spec, path).ok());
  // The vae's parameters have the same shapes at 28 and 32 pixels, so only
  // the job the checkpoint carries tells them apart.
  for (const auto& [other, says] : std::vector<std::pair<jobspec::JobSpec, std::string>>{
           {testing::SmallSpritesJob("vae", 32, 1), "image size 28, not 32"},
           {testing::SmallSpritesJob("vae", 28, 3), "1 channel(s), not 3"},
           {testing::SmallSpritesJob("dcgan", 28, 1), "model vae, not dcgan"}}) {
    absl::Status st = train::CheckCheckpointFitsJob(loaded->job_yaml, other, path);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << says << ": " << st;
    EXPECT_NE(std::string(st.message()).find(absl::StrCat("checkpoint ", path, " does not fit this job: it has ")),
              std::string::npos)
        << st;
    EXPECT_NE(std::string(st.message()).find(says), std::string::npos) << st;
  }
  EXPECT_TRUE(train::CheckCheckpointFitsJob("", small_spec, path).ok());
}

TEST(CheckpointTest, PruneKeepsTheNewest) {
  jobspec::JobSpec spec = testing::SmallSpritesJob("vae");
  auto model = Build(spec, 1);
  const std::string dir = testing::FreshDir("ckpt_prune");
  for (int step : {5, 100, 20, 7}) {
    ASSERT_TRUE(train::SaveCheckpoint(dir + "/" + train::CheckpointFileName(step), *model, {step, 0}, "").ok());
  }
  ASSERT_TRUE(train::PruneCheckpoints(dir, 2).ok());
  auto left = train::ListCheckpoints(dir);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_NE(left[0].find(train::CheckpointFileName(20)), std::string::npos);
  EXPECT_NE(left[1].find(train::CheckpointFileName(100)), std::string::npos);
}

}  // namespace
}  // namespace dfv
