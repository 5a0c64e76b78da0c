// Helpers shared by the jobspec tests.
#ifndef DFV_TESTS_JOBSPEC_TEST_UTIL_H_
#define DFV_TESTS_JOBSPEC_TEST_UTIL_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/jobspec/parse.h"

namespace dfv::jobspec::testing {

// Parses with source name "job.yaml" and the given overrides.
inline ParseResult Parse(std::string_view yaml, std::vector<std::string> overrides = {}) {
  ParseOptions options;
  options.source_name = "job.yaml";
  options.overrides = std::move(overrides);
  return ParseJobSpecWithErrors(yaml, options);
}

// The error lines of a failed parse, as ParseJobSpec's status would say.
inline std::string Message(const ParseResult& result) {
  return std::string(SpecErrorsToStatus(result.errors).message());
}

// The one error about `field`, or nullptr.
inline const SpecError* ErrorFor(const ParseResult& result, const std::string& field) {
  const SpecError* found = nullptr;
  for (const SpecError& error : result.errors) {
    if (error.field == field) found = &error;
  }
  return found;
}

// A small valid job for `model`.
inline std::string MinimalJob(const std::string& model) {
  return "name: minimal\nmodel: " + model + "\ndataset:\n  kind: fashion_mnist\n";
}

}  // namespace dfv::jobspec::testing

#endif  // DFV_TESTS_JOBSPEC_TEST_UTIL_H_
