// The data set catalogue of the job file: for each `dataset.kind` the job
// schema accepts, a one-line summary, the rule for `dataset.path`, and the
// schema of the kind's own fields (written in the `dataset` section beside
// the fields every kind shares). Data only (no LibTorch, no loaders), so the
// coordinator can validate jobs without linking worker/data.
//
// Adding a data set = one entry in dataset_catalogue.cc, plus its loader under
// worker/data/ registered in worker/data/registry.cc (a test in tests/data
// fails when the two lists of kinds disagree).
#ifndef DFV_COMMON_JOBSPEC_DATASET_CATALOGUE_H_
#define DFV_COMMON_JOBSPEC_DATASET_CATALOGUE_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/jobspec/schema.h"

namespace dfv::jobspec {

// What `dataset.path` means for a kind.
struct DatasetPathRule {
  enum class Type {
    kDefault,    // optional, with a default folder
    kRequired,   // the job must give a folder
    kGenerated,  // the data set is generated: no path (empty or left out)
  };
  static DatasetPathRule Default(std::string default_path, std::string what) {
    return {Type::kDefault, std::move(default_path), std::move(what)};
  }
  static DatasetPathRule Required(std::string what) { return {Type::kRequired, "", std::move(what)}; }
  static DatasetPathRule Generated() { return {Type::kGenerated, "", ""}; }

  Type type = Type::kGenerated;
  std::string default_path;  // kDefault only
  std::string what;          // what the folder holds, for messages and docs
};

struct DatasetInfo {
  std::string name;                 // the job file's `dataset.kind` value
  std::string summary;              // one line for the documentation
  DatasetPathRule path;             // the rule for `dataset.path`
  std::vector<FieldSchema> fields;  // the kind's own fields of the `dataset` section
};

// Every data set, in documentation order. Built once; thread-safe.
const std::vector<DatasetInfo>& DatasetCatalogue();

// The entry for `kind`, or nullptr when there is no such data set.
const DatasetInfo* FindDataset(std::string_view kind);

// The kinds of every data set, in catalogue order.
std::vector<std::string> DatasetKinds();

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_DATASET_CATALOGUE_H_
