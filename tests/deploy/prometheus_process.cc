#include "tests/deploy/prometheus_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "tests/deploy/programs.h"
#include "tests/testing/http_get.h"

namespace dfv::testing {
namespace {

// Prometheus durations take whole units ("1500ms", not "1.5s").
std::string PromDuration(absl::Duration duration) {
  return absl::StrCat(absl::ToInt64Milliseconds(duration), "ms");
}

// `options` applied to the template: intervals, rules files, and each kept
// scrape job's targets.
absl::StatusOr<std::string> MakeConfig(const PrometheusOptions& options) {
  YAML::Node config;
  try {
    config = YAML::LoadFile(options.config_template);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", options.config_template, ": ", e.what()));
  }
  config["global"]["scrape_interval"] = PromDuration(options.interval);
  config["global"]["scrape_timeout"] = PromDuration(options.interval);
  config["global"]["evaluation_interval"] = PromDuration(options.interval);
  // The template's relative rule paths would resolve against the generated
  // file's folder.
  YAML::Node rules(YAML::NodeType::Sequence);
  for (const std::string& path : options.rule_files) rules.push_back(path);
  config["rule_files"] = rules;

  std::set<std::string> template_jobs;
  YAML::Node kept(YAML::NodeType::Sequence);
  for (YAML::Node job : config["scrape_configs"]) {
    const std::string name = job["job_name"].as<std::string>("");
    template_jobs.insert(name);
    const auto targets = options.static_targets.find(name);
    const auto files = options.sd_files.find(name);
    if (targets == options.static_targets.end() && files == options.sd_files.end()) continue;
    job.remove("static_configs");
    job.remove("file_sd_configs");
    if (targets != options.static_targets.end()) {
      YAML::Node static_config;
      static_config["targets"] = targets->second;
      job["static_configs"].push_back(static_config);
    }
    if (files != options.sd_files.end()) {
      YAML::Node sd_config;
      sd_config["files"] = files->second;
      sd_config["refresh_interval"] = PromDuration(options.interval);
      job["file_sd_configs"].push_back(sd_config);
    }
    kept.push_back(job);
  }
  for (const auto* jobs : {&options.static_targets, &options.sd_files}) {
    for (const auto& [name, unused] : *jobs) {
      if (!template_jobs.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat(options.config_template, " has no scrape job ", name,
                                                       " (it has: ", absl::StrJoin(template_jobs, ", "), ")"));
      }
    }
  }
  config["scrape_configs"] = kept;
  YAML::Emitter out;
  out << config;
  return std::string(out.c_str()) + "\n";
}

// A port that was free a moment ago (Prometheus cannot be asked for port 0
// and tell which it got; StartOnce retries when another process took it).
absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!ok) return absl::InternalError("cannot bind a loopback port");
  return ntohs(address.sin_port);
}

absl::StatusOr<double> ParseValue(const nlohmann::json& value) {
  if (!value.is_string()) return absl::InternalError("sample value is not a string: " + value.dump());
  const std::string text = value.get<std::string>();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  double parsed = 0;
  if (!absl::SimpleAtod(text, &parsed)) return absl::InternalError("sample value is not a number: " + text);
  return parsed;
}

std::map<std::string, std::string> Labels(const nlohmann::json& object) {
  std::map<std::string, std::string> labels;
  for (const auto& [name, value] : object.items()) labels[name] = value.get<std::string>();
  return labels;
}

}  // namespace

std::string PromSample::Label(const std::string& name) const {
  const auto it = labels.find(name);
  return it == labels.end() ? std::string() : it->second;
}

std::ostream& operator<<(std::ostream& out, const PromSample& sample) {
  out << sample.Label("__name__") << "{";
  bool first = true;
  for (const auto& [name, value] : sample.labels) {
    if (name == "__name__") continue;
    out << (first ? "" : ", ") << name << "=\"" << value << "\"";
    first = false;
  }
  return out << "} " << sample.value;
}

std::string DescribeSamples(const std::vector<PromSample>& samples) {
  if (samples.empty()) return "(no samples)";
  std::ostringstream out;
  for (const PromSample& sample : samples) out << sample << "\n";
  return out.str();
}

SamplesPredicate HasSamples(size_t count) {
  return [count](const std::vector<PromSample>& samples) { return samples.size() >= count; };
}

SamplesPredicate AllValues(std::function<bool(double)> check) {
  return [check = std::move(check)](const std::vector<PromSample>& samples) {
    if (samples.empty()) return false;
    for (const PromSample& sample : samples) {
      if (!check(sample.value)) return false;
    }
    return true;
  };
}

absl::StatusOr<std::unique_ptr<PrometheusProcess>> PrometheusProcess::Start(const PrometheusOptions& options) {
  absl::StatusOr<std::string> binary = FindProgram("prometheus");
  if (!binary.ok()) return binary.status();
  absl::StatusOr<std::string> config = MakeConfig(options);
  if (!config.ok()) return config.status();
  std::unique_ptr<PrometheusProcess> prometheus(new PrometheusProcess(MakeTestDir("prometheus"), *config));
  absl::Status written = WriteFileAtomically(prometheus->dir_ + "/prometheus.yml", prometheus->config_);
  if (!written.ok()) return written;
  absl::Status started;
  for (int attempt = 0; attempt < 3; ++attempt) {
    started = prometheus->StartOnce(*binary, options.ready_timeout);
    if (!absl::IsUnavailable(started)) break;
  }
  if (!started.ok()) return started;
  return prometheus;
}

PrometheusProcess::PrometheusProcess(std::string dir, std::string config)
    : dir_(std::move(dir)), config_(std::move(config)) {}

PrometheusProcess::~PrometheusProcess() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void PrometheusProcess::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!process_->TryWait().has_value() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  if (!process_->TryWait().has_value()) process_->Signal(SIGKILL);
  process_->Wait();
  process_.reset();
}

absl::Status PrometheusProcess::StartOnce(const std::string& binary, absl::Duration ready_timeout) {
  absl::StatusOr<int> port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  address_ = absl::StrCat("127.0.0.1:", *port);
  // A fresh storage folder per try: a failed start may leave a lock behind.
  const std::string storage = absl::StrCat(dir_, "/data-", *port);
  daemon::SpawnOptions spawn;
  spawn.argv = {binary,
                "--config.file=" + dir_ + "/prometheus.yml",
                "--storage.tsdb.path=" + storage,
                "--web.listen-address=" + address_,
                "--log.level=info"};
  spawn.stderr_path = dir_ + "/prometheus.log";
  absl::StatusOr<std::unique_ptr<daemon::Subprocess>> process = daemon::Subprocess::Spawn(spawn);
  if (!process.ok()) return process.status();
  process_ = std::move(process).value();
  const absl::Time deadline = absl::Now() + ready_timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<HttpResponse> ready = HttpGet(address_, "/-/ready");
    if (ready.ok() && ready->status == 200) return absl::OkStatus();
    if (std::optional<daemon::ExitStatus> exit = process_->TryWait()) {
      process_.reset();
      const std::string log = Log();
      const std::string message = absl::StrCat("prometheus exited (", daemon::DescribeExit(*exit), "):\n", log);
      if (absl::StrContains(log, "address already in use")) return absl::UnavailableError(message);
      return absl::InternalError(message);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  Stop();
  return absl::DeadlineExceededError(
      absl::StrCat("prometheus was not ready in ", absl::FormatDuration(ready_timeout), ":\n", Log()));
}

std::string PrometheusProcess::Log() const {
  absl::StatusOr<std::string> log = ReadFileToString(dir_ + "/prometheus.log");
  return log.ok() ? *log : std::string(log.status().message());
}

absl::StatusOr<nlohmann::json> PrometheusProcess::Api(
    const std::string& endpoint, const std::vector<std::pair<std::string, std::string>>& params) const {
  std::string path = "/api/v1/" + endpoint;
  for (size_t i = 0; i < params.size(); ++i) {
    absl::StrAppend(&path, i == 0 ? "?" : "&", UrlEncode(params[i].first), "=", UrlEncode(params[i].second));
  }
  absl::StatusOr<HttpResponse> response = HttpGet(address_, path);
  if (!response.ok()) return response.status();
  const nlohmann::json body = nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InternalError(
        absl::StrCat("GET ", path, ": HTTP ", response->status, ", not JSON: ", response->body.substr(0, 200)));
  }
  if (body.value("status", std::string()) == "success" && body.contains("data")) return body["data"];
  const std::string message = absl::StrCat("GET ", path, ": ", body.value("errorType", std::string("?")), ": ",
                                           body.value("error", std::string("(no message)")));
  if (body.value("errorType", std::string()) == "bad_data") return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

absl::StatusOr<std::vector<PromSample>> PrometheusProcess::Query(const std::string& expr) const {
  absl::StatusOr<nlohmann::json> data = Api("query", {{"query", expr}});
  if (!data.ok()) return data.status();
  const std::string type = data->value("resultType", std::string());
  std::vector<PromSample> samples;
  try {
    if (type == "scalar") {
      absl::StatusOr<double> value = ParseValue((*data)["result"][1]);
      if (!value.ok()) return value.status();
      samples.push_back({{}, *value});
    } else if (type == "vector") {
      for (const nlohmann::json& element : (*data)["result"]) {
        absl::StatusOr<double> value = ParseValue(element["value"][1]);
        if (!value.ok()) return value.status();
        samples.push_back({Labels(element["metric"]), *value});
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("Query takes instant vectors and scalars; ", expr, " is a ", type));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("unexpected answer to ", expr, ": ", e.what(), ": ", data->dump()));
  }
  return samples;
}

absl::StatusOr<std::vector<PromSample>> PrometheusProcess::WaitFor(const std::string& expr,
                                                                   const SamplesPredicate& done,
                                                                   absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (true) {
    absl::StatusOr<std::vector<PromSample>> samples = Query(expr);
    if (absl::IsInvalidArgument(samples.status())) return samples.status();
    if (samples.ok() && done(*samples)) return samples;
    last = samples.ok() ? DescribeSamples(*samples) : std::string(samples.status().message());
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(expr, " did not satisfy the condition in ", absl::FormatDuration(timeout), "; last:\n", last));
}

absl::StatusOr<std::vector<std::map<std::string, std::string>>> PrometheusProcess::Series(
    const std::string& match) const {
  absl::StatusOr<nlohmann::json> data = Api("series", {{"match[]", match}});
  if (!data.ok()) return data.status();
  std::vector<std::map<std::string, std::string>> series;
  try {
    for (const nlohmann::json& labels : *data) series.push_back(Labels(labels));
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("unexpected series answer: ", e.what()));
  }
  return series;
}

absl::StatusOr<std::vector<PromTarget>> PrometheusProcess::Targets() const {
  absl::StatusOr<nlohmann::json> data = Api("targets", {{"state", "active"}});
  if (!data.ok()) return data.status();
  std::vector<PromTarget> targets;
  try {
    for (const nlohmann::json& target : (*data)["activeTargets"]) {
      targets.push_back({Labels(target["labels"]), target.value("scrapeUrl", std::string()),
                         target.value("health", std::string()), target.value("lastError", std::string())});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("unexpected targets answer: ", e.what()));
  }
  return targets;
}

}  // namespace dfv::testing
