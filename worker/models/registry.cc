#include "worker/models/registry.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/models/acgan.h"
#include "worker/models/cycle_vae.h"
#include "worker/models/dcgan.h"
#include "worker/models/infogan.h"
#include "worker/models/lord.h"
#include "worker/models/mathieu.h"
#include "worker/models/vae.h"

namespace dfv::models {
namespace {

const std::map<std::string, ModelFactory>& Factories() {
  static const auto* factories = new std::map<std::string, ModelFactory>{
      {"vae", CreateVae},
      {"cycle_vae", CreateCycleVae},
      {"dcgan", CreateDcgan},
      {"acgan", CreateAcgan},
      {"infogan", CreateInfogan},
      {"mathieu", CreateMathieu},
      {"lord", CreateLord},
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
