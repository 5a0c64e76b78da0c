// The job file's schema: every JobSpec field declared once, in job_schema.cc,
// as data (type, default, allowed values, doc line) together with the JobSpec
// member it fills. The model-specific parts (model_params, train.loss, some
// train defaults, samples.grids) come from the model catalogue (catalogue.h);
// the data-set-specific parts (dataset.path's rule, the kind's own fields of
// the dataset section) from the data set catalogue (dataset_catalogue.h).
//
// Most callers want parse.h; this header is for the parser, the printers and
// tests. A JobSchema is immutable after construction and thread-safe.
#ifndef DFV_COMMON_JOBSPEC_JOB_SCHEMA_H_
#define DFV_COMMON_JOBSPEC_JOB_SCHEMA_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/jobspec/catalogue.h"
#include "common/jobspec/dataset_catalogue.h"
#include "common/jobspec/job_spec.h"
#include "common/jobspec/schema.h"

namespace dfv::jobspec {

class JobSchema {
 public:
  // The schema for jobs of `model` on the data set kind `dataset`. With a
  // nullptr model (missing or unknown) the model-specific parts are left
  // unchecked and the per-model defaults are absent; with a nullptr dataset
  // the dataset section takes only the fields every kind shares and accepts
  // the fields of every kind unchecked. The documentation is printed from
  // these forms.
  JobSchema(const ModelInfo* model, const DatasetInfo* dataset);

  const FieldSchema& root() const { return root_; }
  const ModelInfo* model() const { return model_; }
  const DatasetInfo* dataset() const { return dataset_; }

  // The rules that span fields, run on the output of ValidateDocument:
  // fills the defaults that depend on other fields (resources.gpus_per_worker
  // from resources.device) and checks the combinations (dataset.path against
  // the kind's path rule, GPUs only with device cuda). Appends errors
  // (without source) to `errors`.
  void ApplyRules(ResolvedValues* values, std::vector<SpecError>* errors) const;

  // Fills a JobSpec from `values` that passed ValidateDocument and ApplyRules
  // without errors, for a schema built with a model and a data set kind. A
  // leaf without a value is a programming error and aborts.
  JobSpec ToJobSpec(const ResolvedValues& values) const;

  // The inverse of ToJobSpec: every field of `spec` keyed by its path. The
  // kind's own fields must all be in spec.dataset.params (aborts otherwise).
  ResolvedValues FromJobSpec(const JobSpec& spec) const;

  // How a leaf reads and writes its JobSpec member.
  struct Binding {
    std::function<Value(const JobSpec&)> get;
    std::function<void(const Value&, JobSpec*)> set;
  };
  // How a model-specific section reaches its ParamMap.
  struct ParamAccess {
    std::function<const ParamMap&(const JobSpec&)> get;
    std::function<ParamMap*(JobSpec*)> mutable_get;
  };

 private:
  const ModelInfo* model_;
  const DatasetInfo* dataset_;
  FieldSchema root_;
  std::map<std::string, Binding> leaves_;            // by dotted path
  std::map<std::string, ParamAccess> param_sections_;  // by dotted path
};

// True when `name` is a valid job name: 1 to 64 characters from
// [A-Za-z0-9_.-], not starting with '.' or '-'.
bool IsValidJobName(const std::string& name);

// The whole schema as commented YAML: every field with its type, default,
// allowed values and doc line, then each model's model_params, train.loss,
// train defaults and grids, then each data set kind's path rule and own
// fields. `dfv-worker schema` prints this.
std::string SchemaDocumentation();

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_JOB_SCHEMA_H_
