#include "common/random_secret.h"

#include <gtest/gtest.h>

#include <set>

namespace dfv {
namespace {

TEST(RandomSecretTest, HexOfTheRequestedLengthAndNeverTheSameTwice) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::string> secret = RandomHexSecret(16);
    ASSERT_TRUE(secret.ok()) << secret.status();
    ASSERT_EQ(secret->size(), 32u);
    EXPECT_EQ(secret->find_first_not_of("0123456789abcdef"), std::string::npos) << *secret;
    EXPECT_TRUE(seen.insert(*secret).second) << *secret;
  }
  EXPECT_EQ(RandomHexSecret(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RandomHexSecret(257).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RandomHexSecret(256)->size(), 512u);
}

}  // namespace
}  // namespace dfv
