// Tokens end to end: a coordinator with --auth-file from deploy/tokens.sh, a
// worker (which needs no token on loopback) and dfvctl with submitter and
// viewer tokens.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/cluster.h"

namespace dfv::testing {
namespace {

using ::testing::HasSubstr;

TEST(EndToEnd, TokensWithRolesGateTheClientsButNotTheWorkers) {
  Cluster cluster("auth_tokens");
  const std::string tokens = cluster.dir() + "/tokens";
  const std::string make = absl::StrCat("bash ", DFV_SOURCE_DIR, "/deploy/tokens.sh ", tokens,
                                        " >/dev/null");
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  ASSERT_TRUE(cluster.StartCoordinator({"--auth-file", tokens + "/auth.txt"}).ok())
      << cluster.Log("coordinator");
  ASSERT_TRUE(cluster.StartWorker("w1").ok()) << cluster.Log("w1");
  const std::string job = cluster.WriteJob("job.yaml", SmallJob("auth", "vae", 30));
  const std::vector<std::string> submitter = {"--token-file", tokens + "/submitter.token"};
  const std::vector<std::string> viewer = {"--token-file", tokens + "/viewer.token"};
  auto with = [](std::vector<std::string> args, const std::vector<std::string>& token) {
    args.insert(args.end(), token.begin(), token.end());
    return args;
  };

  // No token, or one the coordinator does not know: refused.
  CommandResult r = cluster.Dfvctl({"list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("dfvctl: missing bearer token"));
  const std::string stranger = cluster.WriteJob("stranger.token", "0123456789abcdef\n");
  r = cluster.Dfvctl({"list", "--token-file", stranger});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dfvctl: unknown token: it is not in the coordinator's auth file\n");
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("0123456789abcdef")));
  r = cluster.Dfvctl({"list", "--token-file", cluster.dir() + "/missing.token"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("dfvctl: cannot read token file: open " + cluster.dir() +
                               "/missing.token"));

  // A viewer cannot submit, and nothing is queued.
  r = cluster.Dfvctl(with({"submit", job}, viewer));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err, "dfvctl: SubmitJob needs role submitter; token 'viewer' has role viewer\n");
  r = cluster.Dfvctl(with({"list"}, viewer));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("no jobs"));

  // The submitter's job trains on the worker, which needs no token.
  r = cluster.Dfvctl(with({"submit", job}, submitter));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id(absl::StripAsciiWhitespace(r.out));
  // The viewer follows it to the end, the token from the environment.
  ASSERT_EQ(::setenv("DFV_TOKEN_FILE", (tokens + "/viewer.token").c_str(), 1), 0);
  r = cluster.Dfvctl({"watch", id}, absl::Seconds(180));
  ::unsetenv("DFV_TOKEN_FILE");
  ASSERT_EQ(r.exit_code, 0) << r.err << cluster.Log("coordinator") << cluster.Log("w1");
  r = cluster.Dfvctl(with({"get", id}, viewer));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SUCCEEDED"));
  r = cluster.Dfvctl(with({"artifacts", id, "--download", cluster.dir() + "/out"}, viewer));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A viewer cannot cancel either.
  r = cluster.Dfvctl(with({"cancel", id}, viewer));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dfvctl: CancelJob needs role submitter; token 'viewer' has role viewer\n");
}

}  // namespace
}  // namespace dfv::testing
