// dfvctl's verbs as functions: main.cc parses the command line into these
// option structs and calls one Run* function, which talks to the
// coordinator, writes results to Console::out and notes to Console::err,
// and returns the outcome. Errors come back as absl::Status; main prints
// them with ReportError and exits with ExitCode. Single-threaded.
#ifndef DFV_CLIENT_COMMANDS_H_
#define DFV_CLIENT_COMMANDS_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/coordinator.h"
#include "client/watch.h"
#include "proto/dfv.pb.h"

namespace dfv::client {

// Where output goes and what the terminal is like. Streams are not owned.
struct Console {
  std::FILE* out = stdout;  // results: ids, tables, JSON, folders
  std::FILE* err = stderr;  // progress, notices, errors
  bool out_is_tty = false;
  bool err_is_tty = false;
  int width = 80;  // terminal columns
  absl::TimeZone zone = absl::LocalTimeZone();
  // Milliseconds since the epoch, for ages in tables.
  std::function<int64_t()> now_ms = [] { return absl::ToUnixMillis(absl::Now()); };
};

enum class OutputFormat { kText, kJson };

// "text" or "json"; INVALID_ARGUMENT naming -o otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text);

// "running", "RUNNING", ... (any case); INVALID_ARGUMENT listing the states
// otherwise.
absl::StatusOr<v1::JobState> ParseJobState(const std::string& text);

struct SubmitOptions {
  std::string file;                    // the job file
  std::vector<std::string> overrides;  // --set key.path=value, in order
  bool follow = false;                 // watch, then download the results
  // Queue the job even when the live workers of its device have fewer slots
  // than it has ranks (SubmitJobRequest.wait_for_workers); without it the
  // coordinator refuses such a job with FAILED_PRECONDITION.
  bool wait_for_workers = false;
  std::string download_dir;            // with follow; empty: runs/<job-id>
  FollowOptions follow_options;        // reconnect policy while following
};

// Validates the job file locally first: on problems prints each one to
// Console::err ("file:line: field: message") and returns INVALID_ARGUMENT
// without contacting the coordinator. Then submits it and prints the job id
// alone on Console::out (FAILED_PRECONDITION, nothing printed, when the
// cluster has too few worker slots and wait_for_workers is not set). With `follow`: watches the job on Console::err,
// downloads every artifact into the folder and prints the folder as the last
// line of Console::out; FAILED_PRECONDITION ("job ID FAILED: reason") unless
// the job SUCCEEDED.
absl::Status RunSubmit(Coordinator& coordinator, const SubmitOptions& options,
                       const Console& console);

struct EvalOptions {
  std::string job_id;                  // the job whose checkpoint is evaluated
  std::string checkpoint;              // --checkpoint NAME; empty: the newest that verifies
  std::vector<std::string> overrides;  // --set key.path=value, in order
  bool wait_for_workers = false;       // as SubmitOptions'
  bool follow = false;                 // as SubmitOptions'
  std::string download_dir;            // with follow; empty: runs/<new job id>
  FollowOptions follow_options;
};

// Asks the coordinator for a job that evaluates a stored checkpoint of
// `job_id` (EvaluateCheckpointRequest) and prints the new job's id alone on
// Console::out; then, with `follow`, as RunSubmit. The coordinator's
// INVALID_ARGUMENT lines (refused overrides) are printed one per line on
// Console::err; its other refusals come back as they are.
absl::Status RunEval(Coordinator& coordinator, const EvalOptions& options, const Console& console);

struct ListOptions {
  std::vector<std::string> states;  // filter (ParseJobState names); empty: all
  int limit = 0;                    // 0: all
  OutputFormat format = OutputFormat::kText;
};
absl::Status RunList(Coordinator& coordinator, const ListOptions& options, const Console& console);

struct GetOptions {
  std::string job_id;
  OutputFormat format = OutputFormat::kText;
};
absl::Status RunGet(Coordinator& coordinator, const GetOptions& options, const Console& console);

struct WatchOptions {
  std::string job_id;
  OutputFormat format = OutputFormat::kText;
  FollowOptions follow_options;  // after_seq and the reconnect policy
};

// Follows the job until its event stream ends: event lines (or JSON, one
// object per line) on Console::out, the live line and notices on
// Console::err, and in text the final state and reason as the last line.
// FAILED_PRECONDITION ("job ID FAILED: reason") unless the job SUCCEEDED.
absl::Status RunWatch(Coordinator& coordinator, const WatchOptions& options,
                      const Console& console);

struct CancelOptions {
  std::string job_id;
  std::string reason;  // optional; recorded with the job
};
absl::Status RunCancel(Coordinator& coordinator, const CancelOptions& options,
                       const Console& console);

struct ArtifactsOptions {
  std::string job_id;
  std::string download_dir;  // non-empty: download every artifact there
  OutputFormat format = OutputFormat::kText;
};
absl::Status RunArtifacts(Coordinator& coordinator, const ArtifactsOptions& options,
                          const Console& console);

struct DeleteOptions {
  std::string job_id;
};
// Deletes every artifact of a finished job and prints
// "j-000003: deleted 14 artifacts (3.2 MiB)".
absl::Status RunDelete(Coordinator& coordinator, const DeleteOptions& options, const Console& console);

struct GcOptions {
  OutputFormat format = OutputFormat::kText;
};
// Runs the coordinator's retention pass and prints what it freed
// (FormatGarbageReport, or the response as JSON).
absl::Status RunGc(Coordinator& coordinator, const GcOptions& options, const Console& console);

struct ReportOptions {
  std::vector<std::string> job_ids;  // one or more
  OutputFormat format = OutputFormat::kText;
};

// Fetches each job's report.json artifact and prints FormatReportTable of
// them (text) or one JSON object {job id: report, ...} (json).
// INVALID_ARGUMENT without a job id; NOT_FOUND-style errors of the fetch
// name the job ("job ID: report.json: ..."); DATA_LOSS for a report that is
// not a JSON object.
absl::Status RunReport(Coordinator& coordinator, const ReportOptions& options, const Console& console);

struct WorkersOptions {
  OutputFormat format = OutputFormat::kText;
};
absl::Status RunWorkers(Coordinator& coordinator, const WorkersOptions& options,
                        const Console& console);

struct TopOptions {
  absl::Duration interval = absl::Seconds(2);  // between refreshes
  int iterations = 0;                          // screens to show; 0: until interrupted
  // Waits between screens (tests replace it).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
};

// Shows FormatTop's screen of the workers and the jobs that are not final,
// refreshed every `interval`: redrawn in place when Console::out is a
// terminal, otherwise one plain screen after another, separated by a blank
// line. Returns the first error talking to the coordinator.
absl::Status RunTop(Coordinator& coordinator, const TopOptions& options, const Console& console);

// 0 for OK, 2 for INVALID_ARGUMENT (a bad command line or job file), 1 for
// anything else.
int ExitCode(const absl::Status& status);

// Prints "dfvctl: <message>" as one line on `err` (line breaks inside the
// message become "; ").
void ReportError(const absl::Status& status, std::FILE* err);

}  // namespace dfv::client

#endif  // DFV_CLIENT_COMMANDS_H_
