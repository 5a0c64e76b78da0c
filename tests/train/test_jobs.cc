#include "tests/train/test_jobs.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"

namespace dfv::testing {

jobspec::JobSpec ParseOrDie(const std::string& yaml) {
  jobspec::ParseOptions options;
  options.source_name = "test.yaml";
  auto spec = jobspec::ParseJobSpec(yaml, options);
  if (!spec.ok()) {
    ADD_FAILURE() << spec.status();
    std::abort();
  }
  return *spec;
}

jobspec::JobSpec SmallSpritesJob(const std::string& model, int image_size, int channels, int max_steps) {
  return ParseOrDie(absl::StrFormat(R"(
name: test-%s
model: %s
dataset: {kind: sprites, image_size: %d, channels: %d, sprites_train: 512, sprites_test: 64, seed: 3}
train: {epochs: 100, max_steps: %d, batch_size: 16, lr: 1.0e-3, seed: 5, threads: 1, log_every_steps: 10}
checkpoint: {every_steps: 20, keep_last: 2}
samples: {every_steps: 20}
)",
                                    model, model, image_size, channels, max_steps));
}

models::ModelContext SpritesModelContext(const jobspec::JobSpec& spec, int64_t num_classes, int64_t train_size) {
  models::ModelContext ctx;
  ctx.spec = &spec;
  ctx.channels = 3;
  ctx.image_size = 28;
  ctx.num_classes = num_classes;
  ctx.train_size = train_size;
  return ctx;
}

data::Batch RandomBatch(int64_t n, int channels, int size) {
  data::Batch b;
  b.images = torch::rand({n, channels, size, size});
  b.labels = torch::arange(n) % 4;
  b.indices = torch::arange(n);
  b.same_images = torch::rand({n, channels, size, size});
  b.other_images = torch::rand({n, channels, size, size});
  b.other_labels = (torch::arange(n) + 1) % 4;
  return b;
}

std::string FreshDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "dfv_train_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::map<std::string, std::vector<double>> ReadMetricsCsv(const std::string& path) {
  std::map<std::string, std::vector<double>> columns;
  auto text = ReadFileToString(path);
  EXPECT_TRUE(text.ok()) << text.status();
  if (!text.ok()) return columns;
  std::vector<std::string> lines = absl::StrSplit(*text, '\n', absl::SkipEmpty());
  if (lines.empty()) {
    ADD_FAILURE() << path << " is empty";
    return columns;
  }
  std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> row = absl::StrSplit(lines[i], ',');
    for (size_t c = 0; c < header.size() && c < row.size(); ++c) {
      double v = 0;
      EXPECT_TRUE(absl::SimpleAtod(row[c], &v)) << row[c];
      columns[header[c]].push_back(v);
    }
  }
  return columns;
}

}  // namespace dfv::testing
