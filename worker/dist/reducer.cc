#include "worker/dist/reducer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dfv::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `ready` after a parameter's gradient accumulator has run, that is once
// backward has put this step's gradient into parameter.grad().
class GradientReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  explicit GradientReadyHook(std::function<void()> ready) : ready_(std::move(ready)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    ready_();
    return outputs;
  }

 private:
  std::function<void()> ready_;
};

}  // namespace

struct GradientReducer::Plan {
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;     // in the bucket's flat buffer, in elements
    bool ready = false;     // this backward's gradient is in the buffer
    bool expected = true;   // its hook ran last time: its bucket waits for it
    bool late = false;      // its gradient came after its bucket was launched
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> members;  // indices into params
    size_t pending = 0;           // expected members whose hook has not run
    std::unique_ptr<Work> work;   // set once launched
  };
  std::vector<torch::Tensor> params;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::map<const void*, size_t> index;  // parameter -> position in params
  size_t next_launch = 0;
  bool any_late = false;

  torch::Tensor SliceOf(size_t i) const {
    const Slot& s = slots[i];
    return buckets[s.bucket].flat.narrow(0, s.offset, params[i].numel());
  }

  // A tensor shaped like parameter i that shares the memory of its slice.
  // Made with set_ rather than view(): it is not an autograd view, so
  // in-place zeroing and detach_ treat it as the plain tensor a gradient is.
  torch::Tensor AliasOf(size_t i) const {
    const torch::Tensor& flat = buckets[slots[i].bucket].flat;
    const torch::IntArrayRef sizes = params[i].sizes();
    std::vector<int64_t> strides(sizes.size(), 1);
    for (size_t d = sizes.size(); d-- > 1;) strides[d - 1] = strides[d] * std::max<int64_t>(sizes[d], 1);
    return torch::empty({0}, flat.options()).set_(flat.storage(), flat.storage_offset() + slots[i].offset, sizes, strides);
  }

  // Checked for every parameter at every step: pointer arithmetic, no view.
  bool IsAlias(size_t i, const torch::Tensor& grad) const {
    const float* slice = buckets[slots[i].bucket].flat.data_ptr<float>() + slots[i].offset;
    return grad.defined() && grad.is_contiguous() && grad.data_ptr() == slice;
  }

  // Puts parameter i's gradient into its slice if it is not there already.
  // An undefined gradient contributes zeros.
  void Fill(size_t i) {
    const torch::Tensor& grad = params[i].grad();
    if (!grad.defined()) {
      SliceOf(i).zero_();
    } else if (!IsAlias(i, grad)) {
      SliceOf(i).copy_(grad.reshape({-1}));
    }
  }

  void Reset() {
    for (Bucket& b : buckets) {
      b.pending = 0;
      b.work.reset();
      for (size_t i : b.members) {
        slots[i].ready = false;
        slots[i].late = false;
        if (slots[i].expected) {
          ++b.pending;
        } else {
          SliceOf(i).zero_();  // contributes zeros unless a gradient comes
        }
      }
    }
    next_launch = 0;
    any_late = false;
  }
};

GradientReducer::GradientReducer(Communicator& communicator, ReducerOptions options)
    : comm_(communicator), options_(options) {}

GradientReducer::~GradientReducer() {
  for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
}

absl::StatusOr<GradientReducer::Plan*> GradientReducer::PlanFor(const std::vector<torch::Tensor>& parameters) {
  std::vector<const void*> key;
  key.reserve(parameters.size());
  for (const torch::Tensor& p : parameters) key.push_back(p.unsafeGetTensorImpl());
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();

  auto plan = std::make_unique<Plan>();
  plan->params = parameters;
  plan->slots.resize(parameters.size());
  // Reverse order: backward produces the last layers' gradients first.
  std::vector<int64_t> bucket_elements;
  for (size_t k = parameters.size(); k-- > 0;) {
    const torch::Tensor& p = parameters[k];
    if (p.scalar_type() != torch::kFloat32) {
      return absl::InvalidArgumentError(
          absl::StrCat("gradient all-reduce supports float32 parameters only, got ", c10::toString(p.scalar_type())));
    }
    const int64_t bytes_so_far = bucket_elements.empty() ? 0 : bucket_elements.back() * int64_t{sizeof(float)};
    const int64_t bytes = p.numel() * int64_t{sizeof(float)};
    if (bucket_elements.empty() || (bytes_so_far > 0 && bytes_so_far + bytes > options_.bucket_bytes)) {
      plan->buckets.emplace_back();
      bucket_elements.push_back(0);
    }
    plan->slots[k].bucket = plan->buckets.size() - 1;
    plan->slots[k].offset = bucket_elements.back();
    plan->buckets.back().members.push_back(k);
    bucket_elements.back() += p.numel();
    plan->index.emplace(p.unsafeGetTensorImpl(), k);
  }
  for (size_t b = 0; b < plan->buckets.size(); ++b) {
    const torch::Tensor& first = parameters[plan->buckets[b].members[0]];
    plan->buckets[b].flat = torch::zeros({bucket_elements[b]}, first.options().requires_grad(false));
  }
  plan->Reset();
  return plans_.emplace(std::move(key), std::move(plan)).first->second.get();
}

absl::StatusOr<size_t> GradientReducer::BucketCount(const std::vector<torch::Tensor>& parameters) {
  absl::StatusOr<Plan*> plan = PlanFor(parameters);
  if (!plan.ok()) return plan.status();
  return (*plan)->buckets.size();
}

void GradientReducer::Hook(const torch::Tensor& parameter) {
  const void* impl = parameter.unsafeGetTensorImpl();
  // A frozen parameter has no accumulator; it gets a hook once it trains.
  if (!parameter.requires_grad() || !parameter.is_leaf() || hooked_.count(impl)) return;
  std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(parameter);
  if (accumulator == nullptr) return;
  const uintptr_t key =
      accumulator->add_post_hook(std::make_unique<GradientReadyHook>([this, impl] { OnGradientReady(impl); }));
  hooks_.emplace_back(std::move(accumulator), key);
  hooked_.insert(impl);
}

absl::Status GradientReducer::BeforeBackward(const std::vector<torch::Tensor>& parameters) {
  absl::StatusOr<Plan*> plan = PlanFor(parameters);
  if (!plan.ok()) return plan.status();
  (*plan)->Reset();
  if (!options_.overlap) return absl::OkStatus();
  for (const torch::Tensor& p : parameters) Hook(p);
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = *plan;
  return absl::OkStatus();
}

void GradientReducer::OnGradientReady(const void* parameter) {
  std::lock_guard<std::mutex> lock(mu_);
  if (armed_ == nullptr) return;
  Plan& plan = *armed_;
  auto it = plan.index.find(parameter);
  if (it == plan.index.end()) return;  // another optimiser's parameter
  const size_t i = it->second;
  Plan::Slot& slot = plan.slots[i];
  if (slot.ready) {
    throw std::logic_error("gradient reducer: a parameter received two gradients in one backward");
  }
  slot.ready = true;
  if (!slot.expected) {
    // Not waited for. Its gradient is not an alias (Synchronize keeps
    // unexpected gradients out of the buckets), so it is intact either way.
    if (plan.buckets[slot.bucket].work != nullptr) {
      slot.late = true;  // its bucket went without it: reduced on its own
      plan.any_late = true;
    } else {
      plan.Fill(i);
    }
    return;  // not counted in pending
  }
  plan.Fill(i);
  --plan.buckets[slot.bucket].pending;
  LaunchReadyLocked(plan);
}

void GradientReducer::LaunchReadyLocked(Plan& plan) {
  while (plan.next_launch < plan.buckets.size() && plan.buckets[plan.next_launch].pending == 0) {
    Launch(plan, plan.next_launch, /*in_backward=*/true);
    ++plan.next_launch;
  }
}

void GradientReducer::Launch(Plan& plan, size_t bucket, bool in_backward) {
  plan.buckets[bucket].work = comm_.StartAllReduceSum(plan.buckets[bucket].flat);
  ++stats_.buckets;
  stats_.bytes += static_cast<int64_t>(plan.buckets[bucket].flat.nbytes());
  if (in_backward) ++stats_.launched_in_backward;
}

ReducerStats GradientReducer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::Status GradientReducer::Synchronize(const std::vector<torch::Tensor>& parameters) {
  absl::StatusOr<Plan*> planned = PlanFor(parameters);
  if (!planned.ok()) return planned.status();
  Plan& plan = **planned;
  torch::NoGradGuard no_grad;
  std::vector<std::unique_ptr<Work>> works;
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = nullptr;
    // Whatever the hooks did not deliver: gradients backward produced without
    // a hook (overlap off) and parameters without a gradient (zeros).
    for (size_t b = plan.next_launch; b < plan.buckets.size(); ++b) {
      for (size_t i : plan.buckets[b].members) {
        if (!plan.slots[i].ready) plan.Fill(i);
      }
      Launch(plan, b, /*in_backward=*/false);
    }
    plan.next_launch = plan.buckets.size();
    for (auto& bucket : plan.buckets) works.push_back(std::move(bucket.work));
  }
  if (absl::Status waited = Wait(std::move(works)); !waited.ok()) return waited;
  if (plan.any_late) {
    if (absl::Status late = ReduceLate(plan); !late.ok()) return late;
  }
  for (size_t i = 0; i < plan.params.size(); ++i) {
    Plan::Slot& slot = plan.slots[i];
    torch::Tensor& grad = plan.params[i].mutable_grad();
    // With hooks, a bucket next waits only for the parameters whose hook ran.
    // Without them every gradient is filled in after backward.
    if (options_.overlap) slot.expected = slot.ready;
    if (!grad.defined()) continue;  // no gradient: it stays without one
    if (slot.expected) {
      if (!plan.IsAlias(i, grad)) grad = plan.AliasOf(i);  // the sum is in the slice
    } else if (plan.IsAlias(i, grad)) {
      // Not waited for next time: its gradient must not share a buffer that
      // may be on the wire when backward writes it.
      grad = grad.clone();
    } else {
      grad.copy_(plan.SliceOf(i).view(grad.sizes()));
    }
  }
  return absl::OkStatus();
}

absl::Status GradientReducer::ReduceLate(Plan& plan) {
  // Rare: the graph changed and a gradient arrived after its bucket had been
  // reduced with zeros in its place. Every rank has the same graph, so every
  // rank reduces the same slices here, in parameter order.
  std::vector<std::unique_ptr<Work>> works;
  int64_t bytes = 0;
  for (size_t i = 0; i < plan.params.size(); ++i) {
    if (!plan.slots[i].late) continue;
    plan.Fill(i);
    torch::Tensor slice = plan.SliceOf(i);
    bytes += static_cast<int64_t>(slice.nbytes());
    works.push_back(comm_.StartAllReduceSum(slice));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.late_gradients += static_cast<int64_t>(works.size());
    stats_.bytes += bytes;
  }
  return Wait(std::move(works));
}

absl::Status GradientReducer::Wait(std::vector<std::unique_ptr<Work>> works) {
  const auto start = Clock::now();
  absl::Status failure;
  for (auto& work : works) {
    absl::Status s = work->Wait();
    if (!s.ok() && failure.ok()) failure = s;
  }
  blocked_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  return failure;
}

absl::Status GradientReducer::AverageValues(std::vector<double>& values) {
  if (values.empty()) return absl::OkStatus();
  torch::Tensor t = torch::tensor(values, torch::kFloat64);
  if (absl::Status summed = comm_.AllReduceSum(t); !summed.ok()) return summed;
  t.div_(comm_.world_size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
  return absl::OkStatus();
}

absl::Status GradientReducer::BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) {
  torch::NoGradGuard no_grad;
  return comm_.Broadcast(std::move(tensors), 0);
}

double GradientReducer::TakeBlockedSeconds() {
  return std::exchange(blocked_seconds_, 0.0);
}

int64_t GradientReducer::TakeReducedBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_.bytes - std::exchange(bytes_taken_, stats_.bytes);
}

}  // namespace dfv::dist
