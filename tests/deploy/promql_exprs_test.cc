#include "tests/deploy/promql_exprs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "common/file_util.h"
#include "tests/deploy/programs.h"

namespace dfv::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PromqlExprsTest, SubstitutesVariablesInEveryGrafanaSyntaxAndTheBuiltInIntervals) {
  GrafanaValues values;
  values.variables = {{"job", "j-1"}, {"worker", ".+"}};
  values.rate_interval = "2m";
  absl::StatusOr<std::string> text = SubstituteGrafanaVariables(
      R"(rate(x{job=~"$job", worker=~"${worker:regex}", w2=~"[[worker]]"}[$__rate_interval]) / $__interval + ${job})",
      values);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, R"(rate(x{job=~"j-1", worker=~".+", w2=~".+"}[2m]) / 15s + j-1)");
  // A range selector's [...] and a $ not followed by a name are left alone.
  EXPECT_EQ(*SubstituteGrafanaVariables("x[5m] $ 1", values), "x[5m] $ 1");

  absl::StatusOr<std::string> unknown = SubstituteGrafanaVariables(R"(x{a=~"$nope"})", values);
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status()));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("$nope"));
}

TEST(PromqlExprsTest, TakesPanelTargetsNestedPanelsAndVariableQueries) {
  const nlohmann::json dashboard = nlohmann::json::parse(R"j({
    "templating": {"list": [
      {"name": "worker", "type": "query", "query": "label_values(up{job=\"dfv-worker\"}, worker)"},
      {"name": "job", "type": "query",
       "query": {"query": "label_values(dfv_job_step{worker=~\"$worker\"}, job)", "refId": "V"}},
      {"name": "res", "type": "custom", "query": "1m,5m"}
    ]},
    "panels": [
      {"id": 1, "title": "A", "targets": [{"refId": "A", "expr": "dfv_job_step{job=~\"$job\"}"}]},
      {"id": 2, "type": "row", "panels": [
        {"id": 3, "title": "B", "targets": [{"refId": "X", "expr": "rate(x[$__rate_interval])"}]}]}
    ]})j");
  const GrafanaValues values = MatchAnyValue(dashboard);
  EXPECT_EQ(values.variables.size(), 3u);
  EXPECT_THAT(DashboardVariables(dashboard), ElementsAre("worker", "job", "res"));
  absl::StatusOr<std::vector<PromqlExpr>> exprs = DashboardExprs(dashboard, "d.json", values);
  ASSERT_TRUE(exprs.ok()) << exprs.status();
  ASSERT_EQ(exprs->size(), 4u);
  EXPECT_EQ((*exprs)[0].origin, "d.json: variable worker");
  EXPECT_EQ((*exprs)[0].expr, R"(up{job="dfv-worker"})");
  EXPECT_EQ((*exprs)[1].expr, R"(dfv_job_step{worker=~".+"})");
  EXPECT_EQ((*exprs)[2].origin, R"(d.json: panel 1 "A" target A)");
  EXPECT_EQ((*exprs)[2].expr, R"(dfv_job_step{job=~".+"})");
  EXPECT_EQ((*exprs)[3].origin, R"(d.json: panel 3 "B" target X)");
  EXPECT_EQ((*exprs)[3].expr, "rate(x[1m])");
}

TEST(PromqlExprsTest, RefusesWhatCannotBeChecked) {
  const nlohmann::json bad_variable = nlohmann::json::parse(
      R"j({"templating": {"list": [{"name": "m", "type": "query", "query": "metrics(dfv_.*)"}]}, "panels": []})j");
  absl::StatusOr<std::vector<PromqlExpr>> exprs = DashboardExprs(bad_variable, "d.json", {});
  EXPECT_TRUE(absl::IsInvalidArgument(exprs.status()));
  EXPECT_THAT(std::string(exprs.status().message()), HasSubstr("d.json: variable m"));

  const nlohmann::json no_expr =
      nlohmann::json::parse(R"({"panels": [{"id": 4, "title": "T", "targets": [{"refId": "A"}]}]})");
  exprs = DashboardExprs(no_expr, "d.json", {});
  EXPECT_TRUE(absl::IsInvalidArgument(exprs.status()));
  EXPECT_THAT(std::string(exprs.status().message()), HasSubstr(R"(panel 4 "T" target A has no expr)"));
}

TEST(PromqlExprsTest, FindsTheMetricNamesAnExpressionSelects) {
  EXPECT_THAT(
      SelectedMetricNames(R"(histogram_quantile(0.5, sum by (job, le) (rate(dfv_a_bucket{job=~"x", le!="1"}[5m]))))"),
      ElementsAre("dfv_a_bucket"));
  EXPECT_THAT(SelectedMetricNames("job:dfv_b:p50_5m > 2 * (sum without (rank) (dfv_c offset 5m)) and on (job) dfv_d"),
              ElementsAre("dfv_c", "dfv_d"));
  EXPECT_THAT(SelectedMetricNames("dfv_e != dfv_e or dfv_e == +Inf or vector(1e300) unless up bool NaN"),
              ElementsAre("dfv_e", "dfv_e", "dfv_e", "up"));
  EXPECT_THAT(SelectedMetricNames(R"(a * on (x) group_left (y) b{z="dfv_not_a_metric"})"), ElementsAre("a", "b"));
}

TEST(PromqlExprsTest, ReadsRuleFilesAndWritesExpressionsAsRecordingRules) {
  const std::string dir = MakeTestDir("promql-exprs");
  const std::string path = dir + "/rules.yml";
  ASSERT_TRUE(WriteFileAtomically(path, R"(groups:
  - name: g
    rules:
      - record: job:x:sum
        expr: sum by (job) (x)
      - alert: Quoted
        expr: 'x{a="b: c"} > 1'
)")
                  .ok());
  absl::StatusOr<std::vector<PromqlExpr>> exprs = RuleExprs(path);
  ASSERT_TRUE(exprs.ok()) << exprs.status();
  ASSERT_EQ(exprs->size(), 2u);
  EXPECT_EQ((*exprs)[0].origin, "rules.yml: group g rule job:x:sum");
  EXPECT_EQ((*exprs)[1].origin, "rules.yml: group g rule alert Quoted");
  EXPECT_EQ((*exprs)[1].expr, R"(x{a="b: c"} > 1)");

  // The generated file reads back to the same expressions, in order.
  ASSERT_TRUE(WriteFileAtomically(dir + "/wrapped.yml", AsRecordingRules(*exprs)).ok());
  absl::StatusOr<std::vector<PromqlExpr>> wrapped = RuleExprs(dir + "/wrapped.yml");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  ASSERT_EQ(wrapped->size(), 2u);
  EXPECT_EQ((*wrapped)[0].origin, "wrapped.yml: group dfv-check rule dfv_check:expr_1");
  EXPECT_EQ((*wrapped)[0].expr, (*exprs)[0].expr);
  EXPECT_EQ((*wrapped)[1].expr, (*exprs)[1].expr);

  EXPECT_TRUE(absl::IsNotFound(RuleExprs(dir + "/missing.yml").status()));
  ASSERT_TRUE(WriteFileAtomically(dir + "/not-rules.yml", "a: 1\n").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(RuleExprs(dir + "/not-rules.yml").status()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dfv::testing
