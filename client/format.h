// What dfvctl prints: tables, job details, one-line events, the live
// progress line and JSON. Pure functions of their arguments (the current time
// and time zone are parameters), so tests pin every byte.
#ifndef DFV_CLIENT_FORMAT_H_
#define DFV_CLIENT_FORMAT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "common/text.h"  // FormatBytes, FormatDuration, FormatMetricValue
#include "proto/dfv.pb.h"
#include "proto/enums.h"  // ArtifactKindName, IsFinalState

namespace dfv::client {

// "QUEUED", "RUNNING", ...; "UNKNOWN" for JOB_STATE_UNSPECIFIED or an
// unknown number.
std::string JobStateName(v1::JobState state);
// "alive", "lost"; "unknown" otherwise.
std::string WorkerStateName(v1::WorkerState state);

// Aligned columns, two spaces apart, header first; the last column is not
// padded, so lines carry no trailing blanks. Rows shorter than the header
// are padded with empty cells. Every line ends in '\n'.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// "1200/5622 21%" (steps done of total); "1200" without a total; "-" before
// the first step.
std::string FormatStepProgress(const v1::Progress& progress);

// `list`: ID NAME MODEL STATE PRIORITY ATTEMPT PROGRESS AGE, and
// EVALUATES ("j-000001 step 500", "-" for other jobs) when any of the jobs
// evaluates a checkpoint. `now_ms` (ms since the epoch) dates the ages.
std::string FormatJobTable(const std::vector<v1::Job>& jobs, int64_t now_ms);

// What an evaluation job evaluates: "j-000001 step 500", with_name
// "j-000001 checkpoints/step-00000500.ckpt (step 500)".
std::string FormatEvaluates(const v1::Evaluates& evaluates, bool with_name);

// `get`: one "key: value" line per field (with "evaluates" for an
// evaluation job), then the resolved job file, indented. Times are printed
// in `zone`.
std::string FormatJobDetails(const v1::Job& job, int64_t now_ms, absl::TimeZone zone);

// `artifacts`: NAME KIND STEP SIZE ATTEMPT.
std::string FormatArtifactTable(const std::vector<v1::ArtifactInfo>& artifacts);

// `report`: evaluation reports (each job's report.json, README "What a job
// produces") side by side, one column per job headed by its id (the first
// column, FIELD, names the rows), one row per
// value found in any report, named by its path: first job, model, dataset,
// steps, wall_seconds and evaluation_seconds, then the "evaluation" object's values without that
// prefix (e.g. "latent.s.mlp.test_accuracy"), then any other values, each
// group sorted by path. Numbers
// as FormatMetricValue prints them, text as it is (e.g. "not applicable:
// ..."), lists joined by ",", "-" where a report lacks the row.
std::string FormatReportTable(const std::vector<std::pair<std::string, nlohmann::json>>& reports);

// `workers`: ID NAME DEVICE SLOTS(free/total) STATE ADDRESS HEARTBEAT JOBS.
std::string FormatWorkerTable(const std::vector<v1::WorkerInfo>& workers, int64_t now_ms);

// dfvctl gc: one row per reason (files and bytes of this pass, then since
// the coordinator started), then a line with the stored bytes and the free
// space of the coordinator's data folder.
std::string FormatGarbageReport(const v1::CollectGarbageResponse& report);

// dfvctl top's screen: a summary line, the workers (name, device, busy/total
// slots, state, last heartbeat, jobs) and the jobs that are not final (id,
// name, model, state, ranks, steps, samples/s, mean step time, ETA), from
// the coordinator's job records (rank 0's progress reports). Every line ends
// in '\n'.
std::string FormatTop(const std::vector<v1::WorkerInfo>& workers, const std::vector<v1::Job>& jobs,
                      int64_t now_ms, absl::TimeZone zone);

// One event as one line (no '\n'): "12:03:04 #42 " then, by payload,
//   state RUNNING attempt 1 on w1,w2
//   state QUEUED attempt 2: worker w1 lost
//   metrics step 500 epoch 1: loss 0.0312 kl 0.12
//   progress step 600/5622 (10.7%) epoch 1, 1234 samples/s, ETA 3m35s
//   artifact checkpoint checkpoints/step-500.ckpt step 500 (1.2 MiB)
//   message <text>
std::string FormatEventLine(const v1::JobEvent& event, absl::TimeZone zone);

// The final line of a watch: "j-000001 SUCCEEDED", "j-000001 FAILED: why".
std::string FormatFinalState(const v1::Job& job);

// What the live progress line shows, gathered from the events so far.
struct LiveStatus {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  int32_t attempt = 0;
  int64_t step = 0;
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double samples_per_second = 0;
  double eta_seconds = -1;  // < 0: unknown
  // The newest metrics row's values, in the model's order, without the
  // timing figures (see IsTimingMetric).
  std::vector<std::pair<std::string, double>> losses;
};

// True for metrics that are not loss terms: "samples_per_second" and names
// ending in "_seconds" (step time, all-reduce time).
bool IsTimingMetric(const std::string& name);

// "[#####---------------]" with `width` cells between the brackets;
// `fraction` is clamped to 0..1.
std::string ProgressBar(double fraction, int width);

// The live line, e.g.
//   RUNNING 1200/5622 [####----------------]  21.3% | loss 0.0312 kl 0.12 | 1234 samples/s | ETA
//   3m35s
// cut to at most `width` characters (a redrawn line must never wrap) when
// `width` > 0. No '\r' or escape codes: the caller draws it.
std::string RenderProgressLine(const LiveStatus& status, int width);

// Proto3 JSON of `message` (enum names, every field even at its default,
// lowerCamelCase keys). `pretty`: indented over several lines; otherwise one
// line. No trailing newline.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message, bool pretty);

}  // namespace dfv::client

#endif  // DFV_CLIENT_FORMAT_H_
