#include "common/jobspec/schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dfv::jobspec {
namespace {

// A schema that contradicts itself is a bug in the declaration, found the
// first time any test builds it; there is nothing a caller could do about it.
[[noreturn]] void SchemaBug(const std::string& field, const std::string& what) {
  std::fprintf(stderr, "dfv::jobspec schema bug at field '%s': %s\n", field.c_str(), what.c_str());
  std::abort();
}

std::string JoinPath(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : absl::StrCat(parent, ".", name);
}

// Bounds print as integers when they are whole ("[1, 4096]", "> 0").
std::string FormatBound(double bound) {
  if (std::floor(bound) == bound && std::fabs(bound) < 1e15) return absl::StrFormat("%.0f", bound);
  return absl::StrFormat("%g", bound);
}

// A document value as it appears in messages: `"abc"`, `a list`, ...
std::string QuoteRaw(const std::string& raw) {
  constexpr size_t kMaxShown = 60;
  std::string shown = raw.size() > kMaxShown ? raw.substr(0, kMaxShown) + "..." : raw;
  return absl::StrCat("\"", absl::CHexEscape(shown), "\"");
}

std::string DescribeNode(const YAML::Node& node) {
  if (node.IsScalar()) return QuoteRaw(node.Scalar());
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a section";
  return "nothing";
}

int LineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

bool ParseBool(const std::string& raw, bool* out) {
  if (raw == "true" || raw == "True" || raw == "TRUE") {
    *out = true;
    return true;
  }
  if (raw == "false" || raw == "False" || raw == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

bool ParseFiniteDouble(const std::string& raw, double* out) {
  return absl::SimpleAtod(raw, out) && std::isfinite(*out);
}

std::string DidYouMean(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best = ClosestName(name, candidates);
  return best.empty() ? "" : absl::StrCat(" (did you mean '", best, "'?)");
}

bool IsReservedPlainWord(const std::string& text) {
  static const std::set<std::string>* const kReserved = new std::set<std::string>{
      "null", "true", "false", "yes", "no", "on", "off", "y", "n", "~"};
  return kReserved->count(absl::AsciiStrToLower(text)) > 0;
}

// True when `text` written without quotes reads back as the same string in
// any YAML reader (not a number, bool, null, or special syntax).
bool IsPlainSafe(const std::string& text) {
  if (text.empty() || IsReservedPlainWord(text)) return false;
  const char first = text[0];
  if (!(absl::ascii_isalpha(first) || first == '_' || first == '/')) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-';
  });
}

std::string FormatString(const std::string& text) {
  if (IsPlainSafe(text)) return text;
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\x%02x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

// Walks a document and a schema tree together, collecting values and errors.
class Validator {
 public:
  Validator(ResolvedValues* values, std::vector<SpecError>* errors)
      : values_(values), errors_(errors) {}

  // `node` is a mapping (or null, meaning empty); `line` is where the
  // section's key is, used for missing required children.
  void CheckSection(const FieldSchema& section, const YAML::Node& node, const std::string& path,
                    int line) {
    std::set<std::string> seen;
    if (node.IsMap()) {
      for (YAML::const_iterator it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;  // a copy: it->first is a temporary
        const int key_line = LineOf(key);
        if (!key.IsScalar()) {
          AddError(path, key_line, "keys must be plain names, got " + DescribeNode(key));
          continue;
        }
        const std::string& name = key.Scalar();
        const std::string child_path = JoinPath(path, name);
        if (!seen.insert(name).second) {
          AddError(child_path, key_line, "appears more than once");
          continue;
        }
        const FieldSchema* child = section.FindChild(name);
        if (child == nullptr) {
          const std::string* other = section.FindOtherVariantKey(name);
          if (other == nullptr || !other->empty()) {
            AddError(child_path, key_line, UnknownKeyMessage(section, name));
          }
          continue;
        }
        CheckField(*child, it->second, child_path, key_line);
      }
    }
    for (const FieldSchema& child : section.children()) {
      if (seen.count(child.name()) == 0) CheckAbsent(child, JoinPath(path, child.name()), line);
    }
  }

 private:
  void AddError(const std::string& field, int line, std::string message) {
    errors_->push_back(SpecError{field, line, std::move(message), ""});
  }

  void AddValue(const std::string& path, Value value, bool given, int line) {
    (*values_)[path] = ResolvedField{std::move(value), given, line};
  }

  void CheckAbsent(const FieldSchema& field, const std::string& path, int section_line) {
    if (field.unchecked()) return;
    if (field.required()) {
      AddError(path, section_line,
               absl::StrCat("required field is missing; must be ", field.DescribeAllowed()));
    } else if (field.type() == FieldType::kSection) {
      for (const FieldSchema& child : field.children()) {
        CheckAbsent(child, JoinPath(path, child.name()), section_line);
      }
    } else if (field.default_value().has_value()) {
      AddValue(path, *field.default_value(), /*given=*/false, 0);
    }
  }

  void CheckField(const FieldSchema& field, const YAML::Node& node, const std::string& path,
                  int line) {
    if (field.unchecked()) return;
    const std::string must = "must be " + field.DescribeAllowed();
    switch (field.type()) {
      case FieldType::kSection:
        if (!node.IsMap() && !node.IsNull()) {
          AddError(path, line, absl::StrCat(must, ", got ", DescribeNode(node)));
          return;
        }
        CheckSection(field, node, path, line);
        return;
      case FieldType::kFloatList:
      case FieldType::kEnumList:
        CheckList(field, node, path, line);
        return;
      default:
        break;
    }
    if (!node.IsScalar()) {
      AddError(path, line, absl::StrCat(must, ", got ", DescribeNode(node)));
      return;
    }
    const std::string& raw = node.Scalar();
    std::optional<Value> value = ParseScalar(field, raw);
    if (!value.has_value() || field.CheckValue(*value).has_value()) {
      std::string hint;
      if (field.type() == FieldType::kEnum) hint = DidYouMean(raw, field.allowed_values());
      AddError(path, line, absl::StrCat(must, ", got ", QuoteRaw(raw), hint));
      return;
    }
    AddValue(path, std::move(*value), /*given=*/true, line);
  }

  // Converts a scalar for a scalar field type; nothing when it does not parse
  // (constraints are checked separately).
  static std::optional<Value> ParseScalar(const FieldSchema& field, const std::string& raw) {
    switch (field.type()) {
      case FieldType::kInt: {
        int64_t v;
        if (absl::SimpleAtoi(raw, &v)) return Value(v);
        return std::nullopt;
      }
      case FieldType::kFloat: {
        double v;
        if (ParseFiniteDouble(raw, &v)) return Value(v);
        return std::nullopt;
      }
      case FieldType::kBool: {
        bool v;
        if (ParseBool(raw, &v)) return Value(v);
        return std::nullopt;
      }
      case FieldType::kString:
      case FieldType::kEnum:
        return Value(raw);
      default:
        return std::nullopt;
    }
  }

  void CheckList(const FieldSchema& field, const YAML::Node& node, const std::string& path,
                 int line) {
    const std::string must = "must be " + field.DescribeAllowed();
    if (!node.IsSequence()) {
      std::string hint;
      if (node.IsScalar() && node.Scalar().size() <= 40) {
        hint = absl::StrCat(" (a list is written [", node.Scalar(), "])");
      }
      AddError(path, line, absl::StrCat(must, "; got ", DescribeNode(node), hint));
      return;
    }
    const bool numeric = field.type() == FieldType::kFloatList;
    const std::vector<std::string>& allowed = field.allowed_values();
    std::vector<double> numbers;
    std::vector<std::string> names;
    std::vector<std::string> problems;  // every bad item, then the length
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      if (!item.IsScalar()) {
        problems.push_back(absl::StrCat(DescribeNode(item), " at index ", i));
        continue;
      }
      const std::string& raw = item.Scalar();
      if (numeric) {
        double v;
        if (ParseFiniteDouble(raw, &v) && field.AcceptsNumber(v)) {
          numbers.push_back(v);
        } else {
          problems.push_back(absl::StrCat(QuoteRaw(raw), " at index ", i));
        }
      } else if (std::find(allowed.begin(), allowed.end(), raw) == allowed.end()) {
        problems.push_back(absl::StrCat(QuoteRaw(raw), DidYouMean(raw, allowed)));
      } else if (std::find(names.begin(), names.end(), raw) != names.end()) {
        problems.push_back(absl::StrCat(QuoteRaw(raw), " twice"));
      } else {
        names.push_back(raw);
      }
    }
    if (numeric && !field.AcceptsLength(node.size())) {
      problems.push_back(absl::StrCat(node.size(), node.size() == 1 ? " item" : " items"));
    }
    if (!problems.empty()) {
      AddError(path, line, absl::StrCat(must, "; got ", absl::StrJoin(problems, ", ")));
      return;
    }
    if (numeric) {
      AddValue(path, std::move(numbers), /*given=*/true, line);
    } else {
      AddValue(path, std::move(names), /*given=*/true, line);
    }
  }

  ResolvedValues* values_;
  std::vector<SpecError>* errors_;
};

// Appends the YAML lines for `section`'s children at `depth`.
void EmitSection(const FieldSchema& section, const std::string& path, int depth,
                 const ResolvedValues& values, std::string* out) {
  const std::string indent(2 * depth, ' ');
  for (const FieldSchema& child : section.children()) {
    const std::string child_path = JoinPath(path, child.name());
    if (child.type() != FieldType::kSection) {
      auto it = values.find(child_path);
      if (it != values.end()) {
        absl::StrAppend(out, indent, child.name(), ": ", FormatValue(it->second.value), "\n");
      }
      continue;
    }
    std::string body;
    if (child.unchecked()) {
      // Whatever lies under the section, in path order.
      const std::string prefix = child_path + ".";
      for (auto it = values.lower_bound(prefix);
           it != values.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
        absl::StrAppend(&body, indent, "  ", it->first.substr(prefix.size()), ": ",
                        FormatValue(it->second.value), "\n");
      }
    } else {
      EmitSection(child, child_path, depth + 1, values, &body);
    }
    if (body.empty()) {
      absl::StrAppend(out, indent, child.name(), ": {}\n");
    } else {
      absl::StrAppend(out, indent, child.name(), ":\n", body);
    }
  }
}

// Comments start at this column when the key and value are shorter.
constexpr size_t kDocCommentColumn = 36;

void AppendDocLine(const std::string& text, const std::string& comment, std::string* out) {
  std::string line = text;
  if (line.size() < kDocCommentColumn) line.resize(kDocCommentColumn, ' ');
  absl::StrAppend(out, line, "  # ", comment, "\n");
}

void DocumentSection(const FieldSchema& section, int indent, std::string* out) {
  const std::string pad(indent, ' ');
  for (const FieldSchema& child : section.children()) {
    if (child.type() == FieldType::kSection) {
      std::string comment = child.doc();
      if (!child.default_note().empty()) absl::StrAppend(&comment, " (", child.default_note(), ")");
      if (child.unchecked() || child.children().empty()) {
        AppendDocLine(absl::StrCat(pad, child.name(), ": {}"), comment, out);
      } else {
        AppendDocLine(absl::StrCat(pad, child.name(), ":"), comment, out);
        DocumentSection(child, indent + 2, out);
      }
      continue;
    }
    std::string text = absl::StrCat(pad, child.name(), ":");
    if (child.default_value().has_value()) {
      absl::StrAppend(&text, " ", FormatValue(*child.default_value()));
    }
    std::string comment = child.DescribeAllowed();
    if (child.required()) absl::StrAppend(&comment, "; required");
    if (!child.default_note().empty()) absl::StrAppend(&comment, "; default ", child.default_note());
    absl::StrAppend(&comment, ". ", child.doc());
    AppendDocLine(text, comment, out);
  }
}

}  // namespace

FieldSchema::FieldSchema(std::string name, FieldType type, std::string doc)
    : name_(std::move(name)), type_(type), doc_(std::move(doc)) {}

FieldSchema FieldSchema::Int(std::string name, std::string doc) {
  return FieldSchema(std::move(name), FieldType::kInt, std::move(doc));
}
FieldSchema FieldSchema::Float(std::string name, std::string doc) {
  return FieldSchema(std::move(name), FieldType::kFloat, std::move(doc));
}
FieldSchema FieldSchema::Bool(std::string name, std::string doc) {
  return FieldSchema(std::move(name), FieldType::kBool, std::move(doc));
}
FieldSchema FieldSchema::String(std::string name, std::string doc) {
  return FieldSchema(std::move(name), FieldType::kString, std::move(doc));
}
FieldSchema FieldSchema::Enum(std::string name, std::vector<std::string> allowed,
                              std::string doc) {
  FieldSchema field(std::move(name), FieldType::kEnum, std::move(doc));
  field.allowed_ = std::move(allowed);
  return field;
}
FieldSchema FieldSchema::FloatList(std::string name, std::string doc) {
  return FieldSchema(std::move(name), FieldType::kFloatList, std::move(doc));
}
FieldSchema FieldSchema::EnumList(std::string name, std::vector<std::string> allowed,
                                  std::string doc) {
  FieldSchema field(std::move(name), FieldType::kEnumList, std::move(doc));
  field.allowed_ = std::move(allowed);
  return field;
}
FieldSchema FieldSchema::Section(std::string name, std::string doc,
                                 std::vector<FieldSchema> children) {
  FieldSchema field(std::move(name), FieldType::kSection, std::move(doc));
  for (FieldSchema& child : children) field.Add(std::move(child));
  return field;
}

FieldSchema& FieldSchema::Default(Value value) {
  if (required_) SchemaBug(name_, "a required field has no default");
  if (type_ == FieldType::kFloat && std::holds_alternative<int64_t>(value)) {
    value = static_cast<double>(std::get<int64_t>(value));
  }
  default_ = std::move(value);
  RecheckDefault();
  return *this;
}

void FieldSchema::RecheckDefault() const {
  if (!default_.has_value()) return;
  if (std::optional<std::string> problem = CheckValue(*default_)) {
    SchemaBug(name_, "default " + FormatValue(*default_) + ": " + *problem);
  }
}

FieldSchema& FieldSchema::Required() {
  if (default_.has_value()) SchemaBug(name_, "a required field has no default");
  required_ = true;
  return *this;
}

FieldSchema& FieldSchema::Min(double bound, bool exclusive) {
  if (type_ != FieldType::kInt && type_ != FieldType::kFloat && type_ != FieldType::kFloatList) {
    SchemaBug(name_, "bounds need a numeric field");
  }
  min_ = bound;
  min_exclusive_ = exclusive;
  RecheckDefault();
  return *this;
}

FieldSchema& FieldSchema::Max(double bound, bool exclusive) {
  if (type_ != FieldType::kInt && type_ != FieldType::kFloat && type_ != FieldType::kFloatList) {
    SchemaBug(name_, "bounds need a numeric field");
  }
  max_ = bound;
  max_exclusive_ = exclusive;
  RecheckDefault();
  return *this;
}

FieldSchema& FieldSchema::OneOf(std::vector<int64_t> values) {
  if (type_ != FieldType::kInt) SchemaBug(name_, "OneOf needs an int field");
  one_of_ = std::move(values);
  RecheckDefault();
  return *this;
}

FieldSchema& FieldSchema::Length(size_t length) {
  if (type_ != FieldType::kFloatList) SchemaBug(name_, "Length needs a float list");
  length_ = length;
  RecheckDefault();
  return *this;
}

FieldSchema& FieldSchema::Check(StringCheck check, std::string rule) {
  if (type_ != FieldType::kString) SchemaBug(name_, "Check needs a string field");
  check_ = check;
  check_rule_ = std::move(rule);
  RecheckDefault();
  return *this;
}

FieldSchema& FieldSchema::DefaultNote(std::string note) {
  default_note_ = std::move(note);
  return *this;
}

FieldSchema& FieldSchema::Unchecked() {
  unchecked_ = true;
  return *this;
}

FieldSchema& FieldSchema::Add(FieldSchema child) {
  if (type_ != FieldType::kSection) SchemaBug(name_, "only a section has children");
  if (FindChild(child.name()) != nullptr || FindOtherVariantKey(child.name()) != nullptr) {
    SchemaBug(child.name(), "declared twice");
  }
  children_.push_back(std::move(child));
  return *this;
}

FieldSchema& FieldSchema::OtherVariantKey(std::string name, std::string reason) {
  if (type_ != FieldType::kSection) SchemaBug(name_, "only a section has keys");
  if (FindChild(name) != nullptr) SchemaBug(name, "is a child, not another variant's key");
  other_variant_keys_[std::move(name)] = std::move(reason);
  return *this;
}

const std::string* FieldSchema::FindOtherVariantKey(std::string_view name) const {
  auto it = other_variant_keys_.find(name);
  return it == other_variant_keys_.end() ? nullptr : &it->second;
}

const FieldSchema* FieldSchema::FindChild(std::string_view name) const {
  for (const FieldSchema& child : children_) {
    if (child.name_ == name) return &child;
  }
  return nullptr;
}

std::string FieldSchema::DescribeBounds() const {
  const bool closed_min = min_.has_value() && !min_exclusive_;
  if (min_.has_value() && max_.has_value() && closed_min) {
    return absl::StrCat("in [", FormatBound(*min_), ", ", FormatBound(*max_),
                        max_exclusive_ ? ")" : "]");
  }
  std::vector<std::string> parts;
  if (min_.has_value()) parts.push_back(absl::StrCat(min_exclusive_ ? "> " : ">= ", FormatBound(*min_)));
  if (max_.has_value()) parts.push_back(absl::StrCat(max_exclusive_ ? "< " : "<= ", FormatBound(*max_)));
  return absl::StrJoin(parts, " and ");
}

std::string FieldSchema::DescribeAllowed() const {
  const std::string bounds = DescribeBounds();
  const std::string with_bounds = bounds.empty() ? "" : " " + bounds;
  switch (type_) {
    case FieldType::kInt:
      if (!one_of_.empty()) return absl::StrCat("one of ", absl::StrJoin(one_of_, ", "));
      return "an integer" + with_bounds;
    case FieldType::kFloat:
      return "a number" + with_bounds;
    case FieldType::kBool:
      return "true or false";
    case FieldType::kString:
      return check_rule_.empty() ? "a string" : absl::StrCat("a string of ", check_rule_);
    case FieldType::kEnum:
      return absl::StrCat("one of ", absl::StrJoin(allowed_, ", "));
    case FieldType::kFloatList: {
      std::string text = length_.has_value() ? absl::StrCat("a list of exactly ", *length_, " numbers")
                                             : std::string("a list of numbers");
      if (!bounds.empty()) absl::StrAppend(&text, ", each ", bounds);
      return text;
    }
    case FieldType::kEnumList:
      if (allowed_.empty()) return unchecked_ ? "a list of names" : "an empty list";
      return absl::StrCat("a list of distinct values from ", absl::StrJoin(allowed_, ", "));
    case FieldType::kSection:
      return "a section of key: value pairs";
  }
  return "";
}

bool FieldSchema::AcceptsNumber(double value) const {
  if (min_.has_value() && (min_exclusive_ ? value <= *min_ : value < *min_)) return false;
  if (max_.has_value() && (max_exclusive_ ? value >= *max_ : value > *max_)) return false;
  if (!one_of_.empty() &&
      std::find(one_of_.begin(), one_of_.end(), static_cast<int64_t>(value)) == one_of_.end()) {
    return false;
  }
  return true;
}

std::optional<std::string> FieldSchema::CheckValue(const Value& value) const {
  const std::string must = "must be " + DescribeAllowed();
  auto got = [&](const std::string& shown) { return absl::StrCat(must, ", got ", shown); };
  switch (type_) {
    case FieldType::kInt: {
      const int64_t* v = std::get_if<int64_t>(&value);
      if (v == nullptr) return got("a value of another type");
      if (!AcceptsNumber(static_cast<double>(*v))) return got(absl::StrCat(*v));
      return std::nullopt;
    }
    case FieldType::kFloat: {
      const double* v = std::get_if<double>(&value);
      if (v == nullptr) return got("a value of another type");
      if (!std::isfinite(*v) || !AcceptsNumber(*v)) return got(FormatDouble(*v));
      return std::nullopt;
    }
    case FieldType::kBool:
      if (!std::holds_alternative<bool>(value)) return got("a value of another type");
      return std::nullopt;
    case FieldType::kString: {
      const std::string* v = std::get_if<std::string>(&value);
      if (v == nullptr) return got("a value of another type");
      if (check_ != nullptr && !check_(*v)) return got(QuoteRaw(*v));
      return std::nullopt;
    }
    case FieldType::kEnum: {
      const std::string* v = std::get_if<std::string>(&value);
      if (v == nullptr) return got("a value of another type");
      if (std::find(allowed_.begin(), allowed_.end(), *v) == allowed_.end()) return got(QuoteRaw(*v));
      return std::nullopt;
    }
    case FieldType::kFloatList: {
      const auto* v = std::get_if<std::vector<double>>(&value);
      if (v == nullptr) return got("a value of another type");
      if (!AcceptsLength(v->size())) return got(absl::StrCat(v->size(), " items"));
      for (double item : *v) {
        if (!std::isfinite(item) || !AcceptsNumber(item)) return got(FormatDouble(item));
      }
      return std::nullopt;
    }
    case FieldType::kEnumList: {
      const auto* v = std::get_if<std::vector<std::string>>(&value);
      if (v == nullptr) return got("a value of another type");
      std::set<std::string> seen;
      for (const std::string& item : *v) {
        if (std::find(allowed_.begin(), allowed_.end(), item) == allowed_.end()) {
          return got(QuoteRaw(item));
        }
        if (!seen.insert(item).second) return got(QuoteRaw(item) + " twice");
      }
      return std::nullopt;
    }
    case FieldType::kSection:
      return got("a value");
  }
  return std::nullopt;
}

std::string UnknownKeyMessage(const FieldSchema& section, std::string_view name) {
  if (const std::string* reason = section.FindOtherVariantKey(name); reason && !reason->empty()) {
    return absl::StrCat("unknown key; ", *reason);
  }
  std::vector<std::string> known;
  for (const FieldSchema& child : section.children()) known.push_back(child.name());
  if (known.empty()) return "unknown key; this section takes no keys";
  std::string best = ClosestName(name, known);
  if (!best.empty()) return absl::StrCat("unknown key; did you mean '", best, "'?");
  return absl::StrCat("unknown key; allowed keys: ", absl::StrJoin(known, ", "));
}

std::optional<SpecError> CheckFieldPath(const FieldSchema& root, const std::string& path) {
  const FieldSchema* field = &root;
  std::string walked;
  for (const std::string& part : std::vector<std::string>(absl::StrSplit(path, '.'))) {
    if (field->unchecked()) return std::nullopt;
    const std::string next = JoinPath(walked, part);
    if (field->type() != FieldType::kSection) {
      return SpecError{next, 0, absl::StrCat("unknown key; ", walked, " is a value, not a section"), ""};
    }
    const FieldSchema* child = field->FindChild(part);
    if (child == nullptr) {
      if (field->FindOtherVariantKey(part) != nullptr) return std::nullopt;
      return SpecError{next, 0, UnknownKeyMessage(*field, part), ""};
    }
    field = child;
    walked = next;
  }
  return std::nullopt;
}

void ValidateDocument(const FieldSchema& root, const YAML::Node& node, ResolvedValues* values,
                      std::vector<SpecError>* errors) {
  Validator(values, errors).CheckSection(root, node, "", 0);
}

std::string EmitYaml(const FieldSchema& root, const ResolvedValues& values) {
  std::string out;
  EmitSection(root, "", 0, values, &out);
  return out;
}

std::string DocumentSchema(const FieldSchema& root, int indent) {
  std::string out;
  DocumentSection(root, indent, &out);
  return out;
}

std::string FormatDouble(double value) {
  std::string text;
  for (int precision = 15; precision <= 17; ++precision) {
    text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) break;
  }
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";  // "n": nan, inf
  return text;
}

std::string FormatValue(const Value& value) {
  struct Formatter {
    std::string operator()(int64_t v) const { return absl::StrCat(v); }
    std::string operator()(double v) const { return FormatDouble(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return FormatString(v); }
    std::string operator()(const std::vector<double>& v) const {
      return absl::StrCat("[", absl::StrJoin(v, ", ", [](std::string* out, double d) {
                            out->append(FormatDouble(d));
                          }),
                          "]");
    }
    std::string operator()(const std::vector<std::string>& v) const {
      return absl::StrCat("[", absl::StrJoin(v, ", ", [](std::string* out, const std::string& s) {
                            out->append(FormatString(s));
                          }),
                          "]");
    }
  };
  return std::visit(Formatter{}, value);
}

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  // Optimal-string-alignment distance (a swap of two neighbours costs 1),
  // ignoring case.
  auto distance = [](const std::string& a, const std::string& b) {
    const size_t n = a.size(), m = b.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i) {
      for (size_t j = 1; j <= m; ++j) {
        const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    return d[n][m];
  };
  const std::string lowered = absl::AsciiStrToLower(std::string(name));
  std::string best;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    const size_t dist = distance(lowered, absl::AsciiStrToLower(candidate));
    const size_t limit = std::max<size_t>(1, candidate.size() / 3);
    if (dist <= limit && (best.empty() || dist < best_distance)) {
      best = candidate;
      best_distance = dist;
    }
  }
  return best;
}

std::string FormatSpecError(const SpecError& error) {
  std::string location = error.source;
  if (error.line > 0) absl::StrAppend(&location, ":", error.line);
  if (error.field.empty()) return absl::StrCat(location, ": ", error.message);
  return absl::StrCat(location, ": ", error.field, ": ", error.message);
}

}  // namespace dfv::jobspec
