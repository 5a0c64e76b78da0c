// Helpers shared by the coordinator's tests.
#ifndef DFV_TESTS_SERVER_TEST_UTIL_H_
#define DFV_TESTS_SERVER_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dfv::server::testing {

// An empty folder under the test's temporary directory.
inline std::string FreshDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "dfv_server_test" /
                              absl::StrCat(name, "-", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// A small valid job (sprites need no data files).
inline std::string JobYaml(const std::string& name, int workers = 1, int priority = 0,
                           int max_restarts = 3, const std::string& device = "cpu") {
  return absl::StrFormat(R"(name: %s
model: vae
dataset: {kind: sprites, sprites_train: 64, sprites_test: 16}
train: {max_steps: 4, batch_size: 8}
resources: {workers: %d, device: %s}
priority: %d
max_restarts: %d
)",
                         name, workers, device, priority, max_restarts);
}

}  // namespace dfv::server::testing

#endif  // DFV_TESTS_SERVER_TEST_UTIL_H_
