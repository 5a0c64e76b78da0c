// --set overrides: applied before validation, validated the same way, and
// errors naming the override.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/jobspec/parse.h"
#include "tests/jobspec/test_util.h"

namespace dfv::jobspec {
namespace {

using ::dfv::jobspec::testing::ErrorFor;
using ::dfv::jobspec::testing::Message;
using ::dfv::jobspec::testing::MinimalJob;
using ::dfv::jobspec::testing::Parse;
using ::testing::HasSubstr;

TEST(OverrideTest, ChangesValuesIncludingListsAndNewSections) {
  ParseResult r = Parse(MinimalJob("cycle_vae") + "train:\n  lr: 0.5\n",
                        {"train.lr=5e-4", "train.betas=[0.5,0.999]", "model_params.style_dim=32",
                         "evaluate.tsne=true", "samples.grids=[swap]", "name=renamed"});
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(r.spec.train.lr, 5e-4);
  EXPECT_EQ(r.spec.train.betas, (std::vector<double>{0.5, 0.999}));
  EXPECT_EQ(r.spec.model_params.GetInt("style_dim"), 32);
  EXPECT_TRUE(r.spec.evaluate.tsne);
  EXPECT_EQ(r.spec.samples.grids, (std::vector<std::string>{"swap"}));
  EXPECT_EQ(r.spec.name, "renamed");
}

TEST(OverrideTest, LaterOverrideWins) {
  ParseResult r = Parse(MinimalJob("vae"), {"priority=5", "priority=7"});
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(r.spec.priority, 7);
}

TEST(OverrideTest, CanSupplyMissingRequiredFieldsAndChangeModel) {
  ParseResult r = Parse("name: a\n", {"model=cycle_vae", "dataset.kind=sprites"});
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(r.spec.model, "cycle_vae");
  EXPECT_EQ(r.spec.dataset.kind, "sprites");
  EXPECT_EQ(r.spec.model_params.GetInt("class_dim"), 16);
}

TEST(OverrideTest, BadValueNamesTheOverride) {
  ParseResult r = Parse(MinimalJob("vae"), {"train.lr=abc"});
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "train.lr");
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].source, "--set train.lr=abc");
  EXPECT_EQ(Message(r),
            "--set train.lr=abc: train.lr: must be a number > 0 and <= 10, got \"abc\"");
}

TEST(OverrideTest, OverriddenFileValueIsBlamedOnTheOverride) {
  // The file's train section is fine; the override breaks a field in it.
  ParseResult r = Parse(MinimalJob("vae") + "train:\n  epochs: 2\n  batch_size: 8\n",
                        {"train.epochs=0"});
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].source, "--set train.epochs=0");
}

TEST(OverrideTest, UnknownKeyNamesTheOverrideAndSuggests) {
  ParseResult nested = Parse(MinimalJob("vae"), {"train.batchsize=32"});
  ASSERT_EQ(nested.errors.size(), 1u) << Message(nested);
  EXPECT_EQ(Message(nested),
            "--set train.batchsize=32: train.batchsize: unknown key; did you mean 'batch_size'?");

  ParseResult top = Parse(MinimalJob("vae"), {"optimiser.kind=adam"});
  ASSERT_EQ(top.errors.size(), 1u) << Message(top);
  EXPECT_EQ(top.errors[0].field, "optimiser");
  EXPECT_EQ(top.errors[0].source, "--set optimiser.kind=adam");
}

TEST(OverrideTest, MalformedOverridesAreErrors) {
  for (const char* bad : {"train.lr", "=3", "train..lr=3", ".lr=1", "train.=1"}) {
    ParseResult r = Parse(MinimalJob("vae"), {bad});
    ASSERT_EQ(r.errors.size(), 1u) << bad << "\n" << Message(r);
    EXPECT_EQ(r.errors[0].source, std::string("--set ") + bad);
    EXPECT_THAT(r.errors[0].message, HasSubstr("key.path=value")) << bad;
  }
  ParseResult bad_yaml = Parse(MinimalJob("vae"), {"train.betas=[0.5,"});
  ASSERT_EQ(bad_yaml.errors.size(), 1u) << Message(bad_yaml);
  EXPECT_EQ(bad_yaml.errors[0].field, "train.betas");
  EXPECT_THAT(bad_yaml.errors[0].message, HasSubstr("not valid YAML"));

  ParseResult map_value = Parse(MinimalJob("vae"), {"train={lr: 1}"});
  ASSERT_EQ(map_value.errors.size(), 1u) << Message(map_value);
  EXPECT_THAT(map_value.errors[0].message, HasSubstr("scalar or a list"));
}

TEST(OverrideTest, CannotDescendIntoAValue) {
  ParseResult r = Parse(MinimalJob("vae"), {"dataset.kind.x=1"});
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "dataset.kind");
  EXPECT_THAT(r.errors[0].message, HasSubstr("not a section"));
}

TEST(OverrideTest, FileAndOverrideErrorsTogetherFileFirst) {
  ParseResult r = Parse(MinimalJob("vae") + "priority: 500\n",
                        {"checkpoint.keep_last=0", "resources.workers=x"});
  ASSERT_EQ(r.errors.size(), 3u) << Message(r);
  EXPECT_EQ(r.errors[0].source, "job.yaml");
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_EQ(r.errors[1].source, "--set checkpoint.keep_last=0");
  EXPECT_EQ(r.errors[2].source, "--set resources.workers=x");
}

TEST(OverrideTest, NullRemovesAKeySoItsDefaultApplies) {
  ParseResult r = Parse(MinimalJob("vae") + "  image_size: 64\ntrain: {lr: 0.5, epochs: 3}\npriority: 9\n",
                        {"dataset.image_size=null", "train.lr=~", "priority=null", "checkpoint.keep_last=null"});
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(r.spec.dataset.image_size, 28);
  EXPECT_DOUBLE_EQ(r.spec.train.lr, 1e-3);
  EXPECT_EQ(r.spec.train.epochs, 3);  // its neighbour stays
  EXPECT_EQ(r.spec.priority, 0);
  EXPECT_EQ(r.spec.checkpoint.keep_last, 3);  // not in the file: nothing to remove

  // A whole section, and the quoted word is a string, not a removal.
  ParseResult section = Parse(MinimalJob("vae") + "train: {lr: 0.5, epochs: 3}\n", {"train=null"});
  ASSERT_TRUE(section.ok()) << Message(section);
  EXPECT_EQ(section.spec.train.epochs, 1);
  ParseResult quoted = Parse(MinimalJob("vae"), {"name=\"null\""});
  ASSERT_TRUE(quoted.ok()) << Message(quoted);
  EXPECT_EQ(quoted.spec.name, "null");
}

TEST(OverrideTest, NullThenSetAndSetThenNullFollowTheOrder) {
  ParseResult set_last = Parse(MinimalJob("vae") + "priority: 9\n", {"priority=null", "priority=4"});
  ASSERT_TRUE(set_last.ok()) << Message(set_last);
  EXPECT_EQ(set_last.spec.priority, 4);
  ParseResult removed_last = Parse(MinimalJob("vae"), {"priority=4", "priority=null"});
  ASSERT_TRUE(removed_last.ok()) << Message(removed_last);
  EXPECT_EQ(removed_last.spec.priority, 0);
}

TEST(OverrideTest, RetargetsTheFashionExampleToSprites) {
  const std::string path = std::string(DFV_SOURCE_DIR) + "/examples/cycle_vae_fashion.yaml";
  // Changing the kind alone leaves the example's path behind.
  absl::StatusOr<JobSpec> kind_only = LoadJobSpecFile(path, {"dataset.kind=sprites"});
  ASSERT_FALSE(kind_only.ok());
  EXPECT_THAT(std::string(kind_only.status().message()),
              HasSubstr("dataset.path: must not be set when dataset.kind is sprites"));

  absl::StatusOr<JobSpec> spec = LoadJobSpecFile(path, {"dataset.kind=sprites", "dataset.path=null"});
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->dataset.kind, "sprites");
  EXPECT_EQ(spec->dataset.path, "");
  EXPECT_EQ(spec->dataset.params.GetInt("sprites_train"), 20000);
  EXPECT_EQ(spec->model, "cycle_vae");
}

TEST(OverrideTest, NullOnAnotherKindsFieldRetargetsBack) {
  const std::string sprites_job =
      "name: a\nmodel: vae\ndataset: {kind: sprites, sprites_train: 64, seed: 3}\n";
  ParseResult kind_only = Parse(sprites_job, {"dataset.kind=mnist"});
  ASSERT_EQ(kind_only.errors.size(), 2u) << Message(kind_only);
  EXPECT_THAT(Message(kind_only), HasSubstr("dataset.sprites_train: unknown key; it is a field of "
                                            "dataset.kind sprites, not of mnist"));

  ParseResult r = Parse(sprites_job,
                        {"dataset.kind=mnist", "dataset.sprites_train=null", "dataset.seed=null",
                         "dataset.sprites_test=null"});
  ASSERT_TRUE(r.ok()) << Message(r);
  EXPECT_EQ(r.spec.dataset.path, "data/mnist");
  EXPECT_TRUE(r.spec.dataset.params.values().empty());
}

TEST(OverrideTest, RemovingARequiredKeyIsTheUsualRequiredError) {
  ParseResult r = Parse(MinimalJob("vae"), {"dataset.kind=null"});
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(r.errors[0].field, "dataset.kind");
  EXPECT_EQ(r.errors[0].source, "--set dataset.kind=null");
  EXPECT_THAT(r.errors[0].message, HasSubstr("required field is missing"));

  ParseResult name = Parse(MinimalJob("vae"), {"name=null"});
  ASSERT_EQ(name.errors.size(), 1u) << Message(name);
  EXPECT_EQ(FormatSpecError(name.errors[0]),
            "--set name=null: name: required field is missing; must be a string of 1 to 64 characters "
            "from [A-Za-z0-9_.-], not starting with '.' or '-'");

  ParseResult path = Parse("name: a\nmodel: vae\ndataset: {kind: image_folder, path: /x, attribute: Young}\n",
                           {"dataset.path=null"});
  ASSERT_EQ(path.errors.size(), 1u) << Message(path);
  EXPECT_EQ(path.errors[0].source, "--set dataset.path=null");
  EXPECT_THAT(path.errors[0].message, HasSubstr("required when dataset.kind is image_folder"));
}

TEST(OverrideTest, RemovingAnUnknownKeyIsAnErrorNamingIt) {
  ParseResult typo = Parse(MinimalJob("vae"), {"train.batchsize=null"});
  ASSERT_EQ(typo.errors.size(), 1u) << Message(typo);
  EXPECT_EQ(Message(typo),
            "--set train.batchsize=null: train.batchsize: unknown key; did you mean 'batch_size'?");

  ParseResult top = Parse(MinimalJob("vae"), {"optimiser.kind=null"});
  ASSERT_EQ(top.errors.size(), 1u) << Message(top);
  EXPECT_EQ(top.errors[0].field, "optimiser");

  ParseResult model_param = Parse(MinimalJob("vae"), {"model_params.style_dim=null"});
  ASSERT_EQ(model_param.errors.size(), 1u) << Message(model_param);
  EXPECT_EQ(model_param.errors[0].field, "model_params.style_dim");

  ParseResult below_value = Parse(MinimalJob("vae"), {"dataset.kind.x=null"});
  ASSERT_EQ(below_value.errors.size(), 1u) << Message(below_value);
  EXPECT_THAT(below_value.errors[0].message, HasSubstr("cannot remove dataset.kind.x"));
}

TEST(OverrideTest, EmptyValueSaysHowToRemoveOrEmpty) {
  ParseResult r = Parse(MinimalJob("vae"), {"dataset.path="});
  ASSERT_EQ(r.errors.size(), 1u) << Message(r);
  EXPECT_EQ(Message(r),
            "--set dataset.path=: dataset.path: no value; write dataset.path=null to remove the key, "
            "or dataset.path=\"\" for an empty string");
}

TEST(OverrideTest, NameWithSlashFromOverrideRejected) {
  ParseResult r = Parse(MinimalJob("vae"), {"name=../../etc"});
  const SpecError* e = ErrorFor(r, "name");
  ASSERT_NE(e, nullptr) << Message(r);
  EXPECT_EQ(e->source, "--set name=../../etc");
}

}  // namespace
}  // namespace dfv::jobspec
