// ParamMap's getters. The map was filled from a validated schema, so a missing
// name or a wrong type means the calling code disagrees with the catalogue:
// a programming error, reported loudly.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/jobspec/job_spec.h"

namespace dfv::jobspec {
namespace {

[[noreturn]] void Die(const std::string& name, const char* what) {
  std::fprintf(stderr, "dfv::jobspec::ParamMap: parameter '%s' %s\n", name.c_str(), what);
  std::abort();
}

template <typename T>
const T& GetTyped(const std::map<std::string, ParamValue>& values, const std::string& name,
                  const char* type_name) {
  auto it = values.find(name);
  if (it == values.end()) Die(name, "is not declared");
  const T* value = std::get_if<T>(&it->second);
  if (value == nullptr) {
    std::fprintf(stderr, "dfv::jobspec::ParamMap: parameter '%s' is not %s\n", name.c_str(),
                 type_name);
    std::abort();
  }
  return *value;
}

}  // namespace

int64_t ParamMap::GetInt(const std::string& name) const {
  return GetTyped<int64_t>(values_, name, "an int");
}

double ParamMap::GetDouble(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) Die(name, "is not declared");
  if (const int64_t* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  return GetTyped<double>(values_, name, "a number");
}

bool ParamMap::GetBool(const std::string& name) const {
  return GetTyped<bool>(values_, name, "a bool");
}

const std::string& ParamMap::GetString(const std::string& name) const {
  return GetTyped<std::string>(values_, name, "a string");
}

const std::vector<double>& ParamMap::GetDoubleList(const std::string& name) const {
  return GetTyped<std::vector<double>>(values_, name, "a list of numbers");
}

}  // namespace dfv::jobspec
