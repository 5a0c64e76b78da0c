// Job files a user (or an attacker) might send that the schema tests do not
// already cover: numbers beyond any type, negative sizes, a YAML alias bomb,
// a 100 MB file. Each gets a clear error naming what was wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/jobspec/parse.h"
#include "tests/jobspec/test_util.h"

namespace dfv::jobspec {
namespace {

using ::dfv::jobspec::testing::ErrorFor;
using ::dfv::jobspec::testing::Message;
using ::dfv::jobspec::testing::MinimalJob;
using ::dfv::jobspec::testing::Parse;
using ::testing::HasSubstr;

TEST(JobFileBadInputTest, NumbersBeyondEveryTypeNameTheField) {
  for (const char* huge : {"99999999999999999999999", "1e400", "-1e400", ".inf", ".nan"}) {
    ParseResult steps = Parse(MinimalJob("vae") + absl::StrCat("train: {max_steps: ", huge, "}\n"));
    ASSERT_FALSE(steps.ok()) << huge;
    ASSERT_NE(ErrorFor(steps, "train.max_steps"), nullptr) << huge << ": " << Message(steps);
    ParseResult lr = Parse(MinimalJob("vae") + absl::StrCat("train: {lr: ", huge, "}\n"));
    ASSERT_FALSE(lr.ok()) << huge;
    ASSERT_NE(ErrorFor(lr, "train.lr"), nullptr) << huge << ": " << Message(lr);
  }
}

TEST(JobFileBadInputTest, NegativeSizesAreOutOfRange) {
  for (const char* field : {"batch_size", "max_steps", "epochs", "log_every_steps"}) {
    ParseResult r = Parse(MinimalJob("vae") + absl::StrCat("train: {", field, ": -8}\n"));
    ASSERT_FALSE(r.ok()) << field;
    const SpecError* error = ErrorFor(r, absl::StrCat("train.", field));
    ASSERT_NE(error, nullptr) << Message(r);
    EXPECT_THAT(error->message, HasSubstr("-8")) << Message(r);
  }
  ParseResult workers = Parse(MinimalJob("vae") + "resources: {workers: -2}\n");
  ASSERT_NE(ErrorFor(workers, "resources.workers"), nullptr) << Message(workers);
}

// The "billion laughs": nine levels of nine aliases would expand to 9^9
// strings. The parser must answer quickly, without expanding them all.
TEST(JobFileBadInputTest, AYamlAliasBombIsRefusedQuickly) {
  std::string yaml = MinimalJob("vae") + "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level <= 9; ++level) {
    std::string row = absl::StrCat("x", level, ": &x", level, " [");
    for (int i = 0; i < 9; ++i) absl::StrAppend(&row, i == 0 ? "" : ", ", "*x", level - 1);
    absl::StrAppend(&yaml, row, "]\n");
  }
  // Unknown keys, and the bomb where a list of names belongs.
  for (const std::string& text : {yaml, yaml + "evaluate: {classifiers: *x9}\n"}) {
    const absl::Time start = absl::Now();
    ParseResult r = Parse(text);
    const absl::Duration took = absl::Now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(Message(r), HasSubstr("x0"));
    EXPECT_LT(took, absl::Seconds(2)) << Message(r);
    EXPECT_LT(Message(r).size(), 4096u) << "one error per alias would be a bomb of its own";
  }
}

TEST(JobFileBadInputTest, AHundredMegabyteFileIsRefusedBeforeItIsRead) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "dfv_huge_job.yaml").string();
  {
    std::ofstream out(path);
    out << MinimalJob("vae");
  }
  std::filesystem::resize_file(path, 100 << 20);  // sparse: no 100 MB written
  const absl::Time start = absl::Now();
  absl::StatusOr<JobSpec> spec = LoadJobSpecFile(path, {});
  const absl::Duration took = absl::Now() - start;
  std::filesystem::remove(path);
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  EXPECT_THAT(spec.status().message(), HasSubstr(path));
  EXPECT_THAT(spec.status().message(), HasSubstr("104857600 bytes"));
  EXPECT_THAT(spec.status().message(), HasSubstr("at most 1048576"));
  EXPECT_LT(took, absl::Milliseconds(200));
}

TEST(JobFileBadInputTest, AFolderOrAMissingFileIsNamed) {
  absl::StatusOr<JobSpec> folder = LoadJobSpecFile(::testing::TempDir(), {});
  ASSERT_FALSE(folder.ok());
  EXPECT_THAT(folder.status().message(), HasSubstr("is a folder, not a job file"));
  absl::StatusOr<JobSpec> missing = LoadJobSpecFile("/no/such/job.yaml", {});
  ASSERT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/no/such/job.yaml"));
}

}  // namespace
}  // namespace dfv::jobspec
