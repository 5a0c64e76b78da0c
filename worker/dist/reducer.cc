#include "worker/dist/reducer.h"

#include <chrono>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dfv::dist {
namespace {

using Clock = std::chrono::steady_clock;

void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) throw models::CollectiveError(status);
}

}  // namespace

struct GradientReducer::Plan {
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;  // in the bucket's flat buffer, in elements
    bool ready = false;     // this backward's gradient is in the buffer
    bool expected = true;   // had a gradient last time: its bucket waits for it
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> members;  // indices into params
    size_t pending = 0;           // members without a gradient yet
    std::unique_ptr<Work> work;   // set once launched
  };
  std::vector<torch::Tensor> params;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::map<const void*, size_t> index;  // parameter -> position in params
  size_t next_launch = 0;
  // A gradient arrived for a parameter whose bucket had already been started
  // without it (the graph changed): this step is reduced again after backward.
  bool late = false;

  torch::Tensor SliceOf(size_t i) {
    const Slot& s = slots[i];
    return buckets[s.bucket].flat.narrow(0, s.offset, params[i].numel());
  }
  void Reset() {
    for (Bucket& b : buckets) {
      b.pending = 0;
      b.work.reset();
      for (size_t i : b.members) {
        slots[i].ready = false;
        if (slots[i].expected) {
          ++b.pending;
        } else {
          SliceOf(i).zero_();  // contributes zeros unless a gradient comes
        }
      }
    }
    next_launch = 0;
    late = false;
  }
};

GradientReducer::GradientReducer(Communicator& communicator, ReducerOptions options)
    : comm_(communicator), options_(options) {}

GradientReducer::~GradientReducer() {
  for (auto& [tensor, handle] : hooks_) {
    try {
      tensor.remove_hook(handle);
    } catch (const std::exception&) {
      // The tensor no longer requires grad: its hooks went with its graph.
    }
  }
}

GradientReducer::Plan& GradientReducer::PlanFor(const std::vector<torch::Tensor>& parameters) {
  std::vector<const void*> key;
  key.reserve(parameters.size());
  for (const torch::Tensor& p : parameters) key.push_back(p.unsafeGetTensorImpl());
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;

  auto plan = std::make_unique<Plan>();
  plan->params = parameters;
  plan->slots.resize(parameters.size());
  // Reverse order: backward produces the last layers' gradients first.
  std::vector<int64_t> bucket_elements;
  for (size_t k = parameters.size(); k-- > 0;) {
    const torch::Tensor& p = parameters[k];
    if (p.scalar_type() != torch::kFloat32) {
      throw models::CollectiveError(absl::InvalidArgumentError(
          absl::StrCat("gradient all-reduce supports float32 parameters only, got ", c10::toString(p.scalar_type()))));
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
  return *plans_.emplace(std::move(key), std::move(plan)).first->second;
}

size_t GradientReducer::BucketCount(const std::vector<torch::Tensor>& parameters) {
  return PlanFor(parameters).buckets.size();
}

void GradientReducer::BeforeBackward(const std::vector<torch::Tensor>& parameters) {
  Plan& plan = PlanFor(parameters);
  plan.Reset();
  if (!options_.overlap) return;
  for (const torch::Tensor& p : parameters) {
    const void* impl = p.unsafeGetTensorImpl();
    // A frozen parameter cannot take a hook; it gets one once it trains.
    if (!p.requires_grad() || hooked_.count(impl)) continue;
    torch::Tensor handle_owner = p;
    const unsigned handle =
        handle_owner.register_hook([this, impl](const torch::Tensor& grad) { OnGradient(impl, grad); });
    hooks_.emplace_back(std::move(handle_owner), handle);
    hooked_.insert(impl);
  }
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = &plan;
}

void GradientReducer::OnGradient(const void* parameter, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mu_);
  if (armed_ == nullptr) return;
  auto it = armed_->index.find(parameter);
  if (it == armed_->index.end()) return;  // another optimiser's parameter
  const size_t i = it->second;
  Plan::Slot& slot = armed_->slots[i];
  if (slot.ready) {
    throw std::logic_error("gradient reducer: a parameter received two gradients in one backward");
  }
  slot.ready = true;
  if (!slot.expected) {
    slot.expected = true;
    if (armed_->buckets[slot.bucket].work != nullptr) {
      armed_->late = true;  // its bucket went without it
      return;
    }
    armed_->SliceOf(i).copy_(grad.reshape({-1}));
    return;  // not counted in pending
  }
  armed_->SliceOf(i).copy_(grad.reshape({-1}));
  --armed_->buckets[slot.bucket].pending;
  LaunchReadyLocked(*armed_);
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
  if (in_backward) ++stats_.launched_in_backward;
}

ReducerStats GradientReducer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void GradientReducer::Synchronize(const std::vector<torch::Tensor>& parameters) {
  Plan& plan = PlanFor(parameters);
  bool redo = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = nullptr;
    // Whatever the hooks did not deliver: gradients backward produced without
    // a hook (overlap off) and parameters without a gradient (zeros).
    for (size_t b = plan.next_launch; b < plan.buckets.size(); ++b) {
      for (size_t i : plan.buckets[b].members) {
        if (!plan.slots[i].ready) FillFromGradient(plan, i);
      }
      Launch(plan, b, /*in_backward=*/false);
    }
    plan.next_launch = plan.buckets.size();
    redo = plan.late;
  }
  WaitAll(plan);
  if (redo) {
    // Rare: a bucket was reduced before a gradient it now has arrived. Every
    // rank has the same graph, so every rank redoes this step's reduction.
    for (size_t b = 0; b < plan.buckets.size(); ++b) {
      for (size_t i : plan.buckets[b].members) FillFromGradient(plan, i);
      Launch(plan, b, /*in_backward=*/false);
    }
    WaitAll(plan);
  }
  // Sum -> mean while copying back: one pass over each gradient.
  torch::NoGradGuard no_grad;
  const torch::Tensor scale = torch::scalar_tensor(1.0 / comm_.world_size(), torch::kFloat32);
  for (size_t i = 0; i < plan.params.size(); ++i) {
    torch::Tensor grad = plan.params[i].mutable_grad();
    // Next time, buckets wait only for the parameters that had a gradient.
    plan.slots[i].expected = grad.defined();
    if (grad.defined()) torch::mul_out(grad, plan.SliceOf(i).view_as(grad), scale);
  }
}

void GradientReducer::FillFromGradient(Plan& plan, size_t i) {
  const torch::Tensor& grad = plan.params[i].grad();
  if (grad.defined()) {
    plan.SliceOf(i).copy_(grad.reshape({-1}));
  } else {
    plan.SliceOf(i).zero_();
  }
}

void GradientReducer::WaitAll(Plan& plan) {
  const auto start = Clock::now();
  absl::Status failure;
  for (auto& bucket : plan.buckets) {
    absl::Status s = bucket.work->Wait();
    bucket.work.reset();
    if (!s.ok() && failure.ok()) failure = s;
  }
  blocked_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  ThrowIfError(failure);
}

void GradientReducer::AverageValues(std::vector<double>& values) {
  if (values.empty()) return;
  torch::Tensor t = torch::tensor(values, torch::kFloat64);
  ThrowIfError(comm_.AllReduceSum(t));
  t.div_(comm_.world_size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
}

void GradientReducer::BroadcastFromFirstRank(std::vector<torch::Tensor> tensors) {
  torch::NoGradGuard no_grad;
  ThrowIfError(comm_.Broadcast(std::move(tensors), 0));
}

double GradientReducer::TakeBlockedSeconds() {
  return std::exchange(blocked_seconds_, 0.0);
}

}  // namespace dfv::dist
