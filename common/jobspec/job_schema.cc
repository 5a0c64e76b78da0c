#include "common/jobspec/job_schema.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dfv::jobspec {
namespace {

using F = FieldSchema;

[[noreturn]] void BindingBug(const std::string& what) {
  std::fprintf(stderr, "dfv::jobspec job schema bug: %s\n", what.c_str());
  std::abort();
}

// ---------------------------------------------------------------------------
// Reading and writing JobSpec members as schema values.

Value ToValue(int64_t v) { return Value(v); }
Value ToValue(uint64_t v) { return Value(static_cast<int64_t>(v)); }  // validated >= 0
Value ToValue(double v) { return Value(v); }
Value ToValue(bool v) { return Value(v); }
Value ToValue(const std::string& v) { return Value(v); }
Value ToValue(const std::vector<double>& v) { return Value(v); }
Value ToValue(const std::vector<std::string>& v) { return Value(v); }

template <typename T>
const T& Expect(const Value& value) {
  const T* typed = std::get_if<T>(&value);
  if (typed == nullptr) BindingBug("a value does not have the type of its JobSpec member");
  return *typed;
}

void FromValue(const Value& v, int64_t* out) { *out = Expect<int64_t>(v); }
void FromValue(const Value& v, uint64_t* out) { *out = static_cast<uint64_t>(Expect<int64_t>(v)); }
void FromValue(const Value& v, double* out) { *out = Expect<double>(v); }
void FromValue(const Value& v, bool* out) { *out = Expect<bool>(v); }
void FromValue(const Value& v, std::string* out) { *out = Expect<std::string>(v); }
void FromValue(const Value& v, std::vector<double>* out) { *out = Expect<std::vector<double>>(v); }
void FromValue(const Value& v, std::vector<std::string>* out) {
  *out = Expect<std::vector<std::string>>(v);
}

// A top-level member, e.g. Bind(&JobSpec::priority).
template <typename M>
JobSchema::Binding Bind(M JobSpec::*member) {
  return {[member](const JobSpec& spec) { return ToValue(spec.*member); },
          [member](const Value& value, JobSpec* spec) { FromValue(value, &(spec->*member)); }};
}

// A member of a section, e.g. Bind(&JobSpec::train, &TrainSpec::epochs).
template <typename S, typename M>
JobSchema::Binding Bind(S JobSpec::*section, M S::*member) {
  return {[section, member](const JobSpec& spec) { return ToValue((spec.*section).*member); },
          [section, member](const Value& value, JobSpec* spec) {
            FromValue(value, &((spec->*section).*member));
          }};
}

ParamValue ToParamValue(const Value& value) {
  struct Convert {
    ParamValue operator()(int64_t v) const { return v; }
    ParamValue operator()(double v) const { return v; }
    ParamValue operator()(bool v) const { return v; }
    ParamValue operator()(const std::string& v) const { return v; }
    ParamValue operator()(const std::vector<double>& v) const { return v; }
    ParamValue operator()(const std::vector<std::string>&) const {
      BindingBug("a model-specific field cannot be a list of names");
    }
  };
  return std::visit(Convert{}, value);
}

Value FromParamValue(const ParamValue& value) {
  return std::visit([](const auto& v) { return Value(v); }, value);
}

// ---------------------------------------------------------------------------
// The declaration. A Decl is one node of the job file: a leaf bound to a
// JobSpec member, a plain section, or a model-specific section (a ParamMap).

struct Decl {
  FieldSchema schema;
  JobSchema::Binding binding;     // leaves
  JobSchema::ParamAccess params;  // model-specific sections
  std::vector<Decl> children;     // plain sections
};

Decl Leaf(FieldSchema schema, JobSchema::Binding binding) {
  return Decl{std::move(schema), std::move(binding), {}, {}};
}

Decl Section(std::string name, std::string doc, std::vector<Decl> children) {
  return Decl{F::Section(std::move(name), std::move(doc)), {}, {}, std::move(children)};
}

Decl ModelSection(FieldSchema section, JobSchema::ParamAccess params) {
  return Decl{std::move(section), {}, std::move(params), {}};
}

// dataset.path's default or rule for each kind, for the documentation of the
// kind-independent schema.
std::string DatasetPathNote() {
  std::vector<std::string> parts;
  for (const DatasetInfo& kind : DatasetCatalogue()) {
    switch (kind.path.type) {
      case DatasetPathRule::Type::kGenerated:
        parts.push_back(absl::StrCat(kind.name, ": none (generated; a path is an error)"));
        break;
      case DatasetPathRule::Type::kRequired:
        parts.push_back(absl::StrCat(kind.name, ": required"));
        break;
      case DatasetPathRule::Type::kDefault:
        parts.push_back(absl::StrCat(kind.name, ": ", kind.path.default_path));
        break;
    }
  }
  return absl::StrCat("by dataset.kind (", absl::StrJoin(parts, ", "), ")");
}

// dataset.path as `dataset` (nullptr: unknown kind) declares it.
FieldSchema DatasetPathField(const DatasetInfo* dataset) {
  if (dataset == nullptr) {
    return F::String("path", "the data set's folder (see Data sets below)").DefaultNote(DatasetPathNote());
  }
  const DatasetPathRule& rule = dataset->path;
  switch (rule.type) {
    case DatasetPathRule::Type::kDefault:
      return F::String("path", rule.what).Default(rule.default_path);
    case DatasetPathRule::Type::kRequired:
      return F::String("path", rule.what)
          .DefaultNote(absl::StrCat("none, required when dataset.kind is ", dataset->name));
    case DatasetPathRule::Type::kGenerated:
      break;
  }
  return F::String("path", "none: the data set is generated, so a path is an error")
      .Default(std::string(""));
}

// A field of the chosen kind's own, kept in DatasetSpec::params.
JobSchema::Binding BindDatasetParam(const std::string& name) {
  return {[name](const JobSpec& spec) {
            auto it = spec.dataset.params.values().find(name);
            if (it == spec.dataset.params.values().end()) {
              BindingBug("dataset.params of kind " + spec.dataset.kind + " has no " + name);
            }
            return FromParamValue(it->second);
          },
          [name](const Value& value, JobSpec* spec) { spec->dataset.params.Set(name, ToParamValue(value)); }};
}

// The `dataset` section for `dataset` (nullptr: the kind is missing or
// unknown): the fields every kind shares, then the kind's own fields. The
// fields of the other kinds are known keys of another variant: an error that
// names their kinds, or (kind unknown) accepted unchecked, as model_params is
// while the model is unknown.
Decl DeclareDataset(const DatasetInfo* dataset) {
  F section = F::Section("dataset", "the training data");
  if (dataset == nullptr) section.DefaultNote("its other fields depend on kind; see Data sets below");
  std::map<std::string, std::vector<std::string>> owners;  // field -> kinds that have it
  for (const DatasetInfo& kind : DatasetCatalogue()) {
    for (const FieldSchema& field : kind.fields) owners[field.name()].push_back(kind.name);
  }
  std::vector<Decl> children = {
      Leaf(F::Enum("kind", DatasetKinds(), "which data set").Required(),
           Bind(&JobSpec::dataset, &DatasetSpec::kind)),
      Leaf(DatasetPathField(dataset), Bind(&JobSpec::dataset, &DatasetSpec::path)),
      Leaf(F::Int("image_size", "images are resized to image_size x image_size")
               .Default(int64_t{28}).Range(16, 128),
           Bind(&JobSpec::dataset, &DatasetSpec::image_size)),
      Leaf(F::Int("channels", "image channels; 0 means the data set's own")
               .Default(int64_t{0}).OneOf({0, 1, 3}),
           Bind(&JobSpec::dataset, &DatasetSpec::channels)),
      Leaf(F::Int("train_limit", "use only the first N training images (0 = all)")
               .Default(int64_t{0}).Min(0),
           Bind(&JobSpec::dataset, &DatasetSpec::train_limit)),
      Leaf(F::Int("test_limit", "use only the first N test images (0 = all)")
               .Default(int64_t{0}).Min(0),
           Bind(&JobSpec::dataset, &DatasetSpec::test_limit)),
  };
  if (dataset != nullptr) {
    for (const FieldSchema& field : dataset->fields) {
      children.push_back(Leaf(field, BindDatasetParam(field.name())));
      owners.erase(field.name());
    }
  }
  for (const auto& [name, kinds] : owners) {
    section.OtherVariantKey(
        name, dataset == nullptr ? ""
                                 : absl::StrCat("it is a field of dataset.kind ", absl::StrJoin(kinds, " and "),
                                                ", not of ", dataset->name));
  }
  return Decl{std::move(section), {}, {}, std::move(children)};
}

constexpr char kJobNameRule[] = "1 to 64 characters from [A-Za-z0-9_.-], not starting with '.' or '-'";

// The job file, in document order. `model` and `dataset` may be nullptr
// (missing or unknown).
Decl DeclareJob(const ModelInfo* model, const DatasetInfo* dataset) {
  const bool known = model != nullptr;

  F model_params = F::Section("model_params", "settings of the chosen model",
                              known ? model->params : std::vector<FieldSchema>{});
  F loss = F::Section("loss", "loss coefficients of the chosen model",
                      known ? model->loss : std::vector<FieldSchema>{});
  F lr = F::Float("lr", "Adam learning rate").Min(0, /*exclusive=*/true).Max(10);
  F betas = F::FloatList("betas", "Adam betas (beta1, beta2)").Length(2).Min(0).Max(1, true);
  F batch_size = F::Int("batch_size", "global batch, split across workers").Range(1, 65536);
  F grids = F::EnumList("grids", known ? model->grids : std::vector<std::string>{},
                        "sample grids to draw (a subset of the model's grids)");
  if (known) {
    lr.Default(model->train.lr);
    betas.Default(model->train.betas);
    batch_size.Default(model->train.batch_size);
    grids.Default(model->grids);
  } else {
    model_params.Unchecked().DefaultNote("its fields depend on model; see Models below");
    loss.Unchecked().DefaultNote("its fields depend on model; see Models below");
    lr.DefaultNote("per model");
    betas.DefaultNote("per model");
    batch_size.DefaultNote("per model");
    grids.Unchecked().DefaultNote("all of the model's grids; see Models below");
  }

  return Section("", "", {
      Leaf(F::String("name", "job name; becomes part of output paths")
               .Required().Check(IsValidJobName, kJobNameRule),
           Bind(&JobSpec::name)),
      Leaf(F::Enum("model", ModelNames(), "which model to train").Required(),
           Bind(&JobSpec::model)),
      DeclareDataset(dataset),
      ModelSection(model_params,
                   {[](const JobSpec& spec) -> const ParamMap& { return spec.model_params; },
                    [](JobSpec* spec) { return &spec->model_params; }}),
      Section("train", "optimisation", {
          Leaf(F::Int("epochs", "passes over the training set").Default(int64_t{1}).Range(1, 100000),
               Bind(&JobSpec::train, &TrainSpec::epochs)),
          Leaf(F::Int("max_steps", "stop after this many steps (0 = run all epochs)")
                   .Default(int64_t{0}).Min(0),
               Bind(&JobSpec::train, &TrainSpec::max_steps)),
          Leaf(batch_size, Bind(&JobSpec::train, &TrainSpec::batch_size)),
          Leaf(lr, Bind(&JobSpec::train, &TrainSpec::lr)),
          Leaf(betas, Bind(&JobSpec::train, &TrainSpec::betas)),
          Leaf(F::Int("seed", "seed of initialisation and shuffling").Default(int64_t{1}).Min(0),
               Bind(&JobSpec::train, &TrainSpec::seed)),
          ModelSection(loss,
                       {[](const JobSpec& spec) -> const ParamMap& { return spec.train.loss; },
                        [](JobSpec* spec) { return &spec->train.loss; }}),
          Leaf(F::Int("threads", "intra-op threads per worker (0 = the cores the process may use, its CPU "
                                  "affinity, split evenly among a job's ranks on one host)")
                   .Default(int64_t{0}).Range(0, 256),
               Bind(&JobSpec::train, &TrainSpec::threads)),
          Leaf(F::Int("log_every_steps", "steps between rows of metrics")
                   .Default(int64_t{50}).Range(1, 1000000),
               Bind(&JobSpec::train, &TrainSpec::log_every_steps)),
      }),
      Section("resources", "where the job runs", {
          Leaf(F::Int("workers", "worker processes (ranks)").Default(int64_t{1}).Range(1, 1024),
               Bind(&JobSpec::resources, &ResourcesSpec::workers)),
          Leaf(F::Enum("device", {"cpu", "cuda"}, "device each worker trains on")
                   .Default(std::string("cpu")),
               Bind(&JobSpec::resources, &ResourcesSpec::device)),
          Leaf(F::Int("gpus_per_worker", "GPUs per worker; >= 1 with cuda, 0 with cpu")
                   .Default(int64_t{0}).Range(0, 16).DefaultNote("1 when device is cuda"),
               Bind(&JobSpec::resources, &ResourcesSpec::gpus_per_worker)),
          Leaf(F::Int("bucket_mb", "gradient all-reduce bucket size in MiB (workers > 1)")
                   .Default(int64_t{25}).Range(1, 1024),
               Bind(&JobSpec::resources, &ResourcesSpec::bucket_mb)),
          Leaf(F::Int("rendezvous_timeout_seconds",
                      "seconds for all ranks to meet; after that the attempt fails and the job is retried "
                      "(max_restarts) or failed")
                   .Default(int64_t{60}).Range(5, 3600),
               Bind(&JobSpec::resources, &ResourcesSpec::rendezvous_timeout_seconds)),
      }),
      Section("checkpoint", "checkpoints", {
          Leaf(F::Int("every_steps", "steps between checkpoints (0 = only at the end)")
                   .Default(int64_t{500}).Min(0),
               Bind(&JobSpec::checkpoint, &CheckpointSpec::every_steps)),
          Leaf(F::Int("keep_last", "checkpoints kept").Default(int64_t{3}).Range(1, 1000),
               Bind(&JobSpec::checkpoint, &CheckpointSpec::keep_last)),
      }),
      Section("samples", "sample image grids", {
          Leaf(F::Int("every_steps", "steps between sample grids (0 = only at the end)")
                   .Default(int64_t{250}).Min(0),
               Bind(&JobSpec::samples, &SamplesSpec::every_steps)),
          Leaf(grids, Bind(&JobSpec::samples, &SamplesSpec::grids)),
          Leaf(F::Int("upscale", absl::StrCat("nearest-neighbour enlargement of the grid PNGs (0 = the smallest "
                                              "factor that makes a grid at least ", kAutoGridWidth,
                                              " pixels wide)"))
                   .Default(int64_t{0}).Range(0, 16),
               Bind(&JobSpec::samples, &SamplesSpec::upscale)),
      }),
      Section("evaluate", "evaluation after training", {
          Leaf(F::EnumList("classifiers", {"mlp", "linear_svm"},
                           "classifiers trained on the latent codes")
                   .Default(std::vector<std::string>{}),
               Bind(&JobSpec::evaluate, &EvaluateSpec::classifiers)),
          Leaf(F::Bool("tsne", "draw a t-SNE plot of the latent codes").Default(false),
               Bind(&JobSpec::evaluate, &EvaluateSpec::tsne)),
          Leaf(F::Int("probe_train_images",
                      "training images whose codes train the probes and predictors (a seeded sample; 0 = the "
                      "whole training split)")
                   .Default(int64_t{0}).Min(0),
               Bind(&JobSpec::evaluate, &EvaluateSpec::probe_train_images)),
          Leaf(F::Bool("predictors",
                       "MLP regressors z -> s and s -> z: their test MSE and the regeneration error of "
                       "decoding with the predicted code (models with separate s and z)")
                   .Default(false),
               Bind(&JobSpec::evaluate, &EvaluateSpec::predictors)),
          Leaf(F::Bool("swap",
                       "swap consistency: decode (z of a, s of b) for test pairs of different classes and "
                       "report how often a CNN trained on the real images sees b's class")
                   .Default(false),
               Bind(&JobSpec::evaluate, &EvaluateSpec::swap)),
          Leaf(F::Bool("factors",
                       "on data sets with ground-truth factors (sprites): how well s and z predict each "
                       "factor, and the mutual information gap (MIG)")
                   .Default(false),
               Bind(&JobSpec::evaluate, &EvaluateSpec::factors)),
          Leaf(F::Int("factor_bins", "histogram bins of codes and continuous factors (MIG, factor probes)")
                   .Default(int64_t{20}).Range(2, 1000),
               Bind(&JobSpec::evaluate, &EvaluateSpec::factor_bins)),
          Leaf(F::Int("judge_epochs", "training passes of the swap-consistency CNN over the training split")
                   .Default(int64_t{2}).Range(1, 100),
               Bind(&JobSpec::evaluate, &EvaluateSpec::judge_epochs)),
      }),
      Leaf(F::Int("priority", "scheduling priority; higher runs first")
               .Default(int64_t{0}).Range(-100, 100),
           Bind(&JobSpec::priority)),
      Leaf(F::Int("max_restarts", "restarts after a worker failure before the job fails")
               .Default(int64_t{3}).Range(0, 100),
           Bind(&JobSpec::max_restarts)),
  });
}

std::string JoinPath(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : absl::StrCat(parent, ".", name);
}

}  // namespace

JobSchema::JobSchema(const ModelInfo* model, const DatasetInfo* dataset)
    : model_(model), dataset_(dataset), root_(F::Section("", "")) {
  // Turns the Decl tree into the schema tree and the binding tables.
  struct Builder {
    JobSchema* schema;
    FieldSchema Build(Decl& decl, const std::string& path) {
      if (decl.params.get) {
        schema->param_sections_[path] = std::move(decl.params);
        return std::move(decl.schema);
      }
      if (decl.schema.type() != FieldType::kSection) {
        if (!decl.binding.get) BindingBug("no JobSpec member for " + path);
        schema->leaves_[path] = std::move(decl.binding);
        return std::move(decl.schema);
      }
      FieldSchema section = std::move(decl.schema);
      for (Decl& child : decl.children) {
        const std::string child_path = JoinPath(path, child.schema.name());
        section.Add(Build(child, child_path));
      }
      return section;
    }
  };
  Decl root = DeclareJob(model, dataset);
  root_ = Builder{this}.Build(root, "");
}

void JobSchema::ApplyRules(ResolvedValues* values, std::vector<SpecError>* errors) const {
  auto string_at = [values](const char* path) -> const std::string* {
    auto it = values->find(path);
    return it == values->end() ? nullptr : std::get_if<std::string>(&it->second.value);
  };

  // dataset.path follows the kind's rule; its default, if any, is in the schema.
  if (dataset_ != nullptr) {
    const DatasetPathRule& rule = dataset_->path;
    const std::string& kind = dataset_->name;
    auto path = values->find("dataset.path");
    if (path == values->end()) {
      if (rule.type == DatasetPathRule::Type::kRequired) {
        auto kind_value = values->find("dataset.kind");
        errors->push_back({"dataset.path", kind_value == values->end() ? 0 : kind_value->second.line,
                           absl::StrCat("is required when dataset.kind is ", kind, " (", rule.what, ")"),
                           ""});
      }
    } else {
      const std::string& given = std::get<std::string>(path->second.value);
      if (rule.type == DatasetPathRule::Type::kGenerated && !given.empty()) {
        errors->push_back({"dataset.path", path->second.line,
                           absl::StrCat("must not be set when dataset.kind is ", kind,
                                        " (the data set is generated), got \"", given, "\""),
                           ""});
      } else if (rule.type != DatasetPathRule::Type::kGenerated && given.empty()) {
        errors->push_back({"dataset.path", path->second.line,
                           rule.type == DatasetPathRule::Type::kRequired
                               ? absl::StrCat("must not be empty when dataset.kind is ", kind)
                               : absl::StrCat("must not be empty when dataset.kind is ", kind,
                                              " (leave it out for ", rule.default_path, ")"),
                           ""});
      }
    }
  }

  // resources.gpus_per_worker follows resources.device.
  const std::string* device = string_at("resources.device");
  auto gpus = values->find("resources.gpus_per_worker");
  if (device != nullptr && gpus != values->end()) {
    int64_t& count = std::get<int64_t>(gpus->second.value);
    if (*device == "cuda") {
      if (!gpus->second.given) {
        count = 1;
      } else if (count < 1) {
        errors->push_back({"resources.gpus_per_worker", gpus->second.line,
                           absl::StrCat("must be >= 1 when resources.device is cuda, got ", count),
                           ""});
      }
    } else if (count != 0) {
      errors->push_back({"resources.gpus_per_worker", gpus->second.line,
                         absl::StrCat("must be 0 when resources.device is ", *device, ", got ",
                                      count, " (set resources.device: cuda to use GPUs)"),
                         ""});
    }
  }
}

JobSpec JobSchema::ToJobSpec(const ResolvedValues& values) const {
  if (model_ == nullptr || dataset_ == nullptr) {
    BindingBug("ToJobSpec needs a schema built for a model and a data set kind");
  }
  JobSpec spec;
  for (const auto& [path, binding] : leaves_) {
    auto it = values.find(path);
    if (it == values.end()) BindingBug("no value for " + path);
    binding.set(it->second.value, &spec);
  }
  for (const auto& [path, access] : param_sections_) {
    ParamMap* params = access.mutable_get(&spec);
    const std::string prefix = path + ".";
    for (auto it = values.lower_bound(prefix);
         it != values.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      params->Set(it->first.substr(prefix.size()), ToParamValue(it->second.value));
    }
  }
  return spec;
}

ResolvedValues JobSchema::FromJobSpec(const JobSpec& spec) const {
  ResolvedValues values;
  for (const auto& [path, binding] : leaves_) {
    values[path] = ResolvedField{binding.get(spec), true, 0};
  }
  for (const auto& [path, access] : param_sections_) {
    for (const auto& [name, value] : access.get(spec).values()) {
      values[JoinPath(path, name)] = ResolvedField{FromParamValue(value), true, 0};
    }
  }
  return values;
}

bool IsValidJobName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string SchemaDocumentation() {
  std::string out =
      "# dfv job file schema: every field, its default, what is allowed.\n"
      "# A field with nothing after the colon has no fixed default (see its comment).\n"
      "# Any field can also be set with --set key.path=value, or removed (so its\n"
      "# default applies) with --set key.path=null.\n";
  absl::StrAppend(&out, DocumentSchema(JobSchema(nullptr, nullptr).root()));
  absl::StrAppend(&out,
                  "\n# Models. `model` decides the fields of model_params and train.loss, the\n"
                  "# defaults of train.lr, train.betas and train.batch_size, and the allowed\n"
                  "# samples.grids (all of them by default).\n");
  for (const ModelInfo& model : ModelCatalogue()) {
    const JobSchema schema(&model, nullptr);
    const FieldSchema& train = *schema.root().FindChild("train");
    const FieldSchema& samples = *schema.root().FindChild("samples");
    FieldSchema view = F::Section("", "");
    view.Add(*schema.root().FindChild("model_params"));
    view.Add(F::Section("train", train.doc(),
                        {*train.FindChild("batch_size"), *train.FindChild("lr"),
                         *train.FindChild("betas"), *train.FindChild("loss")}));
    view.Add(F::Section("samples", samples.doc(), {*samples.FindChild("grids")}));
    absl::StrAppend(&out, "#\n# model: ", model.name, "  (", model.source, ") ", model.summary,
                    "\n");
    for (absl::string_view line : absl::StrSplit(DocumentSchema(view, 2), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "#", line, "\n");
    }
    absl::StrAppend(&out, "#   metrics: ", absl::StrJoin(model.metrics, ", "), "\n");
  }
  absl::StrAppend(&out,
                  "\n# Data sets. `dataset.kind` decides the rule and default of dataset.path and\n"
                  "# the kind's own fields, written in the dataset section beside the others\n"
                  "# (a field of another kind is an error).\n");
  for (const DatasetInfo& kind : DatasetCatalogue()) {
    const JobSchema schema(nullptr, &kind);
    const FieldSchema& dataset = *schema.root().FindChild("dataset");
    F section = F::Section("dataset", dataset.doc(), {*dataset.FindChild("path")});
    for (const FieldSchema& field : kind.fields) section.Add(field);
    FieldSchema view = F::Section("", "", {section});
    absl::StrAppend(&out, "#\n# dataset.kind: ", kind.name, "  ", kind.summary, "\n");
    for (absl::string_view line : absl::StrSplit(DocumentSchema(view, 2), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "#", line, "\n");
    }
  }
  return out;
}

}  // namespace dfv::jobspec
