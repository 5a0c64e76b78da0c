// The schema engine and the documentation printed from the job schema.
#include "common/jobspec/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/jobspec/catalogue.h"
#include "common/jobspec/dataset_catalogue.h"
#include "common/jobspec/job_schema.h"

namespace dfv::jobspec {
namespace {

using ::testing::HasSubstr;

TEST(SchemaFormatTest, DoublesPrintShortestExactForm) {
  EXPECT_EQ(FormatDouble(1.0), "1.0");
  EXPECT_EQ(FormatDouble(0.001), "0.001");
  EXPECT_EQ(FormatDouble(1e-4), "0.0001");
  EXPECT_EQ(FormatDouble(0.999), "0.999");
  EXPECT_EQ(FormatDouble(-2.0), "-2.0");
  EXPECT_EQ(FormatDouble(1e300), "1e+300");
  for (double v : {0.1 + 0.2, 1.0 / 3.0, 2.2250738585072014e-308, 123456789.123456789}) {
    const std::string text = FormatDouble(v);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), v) << text;
  }
}

TEST(SchemaFormatTest, StringsAreQuotedOnlyWhenNeeded) {
  EXPECT_EQ(FormatValue(Value(std::string("data/mnist"))), "data/mnist");
  EXPECT_EQ(FormatValue(Value(std::string(""))), "\"\"");
  EXPECT_EQ(FormatValue(Value(std::string("true"))), "\"true\"");
  EXPECT_EQ(FormatValue(Value(std::string("123"))), "\"123\"");
  EXPECT_EQ(FormatValue(Value(std::string("a: b"))), "\"a: b\"");
  EXPECT_EQ(FormatValue(Value(std::string("q\"\\"))), "\"q\\\"\\\\\"");
  EXPECT_EQ(FormatValue(Value(std::vector<std::string>{"a", "b"})), "[a, b]");
  EXPECT_EQ(FormatValue(Value(std::vector<double>{})), "[]");
}

TEST(SchemaSuggestTest, ClosestNameFindsTyposOnly) {
  const std::vector<std::string> keys = {"epochs", "batch_size", "lr", "log_every_steps"};
  EXPECT_EQ(ClosestName("batchsize", keys), "batch_size");
  EXPECT_EQ(ClosestName("Batch_Size", keys), "batch_size");
  EXPECT_EQ(ClosestName("epohcs", keys), "epochs");
  EXPECT_EQ(ClosestName("log_every_step", keys), "log_every_steps");
  EXPECT_EQ(ClosestName("optimizer", keys), "");
  EXPECT_EQ(ClosestName("xy", keys), "");
}

TEST(SchemaFieldTest, DescribeAllowedCoversEachType) {
  using F = FieldSchema;
  EXPECT_EQ(F::Int("a", "").Range(1, 10).DescribeAllowed(), "an integer in [1, 10]");
  EXPECT_EQ(F::Int("a", "").Min(0).DescribeAllowed(), "an integer >= 0");
  EXPECT_EQ(F::Float("a", "").Min(0, true).Max(10).DescribeAllowed(), "a number > 0 and <= 10");
  EXPECT_EQ(F::Float("a", "").Min(0).Max(1, true).DescribeAllowed(), "a number in [0, 1)");
  EXPECT_EQ(F::Float("a", "").Min(0.5).DescribeAllowed(), "a number >= 0.5");
  EXPECT_EQ(F::Bool("a", "").DescribeAllowed(), "true or false");
  EXPECT_EQ(F::Enum("a", {"x", "y"}, "").DescribeAllowed(), "one of x, y");
  EXPECT_EQ(F::FloatList("a", "").Length(2).Min(0).Max(1, true).DescribeAllowed(),
            "a list of exactly 2 numbers, each in [0, 1)");
  EXPECT_EQ(F::EnumList("a", {"p", "q"}, "").DescribeAllowed(), "a list of distinct values from p, q");
}

TEST(SchemaFieldTest, CheckValueAppliesConstraints) {
  FieldSchema lr = FieldSchema::Float("lr", "").Min(0, true).Max(10);
  EXPECT_FALSE(lr.CheckValue(Value(0.5)).has_value());
  ASSERT_TRUE(lr.CheckValue(Value(0.0)).has_value());
  EXPECT_THAT(*lr.CheckValue(Value(0.0)), HasSubstr("> 0"));
  EXPECT_TRUE(lr.CheckValue(Value(int64_t{1})).has_value());  // wrong alternative
  FieldSchema grids = FieldSchema::EnumList("grids", {"a", "b"}, "");
  EXPECT_FALSE(grids.CheckValue(Value(std::vector<std::string>{"b", "a"})).has_value());
  EXPECT_TRUE(grids.CheckValue(Value(std::vector<std::string>{"a", "a"})).has_value());
  EXPECT_TRUE(grids.CheckValue(Value(std::vector<std::string>{"c"})).has_value());
}

TEST(SchemaFieldDeathTest, DefaultOutsideItsRangeIsASchemaBug) {
  EXPECT_DEATH(FieldSchema::Int("n", "").Default(int64_t{0}).Range(1, 5), "schema bug.*'n'");
  EXPECT_DEATH(FieldSchema::Int("n", "").Required().Default(int64_t{1}), "schema bug");
}

// Every key of the job file, written out independently of the schema.
constexpr const char* kAllGeneralFields[] = {
    "name:", "model:", "priority:", "max_restarts:",
    "dataset:", "kind:", "path:", "image_size:", "channels:", "train_limit:", "test_limit:",
    "seed:", "sprites_train:", "sprites_test:",
    "model_params:",
    "train:", "epochs:", "max_steps:", "batch_size:", "lr:", "betas:", "loss:", "threads:",
    "log_every_steps:",
    "resources:", "workers:", "device:", "gpus_per_worker:",
    "checkpoint:", "every_steps:", "keep_last:",
    "samples:", "grids:",
    "evaluate:", "classifiers:", "tsne:",
};

TEST(SchemaDocumentationTest, MentionsEveryFieldWithTypeDefaultAndDoc) {
  const std::string doc = SchemaDocumentation();
  for (const char* field : kAllGeneralFields) EXPECT_THAT(doc, HasSubstr(field));
  // A few whole lines: default, allowed values, doc line.
  EXPECT_THAT(doc, HasSubstr("  epochs: 1"));
  EXPECT_THAT(doc, HasSubstr("an integer in [1, 100000]. passes over the training set"));
  EXPECT_THAT(doc, HasSubstr("one of fashion_mnist, mnist, sprites, image_folder; required"));
  EXPECT_THAT(doc, HasSubstr("one of vae, cycle_vae, dcgan, acgan, infogan, mathieu, lord; required"));
  EXPECT_THAT(doc, HasSubstr("/usr/share/datasets/fashion-mnist"));
  EXPECT_THAT(doc, HasSubstr("1 when device is cuda"));
  EXPECT_THAT(doc, HasSubstr("a list of distinct values from mlp, linear_svm"));
  EXPECT_THAT(doc, HasSubstr("[A-Za-z0-9_.-]"));
}

TEST(SchemaDocumentationTest, DescribesEachModel) {
  const std::string doc = SchemaDocumentation();
  for (const ModelInfo& model : ModelCatalogue()) {
    EXPECT_THAT(doc, HasSubstr("# model: " + model.name)) << model.name;
    EXPECT_THAT(doc, HasSubstr(model.source));
    for (const FieldSchema& param : model.params) EXPECT_THAT(doc, HasSubstr(param.name() + ":"));
    for (const FieldSchema& coef : model.loss) EXPECT_THAT(doc, HasSubstr(coef.name() + ":"));
  }
  EXPECT_THAT(doc, HasSubstr("latent_dim: 100"));
  EXPECT_THAT(doc, HasSubstr("reverse_cycle: 10.0"));
  EXPECT_THAT(doc, HasSubstr("lr: 0.0001"));
  EXPECT_THAT(doc, HasSubstr("grids: [reconstruction, swap, interpolation]"));
  EXPECT_THAT(doc, HasSubstr("grids: [reconstruction, random]"));
}

TEST(SchemaDocumentationTest, DescribesEachDataSet) {
  const std::string doc = SchemaDocumentation();
  for (const DatasetInfo& dataset : DatasetCatalogue()) {
    EXPECT_THAT(doc, HasSubstr("# dataset.kind: " + dataset.name + "  " + dataset.summary)) << dataset.name;
    for (const FieldSchema& field : dataset.fields) EXPECT_THAT(doc, HasSubstr(field.name() + ":"));
  }
  EXPECT_THAT(doc, HasSubstr("sprites_train: 20000"));
  EXPECT_THAT(doc, HasSubstr("attr_file: list_attr_celeba.txt"));
  EXPECT_THAT(doc, HasSubstr("path: data/mnist"));
  EXPECT_THAT(doc, HasSubstr("none, required when dataset.kind is image_folder"));
}

TEST(SchemaFieldTest, OtherVariantKeysGetTheirReasonOrAreIgnored) {
  using F = FieldSchema;
  F root = F::Section("", "", {F::Section("s", "", {F::Int("a", "").Default(int64_t{1})})});
  EXPECT_FALSE(CheckFieldPath(root, "s.a").has_value());
  std::optional<SpecError> unknown = CheckFieldPath(root, "s.b");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->field, "s.b");
  EXPECT_EQ(unknown->message, "unknown key; did you mean 'a'?");
  std::optional<SpecError> below_leaf = CheckFieldPath(root, "s.a.x");
  ASSERT_TRUE(below_leaf.has_value());
  EXPECT_EQ(below_leaf->field, "s.a.x");

  F variant = F::Section("s", "", {F::Int("a", "")});
  variant.OtherVariantKey("b", "b belongs to the other variant");
  EXPECT_EQ(UnknownKeyMessage(variant, "b"), "unknown key; b belongs to the other variant");
  EXPECT_EQ(UnknownKeyMessage(variant, "zzz"), "unknown key; allowed keys: a");
  F variant_root = F::Section("", "", {variant});
  EXPECT_FALSE(CheckFieldPath(variant_root, "s.b").has_value());
}

TEST(SchemaJobTest, EveryLeafOfEachModelSchemaHasADefaultOrIsRequired) {
  // Walks the schema tree: a leaf with neither would leave a JobSpec member
  // unset, which ToJobSpec treats as a bug.
  struct Walker {
    static void Walk(const FieldSchema& section, const std::string& path) {
      for (const FieldSchema& child : section.children()) {
        const std::string child_path = path.empty() ? child.name() : path + "." + child.name();
        if (child.type() == FieldType::kSection) {
          Walk(child, child_path);
        } else if (child.name() != "path" && child.name() != "gpus_per_worker") {
          EXPECT_TRUE(child.required() || child.default_value().has_value()) << child_path;
        }
      }
    }
  };
  for (const ModelInfo& model : ModelCatalogue()) {
    for (const DatasetInfo& dataset : DatasetCatalogue()) {
      SCOPED_TRACE(model.name + " on " + dataset.name);
      Walker::Walk(JobSchema(&model, &dataset).root(), "");
    }
  }
}

}  // namespace
}  // namespace dfv::jobspec
