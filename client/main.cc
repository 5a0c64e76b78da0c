// dfvctl: the command-line client of the dfv coordinator. Verbs:
//   submit FILE [--set k=v ...] [--wait] [--follow [--download DIR]]
//   eval JOB [--checkpoint NAME] [--set k=v ...] [--wait] [--follow [--download DIR]]
//   list [--state S ...] [--limit N] [-o json]
//   get JOB [-o json]
//   watch JOB [--after-seq N] [-o json]
//   cancel JOB [--reason TEXT]
//   artifacts JOB [--download DIR] [-o json]
//   report JOB [JOB ...] [-o json]
//   workers [-o json]
//   top [--interval SECONDS] [-n ITERATIONS]
// The coordinator's address comes from --coordinator or $DFV_COORDINATOR; with
// --tls-ca (or $DFV_TLS_CA) the channel is TLS, the coordinator's certificate
// checked against that CA and the address's host (or --tls-server-name); a
// bearer token, when the coordinator wants one, from the file named by
// --token-file or $DFV_TOKEN_FILE (never from a flag value, which ps shows).
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "client/commands.h"
#include "client/coordinator.h"
#include "common/logging.h"
#include "common/rpc/bearer_token.h"

namespace {

int TerminalWidth(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    const int n = std::atoi(columns);
    if (n > 0) return n;
  }
  return 80;
}

void AddOutputOption(CLI::App* verb, std::string* output) {
  verb->add_option("-o,--output", *output, "output format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dfvctl: submit, watch and fetch dfv training jobs"};
  app.require_subcommand(1);
  // Global options may follow the verb too ("dfvctl list --coordinator X").
  app.fallthrough();
  std::string address = "127.0.0.1:7070";
  app.add_option("--coordinator", address, "coordinator HOST:PORT")
      ->envname("DFV_COORDINATOR")
      ->capture_default_str();
  dfv::rpc::TlsFiles tls;
  app.add_option("--tls-ca", tls.ca, "the cluster CA (PEM): talk TLS and trust only coordinators it signed")
      ->envname("DFV_TLS_CA");
  app.add_option("--tls-server-name", tls.server_name,
                 "the name the coordinator's certificate must carry (default: the host of --coordinator)")
      ->envname("DFV_TLS_SERVER_NAME");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file whose first line is the bearer token to send (coordinators with "
                 "--auth-file need one)")
      ->envname("DFV_TOKEN_FILE");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();

  dfv::client::SubmitOptions submit;
  auto* submit_cmd = app.add_subcommand("submit", "validate a job file and submit it");
  submit_cmd->add_option("file", submit.file, "job file (YAML)")->required();
  submit_cmd->add_option("--set", submit.overrides,
                         "override a job field: key.path=value, or key.path=null to remove it so "
                         "its default applies (repeatable, applied in order)");
  submit_cmd->add_flag("--wait", submit.wait_for_workers,
                       "queue the job even if the live workers have fewer slots of its device than "
                       "resources.workers (it waits until workers join); without it such a job is "
                       "refused");
  auto* follow_flag =
      submit_cmd->add_flag("--follow", submit.follow, "watch the job, then download its results");
  submit_cmd
      ->add_option("--download", submit.download_dir,
                   "with --follow: folder for the artifacts (default: runs/<job-id>)")
      ->needs(follow_flag);

  dfv::client::EvalOptions eval;
  auto* eval_cmd = app.add_subcommand(
      "eval",
      "evaluate a stored checkpoint of a job as a new job on a worker (the job's file, named NAME-eval, on "
      "one rank, resumed at the checkpoint's step: nothing trains, the evaluation, grids and report.json "
      "are its artifacts, `dfvctl report NEW` shows them)");
  eval_cmd->add_option("job", eval.job_id, "id of the job whose checkpoint is evaluated")->required();
  eval_cmd->add_option("--checkpoint", eval.checkpoint,
                       "the checkpoint, as `dfvctl artifacts JOB` names it (checkpoints/step-00000500.ckpt) "
                       "or its file name (default: the newest that verifies)");
  eval_cmd->add_option("--set", eval.overrides,
                       "override a field of the evaluation's job file: evaluate.* (e.g. "
                       "evaluate.classifiers=[mlp], evaluate.swap=true), samples.*, resources.*, name, "
                       "priority or max_restarts (repeatable, applied in order)");
  eval_cmd->add_flag("--wait", eval.wait_for_workers,
                     "queue it even if the live workers have too few slots of its device");
  auto* eval_follow_flag =
      eval_cmd->add_flag("--follow", eval.follow, "watch the new job, then download its results");
  eval_cmd
      ->add_option("--download", eval.download_dir,
                   "with --follow: folder for the artifacts (default: runs/<new-job-id>)")
      ->needs(eval_follow_flag);

  dfv::client::ListOptions list;
  std::string list_output = "text";
  auto* list_cmd = app.add_subcommand("list", "list jobs");
  list_cmd->add_option("--state", list.states, "only jobs in this state (repeatable)");
  list_cmd->add_option("--limit", list.limit, "at most this many jobs (0: all)")
      ->check(CLI::NonNegativeNumber);
  AddOutputOption(list_cmd, &list_output);

  dfv::client::GetOptions get;
  std::string get_output = "text";
  auto* get_cmd = app.add_subcommand("get", "show one job");
  get_cmd->add_option("job", get.job_id, "job id")->required();
  AddOutputOption(get_cmd, &get_output);

  dfv::client::WatchOptions watch;
  std::string watch_output = "text";
  auto* watch_cmd = app.add_subcommand("watch", "follow a job's events until it ends");
  watch_cmd->add_option("job", watch.job_id, "job id")->required();
  watch_cmd
      ->add_option("--after-seq", watch.follow_options.after_seq,
                   "start after this event sequence number")
      ->check(CLI::NonNegativeNumber);
  AddOutputOption(watch_cmd, &watch_output);

  dfv::client::CancelOptions cancel;
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel a job");
  cancel_cmd->add_option("job", cancel.job_id, "job id")->required();
  cancel_cmd->add_option("--reason", cancel.reason, "why (recorded with the job)");

  dfv::client::ArtifactsOptions artifacts;
  std::string artifacts_output = "text";
  auto* artifacts_cmd = app.add_subcommand("artifacts", "list or download a job's artifacts");
  artifacts_cmd->add_option("job", artifacts.job_id, "job id")->required();
  artifacts_cmd->add_option("--download", artifacts.download_dir,
                            "download every artifact into this folder");
  AddOutputOption(artifacts_cmd, &artifacts_output);

  dfv::client::DeleteOptions delete_options;
  auto* delete_cmd = app.add_subcommand("delete", "delete every artifact of a finished job (the job and its events stay)");
  delete_cmd->add_option("job", delete_options.job_id, "job id")->required();

  dfv::client::GcOptions gc;
  std::string gc_output = "text";
  auto* gc_cmd = app.add_subcommand("gc", "apply checkpoint retention to every job again, remove orphan files, "
                                          "and show what retention freed");
  AddOutputOption(gc_cmd, &gc_output);

  dfv::client::ReportOptions report;
  std::string report_output = "text";
  auto* report_cmd = app.add_subcommand("report", "show jobs' evaluation reports side by side");
  report_cmd->add_option("jobs", report.job_ids, "job ids (one column each)")->required();
  AddOutputOption(report_cmd, &report_output);

  dfv::client::WorkersOptions workers;
  std::string workers_output = "text";
  auto* workers_cmd = app.add_subcommand("workers", "list worker daemons");
  AddOutputOption(workers_cmd, &workers_output);

  dfv::client::TopOptions top;
  double top_interval_seconds = 2;
  auto* top_cmd = app.add_subcommand("top", "workers and unfinished jobs (steps, samples/s, step time), refreshed");
  top_cmd->add_option("--interval", top_interval_seconds, "seconds between refreshes")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  top_cmd->add_option("-n,--iterations", top.iterations, "screens to show, then exit (0: until Ctrl-C)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help is not an error; a bad command line exits 2 like a bad job file.
    return app.exit(e) == 0 ? 0 : 2;
  }
  dfv::InitLogging("dfvctl", log_level);

  dfv::client::Console console;
  console.out_is_tty = ::isatty(STDOUT_FILENO) != 0;
  console.err_is_tty = ::isatty(STDERR_FILENO) != 0;
  console.width = TerminalWidth(STDERR_FILENO);

  auto run = [&]() -> absl::Status {
    dfv::client::GrpcCoordinatorOptions options;
    options.address = address;
    options.tls = tls;
    if (!token_file.empty()) {
      absl::StatusOr<std::string> token = dfv::rpc::ReadTokenFile(token_file);
      if (!token.ok()) return token.status();
      options.token = std::move(*token);
    }
    auto coordinator = dfv::client::GrpcCoordinator::Create(options);
    if (!coordinator.ok()) return coordinator.status();
    dfv::client::Coordinator& c = **coordinator;
    // CLI11 checked the values, so ParseOutputFormat cannot fail here.
    auto format = [](const std::string& text) {
      return dfv::client::ParseOutputFormat(text).value_or(dfv::client::OutputFormat::kText);
    };
    if (*submit_cmd) return dfv::client::RunSubmit(c, submit, console);
    if (*eval_cmd) return dfv::client::RunEval(c, eval, console);
    if (*list_cmd) {
      list.format = format(list_output);
      return dfv::client::RunList(c, list, console);
    }
    if (*get_cmd) {
      get.format = format(get_output);
      return dfv::client::RunGet(c, get, console);
    }
    if (*watch_cmd) {
      watch.format = format(watch_output);
      return dfv::client::RunWatch(c, watch, console);
    }
    if (*cancel_cmd) return dfv::client::RunCancel(c, cancel, console);
    if (*artifacts_cmd) {
      artifacts.format = format(artifacts_output);
      return dfv::client::RunArtifacts(c, artifacts, console);
    }
    if (*delete_cmd) return dfv::client::RunDelete(c, delete_options, console);
    if (*gc_cmd) {
      gc.format = format(gc_output);
      return dfv::client::RunGc(c, gc, console);
    }
    if (*report_cmd) {
      report.format = format(report_output);
      return dfv::client::RunReport(c, report, console);
    }
    if (*top_cmd) {
      top.interval = absl::Seconds(top_interval_seconds);
      return dfv::client::RunTop(c, top, console);
    }
    workers.format = format(workers_output);
    return dfv::client::RunWorkers(c, workers, console);
  };
  const absl::Status status = run();
  dfv::client::ReportError(status, stderr);
  return dfv::client::ExitCode(status);
}
