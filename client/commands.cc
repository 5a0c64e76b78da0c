#include "client/commands.h"

#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/download.h"
#include "client/format.h"
#include "common/file_util.h"
#include "common/jobspec/parse.h"
#include "common/status_macros.h"

namespace dfv::client {
namespace {

void PrintOut(const Console& console, const std::string& text) {
  std::fputs(text.c_str(), console.out);
  std::fflush(console.out);
}

absl::Status PrintJson(const Console& console, const google::protobuf::Message& message) {
  DFV_ASSIGN_OR_RETURN(std::string json, ToJson(message, /*pretty=*/true));
  PrintOut(console, json + "\n");
  return absl::OkStatus();
}

absl::Status RequireJobId(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("a job id is required");
  return absl::OkStatus();
}

// OK for a job that SUCCEEDED; otherwise the error dfvctl exits with.
absl::Status JobOutcome(const v1::Job& job) {
  if (job.state() == v1::SUCCEEDED) return absl::OkStatus();
  std::string text = absl::StrCat("job ", job.id(), " ", JobStateName(job.state()));
  if (!job.reason().empty()) absl::StrAppend(&text, ": ", job.reason());
  return absl::FailedPreconditionError(text);
}

// Follows `job_id` through `display` until its stream ends and returns the
// job as it ended (from GetJob, or from the last state event when the
// coordinator cannot be asked any more).
absl::StatusOr<v1::Job> FollowAndShow(Coordinator& coordinator, const std::string& job_id,
                                      const FollowOptions& follow_options, WatchDisplay& display) {
  DFV_ASSIGN_OR_RETURN(v1::Job job, coordinator.GetJob(job_id));
  // From the start the replayed history tells everything; a watch that
  // resumes later shows the current state until new events arrive.
  if (follow_options.after_seq > 0) display.Seed(job);
  std::optional<v1::StateChange> last_state;
  auto on_event = [&](const v1::JobEvent& event) {
    if (event.has_state()) last_state = event.state();
    return display.OnEvent(event);
  };
  auto on_notice = [&](const std::string& text) { display.Notice(text); };
  DFV_RETURN_IF_ERROR(FollowJob(coordinator, job_id, follow_options, on_event, on_notice).status());
  absl::StatusOr<v1::Job> final_job = coordinator.GetJob(job_id);
  if (final_job.ok()) return final_job;
  if (!last_state.has_value()) return final_job.status();
  job.set_state(last_state->state());
  job.set_reason(last_state->reason());
  job.set_attempt(last_state->attempt());
  return job;
}

// The coordinator's validation answers one line per problem, like ours.
void PrintLines(std::FILE* out, absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::fprintf(out, "%s\n", std::string(line).c_str());
  }
}

std::string DownloadNote(const DownloadSummary& summary, const std::string& dir) {
  int fetched = 0;
  for (const DownloadedArtifact& a : summary.artifacts) fetched += a.already_present ? 0 : 1;
  std::string note = absl::StrCat("downloaded ", fetched, " artifact", fetched == 1 ? "" : "s",
                                  " (", FormatBytes(summary.bytes_fetched), ") to ", dir);
  const int kept = static_cast<int>(summary.artifacts.size()) - fetched;
  if (kept > 0) absl::StrAppend(&note, "; ", kept, " already there");
  return note;
}

// After a job's id was printed: follows it (FollowAndShow), downloads its
// artifacts into `download_dir` (empty: runs/<job_id>) and prints the folder
// on Console::out; the job's outcome (JobOutcome).
absl::Status FollowAndDownload(Coordinator& coordinator, const std::string& job_id,
                               const std::string& download_dir, const FollowOptions& follow_options,
                               const Console& console) {
  std::string dir = download_dir;
  if (dir.empty()) {
    // The id becomes a path component: never trust it unchecked.
    if (!IsSafePathComponent(job_id)) {
      return absl::InternalError(
          absl::StrCat("job id '", job_id, "' cannot name a folder; pass --download DIR"));
    }
    dir = absl::StrCat("runs/", job_id);
  }
  WatchDisplayOptions display_options;
  display_options.lines = console.err;
  display_options.status = console.err;
  display_options.interactive = console.err_is_tty;
  display_options.width = console.width;
  display_options.zone = console.zone;
  WatchDisplay display(display_options);
  DFV_ASSIGN_OR_RETURN(v1::Job final_job, FollowAndShow(coordinator, job_id, follow_options, display));
  if (final_job.state() == v1::SUCCEEDED) {
    display.PrintLine(FormatFinalState(final_job));
  } else {
    display.EndLiveLine();  // the error line says how it ended
  }
  // A failed or cancelled job's checkpoints and logs are still worth having.
  absl::StatusOr<DownloadSummary> summary = DownloadArtifacts(coordinator, job_id, dir, nullptr);
  if (!summary.ok()) {
    if (final_job.state() == v1::SUCCEEDED) return summary.status();
    std::fprintf(console.err, "dfvctl: download failed: %s\n",
                 std::string(summary.status().message()).c_str());
    return JobOutcome(final_job);
  }
  std::fprintf(console.err, "%s\n", DownloadNote(*summary, dir).c_str());
  PrintOut(console, dir + "\n");
  return JobOutcome(final_job);
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text) {
  if (text == "text") return OutputFormat::kText;
  if (text == "json") return OutputFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("-o/--output: '", text, "' is not one of text, json"));
}

absl::StatusOr<v1::JobState> ParseJobState(const std::string& text) {
  v1::JobState state;
  if (v1::JobState_Parse(absl::AsciiStrToUpper(text), &state) &&
      state != v1::JOB_STATE_UNSPECIFIED) {
    return state;
  }
  std::vector<std::string> names;
  for (int s = v1::JobState_MIN; s <= v1::JobState_MAX; ++s) {
    if (v1::JobState_IsValid(s) && s != v1::JOB_STATE_UNSPECIFIED) {
      names.push_back(absl::AsciiStrToLower(v1::JobState_Name(static_cast<v1::JobState>(s))));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--state: '", text, "' is not one of ", absl::StrJoin(names, ", ")));
}

absl::Status RunSubmit(Coordinator& coordinator, const SubmitOptions& options,
                       const Console& console) {
  DFV_ASSIGN_OR_RETURN(std::string text, ReadFileToString(options.file));
  jobspec::ParseOptions parse_options;
  parse_options.source_name = options.file;
  parse_options.overrides = options.overrides;
  jobspec::ParseResult parsed = jobspec::ParseJobSpecWithErrors(text, parse_options);
  if (!parsed.ok()) {
    for (const jobspec::SpecError& error : parsed.errors) {
      std::fprintf(console.err, "%s\n", jobspec::FormatSpecError(error).c_str());
    }
    return absl::InvalidArgumentError(absl::StrCat(options.file, ": ", parsed.errors.size(),
                                                   parsed.errors.size() == 1 ? " error" : " errors",
                                                   "; nothing was submitted"));
  }

  v1::SubmitJobRequest request;
  request.set_spec_yaml(text);
  request.set_source_name(options.file);
  for (const std::string& o : options.overrides) request.add_overrides(o);
  request.set_wait_for_workers(options.wait_for_workers);
  absl::StatusOr<v1::Job> job = coordinator.SubmitJob(request);
  if (absl::IsInvalidArgument(job.status())) {
    PrintLines(console.err, job.status().message());
    return absl::InvalidArgumentError(
        absl::StrCat("the coordinator at ", coordinator.address(), " refused ", options.file));
  }
  if (!job.ok()) return job.status();
  if (job->id().empty()) {
    return absl::InternalError("the coordinator accepted the job but returned no job id");
  }
  PrintOut(console, job->id() + "\n");
  if (!options.follow) return absl::OkStatus();
  return FollowAndDownload(coordinator, job->id(), options.download_dir, options.follow_options, console);
}

absl::Status RunEval(Coordinator& coordinator, const EvalOptions& options, const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  v1::EvaluateCheckpointRequest request;
  request.set_job_id(options.job_id);
  request.set_checkpoint(options.checkpoint);
  for (const std::string& o : options.overrides) request.add_overrides(o);
  request.set_wait_for_workers(options.wait_for_workers);
  absl::StatusOr<v1::Job> job = coordinator.EvaluateCheckpoint(request);
  if (absl::IsInvalidArgument(job.status())) {
    PrintLines(console.err, job.status().message());
    return absl::InvalidArgumentError(absl::StrCat("the coordinator at ", coordinator.address(),
                                                   " refused to evaluate ", options.job_id));
  }
  if (!job.ok()) return job.status();
  if (job->id().empty()) {
    return absl::InternalError("the coordinator accepted the evaluation but returned no job id");
  }
  PrintOut(console, job->id() + "\n");
  if (!options.follow) return absl::OkStatus();
  return FollowAndDownload(coordinator, job->id(), options.download_dir, options.follow_options, console);
}


absl::Status RunList(Coordinator& coordinator, const ListOptions& options, const Console& console) {
  if (options.limit < 0) return absl::InvalidArgumentError("--limit must be >= 0");
  v1::ListJobsRequest request;
  for (const std::string& s : options.states) {
    DFV_ASSIGN_OR_RETURN(v1::JobState state, ParseJobState(s));
    request.add_states(state);
  }
  request.set_limit(options.limit);
  DFV_ASSIGN_OR_RETURN(v1::ListJobsResponse response, coordinator.ListJobs(request));
  if (options.format == OutputFormat::kJson) return PrintJson(console, response);
  if (response.jobs().empty()) {
    std::fprintf(console.err, "no jobs\n");
    return absl::OkStatus();
  }
  std::vector<v1::Job> jobs(response.jobs().begin(), response.jobs().end());
  PrintOut(console, FormatJobTable(jobs, console.now_ms()));
  return absl::OkStatus();
}

absl::Status RunGet(Coordinator& coordinator, const GetOptions& options, const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  DFV_ASSIGN_OR_RETURN(v1::Job job, coordinator.GetJob(options.job_id));
  if (options.format == OutputFormat::kJson) return PrintJson(console, job);
  PrintOut(console, FormatJobDetails(job, console.now_ms(), console.zone));
  return absl::OkStatus();
}

absl::Status RunWatch(Coordinator& coordinator, const WatchOptions& options,
                      const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  if (options.follow_options.after_seq < 0) {
    return absl::InvalidArgumentError("--after-seq must be >= 0");
  }
  WatchDisplayOptions display_options;
  display_options.format =
      options.format == OutputFormat::kJson ? WatchFormat::kJson : WatchFormat::kText;
  display_options.lines = console.out;
  display_options.status = console.err;
  // Redrawing on stderr is only safe when stdout shares the terminal; a
  // redirected stdout must get every metrics row as a line.
  display_options.interactive = console.err_is_tty && console.out_is_tty;
  display_options.width = console.width;
  display_options.zone = console.zone;
  WatchDisplay display(display_options);
  DFV_ASSIGN_OR_RETURN(v1::Job final_job,
                       FollowAndShow(coordinator, options.job_id, options.follow_options, display));
  if (options.format == OutputFormat::kText) {
    display.PrintLine(FormatFinalState(final_job));
  } else {
    display.EndLiveLine();
  }
  return JobOutcome(final_job);
}

absl::Status RunCancel(Coordinator& coordinator, const CancelOptions& options,
                       const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  DFV_ASSIGN_OR_RETURN(v1::Job job, coordinator.CancelJob(options.job_id, options.reason));
  PrintOut(console, FormatFinalState(job) + "\n");
  return absl::OkStatus();
}

absl::Status RunArtifacts(Coordinator& coordinator, const ArtifactsOptions& options,
                          const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  if (!options.download_dir.empty()) {
    auto on_artifact = [&](const DownloadedArtifact& a) {
      if (console.err_is_tty) return;  // the summary is enough on a terminal
      std::fprintf(console.err, "%s %s (%s)\n", a.already_present ? "kept" : "fetched",
                   a.path.c_str(), FormatBytes(a.info.size()).c_str());
    };
    DFV_ASSIGN_OR_RETURN(
        DownloadSummary summary,
        DownloadArtifacts(coordinator, options.job_id, options.download_dir, on_artifact));
    std::fprintf(console.err, "%s\n", DownloadNote(summary, options.download_dir).c_str());
    PrintOut(console, options.download_dir + "\n");
    return absl::OkStatus();
  }
  DFV_ASSIGN_OR_RETURN(v1::ListArtifactsResponse response,
                       coordinator.ListArtifacts(options.job_id));
  if (options.format == OutputFormat::kJson) return PrintJson(console, response);
  if (response.artifacts().empty()) {
    std::fprintf(console.err, "job %s has no artifacts yet\n", options.job_id.c_str());
    return absl::OkStatus();
  }
  std::vector<v1::ArtifactInfo> artifacts(response.artifacts().begin(), response.artifacts().end());
  PrintOut(console, FormatArtifactTable(artifacts));
  return absl::OkStatus();
}

absl::Status RunDelete(Coordinator& coordinator, const DeleteOptions& options, const Console& console) {
  DFV_RETURN_IF_ERROR(RequireJobId(options.job_id));
  DFV_ASSIGN_OR_RETURN(v1::DeleteArtifactsResponse response, coordinator.DeleteArtifacts(options.job_id));
  PrintOut(console, absl::StrCat(options.job_id, ": deleted ", response.files(),
                                 response.files() == 1 ? " artifact (" : " artifacts (", FormatBytes(response.bytes()),
                                 ")\n"));
  return absl::OkStatus();
}

absl::Status RunGc(Coordinator& coordinator, const GcOptions& options, const Console& console) {
  DFV_ASSIGN_OR_RETURN(v1::CollectGarbageResponse response, coordinator.CollectGarbage());
  if (options.format == OutputFormat::kJson) return PrintJson(console, response);
  PrintOut(console, FormatGarbageReport(response));
  return absl::OkStatus();
}

absl::Status RunReport(Coordinator& coordinator, const ReportOptions& options, const Console& console) {
  if (options.job_ids.empty()) return absl::InvalidArgumentError("at least one job id is required");
  std::vector<std::pair<std::string, nlohmann::json>> reports;
  for (const std::string& job_id : options.job_ids) {
    DFV_RETURN_IF_ERROR(RequireJobId(job_id));
    absl::StatusOr<FetchedArtifact> fetched = FetchArtifact(coordinator, job_id, v1::kReportArtifactName);
    if (!fetched.ok()) {
      return absl::Status(fetched.status().code(),
                          absl::StrCat("job ", job_id, ": ", v1::kReportArtifactName, ": ", fetched.status().message()));
    }
    nlohmann::json report = nlohmann::json::parse(fetched->data, nullptr, /*allow_exceptions=*/false);
    if (!report.is_object()) {
      return absl::DataLossError(absl::StrCat("job ", job_id, ": ", v1::kReportArtifactName, " is not a JSON object"));
    }
    reports.emplace_back(job_id, std::move(report));
  }
  if (options.format == OutputFormat::kJson) {
    nlohmann::json all = nlohmann::json::object();
    for (const auto& [id, report] : reports) all[id] = report;
    PrintOut(console, all.dump(2) + "\n");
    return absl::OkStatus();
  }
  PrintOut(console, FormatReportTable(reports));
  return absl::OkStatus();
}

absl::Status RunWorkers(Coordinator& coordinator, const WorkersOptions& options,
                        const Console& console) {
  DFV_ASSIGN_OR_RETURN(v1::ListWorkersResponse response, coordinator.ListWorkers());
  if (options.format == OutputFormat::kJson) return PrintJson(console, response);
  if (response.workers().empty()) {
    std::fprintf(console.err, "no workers\n");
    return absl::OkStatus();
  }
  std::vector<v1::WorkerInfo> workers(response.workers().begin(), response.workers().end());
  PrintOut(console, FormatWorkerTable(workers, console.now_ms()));
  return absl::OkStatus();
}

absl::Status RunTop(Coordinator& coordinator, const TopOptions& options, const Console& console) {
  v1::ListJobsRequest not_final;
  for (v1::JobState state : {v1::QUEUED, v1::SCHEDULED, v1::RUNNING}) not_final.add_states(state);
  for (int shown = 0; options.iterations == 0 || shown < options.iterations; ++shown) {
    if (shown > 0) options.sleep(options.interval);
    DFV_ASSIGN_OR_RETURN(v1::ListWorkersResponse workers, coordinator.ListWorkers());
    DFV_ASSIGN_OR_RETURN(v1::ListJobsResponse jobs, coordinator.ListJobs(not_final));
    const std::string screen =
        FormatTop({workers.workers().begin(), workers.workers().end()}, {jobs.jobs().begin(), jobs.jobs().end()},
                  console.now_ms(), console.zone);
    if (console.out_is_tty) {
      // Home, clear the screen, draw.
      std::fprintf(console.out, "\x1b[H\x1b[2J%s", screen.c_str());
    } else {
      std::fprintf(console.out, "%s%s", shown > 0 ? "\n" : "", screen.c_str());
    }
    std::fflush(console.out);
  }
  return absl::OkStatus();
}

int ExitCode(const absl::Status& status) {
  if (status.ok()) return 0;
  return absl::IsInvalidArgument(status) ? 2 : 1;
}

void ReportError(const absl::Status& status, std::FILE* err) {
  if (status.ok()) return;
  std::string message(status.message());
  while (!message.empty() && message.back() == '\n') message.pop_back();
  message = absl::StrReplaceAll(message, {{"\n", "; "}});
  // gRPC leaves the message empty for some codes (UNIMPLEMENTED).
  if (message.empty()) message = absl::StatusCodeToString(status.code());
  std::fprintf(err, "dfvctl: %s\n", message.c_str());
  std::fflush(err);
}

}  // namespace dfv::client
