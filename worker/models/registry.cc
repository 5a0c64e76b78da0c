#include "worker/models/registry.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/cycle_vae.h"
#include "worker/models/vae.h"

namespace dfv::models {
namespace {

const std::map<std::string, ModelFactory>& Factories() {
  static const auto* factories = new std::map<std::string, ModelFactory>{
      {"vae", CreateVae},
      {"cycle_vae", CreateCycleVae},
  };
  return *factories;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> CreateModel(const ModelContext& context) {
  const std::string& name = context.spec->model;
  auto it = Factories().find(name);
  if (it == Factories().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown model '", name, "'; known: ", absl::StrJoin(RegisteredModels(), ", ")));
  }
  try {
    return it->second(context);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("building model '", name, "' failed: ", e.what()));
  }
}

std::vector<std::string> RegisteredModels() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Factories()) names.push_back(name);
  return names;
}

}  // namespace dfv::models
