// Reading and writing job files. This is the header most callers want.
//
//   dfv::jobspec::ParseOptions options;
//   options.source_name = "job.yaml";
//   options.overrides = {"train.lr=1e-4"};   // from --set
//   absl::StatusOr<JobSpec> spec = dfv::jobspec::ParseJobSpec(text, options);
//
// A job file is YAML, checked against the schema (job_schema.h, catalogue.h,
// dataset_catalogue.h): types, ranges, allowed values, required fields,
// unknown keys, and the rules that span fields. Every problem is reported, not only the first. All
// functions here are thread-safe and never throw.
#ifndef DFV_COMMON_JOBSPEC_PARSE_H_
#define DFV_COMMON_JOBSPEC_PARSE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/jobspec/job_spec.h"
#include "common/jobspec/schema.h"

namespace dfv::jobspec {

// Job files larger than this are refused before parsing.
inline constexpr size_t kMaxJobFileBytes = 1 << 20;

struct ParseOptions {
  // Names the text in messages ("job.yaml:12: ..."); usually the file path.
  std::string source_name = "job.yaml";
  // "key.path=value" strings (from --set), applied in order to the document
  // before validation. The value is read as YAML: a scalar or a flow list
  // such as "train.betas=[0.5,0.999]". Intermediate sections are created.
  // "key.path=null" (or ~) removes the key, so its default applies (or, for
  // a required key, the usual "required" error); the key must still be one
  // the schema knows. An empty value is an error (write "" for an empty
  // string).
  std::vector<std::string> overrides;
  // Drops the keys of the `dataset` section that are fields of another
  // dataset.kind instead of refusing them. Only for job files dfv itself
  // stored before each kind had its own fields, whose canonical form listed
  // every kind's fields (the coordinator's recovery of stored jobs); a job
  // file a person wrote never gets this.
  bool drop_other_kind_fields = false;
};

// The outcome of parsing with the problems as data. `spec` is meaningful
// only when `errors` is empty.
struct ParseResult {
  JobSpec spec;
  // File errors first, by line, then override errors in override order.
  std::vector<SpecError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses and validates a job file and resolves every default.
ParseResult ParseJobSpecWithErrors(std::string_view yaml_text, const ParseOptions& options);

// As ParseJobSpecWithErrors; on any problem returns INVALID_ARGUMENT whose
// message has one line per error (see SpecErrorsToStatus).
absl::StatusOr<JobSpec> ParseJobSpec(std::string_view yaml_text, const ParseOptions& options);

// Reads `path` and parses it with `path` as the source name. Errors from
// reading the file keep their code (NOT_FOUND, ...).
absl::StatusOr<JobSpec> LoadJobSpecFile(const std::string& path,
                                        std::vector<std::string> overrides = {});

// INVALID_ARGUMENT with one FormatSpecError line per error, e.g.
//   job.yaml:12: train.lr: must be a number > 0 and <= 10, got "-1"
//   --set train.lr=abc: train.lr: must be a number > 0 and <= 10, got "abc"
// OK when `errors` is empty.
absl::Status SpecErrorsToStatus(const std::vector<SpecError>& errors);

// The canonical, fully resolved YAML of `spec`: every field, in schema order,
// floats printed so they read back exactly. For a valid spec,
// ParseJobSpec(JobSpecToYaml(spec)) gives back an equal spec. This is the form
// stored with checkpoints and sent to workers.
std::string JobSpecToYaml(const JobSpec& spec);

// Equality of every field (ParamMaps included); for tests and for checking
// that a resumed job has the spec it was started with.
bool SpecsEqual(const JobSpec& a, const JobSpec& b);

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_PARSE_H_
