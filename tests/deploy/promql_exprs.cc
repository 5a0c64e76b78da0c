#include "tests/deploy/promql_exprs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"

namespace dfv::testing {
namespace {

bool IsIdentifierStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsIdentifierChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The index of the `)` that closes the `(` at `open`, skipping strings;
// npos when it is not closed.
size_t MatchingParen(const std::string& text, size_t open) {
  int depth = 0;
  for (size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"' || c == '\'' || c == '`') {
      const size_t end = text.find(c, i + 1);
      if (end == std::string::npos) return std::string::npos;
      i = end;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')' && --depth == 0) {
      return i;
    }
  }
  return std::string::npos;
}

// The PromQL inside a query variable's query: label_values(EXPR, LABEL) and
// query_result(EXPR) hold EXPR; label_values(LABEL) holds none (it is
// answered from every series).
absl::StatusOr<std::string> VariableQueryExpr(const std::string& query) {
  const std::string text(absl::StripAsciiWhitespace(query));
  for (const std::string function : {"label_values", "query_result"}) {
    if (!absl::StartsWith(text, function + "(")) continue;
    const size_t open = function.size();
    if (MatchingParen(text, open) != text.size() - 1) break;
    std::string inner = text.substr(open + 1, text.size() - open - 2);
    if (function == "query_result") return inner;
    // The label is after the last comma outside parentheses and braces.
    int depth = 0;
    size_t comma = std::string::npos;
    for (size_t i = 0; i < inner.size(); ++i) {
      const char c = inner[i];
      if (c == '"') {
        i = inner.find('"', i + 1);
        if (i == std::string::npos) break;
      } else if (c == '(' || c == '{' || c == '[') {
        ++depth;
      } else if (c == ')' || c == '}' || c == ']') {
        --depth;
      } else if (c == ',' && depth == 0) {
        comma = i;
      }
    }
    if (comma == std::string::npos) break;
    return std::string(absl::StripAsciiWhitespace(inner.substr(0, comma)));
  }
  return absl::InvalidArgumentError(absl::StrCat("variable query \"", query,
                                                 "\" is not label_values(EXPR, LABEL) or query_result(EXPR), so it "
                                                 "cannot be checked"));
}

void CollectPanelExprs(const nlohmann::json& panels, const std::string& name, const GrafanaValues& values,
                       std::vector<PromqlExpr>* out, absl::Status* status) {
  if (!panels.is_array()) return;
  for (const nlohmann::json& panel : panels) {
    if (!status->ok()) return;
    if (panel.contains("panels")) CollectPanelExprs(panel["panels"], name, values, out, status);
    if (!panel.contains("targets")) continue;
    const std::string panel_origin =
        absl::StrCat(name, ": panel ", panel.value("id", 0), " \"", panel.value("title", std::string()), "\"");
    for (const nlohmann::json& target : panel["targets"]) {
      const std::string origin = absl::StrCat(panel_origin, " target ", target.value("refId", std::string("?")));
      if (!target.contains("expr") || !target["expr"].is_string()) {
        *status = absl::InvalidArgumentError(origin + " has no expr");
        return;
      }
      absl::StatusOr<std::string> expr = SubstituteGrafanaVariables(target["expr"].get<std::string>(), values);
      if (!expr.ok()) {
        *status = absl::InvalidArgumentError(absl::StrCat(origin, ": ", expr.status().message()));
        return;
      }
      out->push_back({origin, *std::move(expr)});
    }
  }
}

}  // namespace

std::string DeployDir() { return DFV_SOURCE_DIR "/deploy"; }

std::vector<std::string> DashboardPaths() {
  std::vector<std::string> paths;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(DeployDir() + "/grafana/dashboards", error)) {
    if (entry.path().extension() == ".json") paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  nlohmann::json parsed = nlohmann::json::parse(*text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // Parse again with exceptions only for the parser's message.
    try {
      nlohmann::json ignored = nlohmann::json::parse(*text);
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
    }
    return absl::InvalidArgumentError(path + " is not JSON");
  }
  return parsed;
}

std::vector<std::string> DashboardVariables(const nlohmann::json& dashboard) {
  std::vector<std::string> names;
  if (!dashboard.contains("templating") || !dashboard["templating"].contains("list")) return names;
  for (const nlohmann::json& variable : dashboard["templating"]["list"]) {
    names.push_back(variable.value("name", std::string()));
  }
  return names;
}

GrafanaValues MatchAnyValue(const nlohmann::json& dashboard) {
  GrafanaValues values;
  for (const std::string& name : DashboardVariables(dashboard)) values.variables[name] = ".+";
  return values;
}

absl::StatusOr<std::string> SubstituteGrafanaVariables(const std::string& text, const GrafanaValues& values) {
  const std::map<std::string, std::string> builtins = {
      {"__rate_interval", values.rate_interval}, {"__interval", values.interval}, {"__range", values.range}};
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t name_begin = 0;
    size_t name_end = 0;
    size_t next = 0;
    if (text.compare(i, 2, "${") == 0) {
      const size_t close = text.find('}', i);
      if (close == std::string::npos) return absl::InvalidArgumentError("unclosed ${ in: " + text);
      name_begin = i + 2;
      const size_t colon = text.find(':', name_begin);
      name_end = colon < close ? colon : close;
      next = close + 1;
    } else if (text.compare(i, 2, "[[") == 0 && i + 2 < text.size() && IsIdentifierStart(text[i + 2])) {
      const size_t close = text.find("]]", i);
      if (close == std::string::npos) return absl::InvalidArgumentError("unclosed [[ in: " + text);
      name_begin = i + 2;
      const size_t colon = text.find(':', name_begin);
      name_end = colon < close ? colon : close;
      next = close + 2;
    } else if (text[i] == '$' && i + 1 < text.size() && IsIdentifierStart(text[i + 1])) {
      name_begin = i + 1;
      name_end = name_begin;
      while (name_end < text.size() && IsIdentifierChar(text[name_end])) ++name_end;
      next = name_end;
    } else {
      out.push_back(text[i++]);
      continue;
    }
    const std::string name = text.substr(name_begin, name_end - name_begin);
    if (auto builtin = builtins.find(name); builtin != builtins.end()) {
      out += builtin->second;
    } else if (auto variable = values.variables.find(name); variable != values.variables.end()) {
      out += variable->second;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("no value for the variable $", name, " in: ", text));
    }
    i = next;
  }
  return out;
}

absl::StatusOr<std::vector<PromqlExpr>> DashboardExprs(const nlohmann::json& dashboard, const std::string& name,
                                                       const GrafanaValues& values) {
  std::vector<PromqlExpr> exprs;
  if (dashboard.contains("templating") && dashboard["templating"].contains("list")) {
    for (const nlohmann::json& variable : dashboard["templating"]["list"]) {
      if (variable.value("type", std::string()) != "query") continue;
      const std::string origin = absl::StrCat(name, ": variable ", variable.value("name", std::string()));
      // Grafana stores a Prometheus variable's query as a string, or (since
      // 10) as {"query": ..., "refId": ...}.
      const nlohmann::json& query = variable.contains("query") ? variable["query"] : nlohmann::json();
      const std::string text = query.is_string()                               ? query.get<std::string>()
                               : query.is_object() && query["query"].is_string() ? query["query"].get<std::string>()
                                                                                 : std::string();
      absl::StatusOr<std::string> inner = VariableQueryExpr(text);
      if (!inner.ok()) return absl::InvalidArgumentError(absl::StrCat(origin, ": ", inner.status().message()));
      // A variable's query may use the variables before it.
      absl::StatusOr<std::string> expr = SubstituteGrafanaVariables(*inner, values);
      if (!expr.ok()) return absl::InvalidArgumentError(absl::StrCat(origin, ": ", expr.status().message()));
      exprs.push_back({origin, *std::move(expr)});
    }
  }
  absl::Status status;
  CollectPanelExprs(dashboard.value("panels", nlohmann::json::array()), name, values, &exprs, &status);
  if (!status.ok()) return status;
  return exprs;
}

absl::StatusOr<std::vector<PromqlExpr>> RuleExprs(const std::string& rules_path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(rules_path);
  } catch (const YAML::BadFile&) {
    return absl::NotFoundError("cannot read " + rules_path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(rules_path, ": ", e.what()));
  }
  if (!root["groups"] || !root["groups"].IsSequence()) {
    return absl::InvalidArgumentError(rules_path + " has no groups: it is not a Prometheus rules file");
  }
  const std::string file = std::filesystem::path(rules_path).filename().string();
  std::vector<PromqlExpr> exprs;
  try {
    for (const YAML::Node& group : root["groups"]) {
      const std::string group_name = group["name"].as<std::string>("");
      for (const YAML::Node& rule : group["rules"]) {
        const std::string rule_name =
            rule["record"] ? rule["record"].as<std::string>() : "alert " + rule["alert"].as<std::string>("");
        exprs.push_back(
            {absl::StrCat(file, ": group ", group_name, " rule ", rule_name), rule["expr"].as<std::string>()});
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(rules_path, ": ", e.what()));
  }
  return exprs;
}

std::string AsRecordingRules(const std::vector<PromqlExpr>& exprs) {
  // Emitted with yaml-cpp, which quotes the expressions as YAML needs.
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << "dfv-check";
  out << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
  for (size_t i = 0; i < exprs.size(); ++i) {
    out << YAML::BeginMap;
    out << YAML::Key << "record" << YAML::Value << absl::StrCat("dfv_check:expr_", i + 1);
    out << YAML::Key << "expr" << YAML::Value << YAML::DoubleQuoted << exprs[i].expr;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> SelectedMetricNames(const std::string& expr) {
  // Operators, modifiers, special numbers and aggregation operators (which
  // may be followed by `by (...)` rather than by their parenthesis).
  static const std::set<std::string> kSkipped = {
      "and", "or",    "unless", "bool",   "offset", "inf",   "nan",          "atan2",   "group_left", "group_right",
      "sum", "min",   "max",    "avg",    "group",  "count", "count_values", "stddev",  "stdvar",     "bottomk",
      "topk", "quantile"};
  static const std::set<std::string> kLabelLists = {"by", "without", "on", "ignoring", "group_left", "group_right"};
  std::vector<std::string> names;
  int braces = 0;
  for (size_t i = 0; i < expr.size();) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      const size_t end = expr.find(c, i + 1);
      i = end == std::string::npos ? expr.size() : end + 1;
    } else if (c == '{') {
      ++braces, ++i;
    } else if (c == '}') {
      --braces, ++i;
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      // A number or a duration (0.5, 1e300, 5m).
      while (i < expr.size() && (IsIdentifierChar(expr[i]) || expr[i] == '.')) ++i;
    } else if (IsIdentifierStart(c) || c == ':') {
      size_t end = i;
      while (end < expr.size() && (IsIdentifierChar(expr[end]) || expr[end] == ':')) ++end;
      const std::string word = expr.substr(i, end - i);
      size_t after = end;
      while (after < expr.size() && absl::ascii_isspace(static_cast<unsigned char>(expr[after]))) ++after;
      const bool call = after < expr.size() && expr[after] == '(';
      const std::string lower = absl::AsciiStrToLower(word);
      if (kLabelLists.count(lower) && call) {
        const size_t close = MatchingParen(expr, after);
        i = close == std::string::npos ? expr.size() : close + 1;
        continue;
      }
      if (braces == 0 && !call && !kSkipped.count(lower) && !absl::StrContains(word, ':')) names.push_back(word);
      i = end;
    } else {
      ++i;
    }
  }
  return names;
}

}  // namespace dfv::testing
