// Checks of deploy/ without a running Prometheus: promtool on the Prometheus
// configuration, the rules and their unit tests; the Grafana dashboards'
// structure and provisioning; every PromQL expression of the dashboards and
// rules parsed by Prometheus's own parser (promtool); and the metric names
// they use against the list in README.md. Grafana itself is not packaged by
// Debian, so its JSON is checked here instead of being loaded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "tests/deploy/programs.h"
#include "tests/deploy/promql_exprs.h"

namespace dfv::testing {
namespace {

using ::testing::HasSubstr;

std::string PrometheusDir() { return DeployDir() + "/prometheus"; }
std::string GrafanaDir() { return DeployDir() + "/grafana"; }

// promtool with `args`; NOT_FOUND (the tests skip) when it is not installed.
absl::StatusOr<ProgramResult> Promtool(std::vector<std::string> args) {
  absl::StatusOr<std::string> path = FindProgram("promtool");
  if (!path.ok()) return path.status();
  args.insert(args.begin(), *path);
  return RunProgram(args);
}

struct Dashboard {
  std::string name;  // file name
  nlohmann::json json;
};

std::vector<Dashboard> LoadDashboards() {
  std::vector<Dashboard> dashboards;
  for (const std::string& path : DashboardPaths()) {
    absl::StatusOr<nlohmann::json> json = ReadJsonFile(path);
    EXPECT_TRUE(json.ok()) << json.status();
    if (json.ok()) dashboards.push_back({std::filesystem::path(path).filename().string(), *std::move(json)});
  }
  return dashboards;
}

// Every panel, those inside rows too.
void FlattenPanels(const nlohmann::json& panels, std::vector<nlohmann::json>* out) {
  for (const nlohmann::json& panel : panels) {
    out->push_back(panel);
    if (panel.contains("panels")) FlattenPanels(panel["panels"], out);
  }
}

// The uid the provisioned datasource has; the dashboards refer to it.
std::string ProvisionedDatasourceUid() {
  const YAML::Node file = YAML::LoadFile(GrafanaDir() + "/provisioning/datasources/dfv-prometheus.yml");
  return file["datasources"][0]["uid"].as<std::string>();
}

// The metric list of README.md's "Watching dfv with Prometheus and Grafana":
// each table row's first cell names one or more `metrics`, the second their
// type. Returns name -> type.
std::map<std::string, std::string> DocumentedMetrics() {
  absl::StatusOr<std::string> readme = ReadFileToString(DFV_SOURCE_DIR "/README.md");
  EXPECT_TRUE(readme.ok()) << readme.status();
  std::map<std::string, std::string> metrics;
  if (!readme.ok()) return metrics;
  const size_t begin = readme->find("\n## Watching dfv with Prometheus and Grafana");
  EXPECT_NE(begin, std::string::npos) << "README.md has no section \"Watching dfv with Prometheus and Grafana\"";
  if (begin == std::string::npos) return metrics;
  const size_t end = readme->find("\n## ", begin + 1);
  for (absl::string_view line : absl::StrSplit(readme->substr(begin, end - begin), '\n')) {
    if (!absl::StartsWith(line, "| `")) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(line, '|');
    if (cells.size() < 4) continue;
    const std::string type(absl::StripAsciiWhitespace(cells[2]));
    std::vector<absl::string_view> quoted = absl::StrSplit(cells[1], '`');
    for (size_t i = 1; i < quoted.size(); i += 2) metrics[std::string(quoted[i])] = type;
  }
  return metrics;
}

TEST(PromtoolTest, PrometheusConfigIsValid) {
  absl::StatusOr<ProgramResult> result = Promtool({"check", "config", PrometheusDir() + "/prometheus.yml"});
  if (absl::IsNotFound(result.status())) GTEST_SKIP() << result.status().message();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output;
  EXPECT_THAT(result->output, HasSubstr("is valid prometheus config file syntax"));
  // The rules are checked with it (rule_files resolves).
  EXPECT_THAT(result->output, HasSubstr("SUCCESS: 1 rule files found"));
}

TEST(PromtoolTest, RulesAreValid) {
  absl::StatusOr<ProgramResult> result = Promtool({"check", "rules", PrometheusDir() + "/rules.yml"});
  if (absl::IsNotFound(result.status())) GTEST_SKIP() << result.status().message();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output;
  absl::StatusOr<std::vector<PromqlExpr>> rules = RuleExprs(PrometheusDir() + "/rules.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_THAT(result->output, HasSubstr(absl::StrCat("SUCCESS: ", rules->size(), " rules found")));
}

TEST(PromtoolTest, RuleUnitTestsPass) {
  absl::StatusOr<ProgramResult> result = Promtool({"test", "rules", PrometheusDir() + "/rules_test.yml"});
  if (absl::IsNotFound(result.status())) GTEST_SKIP() << result.status().message();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output;
  EXPECT_THAT(result->output, HasSubstr("SUCCESS"));
}

// rules_test.yml tests every alert of rules.yml, both firing (an expected
// alert) and not firing (exp_alerts empty).
TEST(PromtoolTest, EveryAlertIsUnitTestedFiringAndNotFiring) {
  const YAML::Node rules = YAML::LoadFile(PrometheusDir() + "/rules.yml");
  const YAML::Node tests = YAML::LoadFile(PrometheusDir() + "/rules_test.yml");
  std::set<std::string> firing;
  std::set<std::string> quiet;
  bool records_tested = false;
  for (const YAML::Node& test : tests["tests"]) {
    for (const YAML::Node& check : test["alert_rule_test"]) {
      const std::string name = check["alertname"].as<std::string>();
      (check["exp_alerts"] && check["exp_alerts"].size() > 0 ? firing : quiet).insert(name);
    }
    for (const YAML::Node& check : test["promql_expr_test"]) {
      if (absl::StrContains(check["expr"].as<std::string>(), ":")) records_tested = true;
    }
  }
  int alerts = 0;
  for (const YAML::Node& group : rules["groups"]) {
    for (const YAML::Node& rule : group["rules"]) {
      if (!rule["alert"]) continue;
      ++alerts;
      const std::string name = rule["alert"].as<std::string>();
      EXPECT_TRUE(firing.count(name)) << name << " has no unit test where it fires";
      EXPECT_TRUE(quiet.count(name)) << name << " has no unit test where it does not fire";
    }
  }
  EXPECT_GE(alerts, 5);
  EXPECT_TRUE(records_tested) << "no recording rule's value is unit tested";
}

// Prometheus's own parser on every expression of the dashboards (variables
// replaced as Grafana would) and rules: each is wrapped in a recording rule
// and the file given to `promtool check rules`.
TEST(PromtoolTest, EveryDashboardAndRuleExpressionParses) {
  if (absl::Status found = FindProgram("promtool").status(); !found.ok()) GTEST_SKIP() << found.message();
  std::vector<PromqlExpr> exprs;
  for (const Dashboard& dashboard : LoadDashboards()) {
    absl::StatusOr<std::vector<PromqlExpr>> found =
        DashboardExprs(dashboard.json, dashboard.name, MatchAnyValue(dashboard.json));
    ASSERT_TRUE(found.ok()) << found.status();
    exprs.insert(exprs.end(), found->begin(), found->end());
  }
  absl::StatusOr<std::vector<PromqlExpr>> rules = RuleExprs(PrometheusDir() + "/rules.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  exprs.insert(exprs.end(), rules->begin(), rules->end());
  ASSERT_GT(exprs.size(), 40u);

  const std::string dir = MakeTestDir("promql-parse");
  ASSERT_TRUE(WriteFileAtomically(dir + "/exprs.yml", AsRecordingRules(exprs)).ok());
  absl::StatusOr<ProgramResult> result = Promtool({"check", "rules", dir + "/exprs.yml"});
  ASSERT_TRUE(result.ok()) << result.status();
  std::string legend;
  for (size_t i = 0; i < exprs.size(); ++i) {
    absl::StrAppend(&legend, "dfv_check:expr_", i + 1, " = ", exprs[i].origin, ": ", exprs[i].expr, "\n");
  }
  EXPECT_EQ(result->exit_code, 0) << result->output << "\n" << legend;
  EXPECT_THAT(result->output, HasSubstr(absl::StrCat("SUCCESS: ", exprs.size(), " rules found")));

  // The check is not vacuous: a broken expression fails it.
  ASSERT_TRUE(WriteFileAtomically(dir + "/broken.yml", AsRecordingRules({{"test", "sum(rate(x[5m])"}})).ok());
  result = Promtool({"check", "rules", dir + "/broken.yml"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_NE(result->exit_code, 0) << result->output;
  EXPECT_THAT(result->output, HasSubstr("parse error"));
  std::filesystem::remove_all(dir);
}

TEST(DashboardTest, ClusterJobAndWorkerDashboardsWithDistinctUids) {
  const std::vector<Dashboard> dashboards = LoadDashboards();
  std::set<std::string> names;
  std::set<std::string> uids;
  for (const Dashboard& dashboard : dashboards) {
    names.insert(dashboard.name);
    EXPECT_FALSE(dashboard.json.value("title", std::string()).empty()) << dashboard.name;
    const std::string uid = dashboard.json.value("uid", std::string());
    EXPECT_FALSE(uid.empty()) << dashboard.name;
    EXPECT_TRUE(uids.insert(uid).second) << dashboard.name << " repeats uid " << uid;
    EXPECT_TRUE(dashboard.json["panels"].is_array() && !dashboard.json["panels"].empty()) << dashboard.name;
  }
  EXPECT_EQ(names, (std::set<std::string>{"cluster.json", "job.json", "worker.json"}));
}

TEST(DashboardTest, EveryPanelHasTheProvisionedDatasourceAndQueries) {
  const std::string uid = ProvisionedDatasourceUid();
  for (const Dashboard& dashboard : LoadDashboards()) {
    std::vector<nlohmann::json> panels;
    FlattenPanels(dashboard.json["panels"], &panels);
    std::set<int> ids;
    for (const nlohmann::json& panel : panels) {
      const std::string where = absl::StrCat(dashboard.name, " panel \"", panel.value("title", std::string()), "\"");
      EXPECT_TRUE(ids.insert(panel.value("id", 0)).second) << where << " repeats id " << panel.value("id", 0);
      if (panel.value("type", std::string()) == "row") continue;  // a row only groups panels
      EXPECT_FALSE(panel.value("title", std::string()).empty()) << where;
      ASSERT_TRUE(panel.contains("datasource")) << where << " has no datasource";
      EXPECT_EQ(panel["datasource"].value("type", std::string()), "prometheus") << where;
      EXPECT_EQ(panel["datasource"].value("uid", std::string()), uid) << where;
      const nlohmann::json& grid = panel.value("gridPos", nlohmann::json::object());
      EXPECT_GT(grid.value("w", 0), 0) << where;
      EXPECT_GT(grid.value("h", 0), 0) << where;
      EXPECT_LE(grid.value("x", 0) + grid.value("w", 0), 24) << where;
      ASSERT_TRUE(panel.contains("targets") && panel["targets"].is_array() && !panel["targets"].empty())
          << where << " has no targets";
      std::set<std::string> ref_ids;
      for (const nlohmann::json& target : panel["targets"]) {
        const std::string ref = target.value("refId", std::string());
        EXPECT_TRUE(ref_ids.insert(ref).second) << where << " repeats refId " << ref;
        EXPECT_FALSE(target.value("expr", std::string()).empty()) << where << " target " << ref << " has no expr";
        if (target.contains("datasource")) {
          EXPECT_EQ(target["datasource"].value("uid", std::string()), uid) << where;
        }
      }
    }
    for (const nlohmann::json& variable : dashboard.json["templating"]["list"]) {
      if (variable.value("type", std::string()) != "query") continue;
      EXPECT_EQ(variable["datasource"].value("uid", std::string()), uid)
          << dashboard.name << " variable " << variable.value("name", std::string());
    }
  }
}

// Used: some target or later variable refers to it. Matched as a regex (=~):
// a multi-value or "All" selection is sent as a regex, and tests put `.+` there.
TEST(DashboardTest, EveryVariableIsUsedAndMatchedAsARegex) {
  for (const Dashboard& dashboard : LoadDashboards()) {
    std::vector<std::string> raw;  // every query as written
    std::vector<nlohmann::json> panels;
    FlattenPanels(dashboard.json["panels"], &panels);
    for (const nlohmann::json& panel : panels) {
      for (const nlohmann::json& target : panel.value("targets", nlohmann::json::array())) {
        raw.push_back(target.value("expr", std::string()));
      }
    }
    for (const nlohmann::json& variable : dashboard.json["templating"]["list"]) {
      if (variable["query"].is_string()) raw.push_back(variable["query"].get<std::string>());
    }
    for (const std::string& name : DashboardVariables(dashboard.json)) {
      bool used = false;
      for (const std::string& text : raw) {
        for (const std::string& reference : {"${" + name + "}", "${" + name + ":", "[[" + name + "]]"}) {
          used |= absl::StrContains(text, reference);
        }
        // $name not followed by more of a name.
        for (size_t at = text.find("$" + name); at != std::string::npos; at = text.find("$" + name, at + 1)) {
          const size_t after = at + 1 + name.size();
          used |= after == text.size() ||
                  !(std::isalnum(static_cast<unsigned char>(text[after])) || text[after] == '_');
        }
      }
      EXPECT_TRUE(used) << dashboard.name << ": variable " << name << " is not used by any query";
    }
    for (const std::string& text : raw) {
      for (const char* equality : {"=\"$", "=\"[["}) {
        EXPECT_FALSE(absl::StrContains(text, equality))
            << dashboard.name << ": a variable is matched with = or != instead of =~ or !~ in: " << text;
      }
    }
  }
}

TEST(DashboardTest, JobDashboardListsJobsAndShowsEveryLossTerm) {
  absl::StatusOr<nlohmann::json> job = ReadJsonFile(GrafanaDir() + "/dashboards/job.json");
  ASSERT_TRUE(job.ok()) << job.status();
  const nlohmann::json& variable = (*job)["templating"]["list"][0];
  EXPECT_EQ(variable["name"], "job");
  EXPECT_EQ(variable["query"], "label_values(dfv_job_step, job_id)");
  bool loss_panel = false;
  for (const nlohmann::json& panel : (*job)["panels"]) {
    for (const nlohmann::json& target : panel.value("targets", nlohmann::json::array())) {
      // One series per term: the metric selected without aggregating `term` away.
      if (target["expr"] == R"(dfv_job_training_metric{job_id=~"$job", rank="0"})" &&
          target["legendFormat"] == "{{term}}") {
        loss_panel = true;
      }
    }
  }
  EXPECT_TRUE(loss_panel);
}

// Dashboards and rules select only metrics the daemons export (README.md's
// list, plus Prometheus's own `up`), and every dfv metric is on a dashboard,
// directly or through the recording rules a dashboard shows.
TEST(DashboardTest, QueriesUseTheDocumentedMetricsAndShowEveryOne) {
  const std::map<std::string, std::string> documented = DocumentedMetrics();
  ASSERT_GT(documented.size(), 30u);
  // A histogram's series are NAME_bucket, NAME_sum and NAME_count.
  auto family = [&documented](const std::string& series) {
    for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (!absl::EndsWith(series, suffix)) continue;
      const std::string base = series.substr(0, series.size() - suffix.size());
      const auto it = documented.find(base);
      if (it != documented.end() && it->second == "histogram") return base;
    }
    return series;
  };
  std::vector<PromqlExpr> shown;  // what the dashboards query, and the rules they show
  for (const Dashboard& dashboard : LoadDashboards()) {
    absl::StatusOr<std::vector<PromqlExpr>> exprs =
        DashboardExprs(dashboard.json, dashboard.name, MatchAnyValue(dashboard.json));
    ASSERT_TRUE(exprs.ok()) << exprs.status();
    shown.insert(shown.end(), exprs->begin(), exprs->end());
  }
  absl::StatusOr<std::vector<PromqlExpr>> rules = RuleExprs(PrometheusDir() + "/rules.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  std::map<std::string, std::string> records;  // name -> expr
  for (const YAML::Node& group : YAML::LoadFile(PrometheusDir() + "/rules.yml")["groups"]) {
    for (const YAML::Node& rule : group["rules"]) {
      if (rule["record"]) records[rule["record"].as<std::string>()] = rule["expr"].as<std::string>();
    }
  }
  // Recording rules used by what is shown, and the rules those use.
  for (size_t i = 0; i < shown.size(); ++i) {
    for (auto it = records.begin(); it != records.end();) {
      if (absl::StrContains(shown[i].expr, it->first)) {
        shown.push_back({"rules.yml: " + it->first, it->second});
        it = records.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::set<std::string> on_dashboards;
  for (const auto* exprs : {&shown, &*rules}) {
    for (const PromqlExpr& expr : *exprs) {
      for (const std::string& series : SelectedMetricNames(expr.expr)) {
        const std::string name = family(series);
        EXPECT_TRUE(documented.count(name) || name == "up")
            << expr.origin << " selects " << series << ", which README.md's metric list does not have";
        if (exprs == &shown) on_dashboards.insert(name);
      }
    }
  }
  for (const auto& [name, type] : documented) {
    if (absl::StartsWith(name, "dfv_") || absl::StartsWith(name, "grpc_")) {
      EXPECT_TRUE(on_dashboards.count(name)) << name << " is on no dashboard";
    }
  }
  // A documented metric in the right family is recognised.
  EXPECT_EQ(family("dfv_job_step_seconds_bucket"), "dfv_job_step_seconds");
  EXPECT_EQ(family("dfv_jobs_submitted_total"), "dfv_jobs_submitted_total");
}

TEST(ProvisioningTest, DatasourceAndDashboardProviderFitTheDeployFiles) {
  const YAML::Node datasources = YAML::LoadFile(GrafanaDir() + "/provisioning/datasources/dfv-prometheus.yml");
  ASSERT_EQ(datasources["datasources"].size(), 1u);
  const YAML::Node datasource = datasources["datasources"][0];
  EXPECT_EQ(datasource["type"].as<std::string>(), "prometheus");
  EXPECT_EQ(datasource["url"].as<std::string>(), "http://prometheus:9090");
  // $__rate_interval is computed from the scrape interval Grafana is told.
  const YAML::Node prometheus = YAML::LoadFile(PrometheusDir() + "/prometheus.yml");
  EXPECT_EQ(datasource["jsonData"]["timeInterval"].as<std::string>(),
            prometheus["global"]["scrape_interval"].as<std::string>());

  const YAML::Node dashboards = YAML::LoadFile(GrafanaDir() + "/provisioning/dashboards/dfv.yml");
  ASSERT_EQ(dashboards["providers"].size(), 1u);
  const YAML::Node provider = dashboards["providers"][0];
  EXPECT_EQ(provider["type"].as<std::string>(), "file");
  EXPECT_FALSE(provider["options"]["path"].as<std::string>().empty());
}

}  // namespace
}  // namespace dfv::testing
