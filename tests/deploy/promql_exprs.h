// The PromQL of deploy/, pulled out for checks: every target expression and
// query variable of the Grafana dashboards (with Grafana's variables and
// built-in intervals replaced, so the text is plain PromQL) and every rule
// expression of a Prometheus rules file, each with where it came from.
//
// Used by tests/deploy/ to have Prometheus's own parser check each expression
// (AsRecordingRules + `promtool check rules`), and by the live tests to send
// each one to a running Prometheus. Stateless functions; thread-safe.
#ifndef DFV_TESTS_DEPLOY_PROMQL_EXPRS_H_
#define DFV_TESTS_DEPLOY_PROMQL_EXPRS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dfv::testing {

// deploy/ of this source tree (absolute path, no trailing slash).
std::string DeployDir();

// deploy/grafana/dashboards/*.json, sorted by name.
std::vector<std::string> DashboardPaths();

// A whole JSON file. NOT_FOUND when it cannot be read, INVALID_ARGUMENT when
// it is not JSON (with the parser's message).
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

struct PromqlExpr {
  // Where it came from, for messages: `job.json: panel 7 "Step time" target B`,
  // `job.json: variable job`, `rules.yml: group dfv-job rule job:...:p50_5m`.
  std::string origin;
  std::string expr;  // plain PromQL
};

// What Grafana puts in place of variables when it sends a query.
struct GrafanaValues {
  // Template variables by name ("job" -> ".+", or a job id).
  std::map<std::string, std::string> variables;
  // $__rate_interval, $__interval and $__range.
  std::string rate_interval = "1m";
  std::string interval = "15s";
  std::string range = "1h";
};

// Every template variable of `dashboard` mapped to ".+" (all values; the
// dashboards match variables with =~).
GrafanaValues MatchAnyValue(const nlohmann::json& dashboard);

// The names of the template variables `dashboard` defines, in order.
std::vector<std::string> DashboardVariables(const nlohmann::json& dashboard);

// `text` with $name, ${name}, ${name:format} and [[name]] replaced from
// `values` (the format is ignored: the values are already regexes), and
// $__rate_interval, $__interval and $__range by their durations.
// INVALID_ARGUMENT naming the variable when it has no value.
absl::StatusOr<std::string> SubstituteGrafanaVariables(const std::string& text, const GrafanaValues& values);

// Every PromQL expression of `dashboard` (`name` is used in origins): each
// panel's targets[].expr (panels nested in rows included) and each query
// variable's query, label_values(EXPR, LABEL) and query_result(EXPR) giving
// EXPR. INVALID_ARGUMENT for a variable query of another form (it could not
// be checked) or a target without an expr.
absl::StatusOr<std::vector<PromqlExpr>> DashboardExprs(const nlohmann::json& dashboard, const std::string& name,
                                                       const GrafanaValues& values);

// Every expr of a Prometheus rules file (groups[].rules[], recording rules
// and alerts). NOT_FOUND / INVALID_ARGUMENT when it cannot be read or is not
// a rules file.
absl::StatusOr<std::vector<PromqlExpr>> RuleExprs(const std::string& rules_path);

// A Prometheus rules file with one recording rule per expression (named
// dfv_check:expr_N, in order), so that `promtool check rules` parses each with
// Prometheus's own parser; its messages name the rule number.
std::string AsRecordingRules(const std::vector<PromqlExpr>& exprs);

// The metric names an expression selects (e.g. "dfv_job_step_seconds_bucket"):
// identifiers followed by a selector, a range, an operator, `)` or the end,
// that are not PromQL keywords, functions, label names or recording rules
// (which hold a ':').
std::vector<std::string> SelectedMetricNames(const std::string& expr);

}  // namespace dfv::testing

#endif  // DFV_TESTS_DEPLOY_PROMQL_EXPRS_H_
