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

TEST(OverrideTest, NameWithSlashFromOverrideRejected) {
  ParseResult r = Parse(MinimalJob("vae"), {"name=../../etc"});
  const SpecError* e = ErrorFor(r, "name");
  ASSERT_NE(e, nullptr) << Message(r);
  EXPECT_EQ(e->source, "--set name=../../etc");
}

}  // namespace
}  // namespace dfv::jobspec
