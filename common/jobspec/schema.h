// The schema engine: a tree of field descriptors, a validator that checks a
// YAML document against it (collecting every error, not only the first), and
// the two printers driven by the same tree (canonical YAML and documentation).
//
// The engine knows nothing about jobs; job_schema.h declares the job file with
// it and catalogue.h supplies the model-specific parts. Everything here is
// immutable after construction and safe to share between threads.
#ifndef DFV_COMMON_JOBSPEC_SCHEMA_H_
#define DFV_COMMON_JOBSPEC_SCHEMA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace YAML {
class Node;
}  // namespace YAML

namespace dfv::jobspec {

// One problem found in a job file or in an override.
struct SpecError {
  std::string field;    // dotted path such as "train.lr"; empty for file-level errors
  int line = 0;         // 1-based line in the job file; 0 when there is none
  std::string message;  // what is wrong and what is allowed
  std::string source;   // "job.yaml", or "--set train.lr=abc" for an override
};

// "job.yaml:12: train.lr: must be a number > 0 and <= 10, got \"-1\"", or
// "--set train.lr=abc: train.lr: ..." for an override (no line).
std::string FormatSpecError(const SpecError& error);

enum class FieldType {
  kInt,
  kFloat,
  kBool,
  kString,
  kEnum,       // one string out of allowed_values()
  kFloatList,  // list of numbers
  kEnumList,   // list of distinct strings out of allowed_values()
  kSection,    // a mapping with declared children
};

// A validated value. Its alternative follows the field type: kInt -> int64_t,
// kFloat -> double, kBool -> bool, kString and kEnum -> std::string,
// kFloatList -> std::vector<double>, kEnumList -> std::vector<std::string>.
using Value = std::variant<int64_t, double, bool, std::string, std::vector<double>,
                           std::vector<std::string>>;

// True when `value` follows a string field's extra rule.
using StringCheck = bool (*)(const std::string& value);

// Describes one field. Built with the factories and chained setters, e.g.
//   FieldSchema::Int("epochs", "passes over the training set").Default(1).Range(1, 100000)
// Setters that do not fit the field type abort (a programming error).
class FieldSchema {
 public:
  static FieldSchema Int(std::string name, std::string doc);
  static FieldSchema Float(std::string name, std::string doc);
  static FieldSchema Bool(std::string name, std::string doc);
  static FieldSchema String(std::string name, std::string doc);
  static FieldSchema Enum(std::string name, std::vector<std::string> allowed, std::string doc);
  static FieldSchema FloatList(std::string name, std::string doc);
  static FieldSchema EnumList(std::string name, std::vector<std::string> allowed, std::string doc);
  static FieldSchema Section(std::string name, std::string doc,
                             std::vector<FieldSchema> children = {});

  // The value used when the field is absent. Must match the field type and
  // constraints (checked whichever is set first); an int is accepted for a
  // float field. Write ints as int64_t{...}.
  FieldSchema& Default(Value value);
  // Absent -> error. A required field has no default.
  FieldSchema& Required();
  // Inclusive (or exclusive) bounds for kInt, kFloat and each kFloatList item.
  FieldSchema& Min(double bound, bool exclusive = false);
  FieldSchema& Max(double bound, bool exclusive = false);
  FieldSchema& Range(double min, double max) { return Min(min).Max(max); }
  // kInt: the only values allowed (e.g. 0, 1, 3).
  FieldSchema& OneOf(std::vector<int64_t> values);
  // kFloatList: the exact number of items.
  FieldSchema& Length(size_t length);
  // kString: an extra rule, and its description for messages and docs; the
  // description completes "a string of ...".
  FieldSchema& Check(StringCheck check, std::string rule);
  // For documentation when the default is not fixed (it depends on other
  // fields or on the model), e.g. "depends on dataset.kind".
  FieldSchema& DefaultNote(std::string note);
  // The contents are not validated and produce no values (used for the
  // model-specific parts while the model is unknown).
  FieldSchema& Unchecked();
  // kSection: appends a child. Names must be unique.
  FieldSchema& Add(FieldSchema child);
  // kSection: `name` is not a child of this section but is one of another
  // variant of it (e.g. a field of another dataset.kind). The unknown-key
  // error for it is "unknown key; <reason>" instead of a suggestion; with an
  // empty reason the key is accepted and produces no value (used while the
  // field that picks the variant is itself missing or wrong, an error
  // reported once). Not listed by the printers.
  FieldSchema& OtherVariantKey(std::string name, std::string reason);

  const std::string& name() const { return name_; }
  FieldType type() const { return type_; }
  const std::string& doc() const { return doc_; }
  bool required() const { return required_; }
  const std::optional<Value>& default_value() const { return default_; }
  const std::string& default_note() const { return default_note_; }
  const std::vector<std::string>& allowed_values() const { return allowed_; }
  bool unchecked() const { return unchecked_; }
  const std::vector<FieldSchema>& children() const { return children_; }
  // The child named `name`, or nullptr.
  const FieldSchema* FindChild(std::string_view name) const;
  // The reason given to OtherVariantKey for `name`, or nullptr.
  const std::string* FindOtherVariantKey(std::string_view name) const;

  // What the field accepts, as a phrase that completes "must be ...", e.g.
  // "an integer in [1, 100000]" or "one of cpu, cuda".
  std::string DescribeAllowed() const;
  // Checks a value against type and constraints (used for defaults and by
  // tests); returns an error message completing "<field>: ...", or nothing.
  std::optional<std::string> CheckValue(const Value& value) const;
  // For kInt, kFloat and kFloatList items: within the bounds (and, for kInt,
  // among OneOf's values when set).
  bool AcceptsNumber(double value) const;
  // For kFloatList: the number of items is allowed.
  bool AcceptsLength(size_t length) const { return !length_.has_value() || *length_ == length; }

 private:
  FieldSchema(std::string name, FieldType type, std::string doc);
  std::string DescribeBounds() const;
  // Aborts when the default breaks the constraints set so far.
  void RecheckDefault() const;

  std::string name_;
  FieldType type_;
  std::string doc_;
  bool required_ = false;
  std::optional<Value> default_;
  std::string default_note_;
  std::optional<double> min_;
  bool min_exclusive_ = false;
  std::optional<double> max_;
  bool max_exclusive_ = false;
  std::vector<int64_t> one_of_;
  std::optional<size_t> length_;
  std::vector<std::string> allowed_;
  StringCheck check_ = nullptr;
  std::string check_rule_;
  bool unchecked_ = false;
  std::vector<FieldSchema> children_;
  std::map<std::string, std::string, std::less<>> other_variant_keys_;
};

// A value after validation, keyed by its dotted path in ResolvedValues.
struct ResolvedField {
  Value value;
  bool given = false;  // false when the default was used
  int line = 0;        // 1-based line of the key in the document; 0 if none
};
using ResolvedValues = std::map<std::string, ResolvedField>;

// Validates `node` (a mapping, or null for an empty document) against the
// section `root`. Every leaf that is given or has a default lands in
// `values` under its dotted path; each problem is appended to `errors` with
// the line of the offending key (`source` is left empty). Unknown keys get a
// "did you mean" suggestion. Never throws.
void ValidateDocument(const FieldSchema& root, const YAML::Node& node, ResolvedValues* values,
                      std::vector<SpecError>* errors);

// The error for key `name`, which `section` does not declare, completing
// "<field>: ...": the OtherVariantKey reason, a "did you mean" suggestion, or
// the section's keys. What ValidateDocument reports for an unknown key.
std::string UnknownKeyMessage(const FieldSchema& section, std::string_view name);

// Checks that the dotted `path` names a field under `root` (a section): each
// part a child, a key of another variant (OtherVariantKey), or anything under
// an unchecked section. Otherwise the error (without line or source) for the
// first part that is not, e.g. {"train.batchsize", "unknown key; did you mean
// 'batch_size'?"}. Used for overrides that remove a key.
std::optional<SpecError> CheckFieldPath(const FieldSchema& root, const std::string& path);

// Prints `values` as block YAML in the order of the schema tree, two spaces
// per level, lists in flow style. Leaves without a value are left out. For an
// unchecked section, every value whose path lies under it is printed.
std::string EmitYaml(const FieldSchema& root, const ResolvedValues& values);

// Prints the schema as commented YAML: each field with its default (empty
// when it has none) and a comment giving type, allowed values and doc line.
// `indent` spaces are put before every line.
std::string DocumentSchema(const FieldSchema& root, int indent = 0);

// The shortest text that reads back to exactly `value`, always with a '.' or
// an exponent so it reads as a float ("1.0", "0.0001", "1e-300").
std::string FormatDouble(double value);

// `value` as a YAML flow scalar or flow list. Strings are quoted when plain
// style would not read back as the same string.
std::string FormatValue(const Value& value);

// The candidate closest to `name` by edit distance when it is close enough to
// be a likely typo; empty otherwise.
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace dfv::jobspec

#endif  // DFV_COMMON_JOBSPEC_SCHEMA_H_
