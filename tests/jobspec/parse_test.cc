// ParseJobSpec: defaults, a full file, and one test per kind of error.
#include "common/jobspec/parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/jobspec/catalogue.h"
#include "common/jobspec/dataset_catalogue.h"
#include "tests/jobspec/test_util.h"

namespace dfv::jobspec {
namespace {

using ::dfv::jobspec::testing::ErrorFor;
using ::dfv::jobspec::testing::Message;
using ::dfv::jobspec::testing::MinimalJob;
using ::dfv::jobspec::testing::Parse;
using ::testing::HasSubstr;

TEST(JobSpecParseTest, MinimalVaeFillsEveryDefault) {
  ParseResult r = Parse(MinimalJob("vae"));
  ASSERT_TRUE(r.ok()) << Message(r);
  const JobSpec& s = r.spec;
  EXPECT_EQ(s.name, "minimal");
  EXPECT_EQ(s.model, "vae");
  EXPECT_EQ(s.priority, 0);
  EXPECT_EQ(s.max_restarts, 3);
  EXPECT_EQ(s.dataset.kind, "fashion_mnist");
  EXPECT_EQ(s.dataset.path, "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(s.dataset.image_size, 28);
  EXPECT_EQ(s.dataset.channels, 0);
  EXPECT_EQ(s.dataset.train_limit, 0);
  EXPECT_EQ(s.dataset.test_limit, 0);
  EXPECT_TRUE(s.dataset.params.values().empty());  // fashion_mnist has no fields of its own
  EXPECT_EQ(s.model_params.GetInt("latent_dim"), 100);
  EXPECT_EQ(s.model_params.values().size(), 1u);
  EXPECT_EQ(s.train.epochs, 1);
  EXPECT_EQ(s.train.max_steps, 0);
  EXPECT_EQ(s.train.batch_size, 64);
  EXPECT_DOUBLE_EQ(s.train.lr, 1e-3);
  EXPECT_EQ(s.train.betas, (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(s.train.seed, 1u);
  EXPECT_EQ(s.train.loss.GetDouble("reconstruction"), 1.0);
  EXPECT_EQ(s.train.loss.GetDouble("kl"), 1.0);
  EXPECT_EQ(s.train.loss.values().size(), 2u);
  EXPECT_EQ(s.train.threads, 0);
  EXPECT_EQ(s.train.log_every_steps, 50);
  EXPECT_EQ(s.resources.workers, 1);
  EXPECT_EQ(s.resources.device, "cpu");
  EXPECT_EQ(s.resources.gpus_per_worker, 0);
  EXPECT_EQ(s.checkpoint.every_steps, 500);
  EXPECT_EQ(s.checkpoint.keep_last, 3);
  EXPECT_EQ(s.samples.every_steps, 250);
  EXPECT_EQ(s.samples.grids, (std::vector<std::string>{"reconstruction", "random"}));
  EXPECT_TRUE(s.evaluate.classifiers.empty());
  EXPECT_FALSE(s.evaluate.tsne);
}

TEST(JobSpecParseTest, MinimalCycleVaeUsesItsModelDefaults) {
  ParseResult r = Parse(MinimalJob("cycle_vae"));
  ASSERT_TRUE(r.ok()) << Message(r);
  const JobSpec& s = r.spec;
  EXPECT_EQ(s.model_params.GetInt("style_dim"), 16);
  EXPECT_EQ(s.model_params.GetInt("class_dim"), 16);
  EXPECT_EQ(s.model_params.GetString("reverse_pairs"), "other_class");
  EXPECT_EQ(s.model_params.values().size(), 3u);
  EXPECT_EQ(s.train.loss.GetDouble("reconstruction"), 2.0);
  EXPECT_EQ(s.train.loss.GetDouble("reverse_cycle"), 10.0);
  EXPECT_EQ(s.train.loss.GetDouble("kl"), 10.0);
  EXPECT_DOUBLE_EQ(s.train.lr, 1e-4);
  EXPECT_EQ(s.train.betas, (std::vector<double>{0.9, 0.999}));
  EXPECT_EQ(s.train.batch_size, 64);
  EXPECT_EQ(s.samples.grids,
            (std::vector<std::string>{"reconstruction", "swap", "interpolation"}));
}

TEST(JobSpecParseTest, EmptyDocumentNamesEveryRequiredField) {
  ParseResult r = Parse("");
  ASSERT_FALSE(r.ok());
  ASSERT_NE(ErrorFor(r, "name"), nullptr) << Message(r);
  ASSERT_NE(ErrorFor(r, "model"), nullptr) << Message(r);
  ASSERT_NE(ErrorFor(r, "dataset.kind"), nullptr) << Message(r);
  EXPECT_THAT(ErrorFor(r, "model")->message, HasSubstr("vae, cycle_vae"));
  EXPECT_EQ(r.errors.size(), 3u) << Message(r);
}

constexpr char kFullJob[] = R"(# every field set, none to its default
name: cyclevae-fashion_2.b
model: cycle_vae
dataset:
  kind: mnist
  path: /data/mnist-full
  image_size: 32
  channels: 3
  train_limit: 1000
  test_limit: 200
model_params: {style_dim: 8, class_dim: 24}
train:
  epochs: 20
  max_steps: 900
  batch_size: 128
  lr: 2.5e-4
  betas: [0.5, 0.99]
  seed: 42
  loss: {reconstruction: 1.5, reverse_cycle: 0, kl: 0.25}
  threads: 4
  log_every_steps: 10
resources: {workers: 4, device: cuda, gpus_per_worker: 2}
checkpoint: {every_steps: 0, keep_last: 10}
samples: {every_steps: 100, grids: [swap]}
evaluate: {classifiers: [linear_svm, mlp], tsne: true}
priority: -5
max_restarts: 0
)";

TEST(JobSpecParseTest, FullFileSetsEveryField) {
  ParseResult r = Parse(kFullJob);
  ASSERT_TRUE(r.ok()) << Message(r);
  const JobSpec& s = r.spec;
  EXPECT_EQ(s.name, "cyclevae-fashion_2.b");
  EXPECT_EQ(s.model, "cycle_vae");
  EXPECT_EQ(s.dataset.kind, "mnist");
  EXPECT_EQ(s.dataset.path, "/data/mnist-full");
  EXPECT_EQ(s.dataset.image_size, 32);
  EXPECT_EQ(s.dataset.channels, 3);
  EXPECT_EQ(s.dataset.train_limit, 1000);
  EXPECT_EQ(s.dataset.test_limit, 200);
  EXPECT_TRUE(s.dataset.params.values().empty());
  EXPECT_EQ(s.model_params.GetInt("style_dim"), 8);
  EXPECT_EQ(s.model_params.GetInt("class_dim"), 24);
  EXPECT_EQ(s.train.epochs, 20);
  EXPECT_EQ(s.train.max_steps, 900);
  EXPECT_EQ(s.train.batch_size, 128);
  EXPECT_EQ(s.train.lr, 2.5e-4);
  EXPECT_EQ(s.train.betas, (std::vector<double>{0.5, 0.99}));
  EXPECT_EQ(s.train.seed, 42u);
  EXPECT_EQ(s.train.loss.GetDouble("reconstruction"), 1.5);
  EXPECT_EQ(s.train.loss.GetDouble("reverse_cycle"), 0.0);
  EXPECT_EQ(s.train.loss.GetDouble("kl"), 0.25);
  EXPECT_EQ(s.train.threads, 4);
  EXPECT_EQ(s.train.log_every_steps, 10);
  EXPECT_EQ(s.resources.workers, 4);
  EXPECT_EQ(s.resources.device, "cuda");
  EXPECT_EQ(s.resources.gpus_per_worker, 2);
  EXPECT_EQ(s.checkpoint.every_steps, 0);
  EXPECT_EQ(s.checkpoint.keep_last, 10);
  EXPECT_EQ(s.samples.every_steps, 100);
  EXPECT_EQ(s.samples.grids, (std::vector<std::string>{"swap"}));
  EXPECT_EQ(s.evaluate.classifiers, (std::vector<std::string>{"linear_svm", "mlp"}));
  EXPECT_TRUE(s.evaluate.tsne);
  EXPECT_EQ(s.priority, -5);
  EXPECT_EQ(s.max_restarts, 0);
}

TEST(JobSpecParseTest, SyntaxErrorGivesItsLine) {
  ParseResult r = Parse("name: a\nmodel: vae\ndataset: {kind: mnist\ntrain:\n  epochs: 2\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_GE(r.errors[0].line, 3);
  EXPECT_THAT(r.errors[0].message, HasSubstr("YAML syntax error"));
  EXPECT_THAT(Message(r), HasSubstr(absl::StrCat("job.yaml:", r.errors[0].line, ": YAML syntax")));

  ParseResult bad_indent = Parse("name: a\nmodel: vae\n  dataset: x\n");
  ASSERT_EQ(bad_indent.errors.size(), 1u) << Message(bad_indent);
  EXPECT_EQ(bad_indent.errors[0].line, 3) << Message(bad_indent);
}

// yaml-cpp 0.7's LoadAll never returns on a ',' outside a flow collection
// (it reports an empty document without consuming the ',', forever); found
// by fuzz/jobspec_fuzzer.cc, the input it found is
// fuzz/corpus/jobspec/regress_stray_comma_hang.yaml.
TEST(JobSpecParseTest, StrayCommaIsASyntaxErrorNotAHang) {
  for (const std::string& text : {std::string(","), std::string(",a: b\n"),
                                 std::string(",name:z firsevaluate.cl path: /date: second\x1b\0\0\0\0\n", 49)}) {
    ParseResult r = Parse(text);
    ASSERT_EQ(r.errors.size(), 1u) << Message(r);
    EXPECT_EQ(r.errors[0].line, 1) << Message(r);
    EXPECT_EQ(r.errors[0].message, "YAML syntax error: unexpected ',' at column 1") << Message(r);
  }
  ParseResult later = Parse("name: a\nmodel: vae\n---\n,\n");
  ASSERT_EQ(later.errors.size(), 1u) << Message(later);
  EXPECT_EQ(Message(later), "job.yaml:4: YAML syntax error: unexpected ',' at column 1");
}

TEST(JobSpecParseTest, SeveralDocumentsAreRefusedAtTheSecond) {
  ParseResult r = Parse("name: a\nmodel: vae\n---\nname: b\n---\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(Message(r), "job.yaml:4: holds 3 YAML documents; a job file holds one");
}

TEST(JobSpecParseTest, StatusIsInvalidArgumentWithOneLinePerError) {
  ParseOptions options;
  options.source_name = "jobs/x.yaml";
  absl::StatusOr<JobSpec> spec =
      ParseJobSpec("name: x\nmodel: vae\ndataset: {kind: mnist}\ntrain: {lr: -1, epochs: 0}\n",
                   options);
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  // Same line: document order.
  EXPECT_EQ(std::string(spec.status().message()),
            "jobs/x.yaml:4: train.lr: must be a number > 0 and <= 10, got \"-1\"\n"
            "jobs/x.yaml:4: train.epochs: must be an integer in [1, 100000], got \"0\"");
}

TEST(JobSpecParseTest, MissingRequiredFieldSaysWhatIsAllowed) {
  ParseResult r = Parse("name: a\nmodel: vae\ndataset:\n  path: /x\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "dataset.kind");
  EXPECT_EQ(r.errors[0].line, 3);
  EXPECT_THAT(r.errors[0].message, HasSubstr("required"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("fashion_mnist, mnist, sprites"));
}

TEST(JobSpecParseTest, WrongTypeNamesFieldLineAndType) {
  ParseResult r = Parse(MinimalJob("vae") +
                        "train:\n  epochs: ten\n  betas: 0.5\nevaluate:\n  tsne: maybe\n"
                        "checkpoint: [1, 2]\n");
  ASSERT_EQ(r.errors.size(), 4u) << Message(r);
  const SpecError* epochs = ErrorFor(r, "train.epochs");
  ASSERT_NE(epochs, nullptr);
  EXPECT_EQ(epochs->line, 6);
  EXPECT_EQ(epochs->message, "must be an integer in [1, 100000], got \"ten\"");
  const SpecError* betas = ErrorFor(r, "train.betas");
  ASSERT_NE(betas, nullptr);
  EXPECT_THAT(betas->message, HasSubstr("a list of exactly 2 numbers, each in [0, 1)"));
  const SpecError* tsne = ErrorFor(r, "evaluate.tsne");
  ASSERT_NE(tsne, nullptr);
  EXPECT_EQ(tsne->message, "must be true or false, got \"maybe\"");
  const SpecError* checkpoint = ErrorFor(r, "checkpoint");
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_THAT(checkpoint->message, HasSubstr("must be a section"));
  EXPECT_THAT(checkpoint->message, HasSubstr("got a list"));
}

TEST(JobSpecParseTest, OutOfRangeSaysTheRange) {
  ParseResult r = Parse(MinimalJob("vae") +
                        "model_params: {latent_dim: 5000}\n"
                        "train: {betas: [0.5, 1.0], batch_size: 0}\n");
  const SpecError* latent = ErrorFor(r, "model_params.latent_dim");
  ASSERT_NE(latent, nullptr) << Message(r);
  EXPECT_EQ(latent->line, 5);
  EXPECT_EQ(latent->message, "must be an integer in [1, 4096], got \"5000\"");
  const SpecError* betas = ErrorFor(r, "train.betas");
  ASSERT_NE(betas, nullptr) << Message(r);
  EXPECT_THAT(betas->message, HasSubstr("each in [0, 1)"));
  EXPECT_THAT(betas->message, HasSubstr("\"1.0\" at index 1"));
  const SpecError* batch = ErrorFor(r, "train.batch_size");
  ASSERT_NE(batch, nullptr) << Message(r);
  EXPECT_EQ(batch->message, "must be an integer in [1, 65536], got \"0\"");
}

TEST(JobSpecParseTest, ChannelsAllowOnlyZeroOneThree) {
  ParseResult r = Parse(MinimalJob("vae") + "  channels: 2\n");
  const SpecError* e = ErrorFor(r, "dataset.channels");
  ASSERT_NE(e, nullptr) << Message(r);
  EXPECT_EQ(e->message, "must be one of 0, 1, 3, got \"2\"");
  EXPECT_TRUE(Parse(MinimalJob("vae") + "  channels: 3\n").ok());
}

TEST(JobSpecParseTest, BadEnumListsAllowedValues) {
  ParseResult r = Parse("name: a\nmodel: vae\ndataset:\n  kind: cifar\nresources: {device: gpu}\n");
  ASSERT_EQ(r.errors.size(), 2u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "dataset.kind");
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].message, "must be one of fashion_mnist, mnist, sprites, image_folder, got \"cifar\"");
  EXPECT_EQ(r.errors[1].field, "resources.device");
  EXPECT_THAT(r.errors[1].message, HasSubstr("one of cpu, cuda"));
}

TEST(JobSpecParseTest, UnknownModelListsModelsAndOtherErrorsStillReported) {
  ParseResult r = Parse(
      "name: a\nmodel: began\ndataset: {kind: mnist}\ntrain: {epochs: -3, lr: 0.1}\n"
      "model_params: {anything: 1}\n");
  const SpecError* model = ErrorFor(r, "model");
  ASSERT_NE(model, nullptr) << Message(r);
  EXPECT_EQ(model->line, 2);
  EXPECT_EQ(model->message,
            "must be one of vae, cycle_vae, dcgan, acgan, infogan, mathieu, lord, got \"began\"");
  EXPECT_NE(ErrorFor(r, "train.epochs"), nullptr) << Message(r);
  EXPECT_EQ(r.errors.size(), 2u) << Message(r);

  ParseResult near = Parse("name: a\nmodel: cyclevae\ndataset: {kind: mnist}\n");
  ASSERT_NE(ErrorFor(near, "model"), nullptr);
  EXPECT_THAT(ErrorFor(near, "model")->message, HasSubstr("did you mean 'cycle_vae'?"));
}

TEST(JobSpecParseTest, UnknownTopLevelKeySuggestsClosest) {
  ParseResult r = Parse(MinimalJob("vae") + "trian:\n  epochs: 3\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "trian");
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_EQ(r.errors[0].message, "unknown key; did you mean 'train'?");
}

TEST(JobSpecParseTest, UnknownNestedKeySuggestsClosest) {
  ParseResult r = Parse(MinimalJob("vae") + "train:\n  epochs: 3\n  batchsize: 32\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "train.batchsize");
  EXPECT_EQ(r.errors[0].line, 7);
  EXPECT_EQ(r.errors[0].message, "unknown key; did you mean 'batch_size'?");
  EXPECT_THAT(Message(r), HasSubstr("job.yaml:7: train.batchsize: unknown key; did you mean"));

  ParseResult far = Parse(MinimalJob("vae") + "checkpoint: {zzzzzz: 1}\n");
  ASSERT_EQ(far.errors.size(), 1u);
  EXPECT_EQ(far.errors[0].message, "unknown key; allowed keys: every_steps, keep_last");
}

TEST(JobSpecParseTest, ScalarWhereAListBelongsShowsTheListForm) {
  ParseResult r = Parse(MinimalJob("vae") + "evaluate: {classifiers: mlp}\n");
  const SpecError* e = ErrorFor(r, "evaluate.classifiers");
  ASSERT_NE(e, nullptr) << Message(r);
  EXPECT_EQ(e->message,
            "must be a list of distinct values from mlp, linear_svm; got \"mlp\" "
            "(a list is written [mlp])");
}

TEST(JobSpecParseTest, DuplicateKeyIsAnError) {
  ParseResult r = Parse(MinimalJob("vae") + "priority: 1\npriority: 2\n");
  const SpecError* e = ErrorFor(r, "priority");
  ASSERT_NE(e, nullptr) << Message(r);
  EXPECT_EQ(e->line, 6);
  EXPECT_THAT(e->message, HasSubstr("more than once"));
}

TEST(JobSpecParseTest, GridNotOfTheModelNamesAllowedGrids) {
  ParseResult r = Parse(MinimalJob("vae") + "samples:\n  grids: [random, swap]\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "samples.grids");
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_THAT(r.errors[0].message, HasSubstr("reconstruction, random"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("got \"swap\""));

  ParseResult twice = Parse(MinimalJob("cycle_vae") + "samples: {grids: [swap, swap]}\n");
  ASSERT_NE(ErrorFor(twice, "samples.grids"), nullptr);
  EXPECT_THAT(ErrorFor(twice, "samples.grids")->message, HasSubstr("\"swap\" twice"));

  ParseResult ok = Parse(MinimalJob("cycle_vae") + "samples: {grids: [swap]}\n");
  EXPECT_TRUE(ok.ok()) << Message(ok);
}

TEST(JobSpecParseTest, LossKeyOfAnotherModelIsUnknown) {
  ParseResult r = Parse(MinimalJob("vae") + "train:\n  loss: {kl: 2, reverse_cycle: 10}\n");
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "train.loss.reverse_cycle");
  EXPECT_EQ(r.errors[0].line, 6);
  EXPECT_THAT(r.errors[0].message, HasSubstr("unknown key"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("reconstruction, kl"));

  ParseResult params = Parse(MinimalJob("vae") + "model_params: {style_dim: 4}\n");
  ASSERT_NE(ErrorFor(params, "model_params.style_dim"), nullptr) << Message(params);

  ParseResult negative = Parse(MinimalJob("cycle_vae") + "train: {loss: {kl: -1}}\n");
  ASSERT_NE(ErrorFor(negative, "train.loss.kl"), nullptr) << Message(negative);
  EXPECT_EQ(ErrorFor(negative, "train.loss.kl")->message, "must be a number >= 0, got \"-1\"");
}

TEST(JobSpecParseTest, GpusMustMatchDevice) {
  ParseResult cuda_zero =
      Parse(MinimalJob("vae") + "resources:\n  device: cuda\n  gpus_per_worker: 0\n");
  ASSERT_EQ(cuda_zero.errors.size(), 1u) << Message(cuda_zero);
  EXPECT_EQ(cuda_zero.errors[0].field, "resources.gpus_per_worker");
  EXPECT_EQ(cuda_zero.errors[0].line, 7);
  EXPECT_THAT(cuda_zero.errors[0].message, HasSubstr("resources.device is cuda"));
  EXPECT_THAT(cuda_zero.errors[0].message, HasSubstr(">= 1"));

  ParseResult cpu_two = Parse(MinimalJob("vae") + "resources: {gpus_per_worker: 2}\n");
  ASSERT_EQ(cpu_two.errors.size(), 1u) << Message(cpu_two);
  EXPECT_EQ(cpu_two.errors[0].field, "resources.gpus_per_worker");
  EXPECT_THAT(cpu_two.errors[0].message, HasSubstr("must be 0 when resources.device is cpu"));

  ParseResult cuda_default = Parse(MinimalJob("vae") + "resources: {device: cuda}\n");
  ASSERT_TRUE(cuda_default.ok()) << Message(cuda_default);
  EXPECT_EQ(cuda_default.spec.resources.gpus_per_worker, 1);
}

TEST(JobSpecParseTest, DatasetPathDependsOnKind) {
  ParseResult mnist = Parse("name: a\nmodel: vae\ndataset: {kind: mnist}\n");
  ASSERT_TRUE(mnist.ok()) << Message(mnist);
  EXPECT_EQ(mnist.spec.dataset.path, "data/mnist");

  ParseResult sprites = Parse("name: a\nmodel: vae\ndataset: {kind: sprites}\n");
  ASSERT_TRUE(sprites.ok()) << Message(sprites);
  EXPECT_EQ(sprites.spec.dataset.path, "");

  ParseResult sprites_path =
      Parse("name: a\nmodel: vae\ndataset:\n  kind: sprites\n  path: /tmp/x\n");
  ASSERT_EQ(sprites_path.errors.size(), 1u) << Message(sprites_path);
  EXPECT_EQ(sprites_path.errors[0].field, "dataset.path");
  EXPECT_EQ(sprites_path.errors[0].line, 5);
  EXPECT_THAT(sprites_path.errors[0].message, HasSubstr("dataset.kind is sprites"));

  ParseResult empty_path = Parse("name: a\nmodel: vae\ndataset: {kind: mnist, path: \"\"}\n");
  ASSERT_NE(ErrorFor(empty_path, "dataset.path"), nullptr) << Message(empty_path);
}

TEST(JobSpecParseTest, EachKindHasItsOwnFieldsWithDefaults) {
  ParseResult sprites = Parse("name: a\nmodel: vae\ndataset: {kind: sprites}\n");
  ASSERT_TRUE(sprites.ok()) << Message(sprites);
  EXPECT_EQ(sprites.spec.dataset.params.GetInt("seed"), 1);
  EXPECT_EQ(sprites.spec.dataset.params.GetInt("sprites_train"), 20000);
  EXPECT_EQ(sprites.spec.dataset.params.GetInt("sprites_test"), 2000);
  EXPECT_EQ(sprites.spec.dataset.params.values().size(), 3u);

  ParseResult set = Parse(
      "name: a\nmodel: vae\ndataset:\n  kind: sprites\n  seed: 7\n  sprites_train: 500\n"
      "  sprites_test: 50\n");
  ASSERT_TRUE(set.ok()) << Message(set);
  EXPECT_EQ(set.spec.dataset.params.GetInt("seed"), 7);
  EXPECT_EQ(set.spec.dataset.params.GetInt("sprites_train"), 500);
  EXPECT_EQ(set.spec.dataset.params.GetInt("sprites_test"), 50);

  ParseResult folder = Parse(
      "name: a\nmodel: vae\ndataset: {kind: image_folder, path: /faces, attribute: Smiling, seed: 4}\n");
  ASSERT_TRUE(folder.ok()) << Message(folder);
  EXPECT_EQ(folder.spec.dataset.params.GetString("attr_file"), "list_attr_celeba.txt");
  EXPECT_EQ(folder.spec.dataset.params.GetString("attribute"), "Smiling");
  EXPECT_EQ(folder.spec.dataset.params.GetInt("seed"), 4);
  EXPECT_EQ(folder.spec.dataset.params.values().size(), 3u);
}

TEST(JobSpecParseTest, FieldOfAnotherKindNamesFieldLineAndKind) {
  ParseResult r = Parse("name: a\nmodel: vae\ndataset:\n  kind: fashion_mnist\n  sprites_train: 64\n"
                        "  seed: 3\n");
  ASSERT_EQ(r.errors.size(), 2u) << Message(r);
  EXPECT_EQ(Message(r),
            "job.yaml:5: dataset.sprites_train: unknown key; it is a field of dataset.kind sprites, "
            "not of fashion_mnist\n"
            "job.yaml:6: dataset.seed: unknown key; it is a field of dataset.kind sprites and "
            "image_folder, not of fashion_mnist");

  ParseResult folder_field = Parse("name: a\nmodel: vae\ndataset: {kind: sprites, attr_file: x.txt}\n");
  ASSERT_EQ(folder_field.errors.size(), 1u) << Message(folder_field);
  EXPECT_EQ(folder_field.errors[0].field, "dataset.attr_file");
  EXPECT_EQ(folder_field.errors[0].line, 3);
  EXPECT_THAT(folder_field.errors[0].message, HasSubstr("dataset.kind image_folder, not of sprites"));

  // A key no kind has gets the usual suggestion.
  ParseResult typo = Parse("name: a\nmodel: vae\ndataset: {kind: sprites, sprites_tset: 5}\n");
  ASSERT_EQ(typo.errors.size(), 1u) << Message(typo);
  EXPECT_EQ(typo.errors[0].message, "unknown key; did you mean 'sprites_test'?");

  // While the kind is missing or unknown, that is the one error.
  ParseResult unknown = Parse("name: a\nmodel: vae\ndataset: {kind: cifar, sprites_train: 5}\n");
  ASSERT_EQ(unknown.errors.size(), 1u) << Message(unknown);
  EXPECT_EQ(unknown.errors[0].field, "dataset.kind");
}

TEST(JobSpecParseTest, OwnFieldsAreValidatedByTheirKindsSchema) {
  ParseResult r = Parse("name: a\nmodel: vae\ndataset: {kind: sprites, sprites_train: 0, seed: -1}\n");
  ASSERT_EQ(r.errors.size(), 2u) << Message(r);
  ASSERT_NE(ErrorFor(r, "dataset.sprites_train"), nullptr) << Message(r);
  EXPECT_EQ(ErrorFor(r, "dataset.sprites_train")->message,
            "must be an integer in [1, 1000000], got \"0\"");
  ASSERT_NE(ErrorFor(r, "dataset.seed"), nullptr) << Message(r);

  ParseResult no_attribute = Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, path: /x}\n");
  ASSERT_EQ(no_attribute.errors.size(), 1u) << Message(no_attribute);
  EXPECT_EQ(no_attribute.errors[0].field, "dataset.attribute");
  EXPECT_THAT(no_attribute.errors[0].message, HasSubstr("required"));

  ParseResult empty_attribute =
      Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, path: /x, attribute: \"\"}\n");
  ASSERT_EQ(empty_attribute.errors.size(), 1u) << Message(empty_attribute);
  EXPECT_EQ(empty_attribute.errors[0].field, "dataset.attribute");

  ParseResult no_path = Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, attribute: Young}\n");
  ASSERT_EQ(no_path.errors.size(), 1u) << Message(no_path);
  EXPECT_EQ(no_path.errors[0].field, "dataset.path");
  EXPECT_EQ(no_path.errors[0].line, 3);
  EXPECT_THAT(no_path.errors[0].message, HasSubstr("required when dataset.kind is image_folder"));
}

TEST(JobSpecParseTest, NameMustBeASafeIdentifier) {
  for (const char* bad : {"a/b", "../up", ".hidden", "-dash", "\"\"", "sp ace", "\"x\\ty\""}) {
    ParseResult r = Parse(std::string("name: ") + bad + "\nmodel: vae\ndataset: {kind: mnist}\n");
    const SpecError* e = ErrorFor(r, "name");
    ASSERT_NE(e, nullptr) << bad;
    EXPECT_EQ(e->line, 1);
    EXPECT_THAT(e->message, HasSubstr("[A-Za-z0-9_.-]")) << bad;
  }
  ParseResult too_long =
      Parse("name: " + std::string(65, 'a') + "\nmodel: vae\ndataset: {kind: mnist}\n");
  EXPECT_NE(ErrorFor(too_long, "name"), nullptr);
  ParseResult longest =
      Parse("name: " + std::string(64, 'a') + "\nmodel: vae\ndataset: {kind: mnist}\n");
  EXPECT_TRUE(longest.ok()) << Message(longest);
}

TEST(JobSpecParseTest, SeveralErrorsReportedTogetherInLineOrder) {
  constexpr char kBad[] =
      "name: ok\n"                      // 1
      "model: vae\n"                    // 2
      "dataset:\n"                      // 3
      "  kind: mnist\n"                 // 4
      "  image_size: 8\n"               // 5
      "train:\n"                        // 6
      "  lr: 0\n"                       // 7
      "  epochs: 2\n"                   // 8
      "  optimizer: sgd\n"              // 9
      "resources:\n"                    // 10
      "  workers: 0\n"                  // 11
      "priority: 1000\n";               // 12
  ParseResult r = Parse(kBad);
  ASSERT_EQ(r.errors.size(), 5u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "dataset.image_size");
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_EQ(r.errors[1].field, "train.lr");
  EXPECT_EQ(r.errors[1].line, 7);
  EXPECT_EQ(r.errors[2].field, "train.optimizer");
  EXPECT_EQ(r.errors[2].line, 9);
  EXPECT_EQ(r.errors[3].field, "resources.workers");
  EXPECT_EQ(r.errors[3].line, 11);
  EXPECT_EQ(r.errors[4].field, "priority");
  EXPECT_EQ(r.errors[4].line, 12);
  EXPECT_EQ(Message(r),
            "job.yaml:5: dataset.image_size: must be an integer in [16, 128], got \"8\"\n"
            "job.yaml:7: train.lr: must be a number > 0 and <= 10, got \"0\"\n"
            "job.yaml:9: train.optimizer: unknown key; allowed keys: epochs, max_steps, "
            "batch_size, lr, betas, seed, loss, threads, log_every_steps\n"
            "job.yaml:11: resources.workers: must be an integer in [1, 1024], got \"0\"\n"
            "job.yaml:12: priority: must be an integer in [-100, 100], got \"1000\"");
}

TEST(JobSpecParseTest, RootMustBeAMapping) {
  ParseResult r = Parse("- a\n- b\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("mapping"));
}

TEST(JobSpecParseTest, OversizedFileIsRefused) {
  ParseResult r = Parse(std::string(kMaxJobFileBytes + 1, '#'));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("at most"));
}

TEST(JobSpecParseTest, LoadFileUsesPathInMessagesAndKeepsReadErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string path = (std::filesystem::path(dir) / "jobspec_load_test.yaml").string();
  {
    std::ofstream out(path);
    out << "name: a\nmodel: vae\ndataset: {kind: mnist}\ntrain: {epochs: 0}\n";
  }
  absl::StatusOr<JobSpec> bad = LoadJobSpecFile(path);
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(path + ":4: train.epochs"));

  absl::StatusOr<JobSpec> fixed = LoadJobSpecFile(path, {"train.epochs=5"});
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->train.epochs, 5);

  EXPECT_EQ(LoadJobSpecFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(path);
}

// examples/ and examples/reproduction/ (scripts/reproduce.sh's job files).
TEST(JobSpecParseTest, EveryExampleParses) {
  int examples = 0, reproduction = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::string(DFV_SOURCE_DIR) + "/examples")) {
    if (entry.path().extension() != ".yaml") continue;
    ++examples;
    absl::StatusOr<JobSpec> spec = LoadJobSpecFile(entry.path().string());
    EXPECT_TRUE(spec.ok()) << entry.path() << ": " << spec.status();
    if (!spec.ok() || entry.path().parent_path().filename() != "reproduction") continue;
    ++reproduction;
    // What scripts/reproduction_table.py reads from every report: the MLP
    // probe, and on sprites the ground-truth factor scores.
    const std::vector<std::string>& classifiers = spec->evaluate.classifiers;
    EXPECT_NE(std::find(classifiers.begin(), classifiers.end(), "mlp"), classifiers.end()) << entry.path();
    if (spec->dataset.kind == "sprites") EXPECT_TRUE(spec->evaluate.factors) << entry.path();
  }
  EXPECT_GE(examples, 7);
  EXPECT_GE(reproduction, 12);
}

TEST(JobSpecCatalogueTest, HasTheFourDataSets) {
  EXPECT_EQ(DatasetKinds(), (std::vector<std::string>{"fashion_mnist", "mnist", "sprites", "image_folder"}));
  EXPECT_EQ(FindDataset("cifar"), nullptr);
  ASSERT_NE(FindDataset("sprites"), nullptr);
  EXPECT_EQ(FindDataset("sprites")->path.type, DatasetPathRule::Type::kGenerated);
}

TEST(JobSpecCatalogueTest, HasTheSevenModelsOfTheSeeds) {
  EXPECT_EQ(ModelNames(),
            (std::vector<std::string>{"vae", "cycle_vae", "dcgan", "acgan", "infogan", "mathieu", "lord"}));
  EXPECT_EQ(FindModel("began"), nullptr);
  ASSERT_NE(FindModel("cycle_vae"), nullptr);
  EXPECT_EQ(FindModel("cycle_vae")->source, "seed 002");
}

}  // namespace
}  // namespace dfv::jobspec
