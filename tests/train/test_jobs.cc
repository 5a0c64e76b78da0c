#include "tests/train/test_jobs.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

std::string FreshDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "dfv_train_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace dfv::testing
