#include "common/jobspec/parse.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/jobspec/catalogue.h"
#include "common/jobspec/dataset_catalogue.h"
#include "common/jobspec/job_schema.h"
#include "common/status_macros.h"

namespace dfv::jobspec {
namespace {

int LineOf(const YAML::Mark& mark) { return mark.line >= 0 ? mark.line + 1 : 0; }

// Which override put each path into the document: path -> index into the
// override list. Covers the leaf each override sets or removes and the
// sections it had to create, so an error at (or under) such a path is the
// override's.
using OverrideOrigins = std::map<std::string, size_t>;

std::string OverrideSource(const std::string& text) { return "--set " + text; }

// The keys overrides removed ("key.path=null"), each with its override's
// index. Checked against the schema once the document is complete, since the
// schema depends on model and dataset.kind, which overrides may change.
using RemovedKeys = std::vector<std::pair<std::string, size_t>>;

// Applies override `index`, "key.path=value", to `doc` (a mapping); a null
// value ("null" or "~") removes the key instead. Appends an error (with its
// source) when it cannot be applied.
void ApplyOverride(const std::string& text, size_t index, YAML::Node* doc,
                   OverrideOrigins* origins, RemovedKeys* removed, std::vector<SpecError>* errors) {
  const std::string source = OverrideSource(text);
  const size_t eq = text.find('=');
  const std::string key(absl::StripAsciiWhitespace(text.substr(0, eq)));
  std::vector<std::string> parts = absl::StrSplit(key, '.');
  const bool empty_part =
      std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
  if (eq == std::string::npos || empty_part) {
    errors->push_back({"", 0, "malformed override: expected key.path=value, e.g. train.lr=1e-4",
                       source});
    return;
  }
  const std::string raw_value = text.substr(eq + 1);
  if (absl::StripAsciiWhitespace(raw_value).empty()) {
    errors->push_back({key, 0,
                       absl::StrCat("no value; write ", key, "=null to remove the key, or ", key,
                                    "=\"\" for an empty string"),
                       source});
    return;
  }
  YAML::Node value;
  try {
    value = YAML::Load(raw_value);
  } catch (const YAML::Exception& e) {
    errors->push_back({key, 0, "the value is not valid YAML: " + e.msg, source});
    return;
  }
  if (value.IsMap()) {
    errors->push_back({key, 0, "the value must be a scalar or a list such as [0.5, 0.999]",
                       source});
    return;
  }

  // Walk down, creating missing sections when setting; `current` is rebound
  // with reset() because assigning one yaml-cpp node to another writes
  // through.
  YAML::Node current;
  current.reset(*doc);
  std::string path;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (current.IsDefined() && !current.IsMap() && !current.IsNull()) {
      errors->push_back({path, 0,
                         absl::StrCat(value.IsNull() ? "cannot remove " : "cannot set ", key, ": ", path,
                                      " is not a section"),
                         source});
      return;
    }
    path = path.empty() ? parts[i] : absl::StrCat(path, ".", parts[i]);
    if (value.IsNull()) {
      // Removing: walk without creating anything; a key that is not there is
      // already removed.
      const YAML::Node& const_current = current;
      const bool present = const_current.IsMap() && const_current[parts[i]].IsDefined();
      if (i + 1 == parts.size() || !present) {
        if (present) current.remove(parts[i]);
        (*origins)[key] = index;
        removed->emplace_back(key, index);
        return;
      }
      current.reset(const_current[parts[i]]);
      continue;
    }
    YAML::Node child = current[parts[i]];
    if (i + 1 == parts.size()) {
      current[parts[i]] = value;
      (*origins)[path] = index;
    } else {
      if (!child.IsDefined()) (*origins)[path] = index;
      current.reset(child);
    }
  }
}

// The override an error at `field` comes from, if any: the nearest enclosing
// path an override set or created.
const size_t* FindOrigin(const OverrideOrigins& origins, std::string field) {
  while (!field.empty()) {
    auto it = origins.find(field);
    if (it != origins.end()) return &it->second;
    const size_t dot = field.rfind('.');
    if (dot == std::string::npos) break;
    field.resize(dot);
  }
  return nullptr;
}

// Where each document of a YAML stream starts, and the mark of its root
// node, from yaml-cpp's event parser.
class DocumentMarks : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;  // where the parser began the document
    YAML::Mark root;   // the root node's mark (YAML::Node::Mark())
    bool has_root = false;
  };
  const std::vector<Document>& documents() const { return documents_; }

  void OnDocumentStart(const YAML::Mark& mark) override { documents_.push_back({mark, mark}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Root(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Root(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
    Root(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Root(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Root(mark);
  }
  void OnMapEnd() override {}

 private:
  void Root(const YAML::Mark& mark) {
    if (documents_.empty() || documents_.back().has_root) return;
    documents_.back().root = mark;
    documents_.back().has_root = true;
  }
  std::vector<Document> documents_;
};

// The documents of a YAML stream, or the syntax error where yaml-cpp's
// parser stopped making progress.
struct DocumentScan {
  std::vector<DocumentMarks::Document> documents;
  std::optional<SpecError> error;  // field and source empty
};

// Walks the documents of `text`. yaml-cpp 0.7 (Debian 12) never returns from
// YAML::LoadAll on some malformed streams, allocating as it goes: a ','
// outside any flow collection (",", ",a: b") is reported as an empty
// document without being consumed, again and again (jbeder/yaml-cpp#1040,
// fixed in 0.8; found by fuzz/jobspec_fuzzer.cc). So the documents are
// walked here, and a document that starts where the previous one did ends
// the walk with a syntax error. May throw YAML::ParserException.
DocumentScan ScanDocuments(std::string_view text) {
  std::istringstream stream{std::string(text)};
  YAML::Parser parser(stream);
  DocumentMarks marks;
  DocumentScan scan;
  while (parser.HandleNextDocument(marks)) {
    const std::vector<DocumentMarks::Document>& found = marks.documents();
    if (found.size() >= 2 && found.back().start.pos == found[found.size() - 2].start.pos) {
      const YAML::Mark& at = found.back().start;
      const unsigned char c =
          at.pos >= 0 && static_cast<size_t>(at.pos) < text.size() ? text[at.pos] : '\0';
      const std::string what =
          absl::ascii_isgraph(c) ? absl::StrFormat("'%c'", c) : absl::StrFormat("byte 0x%02x", c);
      scan.error = SpecError{"", LineOf(at),
                             absl::StrFormat("YAML syntax error: unexpected %s at column %d", what,
                                             at.column + 1),
                             ""};
      return scan;
    }
  }
  scan.documents = marks.documents();
  return scan;
}

// Parses `text` into `result`. May throw YAML::Exception from deep inside
// yaml-cpp; the caller catches.
void Parse(std::string_view text, const ParseOptions& options, const std::string& source,
           ParseResult* result) {
  std::vector<SpecError>& errors = result->errors;
  if (text.size() > kMaxJobFileBytes) {
    errors.push_back({"", 0,
                      absl::StrCat("the job file is ", text.size(), " bytes; at most ",
                                   kMaxJobFileBytes, " are allowed"),
                      source});
    return;
  }
  YAML::Node doc;
  try {
    DocumentScan scan = ScanDocuments(text);
    if (scan.error.has_value()) {
      scan.error->source = source;
      errors.push_back(std::move(*scan.error));
      return;
    }
    if (scan.documents.size() > 1) {
      errors.push_back({"", LineOf(scan.documents[1].root),
                        absl::StrCat("holds ", scan.documents.size(),
                                     " YAML documents; a job file holds one"),
                        source});
      return;
    }
    // One document (or none): YAML::Load reads it.
    doc = scan.documents.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    errors.push_back({"", LineOf(e.mark), "YAML syntax error: " + e.msg, source});
    return;
  }
  if (doc.IsNull()) doc.reset(YAML::Node(YAML::NodeType::Map));
  if (!doc.IsMap()) {
    errors.push_back({"", LineOf(doc.Mark()),
                      "the job file must be a mapping of key: value pairs", source});
    return;
  }

  // Each error with its rank: 0 for the file, 1 + i for override i.
  std::vector<std::pair<size_t, SpecError>> ranked;
  OverrideOrigins origins;
  RemovedKeys removed;
  for (size_t i = 0; i < options.overrides.size(); ++i) {
    std::vector<SpecError> override_errors;
    ApplyOverride(options.overrides[i], i, &doc, &origins, &removed, &override_errors);
    for (SpecError& error : override_errors) ranked.emplace_back(1 + i, std::move(error));
  }

  // `model` and `dataset.kind` decide part of the schema; when one is missing
  // or unknown the rest is still checked (and the validator reports it).
  const YAML::Node& const_doc = doc;
  const YAML::Node model_node = const_doc["model"];
  const ModelInfo* model =
      model_node.IsDefined() && model_node.IsScalar() ? FindModel(model_node.Scalar()) : nullptr;
  const DatasetInfo* dataset = nullptr;
  if (const YAML::Node dataset_node = const_doc["dataset"];
      dataset_node.IsDefined() && dataset_node.IsMap()) {
    const YAML::Node kind_node = dataset_node["kind"];
    if (kind_node.IsDefined() && kind_node.IsScalar()) dataset = FindDataset(kind_node.Scalar());
  }
  const JobSchema schema(model, dataset);
  if (options.drop_other_kind_fields && dataset != nullptr) {
    const FieldSchema& section = *schema.root().FindChild("dataset");
    YAML::Node dataset_node = doc["dataset"];
    std::vector<std::string> others;
    for (YAML::const_iterator it = dataset_node.begin(); it != dataset_node.end(); ++it) {
      if (it->first.IsScalar() && section.FindOtherVariantKey(it->first.Scalar()) != nullptr) {
        others.push_back(it->first.Scalar());
      }
    }
    for (const std::string& key : others) dataset_node.remove(key);
  }
  ResolvedValues values;
  std::vector<SpecError> found;
  ValidateDocument(schema.root(), doc, &values, &found);
  schema.ApplyRules(&values, &found);
  // A removed key must be one the schema knows, like a key that is set.
  for (const auto& [key, index] : removed) {
    if (std::optional<SpecError> error = CheckFieldPath(schema.root(), key)) {
      error->source = OverrideSource(options.overrides[index]);
      ranked.emplace_back(1 + index, std::move(*error));
    }
  }

  // Locate each error: in the file, or in the override that put it there.
  for (SpecError& error : found) {
    size_t rank = 0;
    if (const size_t* origin = FindOrigin(origins, error.field)) {
      error.source = OverrideSource(options.overrides[*origin]);
      error.line = 0;
      rank = 1 + *origin;
    } else {
      error.source = source;
    }
    ranked.emplace_back(rank, std::move(error));
  }
  // File errors by line, then each override's errors in turn.
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return a.first == 0 && a.second.line < b.second.line;
  });
  for (auto& [rank, error] : ranked) errors.push_back(std::move(error));

  if (errors.empty()) result->spec = schema.ToJobSpec(values);
}

}  // namespace

ParseResult ParseJobSpecWithErrors(std::string_view yaml_text, const ParseOptions& options) {
  ParseResult result;
  const std::string source = options.source_name.empty() ? "job.yaml" : options.source_name;
  // yaml-cpp reports through exceptions; none may leave this library.
  try {
    Parse(yaml_text, options, source, &result);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({"", LineOf(e.mark), "YAML error: " + e.msg, source});
  } catch (const std::exception& e) {
    result.errors.push_back({"", 0, absl::StrCat("cannot read the job file: ", e.what()), source});
  }
  return result;
}

absl::StatusOr<JobSpec> ParseJobSpec(std::string_view yaml_text, const ParseOptions& options) {
  ParseResult result = ParseJobSpecWithErrors(yaml_text, options);
  if (!result.ok()) return SpecErrorsToStatus(result.errors);
  return std::move(result.spec);
}

absl::StatusOr<JobSpec> LoadJobSpecFile(const std::string& path,
                                        std::vector<std::string> overrides) {
  // Refused before reading: a folder, or a file too large to be a job file.
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is a folder, not a job file"));
  }
  if (!ec && std::filesystem::is_regular_file(status)) {
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec && size > kMaxJobFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, " is ", size, " bytes; a job file may have at most ",
                                                     kMaxJobFileBytes));
    }
  }
  DFV_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ParseOptions options;
  options.source_name = path;
  options.overrides = std::move(overrides);
  return ParseJobSpec(text, options);
}

absl::Status SpecErrorsToStatus(const std::vector<SpecError>& errors) {
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(
      errors, "\n", [](std::string* out, const SpecError& e) { out->append(FormatSpecError(e)); }));
}

std::string JobSpecToYaml(const JobSpec& spec) {
  const JobSchema schema(FindModel(spec.model), FindDataset(spec.dataset.kind));
  return EmitYaml(schema.root(), schema.FromJobSpec(spec));
}

bool SpecsEqual(const JobSpec& a, const JobSpec& b) {
  if (a.model != b.model || a.dataset.kind != b.dataset.kind) return false;
  const JobSchema schema(FindModel(a.model), FindDataset(a.dataset.kind));
  const ResolvedValues va = schema.FromJobSpec(a);
  const ResolvedValues vb = schema.FromJobSpec(b);
  return std::equal(va.begin(), va.end(), vb.begin(), vb.end(), [](const auto& x, const auto& y) {
    return x.first == y.first && x.second.value == y.second.value;
  });
}

}  // namespace dfv::jobspec
