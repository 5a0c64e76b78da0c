// Fuzz target: the job-file parser and `--set` overrides
// (common/jobspec/parse.h).
//
// Input: a job file, optionally followed by a line "#--set" (a YAML comment,
// so a seed stays a readable job file) and one override per line after it:
//
//   model: vae
//   dataset: {kind: sprites}
//   #--set
//   train.lr=1e-4
//
// Checks, beyond "no crash, no leak, no undefined behaviour, no exception":
// a rejected job has errors that format to an INVALID_ARGUMENT status, and an
// accepted job's canonical YAML (JobSpecToYaml) parses back to an equal spec
// that prints the same YAML again, as parse.h promises.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "common/jobspec/parse.h"
#include "fuzz/fuzz_util.h"

namespace {

constexpr std::string_view kSetMarker = "\n#--set\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dfv::jobspec;
  const std::string_view input = dfv::fuzz::AsText(data, size);
  ParseOptions options;
  options.source_name = "fuzz.yaml";
  std::string_view text = input;
  if (const size_t marker = input.find(kSetMarker); marker != std::string_view::npos) {
    text = input.substr(0, marker + 1);
    const std::string_view sets = input.substr(marker + kSetMarker.size());
    for (absl::string_view line :
         absl::StrSplit(absl::string_view(sets.data(), sets.size()), '\n', absl::SkipEmpty())) {
      options.overrides.emplace_back(line);
    }
  }
  // One bit of the input picks the recovery mode the coordinator uses for
  // stored jobs, so that path is fuzzed too.
  options.drop_other_kind_fields = size > 0 && (data[size - 1] & 1) != 0;

  const ParseResult result = ParseJobSpecWithErrors(text, options);
  if (!result.ok()) {
    const absl::Status status = SpecErrorsToStatus(result.errors);
    DFV_FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, status.ToString());
    return 0;
  }

  const std::string yaml = JobSpecToYaml(result.spec);
  ParseOptions again;
  again.source_name = "canonical.yaml";
  const ParseResult reparsed = ParseJobSpecWithErrors(yaml, again);
  DFV_FUZZ_CHECK(reparsed.ok(), "the canonical YAML of an accepted job is refused: " +
                                    SpecErrorsToStatus(reparsed.errors).ToString() + "\n" + yaml);
  DFV_FUZZ_CHECK(SpecsEqual(result.spec, reparsed.spec),
                 "the canonical YAML reads back as another spec:\n" + yaml);
  DFV_FUZZ_CHECK(JobSpecToYaml(reparsed.spec) == yaml,
                 "the canonical YAML is not a fixed point:\n" + yaml + "\nthen:\n" + JobSpecToYaml(reparsed.spec));
  return 0;
}
