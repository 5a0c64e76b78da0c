#include "worker/train/step_trace.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace dfv::train {
namespace {

c10::impl::GenericDict StringKeyed() { return c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()); }

}  // namespace

StepTrace::StepTrace(models::Model& model, const std::string& job_yaml, const data::ImageSet& train,
                     int64_t total_steps, int64_t steps)
    : steps_(steps), root_(StringKeyed()), step_list_(c10::AnyType::get()) {
  torch::NoGradGuard no_grad;
  c10::impl::GenericDict state = StringKeyed();
  for (auto& [module_name, module] : model.Modules()) {
    c10::impl::GenericDict tensors = StringKeyed();
    for (const auto& item : module->named_parameters()) tensors.insert(item.key(), item.value().detach().cpu().clone());
    for (const auto& item : module->named_buffers()) tensors.insert(item.key(), item.value().detach().cpu().clone());
    state.insert(module_name, std::move(tensors));
  }
  root_.insert("format", std::string("dfv-step-trace-1"));
  root_.insert("job_yaml", job_yaml);
  root_.insert("train_size", train.size);
  root_.insert("num_classes", static_cast<int64_t>(train.num_classes));
  root_.insert("total_steps", total_steps);
  root_.insert("state", std::move(state));
}

void StepTrace::AddStep(int64_t step, const data::Batch& batch, const models::Metrics& metrics) {
  if (Full()) return;
  c10::impl::GenericDict tensors = StringKeyed();
  const std::pair<const char*, const torch::Tensor*> fields[] = {
      {"images", &batch.images},           {"labels", &batch.labels},
      {"indices", &batch.indices},         {"same_images", &batch.same_images},
      {"same_indices", &batch.same_indices}, {"other_images", &batch.other_images},
      {"other_labels", &batch.other_labels}, {"other_indices", &batch.other_indices}};
  for (const auto& [name, tensor] : fields) {
    if (tensor->defined()) tensors.insert(name, tensor->detach().cpu().clone());
  }
  c10::impl::GenericDict values = StringKeyed();
  for (const auto& [name, value] : metrics) values.insert(name, value);
  c10::impl::GenericDict entry = StringKeyed();
  entry.insert("step", step);
  entry.insert("batch", std::move(tensors));
  entry.insert("metrics", std::move(values));
  step_list_.push_back(std::move(entry));
  ++traced_;
}

absl::Status StepTrace::Write(const std::string& path) const {
  std::vector<char> bytes;
  try {
    c10::impl::GenericDict root = root_.copy();
    root.insert("steps", step_list_.copy());
    bytes = torch::pickle_save(root);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("pickling the step trace failed: ", e.what()));
  }
  return WriteFileAtomically(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace dfv::train
