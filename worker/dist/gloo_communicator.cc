// ProcessGroupGloo.hpp only declares the class when USE_C10D_GLOO is set (the
// macro LibTorch was built with); Debian's LibTorch 1.13 and the 2.x builds
// both include Gloo.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include "worker/dist/gloo_communicator.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/dist/status_util.h"

namespace dfv::dist {
namespace {

class GlooWork final : public Work {
 public:
  GlooWork(c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors)
      : work_(std::move(work)), tensors_(std::move(tensors)) {}
  absl::Status Wait() override {
    try {
      work_->wait();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return CollectiveFailure("gloo all-reduce", e.what());
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;  // alive until the collective is done
};

class GlooCommunicator final : public Communicator {
 public:
  explicit GlooCommunicator(c10::intrusive_ptr<c10d::ProcessGroupGloo> group) : group_(std::move(group)) {}

  int rank() const override { return group_->getRank(); }
  int world_size() const override { return group_->getSize(); }
  std::string backend() const override { return "gloo"; }

  std::unique_ptr<Work> StartAllReduceSum(torch::Tensor tensor) override {
    if (!tensor.is_contiguous() || tensor.is_cuda()) {
      return std::make_unique<CompletedWork>(
          absl::InvalidArgumentError("gloo all-reduce: the tensor must be a contiguous CPU tensor"));
    }
    std::vector<at::Tensor> tensors{std::move(tensor)};
    try {
      c10::intrusive_ptr<c10d::Work> work = group_->allreduce(tensors);
      return std::make_unique<GlooWork>(std::move(work), std::move(tensors));
    } catch (const std::exception& e) {
      return std::make_unique<CompletedWork>(CollectiveFailure("gloo all-reduce", e.what()));
    }
  }

  absl::Status Broadcast(std::vector<torch::Tensor> tensors, int root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    try {
      for (torch::Tensor& t : tensors) {
        // Gloo broadcasts contiguous buffers; copy back when a view is not.
        torch::Tensor buffer = t.is_contiguous() ? t : t.contiguous();
        std::vector<at::Tensor> one{buffer};
        group_->broadcast(one, options)->wait();
        if (!buffer.is_same(t)) t.copy_(buffer);
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return CollectiveFailure("gloo broadcast", e.what());
    }
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(c10::intrusive_ptr<c10d::Store> store,
                                                                     int rank, int world_size,
                                                                     const GlooOptions& options) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " of world size ", world_size));
  }
  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo_options->devices.push_back(options.interface_host.empty()
                                        ? c10d::ProcessGroupGloo::createDefaultDevice()
                                        : c10d::ProcessGroupGloo::createDeviceForHostname(options.interface_host));
    gloo_options->threads = options.threads;
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("dfv/gloo", std::move(store));
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, gloo_options);
    return std::unique_ptr<Communicator>(new GlooCommunicator(std::move(group)));
  } catch (const std::exception& e) {
    return CollectiveFailure(absl::StrCat("connecting rank ", rank, " of ", world_size, " over gloo"), e.what());
  }
}

}  // namespace dfv::dist
