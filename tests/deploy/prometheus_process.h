// A real Prometheus server (Debian's `prometheus`) for tests: started on a
// free loopback port from deploy/prometheus/prometheus.yml with only its
// targets, paths and intervals rewritten (so the tests run the scrape jobs
// and rules that are deployed), with a temporary storage folder,
// and queried through its HTTP API.
//
//   PrometheusOptions options;
//   options.static_targets["dfv-coordinator"] = {coordinator_metrics_address};
//   options.sd_files["dfv-worker"] = {sd_file};  // the coordinator's --prometheus-sd-file
//   DFV_ASSIGN_OR_RETURN(auto prometheus, PrometheusProcess::Start(options));
//   auto loss = prometheus->WaitFor(R"(dfv_job_training_metric{term="loss"})",
//                                   HasSamples(2), absl::Seconds(30));
//
// Prometheus hands targets to its scrapers at most every 5 s, so the first
// scrape (and a change to a service discovery file) shows some 5-7 s after
// the fact; WaitFor with 30 s or more.
//
// The process and its folder are removed when the object is destroyed (also
// when a test fails); Prometheus is stopped with SIGTERM, then SIGKILL.
// Thread-compatible; the query methods only read and may be called from any
// one thread at a time.
#ifndef DFV_TESTS_DEPLOY_PROMETHEUS_PROCESS_H_
#define DFV_TESTS_DEPLOY_PROMETHEUS_PROCESS_H_

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/promql_exprs.h"
#include "worker/daemon/subprocess.h"

namespace dfv::testing {

struct PrometheusOptions {
  // Static targets ("127.0.0.1:PORT") per scrape job of the configuration
  // template, e.g. {"dfv-coordinator", {address}}.
  std::map<std::string, std::vector<std::string>> static_targets;
  // File service-discovery files per scrape job, e.g. {"dfv-worker", {path}}
  // (the file need not exist yet). A template job given neither targets nor
  // files is left out; a job name the template lacks is an error.
  std::map<std::string, std::vector<std::string>> sd_files;
  // Scrape interval, scrape timeout and rule evaluation interval.
  absl::Duration interval = absl::Seconds(1);
  // Whose scrape jobs are run.
  std::string config_template = DeployDir() + "/prometheus/prometheus.yml";
  // The rules files loaded (absolute paths); empty for none.
  std::vector<std::string> rule_files = {DeployDir() + "/prometheus/rules.yml"};
  // How long Prometheus may take to answer /-/ready.
  absl::Duration ready_timeout = absl::Seconds(60);
};

// One element of an instant query's result.
struct PromSample {
  std::map<std::string, std::string> labels;  // "__name__" too when the result keeps it
  double value = 0;                           // NaN and +-Inf as such

  // The label's value, "" when absent.
  std::string Label(const std::string& name) const;
};
// `name{a="1", b="2"} value`, for failure messages.
std::ostream& operator<<(std::ostream& out, const PromSample& sample);
std::string DescribeSamples(const std::vector<PromSample>& samples);

// One active target of /api/v1/targets.
struct PromTarget {
  std::map<std::string, std::string> labels;  // job, instance and the SD file's labels (worker)
  std::string scrape_url;
  std::string health;  // "up", "down" or "unknown" (not scraped yet)
  std::string last_error;
};

// Predicates for WaitFor.
using SamplesPredicate = std::function<bool(const std::vector<PromSample>&)>;
// At least `count` samples.
SamplesPredicate HasSamples(size_t count = 1);
// At least one sample, and every sample's value satisfies `check`.
SamplesPredicate AllValues(std::function<bool(double)> check);

class PrometheusProcess {
 public:
  // Writes the configuration, starts `prometheus` (found on PATH) on a free
  // 127.0.0.1 port and waits for /-/ready. NOT_FOUND when prometheus is not
  // installed (tests skip then); INVALID_ARGUMENT for a template that cannot
  // be read or a job it lacks; INTERNAL with Prometheus's log when it exits
  // (e.g. it rejected the configuration); DEADLINE_EXCEEDED when it is not
  // ready in time.
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(const PrometheusOptions& options);
  // Stops Prometheus and removes its folder.
  ~PrometheusProcess();

  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  // "127.0.0.1:PORT" of its HTTP API.
  const std::string& address() const { return address_; }
  // Its folder (configuration, storage, log), removed at destruction.
  const std::string& dir() const { return dir_; }
  // The configuration it runs (YAML text), for failure messages.
  const std::string& config() const { return config_; }
  // Prometheus's log so far, for failure messages.
  std::string Log() const;

  // The instant query `expr` at the server's current time (/api/v1/query).
  // INVALID_ARGUMENT with Prometheus's message when the expression does not
  // parse or is not an instant vector or scalar; UNAVAILABLE when the server
  // does not answer.
  absl::StatusOr<std::vector<PromSample>> Query(const std::string& expr) const;

  // Queries `expr` every 200 ms until `done` accepts the result, and returns
  // that result. DEADLINE_EXCEEDED after `timeout`, with the last result or
  // error; INVALID_ARGUMENT at once for an expression that does not parse.
  absl::StatusOr<std::vector<PromSample>> WaitFor(const std::string& expr, const SamplesPredicate& done,
                                                  absl::Duration timeout) const;

  // The label sets of every series matching the selector `match`, in the
  // whole storage (/api/v1/series).
  absl::StatusOr<std::vector<std::map<std::string, std::string>>> Series(const std::string& match) const;

  // The active scrape targets (/api/v1/targets?state=active).
  absl::StatusOr<std::vector<PromTarget>> Targets() const;

  // GET /api/v1/<endpoint> with URL-encoded `params`; returns the answer's
  // "data". INVALID_ARGUMENT for Prometheus's bad_data errors, INTERNAL for
  // others, UNAVAILABLE when it does not answer.
  absl::StatusOr<nlohmann::json> Api(const std::string& endpoint,
                                     const std::vector<std::pair<std::string, std::string>>& params) const;

 private:
  PrometheusProcess(std::string dir, std::string config);
  // One start on one port; UNAVAILABLE when the port was taken meanwhile.
  absl::Status StartOnce(const std::string& binary, absl::Duration ready_timeout);
  void Stop();

  const std::string dir_;     // config, storage and log; removed at the end
  const std::string config_;  // the generated configuration
  std::string address_;
  std::unique_ptr<daemon::Subprocess> process_;
};

}  // namespace dfv::testing

#endif  // DFV_TESTS_DEPLOY_PROMETHEUS_PROCESS_H_
