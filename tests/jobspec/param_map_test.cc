// ParamMap getters: typed reads, int widening, and aborts on misuse.
#include <gtest/gtest.h>

#include "common/jobspec/job_spec.h"

namespace dfv::jobspec {
namespace {

ParamMap Sample() {
  ParamMap params;
  params.Set("dim", int64_t{16});
  params.Set("coef", 2.5);
  params.Set("flag", true);
  params.Set("mode", std::string("fast"));
  params.Set("list", std::vector<double>{0.5, 0.25});
  return params;
}

TEST(ParamMapTest, TypedGetters) {
  const ParamMap params = Sample();
  EXPECT_EQ(params.GetInt("dim"), 16);
  EXPECT_EQ(params.GetDouble("coef"), 2.5);
  EXPECT_EQ(params.GetDouble("dim"), 16.0);  // ints widen
  EXPECT_TRUE(params.GetBool("flag"));
  EXPECT_EQ(params.GetString("mode"), "fast");
  EXPECT_EQ(params.GetDoubleList("list"), (std::vector<double>{0.5, 0.25}));
  EXPECT_TRUE(params.Has("dim"));
  EXPECT_FALSE(params.Has("nope"));
}

TEST(ParamMapDeathTest, UndeclaredNameAbortsNamingIt) {
  const ParamMap params = Sample();
  EXPECT_DEATH(params.GetInt("latent_dimm"), "latent_dimm");
  EXPECT_DEATH(params.GetDouble("missing_coef"), "missing_coef");
}

TEST(ParamMapDeathTest, WrongTypeAbortsNamingIt) {
  const ParamMap params = Sample();
  EXPECT_DEATH(params.GetInt("coef"), "coef");  // no narrowing
  EXPECT_DEATH(params.GetString("dim"), "dim");
  EXPECT_DEATH(params.GetBool("mode"), "mode");
  EXPECT_DEATH(params.GetDoubleList("coef"), "coef");
}

}  // namespace
}  // namespace dfv::jobspec
