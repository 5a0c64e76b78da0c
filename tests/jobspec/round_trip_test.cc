// JobSpecToYaml: canonical form, and ParseJobSpec(JobSpecToYaml(spec)) == spec.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/jobspec/parse.h"
#include "tests/jobspec/test_util.h"

namespace dfv::jobspec {
namespace {

using ::dfv::jobspec::testing::Message;
using ::dfv::jobspec::testing::MinimalJob;
using ::dfv::jobspec::testing::Parse;

// Field by field, written out here rather than through the schema, so a
// JobSpec member the schema forgot would show up as a difference.
void ExpectSameSpec(const JobSpec& a, const JobSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.dataset.kind, b.dataset.kind);
  EXPECT_EQ(a.dataset.path, b.dataset.path);
  EXPECT_EQ(a.dataset.image_size, b.dataset.image_size);
  EXPECT_EQ(a.dataset.channels, b.dataset.channels);
  EXPECT_EQ(a.dataset.train_limit, b.dataset.train_limit);
  EXPECT_EQ(a.dataset.test_limit, b.dataset.test_limit);
  EXPECT_TRUE(a.dataset.params == b.dataset.params);
  EXPECT_TRUE(a.model_params == b.model_params);
  EXPECT_EQ(a.train.epochs, b.train.epochs);
  EXPECT_EQ(a.train.max_steps, b.train.max_steps);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.lr, b.train.lr);  // exact, not approximately
  EXPECT_EQ(a.train.betas, b.train.betas);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_TRUE(a.train.loss == b.train.loss);
  EXPECT_EQ(a.train.threads, b.train.threads);
  EXPECT_EQ(a.train.log_every_steps, b.train.log_every_steps);
  EXPECT_EQ(a.resources.workers, b.resources.workers);
  EXPECT_EQ(a.resources.device, b.resources.device);
  EXPECT_EQ(a.resources.gpus_per_worker, b.resources.gpus_per_worker);
  EXPECT_EQ(a.resources.bucket_mb, b.resources.bucket_mb);
  EXPECT_EQ(a.resources.rendezvous_timeout_seconds, b.resources.rendezvous_timeout_seconds);
  EXPECT_EQ(a.checkpoint.every_steps, b.checkpoint.every_steps);
  EXPECT_EQ(a.checkpoint.keep_last, b.checkpoint.keep_last);
  EXPECT_EQ(a.samples.every_steps, b.samples.every_steps);
  EXPECT_EQ(a.samples.grids, b.samples.grids);
  EXPECT_EQ(a.evaluate.classifiers, b.evaluate.classifiers);
  EXPECT_EQ(a.evaluate.tsne, b.evaluate.tsne);
  EXPECT_EQ(a.samples.upscale, b.samples.upscale);
  EXPECT_EQ(a.evaluate.probe_train_images, b.evaluate.probe_train_images);
  EXPECT_EQ(a.evaluate.predictors, b.evaluate.predictors);
  EXPECT_EQ(a.evaluate.swap, b.evaluate.swap);
  EXPECT_EQ(a.evaluate.factors, b.evaluate.factors);
  EXPECT_EQ(a.evaluate.factor_bins, b.evaluate.factor_bins);
  EXPECT_EQ(a.evaluate.judge_epochs, b.evaluate.judge_epochs);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.max_restarts, b.max_restarts);
  EXPECT_TRUE(SpecsEqual(a, b));
}

JobSpec RoundTrip(const JobSpec& spec) {
  const std::string yaml = JobSpecToYaml(spec);
  ParseOptions options;
  options.source_name = "canonical.yaml";
  absl::StatusOr<JobSpec> back = ParseJobSpec(yaml, options);
  EXPECT_TRUE(back.ok()) << back.status() << "\n" << yaml;
  if (!back.ok()) return JobSpec();
  EXPECT_EQ(JobSpecToYaml(*back), yaml) << "canonical form is not stable";
  return *back;
}

TEST(JobSpecRoundTripTest, CanonicalYamlOfMinimalVae) {
  ParseResult r = Parse(MinimalJob("vae"));
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(JobSpecToYaml(r.spec),
            "name: minimal\n"
            "model: vae\n"
            "dataset:\n"
            "  kind: fashion_mnist\n"
            "  path: /usr/share/datasets/fashion-mnist\n"
            "  image_size: 28\n"
            "  channels: 0\n"
            "  train_limit: 0\n"
            "  test_limit: 0\n"
            "model_params:\n"
            "  latent_dim: 100\n"
            "train:\n"
            "  epochs: 1\n"
            "  max_steps: 0\n"
            "  batch_size: 64\n"
            "  lr: 0.001\n"
            "  betas: [0.9, 0.999]\n"
            "  seed: 1\n"
            "  loss:\n"
            "    reconstruction: 1.0\n"
            "    kl: 1.0\n"
            "  threads: 0\n"
            "  log_every_steps: 50\n"
            "resources:\n"
            "  workers: 1\n"
            "  device: cpu\n"
            "  gpus_per_worker: 0\n"
            "  bucket_mb: 25\n"
            "  rendezvous_timeout_seconds: 60\n"
            "checkpoint:\n"
            "  every_steps: 500\n"
            "  keep_last: 3\n"
            "samples:\n"
            "  every_steps: 250\n"
            "  grids: [reconstruction, random]\n"
            "  upscale: 0\n"
            "evaluate:\n"
            "  classifiers: []\n"
            "  tsne: false\n"
            "  probe_train_images: 0\n"
            "  predictors: false\n"
            "  swap: false\n"
            "  factors: false\n"
            "  factor_bins: 20\n"
            "  judge_epochs: 2\n"
            "priority: 0\n"
            "max_restarts: 3\n");
}

TEST(JobSpecRoundTripTest, MinimalSpecsOfBothModels) {
  for (const char* model : {"vae", "cycle_vae"}) {
    SCOPED_TRACE(model);
    ParseResult r = Parse(MinimalJob(model));
    ASSERT_TRUE(r.ok()) << Message(r);
    ExpectSameSpec(RoundTrip(r.spec), r.spec);
  }
}

TEST(JobSpecRoundTripTest, EditedSpecsOfBothModelsWithAwkwardValues) {
  for (const char* model : {"vae", "cycle_vae"}) {
    SCOPED_TRACE(model);
    ParseResult r = Parse(MinimalJob(model));
    ASSERT_TRUE(r.ok()) << Message(r);
    JobSpec spec = r.spec;
    spec.name = "x.y-z_1";
    spec.dataset.kind = "mnist";
    spec.dataset.path = "/data/with space/and:colon #hash \"quoted\"";
    spec.dataset.image_size = 64;
    spec.dataset.channels = 3;
    spec.dataset.train_limit = 123;
    spec.dataset.test_limit = 45;
    spec.train.epochs = 3;
    spec.train.max_steps = 11;
    spec.train.batch_size = 17;
    spec.train.lr = 0.1 + 0.2;  // 0.30000000000000004
    spec.train.betas = {1.0 / 3.0, 0.999999999999};
    spec.train.seed = 123456789;
    for (const auto& [name, value] : r.spec.train.loss.values()) {
      spec.train.loss.Set(name, std::get<double>(value) / 7.0);
    }
    spec.train.threads = 2;
    spec.train.log_every_steps = 3;
    spec.resources = {8, "cuda", 4};
    spec.checkpoint = {0, 1};
    spec.samples.every_steps = 0;
    spec.samples.grids = {"reconstruction"};
    spec.samples.upscale = 3;
    spec.evaluate = {{"mlp", "linear_svm"}, true, 1000, true, true, true, 7, 5};
    spec.priority = -100;
    spec.max_restarts = 100;
    ExpectSameSpec(RoundTrip(spec), spec);
  }
}

TEST(JobSpecRoundTripTest, CanonicalDatasetListsOnlyTheKindsOwnFields) {
  ParseResult sprites = Parse("name: s\nmodel: vae\ndataset: {kind: sprites, sprites_test: 7}\n");
  ASSERT_TRUE(sprites.ok()) << Message(sprites);
  EXPECT_THAT(JobSpecToYaml(sprites.spec),
              ::testing::HasSubstr("dataset:\n"
                                   "  kind: sprites\n"
                                   "  path: \"\"\n"
                                   "  image_size: 28\n"
                                   "  channels: 0\n"
                                   "  train_limit: 0\n"
                                   "  test_limit: 0\n"
                                   "  seed: 1\n"
                                   "  sprites_train: 20000\n"
                                   "  sprites_test: 7\n"
                                   "model_params:\n"));

  ParseResult folder =
      Parse("name: f\nmodel: vae\ndataset: {kind: image_folder, path: /faces, attribute: Smiling}\n");
  ASSERT_TRUE(folder.ok()) << Message(folder);
  EXPECT_THAT(JobSpecToYaml(folder.spec),
              ::testing::HasSubstr("  test_limit: 0\n"
                                   "  seed: 1\n"
                                   "  attr_file: list_attr_celeba.txt\n"
                                   "  attribute: Smiling\n"
                                   "model_params:\n"));
}

TEST(JobSpecRoundTripTest, EditedOwnFieldsOfEachKindRoundTrip) {
  for (const char* dataset : {"{kind: sprites}", "{kind: image_folder, path: /x, attribute: Young}"}) {
    SCOPED_TRACE(dataset);
    ParseResult r = Parse(std::string("name: k\nmodel: cycle_vae\ndataset: ") + dataset + "\n");
    ASSERT_TRUE(r.ok()) << Message(r);
    JobSpec spec = r.spec;
    spec.dataset.params.Set("seed", int64_t{9});
    if (spec.dataset.kind == "sprites") {
      spec.dataset.params.Set("sprites_train", int64_t{77});
      spec.dataset.params.Set("sprites_test", int64_t{7});
    } else {
      spec.dataset.params.Set("attr_file", std::string("/abs/labels: \"x\".txt"));
      spec.dataset.params.Set("attribute", std::string("true"));
    }
    ExpectSameSpec(RoundTrip(spec), spec);
  }
}

TEST(JobSpecRoundTripTest, SpritesWithEmptyPathRoundTrips) {
  ParseResult r = Parse("name: s\nmodel: cycle_vae\ndataset: {kind: sprites}\n");
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_THAT(JobSpecToYaml(r.spec), ::testing::HasSubstr("  path: \"\"\n"));
  ExpectSameSpec(RoundTrip(r.spec), r.spec);
}

}  // namespace
}  // namespace dfv::jobspec
