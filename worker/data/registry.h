// The data set registry: maps a job's dataset.kind to the loader that reads
// it. Adding a data set = one new file pair (its DatasetLoader, dataset.h),
// one line in registry.cc, its entry in the job schema's data set catalogue
// (common/jobspec/dataset_catalogue.cc) and its tests; tests/data fails when
// the registry and the catalogue disagree.
#ifndef DFV_WORKER_DATA_REGISTRY_H_
#define DFV_WORKER_DATA_REGISTRY_H_

#include <string>
#include <string_view>
#include <vector>

#include "worker/data/dataset.h"

namespace dfv::data {

// The loader registered for `kind`, or nullptr. Thread-safe.
DatasetLoader FindDatasetLoader(std::string_view kind);

// The kinds of every registered loader, sorted. Thread-safe.
std::vector<std::string> RegisteredDatasets();

}  // namespace dfv::data

#endif  // DFV_WORKER_DATA_REGISTRY_H_
